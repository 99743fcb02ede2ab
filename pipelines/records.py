"""The typed records that flow between pipeline stages.

Raw text exists only in :class:`ParsedDocument`; every later record carries redacted text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from connectors.base import DocumentRef

#: Why a listed document is (or is not) processed in this run.
ChangeKind = Literal[
    "new", "changed", "unchanged", "failed_before", "retag", "move", "rename", "refused", "rebuild"
]

#: The stage at which a document failed.
Stage = Literal["list", "fetch", "partition", "redact", "chunk", "embed", "index", "policy"]


#: Failure reasons that depend only on the file's content: not retried until the content changes.
#: Any other failure (a database error, an unexpected error) is retried on the next run.
PERMANENT_REASONS = frozenset(
    {"unsupported_type", "empty", "too_large", "encrypted", "parse_error", "no_text"}
)


@dataclass(frozen=True, slots=True)
class Governance:
    """The residency and access tags every document and chunk carries."""

    residency: str
    access: tuple[str, ...]

    @property
    def digest(self) -> str:
        """A short, stable digest of the tags: a change re-tags the document."""
        import hashlib

        payload = self.residency + "\x00" + "\x00".join(sorted(self.access))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class DocumentTask:
    """A listed document that this run will process, with its id and governance tags."""

    ref: DocumentRef
    document_id: str
    governance: Governance
    change: ChangeKind


@dataclass(frozen=True, slots=True)
class Failure:
    """A document that a stage refused, with a reason code and a message free of document content."""

    task: DocumentTask
    stage: Stage
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ParsedElement:
    """One element partitioned out of a document (title, paragraph, list item, table ...).

    ``cells`` holds a table's rows (first row: headers) so redaction can work cell by cell; it is
    dropped after redaction, when ``text`` carries the table as ``header: value`` lines.
    """

    category: str
    text: str
    page_number: int | None = None
    cells: tuple[tuple[str, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A document's elements as partitioned, before redaction. Lives only in memory."""

    task: DocumentTask
    elements: list[ParsedElement]
    content_type: str


@dataclass(frozen=True, slots=True)
class RedactedDocument:
    """A document's elements after PII redaction, with counts by entity type (never values)."""

    task: DocumentTask
    elements: list[ParsedElement]
    content_type: str
    redactions: dict[str, int]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable chunk of redacted text with a deterministic id."""

    chunk_id: str
    seq: int
    text: str
    page_number: int | None


@dataclass(frozen=True, slots=True)
class ChunkedDocument:
    """A redacted document cut into chunks."""

    document: RedactedDocument
    chunks: list[Chunk]


@dataclass(frozen=True, slots=True)
class EmbeddedDocument:
    """A chunked document with one unit-length vector per chunk."""

    chunked: ChunkedDocument
    vectors: npt.NDArray[np.float32]


T = TypeVar("T")


@dataclass(slots=True)
class Batch(Generic[T]):
    """A stage's output: the documents that went through and every failure so far."""

    items: list[T] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: int = 0
