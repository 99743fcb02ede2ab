"""Typed records and the protocol every connector follows: cheap listing, then fetching bytes."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


def path_matches(rel: str, pattern: str) -> bool:
    """Whether a POSIX relative path matches a glob; ``**/`` also matches at the top level."""
    return fnmatch.fnmatchcase(rel, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatchcase(rel, pattern[3:])
    )


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One document as a listing sees it: identity and version, no content.

    ``source_id`` is stable for the life of the document in its source (a relative path for files);
    ``version`` changes whenever the content does (a content hash for files).
    """

    source: str
    source_id: str
    uri: str
    version: str
    size_bytes: int
    modified_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The last path segment of ``source_id``, used to pick a partitioner."""
        return self.source_id.rsplit("/", 1)[-1]


@runtime_checkable
class Connector(Protocol):
    """Lists the documents of one source and fetches their bytes."""

    name: str

    def list(self) -> Iterator[DocumentRef]:
        """Yield a reference for every document currently in the source."""
        ...

    def fetch(self, ref: DocumentRef) -> bytes:
        """Return the bytes of one listed document."""
        ...

    def change_token(self) -> str | None:
        """A cheap token that changes whenever the source might have changed, or None if unknown.

        Sensors compare tokens to start a run without a full listing (no content is read).
        """
        ...
