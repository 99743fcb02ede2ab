"""How long Groundwork keeps its own records of processing (the ``records`` section of the config):
the retrieval audit and the agents' ledger. Documents' retention is per source (``retention_days``)."""

from __future__ import annotations

from pydantic import Field

from groundwork.sections import Strict


class RecordsConfig(Strict):
    """How long the records Groundwork keeps of its own processing stay: the retrieval audit and the
    agents' ledger. Unset: kept until erased by hand. Rows past their period leave with the
    ``daily_retention`` purge; erasure tombstones always stay (they keep forgotten documents out)."""

    audit_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Days a search's audit row (caller, time, decision, redacted query, chunk ids) is kept.",
    )
    ledger_retention_days: int | None = Field(
        default=None,
        ge=8,
        le=36_500,
        description=(
            "Days the agents' ledger rows (search summaries, action checks, chain events) are kept; at "
            "least 8, so the brakes' windows (up to 7 days, and today's cost) always read whole."
        ),
    )
