"""The protocol every connector follows: cheap listing, then fetching bytes.

A connector module defines its settings model (a :class:`~groundwork.settings.ConnectorSettings`
subclass) and a class implementing :class:`Connector`, and registers the class under the
``groundwork.connectors`` entry-point group (see :mod:`groundwork.plugins`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

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


def secret_keys(data: Any, pattern: re.Pattern[str], where: str = "", *, nested: bool = True) -> list[str]:
    """Dotted paths of the keys of a source entry that ``pattern`` takes for secrets, so a settings
    model can refuse them, naming the keys and never their values: nested mappings and lists too
    unless ``nested`` is false. A top-level key ending in ``_env`` names an environment variable."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and pattern.search(key) and (where or not key.endswith("_env")):
                found.append(path)
            if nested:
                found += secret_keys(value, pattern, path)
    elif isinstance(data, list) and nested:
        for value in data:
            found += secret_keys(value, pattern, where)
    return found
