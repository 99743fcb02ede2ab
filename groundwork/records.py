"""The typed records that flow from connectors through the stages to the indexes.

Raw text exists only in :class:`ParsedDocument`; every later record carries redacted text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from groundwork.enums import ChangeKind, FailureReason, Stage


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One document as a listing sees it: identity, version and the source's permissions, no content.

    ``source_id`` is stable for the life of the document in its source (a relative path for files);
    ``version`` changes whenever the content does (a content hash for files). ``permissions`` are
    the grants (``group:<g>``, ``principal:<p>``) the source itself says may read the document, for
    sources that keep permissions (a mailbox, a document store); None where the source has none,
    an empty tuple where it names nobody. ``fingerprint`` is a cheap token of the listing (size
    and modification time for files) stored beside the version, so the next listing can keep the
    version without reading the content when the fingerprint is unchanged.
    """

    source: str
    source_id: str
    uri: str
    version: str
    size_bytes: int
    modified_at: datetime | None = None
    permissions: tuple[str, ...] | None = None
    fingerprint: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The last path segment of ``source_id``, used to pick a partitioner; a connector whose ids
        carry no file name (a web page's URL) names one in ``extra["filename"]``."""
        return self.extra.get("filename") or self.source_id.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Governance:
    """The residency and access tags every document and chunk carries.

    ``access`` are the operator's policy grants; ``source_access`` the grants the source itself
    gives (None for a source that keeps no permissions). A reader needs one of each. ``decided_by``
    says which part of the operator's policy set them (kept for lineage; it does not take part in
    comparisons or the digest, so rewording a rule re-tags nothing).
    """

    residency: str
    access: tuple[str, ...]
    source_access: tuple[str, ...] | None = None
    decided_by: str = field(default="", compare=False)

    @property
    def digest(self) -> str:
        """A short, stable digest of the tags: a change re-tags the document."""
        payload = self.residency + "\x00" + "\x00".join(sorted(self.access))
        if self.source_access is not None:
            payload += "\x01" + "\x00".join(sorted(self.source_access))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class DocumentTask:
    """A listed document that this run will process, with its id and governance tags."""

    ref: DocumentRef
    document_id: str
    governance: Governance
    change: ChangeKind

    @property
    def log_name(self) -> str:
        """How log lines name this document: its source and id, never its path or title (which can
        hold a person's name). ``groundwork failures`` maps the id back; after ``forget`` nothing does."""
        return f"{self.ref.source} document {self.document_id}"


@dataclass(frozen=True, slots=True)
class Failure:
    """A document that a stage refused, with a reason code and a message free of document content."""

    task: DocumentTask
    stage: Stage
    reason: FailureReason
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
    """One retrievable chunk of redacted text with a deterministic id and its own placeholder counts."""

    chunk_id: str
    seq: int
    text: str
    page_number: int | None
    redactions: dict[str, int] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class StoredState:
    """What an index holds for one document: enough to tell whether it changed."""

    version: str
    access_digest: str
    source_id: str = ""
    fingerprint: str | None = None
    #: Stored only in the live version while a new version (other model or chunking) is built:
    #: it must be processed again, and its embeddings must never be copied into the new version.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class IndexCounts:
    """Row counts of one region's index."""

    documents: int
    chunks: int
    failures: int
