"""The protocol every connector follows: cheap listing, then fetching bytes.

A connector module defines its settings model (a :class:`~groundwork.settings.ConnectorSettings`
subclass) and a class implementing :class:`Connector`, and registers the class under the
``groundwork.connectors`` entry-point group (see :mod:`groundwork.plugins`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

from groundwork.records import DocumentRef

#: What a listing may already know of a document from the index, by source id:
#: (fingerprint, version) as stored by the last run that processed it.
Known = Mapping[str, tuple[str | None, str]]


@runtime_checkable
class Connector(Protocol):
    """Lists the documents of one source and fetches their bytes."""

    name: str

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every document currently in the source.

        ``known`` maps source ids to the (fingerprint, version) the index holds: a connector whose
        version costs a read (a content hash) reuses the stored version when the cheap fingerprint
        is unchanged. Connectors whose source reports versions (ETag, UID) ignore it.
        """
        ...

    def fetch(self, ref: DocumentRef) -> bytes:
        """Return the bytes of one listed document."""
        ...

    def change_token(self) -> str | None:
        """A cheap token that changes whenever the source might have changed, or None if unknown.

        Sensors compare tokens to start a run without a full listing (no content is read).
        """
        ...
