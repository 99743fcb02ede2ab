"""What the stages need of a region's index, as protocols (the index layer implements them).

The stages never import the index package: the orchestration layer hands them objects that fit.
"""

from __future__ import annotations

from typing import Any, Protocol

from groundwork.enums import ErasureReason
from groundwork.records import DocumentTask, EmbeddedDocument, Failure, Governance, StoredState


class FailureRecords(Protocol):
    """A region's recorded ingest failures."""

    def of_source(self, source: str) -> dict[str, tuple[str, str]]:
        """Source id -> (version, reason) of every recorded failure of ``source``."""
        ...

    def record(self, failure: Failure) -> None:
        """Record (or update) one failure."""
        ...

    def clear(self, source: str, source_id: str) -> None:
        """Forget one document's failure."""
        ...


class Tombstones(Protocol):
    """A region's erasure records."""

    def ids(self, reason: ErasureReason) -> set[str]:
        """Ids of the documents erased for ``reason``."""
        ...

    def digests(self) -> set[str]:
        """Content digests of the documents forgotten on request."""
        ...


class RegionStore(Protocol):
    """One region's index as the stages see it."""

    @property
    def region(self) -> str:
        """The residency region this index holds."""
        ...

    @property
    def failures(self) -> FailureRecords:
        """The region's failure records."""
        ...

    @property
    def tombstones(self) -> Tombstones:
        """The region's erasure records."""
        ...

    def document_states(self, source: str) -> dict[str, StoredState]:
        """What is stored for each document of ``source``, by document id."""
        ...

    def write_document(self, doc: EmbeddedDocument, *, run_id: str = "") -> int:
        """Replace one document and its chunks (written by ingest run ``run_id``); returns the chunks written."""
        ...

    def retag(self, document_id: str, governance: Governance) -> int:
        """Change a stored document's access tags in place."""
        ...

    def export_document(self, document_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A stored document's row and chunk rows, to move them elsewhere."""
        ...

    def import_document(
        self,
        doc: dict[str, Any],
        chunks: list[dict[str, Any]],
        governance: Governance,
        *,
        task: DocumentTask | None = None,
    ) -> int:
        """Store an exported document here under new tags (and, with ``task``, a new identity)."""
        ...

    def delete_document(self, document_id: str) -> bool:
        """Remove a document and its chunks; returns whether it was here."""
        ...

    def erase(self, document_id: str, *, by: str, reason: ErasureReason) -> bool:
        """Delete a document leaving a tombstone; returns whether it was here."""
        ...
