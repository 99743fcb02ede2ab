"""The filesystem connector: a folder tree, filtered by include and exclude globs."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from connectors.base import Known
from groundwork.errors import ConnectorError
from groundwork.globs import path_matches
from groundwork.records import DocumentRef
from groundwork.settings import ConnectorSettings, resolve_path

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024


class FilesystemSettings(ConnectorSettings):
    """A folder tree: ``path`` (relative to the config file's folder) and globs on relative paths."""

    connector: Literal["filesystem"]
    path: Path
    include: list[str] = Field(default_factory=lambda: ["**/*"])
    exclude: list[str] = Field(default_factory=list)

    _resolve = field_validator("path")(resolve_path)


class FilesystemConnector:
    """Reads every regular file under ``root`` whose relative path matches the globs.

    The source id is the POSIX path relative to ``root``; the version is the SHA-256 of the content,
    so a touched but unchanged file is not reprocessed. Listing is cheap: a file whose size and
    modification time (its fingerprint) equal what the index recorded keeps its recorded version
    without being read; only new or touched files are hashed. Symbolic links are not followed, so a
    source cannot reach outside its root.
    """

    settings_model: ClassVar[type[ConnectorSettings]] = FilesystemSettings

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
        #: Files hashed by the last listing (the others kept their recorded version).
        self.hashed = 0

    @classmethod
    def from_settings(cls, name: str, settings: ConnectorSettings) -> FilesystemConnector:
        """The connector for a source's validated settings."""
        assert isinstance(settings, FilesystemSettings)
        return cls(name, settings.path, include=list(settings.include), exclude=list(settings.exclude))

    def _selected(self, rel: str) -> bool:
        return any(path_matches(rel, p) for p in self.include) and not any(
            path_matches(rel, p) for p in self.exclude
        )

    def _files(self) -> Iterator[tuple[Path, str]]:
        for path in sorted(self.root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(self.root).as_posix()
            if self._selected(rel):
                yield path, rel

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every selected file, in sorted path order."""
        if not self.root.is_dir():
            raise ConnectorError(f"source {self.name!r}: folder does not exist: {self.root}")
        known = known or {}
        self.hashed = 0
        for path, rel in self._files():
            source_id = printable_name(rel)
            try:
                stat = path.stat()
                fingerprint = f"{stat.st_size}:{stat.st_mtime_ns}"
                recorded = known.get(source_id)
                if recorded is not None and recorded[0] == fingerprint:
                    version = recorded[1]
                else:
                    version = f"sha256:{_sha256(path)}"
                    self.hashed += 1
            except OSError as exc:
                logger.warning("source %s: cannot read %s: %s", self.name, rel, exc.strerror)
                continue
            yield DocumentRef(
                source=self.name,
                source_id=source_id,
                uri=path.resolve().as_uri(),
                version=version,
                size_bytes=stat.st_size,
                modified_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
                fingerprint=fingerprint,
                # A name that is not valid UTF-8 is stored escaped; the file is found by its real name.
                extra={} if source_id == rel else {"path": rel},
            )

    def change_token(self) -> str | None:
        """A digest of every selected file's path, size and modification time (stat only, no reads)."""
        if not self.root.is_dir():
            return None
        h = hashlib.sha256()
        for path, rel in self._files():
            st = path.stat()
            h.update(os.fsencode(rel) + f"\x00{st.st_size}\x00{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def fetch(self, ref: DocumentRef) -> bytes:
        """Read the file behind ``ref``; refuses ids that escape the root."""
        path = (self.root / ref.extra.get("path", ref.source_id)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is outside the source root")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConnectorError(
                f"source {self.name!r}: cannot read {ref.source_id!r}: {exc.strerror}"
            ) from exc


def printable_name(rel: str) -> str:
    """A relative path as valid text: bytes that are not UTF-8 (a name from another system's
    encoding) become ``\\xNN`` escapes, so ids, URIs and database rows can hold it."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_CHUNK):
            h.update(block)
    return h.hexdigest()
