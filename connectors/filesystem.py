"""The filesystem connector: a folder tree, filtered by include and exclude globs."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from connectors.base import Known
from groundwork.errors import ConnectorError
from groundwork.globs import path_matches
from groundwork.ids import document_id
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
        """Every selected entry that is not a folder, in sorted path order: regular files, and links,
        FIFOs, sockets and devices, which are listed so that they are recorded as failed rather than
        silently missed. A folder that cannot be read is yielded itself (see :meth:`list`)."""
        entries: list[tuple[str, Path]] = []
        pending = [self.root]
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as it:
                    found = list(it)
            except OSError:
                if folder == self.root:
                    raise
                rel = folder.relative_to(self.root).as_posix()
                if not any(path_matches(f"{rel}/", p) for p in self.exclude):
                    entries.append((rel, folder))
                continue
            for entry in found:
                path = Path(entry.path)
                try:
                    is_folder = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_folder = False
                if is_folder:
                    pending.append(path)
                    continue
                rel = path.relative_to(self.root).as_posix()
                if self._selected(rel):
                    entries.append((rel, path))
        for rel, path in sorted(entries):
            yield path, rel

    def list(self, known: Known | None = None) -> Iterator[DocumentRef]:
        """Yield a reference for every selected file, in sorted path order.

        A file that cannot be read, and an entry that is not a regular file, is still listed, with a
        version that says so: fetching it fails with the reason, which the run records as a failed
        document (retried on the next run, so a fixed permission is picked up).
        """
        if not self.root.is_dir():
            raise ConnectorError(f"source {self.name!r}: folder does not exist: {self.root}")
        known = known or {}
        self.hashed = 0
        for path, rel in self._files():
            source_id = printable_name(rel)
            try:
                st = path.lstat()
            except OSError:
                continue  # removed since the folder was read: it is gone
            if stat.S_ISDIR(st.st_mode):
                yield from self._unreadable_folder(path, source_id, st, known)
                continue
            fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
            kind = _special_kind(st.st_mode)
            recorded = known.get(source_id)
            if kind is not None:
                version = f"{kind}:{fingerprint}"
            elif recorded is not None and recorded[0] == fingerprint:
                version = recorded[1]
            else:
                try:
                    version = f"sha256:{_sha256(path)}"
                    self.hashed += 1
                except OSError as exc:
                    # Named by id: a path can hold a person's name (``groundwork failures`` maps it back).
                    doc = document_id(self.name, source_id)
                    logger.warning("source %s: cannot read document %s: %s", self.name, doc, exc.strerror)
                    version = f"unreadable:{fingerprint}"
            yield DocumentRef(
                source=self.name,
                source_id=source_id,
                uri=(path.absolute() if kind else path.resolve()).as_uri(),
                version=version,
                size_bytes=st.st_size,
                modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
                fingerprint=fingerprint,
                # A name that is not valid UTF-8 is stored escaped; the file is found by its real name.
                extra={} if source_id == rel else {"path": rel},
            )

    def _unreadable_folder(
        self, path: Path, source_id: str, st: os.stat_result, known: Known
    ) -> Iterator[DocumentRef]:
        """A folder whose entries cannot be listed: the folder itself, whose fetch fails with the
        reason (so the run records it), and every document the index holds under it with its
        recorded version, so that a permission problem never deletes what was indexed."""
        logger.warning("source %s: cannot list the folder %s", self.name, document_id(self.name, source_id))
        fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
        yield DocumentRef(
            source=self.name,
            source_id=source_id,
            uri=path.absolute().as_uri(),
            version=f"unreadable folder:{fingerprint}",
            size_bytes=0,
            modified_at=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            fingerprint=fingerprint,
        )
        prefix = source_id + "/"
        for held, (held_fingerprint, held_version) in sorted(known.items()):
            if not held.startswith(prefix):
                continue
            size, _, mtime_ns = (held_fingerprint or "0:0").partition(":")
            yield DocumentRef(
                source=self.name,
                source_id=held,
                uri=(self.root / held).absolute().as_uri(),
                version=held_version,
                size_bytes=int(size) if size.isdigit() else 0,
                modified_at=datetime.fromtimestamp(int(mtime_ns) / 1e9 if mtime_ns.isdigit() else 0, tz=UTC),
                fingerprint=held_fingerprint,
            )

    def change_token(self) -> str | None:
        """A digest of every selected file's path, size and modification time (stat only, no reads)."""
        if not self.root.is_dir():
            return None
        h = hashlib.sha256()
        for path, rel in self._files():
            try:
                st = path.lstat()
            except OSError:
                continue
            h.update(os.fsencode(rel) + f"\x00{st.st_size}\x00{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def fetch(self, ref: DocumentRef) -> bytes:
        """Read the file behind ``ref``; refuses ids that escape the root, links and special files."""
        path = self.root / ref.extra.get("path", ref.source_id)
        if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(self.root)):
            raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is outside the source root")
        try:
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):  # listed because it could not be read: say why
                os.scandir(path).close()
                raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is a folder, not a file")
            kind = _special_kind(mode)
            if kind is not None:  # checked before anything opens it: opening a FIFO waits for a writer
                raise ConnectorError(
                    f"source {self.name!r}: {ref.source_id!r} is a {kind}, not a regular file"
                )
            if not path.resolve().is_relative_to(self.root.resolve()):
                raise ConnectorError(f"source {self.name!r}: {ref.source_id!r} is outside the source root")
            return path.read_bytes()
        except OSError as exc:
            raise ConnectorError(
                f"source {self.name!r}: cannot read {ref.source_id!r}: {exc.strerror}"
            ) from exc


def _special_kind(mode: int) -> str | None:
    """What a directory entry is when it is not a regular file (links are never followed)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symbolic link (not followed)"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device or other special file"


def printable_name(rel: str) -> str:
    """A relative path as valid text: bytes that are not UTF-8 (a name from another system's
    encoding) become ``\\xNN`` escapes, so ids, URIs and database rows can hold it.

    A backslash in the name is doubled, so the mapping is one to one: the byte 0xFC and a file
    whose name holds the four characters ``\\xfc`` never get the same id.
    """
    out = []
    for ch in rel:
        if ch == "\\":
            out.append("\\\\")
        elif "\udc80" <= ch <= "\udcff":  # an undecodable byte, as os.fsdecode keeps it
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_CHUNK):
            h.update(block)
    return h.hexdigest()
