"""The filesystem connector: a folder tree, filtered by include and exclude globs."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from connectors.base import DocumentRef, path_matches
from groundwork.errors import ConnectorError

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024


class FilesystemConnector:
    """Reads every regular file under ``root`` whose relative path matches the globs.

    The source id is the POSIX path relative to ``root``; the version is the SHA-256 of the content,
    so a touched but unchanged file is not reprocessed. Symbolic links are not followed, so a source
    cannot reach outside its root.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.include = include or ["**/*"]
        self.exclude = exclude or []

    def _selected(self, rel: str) -> bool:
        return any(path_matches(rel, p) for p in self.include) and not any(
            path_matches(rel, p) for p in self.exclude
        )

    def list(self) -> Iterator[DocumentRef]:
        """Yield a reference for every selected file, in sorted path order."""
        if not self.root.is_dir():
            raise ConnectorError(f"source {self.name!r}: folder does not exist: {self.root}")
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(self.root).as_posix()
            if not self._selected(rel):
                continue
            try:
                stat = path.stat()
                digest = _sha256(path)
            except OSError as exc:
                logger.warning("source %s: cannot read %s: %s", self.name, rel, exc.strerror)
                continue
            yield DocumentRef(
                source=self.name,
                source_id=rel,
                uri=path.resolve().as_uri(),
                version=f"sha256:{digest}",
                size_bytes=stat.st_size,
                modified_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
            )

    def change_token(self) -> str | None:
        """A digest of every selected file's path, size and modification time (stat only, no reads)."""
        if not self.root.is_dir():
            return None
        h = hashlib.sha256()
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(self.root).as_posix()
            if self._selected(rel):
                st = path.stat()
                h.update(f"{rel}\x00{st.st_size}\x00{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def fetch(self, ref: DocumentRef) -> bytes:
        """Read the file behind ``ref``; refuses ids that escape the root."""
        path = (self.root / ref.source_id).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is outside the source root")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConnectorError(
                f"source {self.name!r}: cannot read {ref.source_id!r}: {exc.strerror}"
            ) from exc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_CHUNK):
            h.update(block)
    return h.hexdigest()
