"""Data-access contracts: what the operator agreed with a source's data owner before ingesting it.

Each source declares one in the config (``contract:``). Ingest refuses a source without one (fail
closed), unless the config says plainly that it has none (``contract: none``), which the steward's
report shows in red. The records of processing (UK GDPR Art. 30, the CNIL register) and the report
are generated from these contracts and the config.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from groundwork.enums import LawfulBasis

#: A short free-text entry (a purpose, a category, a reference).
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]

#: The value that acknowledges a source has no contract.
NO_CONTRACT = "none"


class DataContract(BaseModel):
    """The agreement under which a source's documents are ingested.

    ``residency_commitment`` lists the regions the data owner agreed the data may be stored in: the
    source's policy may place documents only there (checked when the config loads).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_owner: Text
    purpose: Text
    lawful_basis: LawfulBasis
    data_categories: list[Text] = Field(min_length=1)
    data_subjects: list[Text] = Field(min_length=1)
    agreement: Text
    residency_commitment: list[Region] = Field(min_length=1)
    retention: Text
    #: Special categories of personal data (UK GDPR Art. 9), if any: health, union membership, ...
    special_categories: list[Text] = Field(default_factory=list)
    #: The customer this source belongs to, for a report scoped to one customer's sources.
    customer: Text | None = None


#: Fields a contract must name, in the order the refusal message lists them.
REQUIRED_FIELDS = tuple(name for name, f in DataContract.model_fields.items() if f.is_required())


def missing_contract_message(source: str) -> str:
    """Why a source without a contract is refused, and what to add."""
    return (
        f"source {source!r} has no data-access contract; add `contract:` with "
        f"{', '.join(REQUIRED_FIELDS)} (lawful_basis one of {', '.join(b.value for b in LawfulBasis)}), "
        f"or `contract: {NO_CONTRACT}` to acknowledge that it has none"
    )
