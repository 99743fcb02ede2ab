"""The filesystem connector: recursive listing, globs, stable ids, content versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.filesystem import FilesystemConnector
from groundwork.errors import ConnectorError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.txt").write_text("top")
    (root / "a" / "mid.md").write_text("# mid")
    (root / "a" / "b" / "deep.pdf").write_bytes(b"%PDF-1.4")
    (root / "a" / "b" / "skip.tmp").write_text("tmp")
    return root


def test_lists_recursively_with_relative_ids(tree: Path) -> None:
    refs = list(FilesystemConnector("s", tree).list())
    assert [r.source_id for r in refs] == ["a/b/deep.pdf", "a/b/skip.tmp", "a/mid.md", "top.txt"]
    assert all(r.source == "s" and r.version.startswith("sha256:") for r in refs)
    assert refs[0].uri == (tree / "a/b/deep.pdf").resolve().as_uri()


def test_include_and_exclude_globs(tree: Path) -> None:
    conn = FilesystemConnector("s", tree, include=["**/*.md", "**/*.pdf", "*.txt"], exclude=["a/b/**"])
    assert [r.source_id for r in conn.list()] == ["a/mid.md", "top.txt"]


def test_version_follows_content_not_mtime(tree: Path) -> None:
    conn = FilesystemConnector("s", tree)
    before = {r.source_id: r.version for r in conn.list()}
    os.utime(tree / "top.txt", (1, 1))
    assert {r.source_id: r.version for r in conn.list()} == before
    (tree / "top.txt").write_text("changed")
    after = {r.source_id: r.version for r in conn.list()}
    assert after["top.txt"] != before["top.txt"]
    assert after["a/mid.md"] == before["a/mid.md"]


def test_fetch_returns_bytes_and_refuses_escape(tree: Path) -> None:
    conn = FilesystemConnector("s", tree)
    ref = next(r for r in conn.list() if r.source_id == "top.txt")
    assert conn.fetch(ref) == b"top"
    from dataclasses import replace

    with pytest.raises(ConnectorError, match="outside the source root"):
        conn.fetch(replace(ref, source_id="../../etc/passwd"))


def test_links_and_special_files_are_listed_and_refused_never_followed(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (tree / "link.txt").symlink_to(secret)
    (tree / "loop").symlink_to(tree / "loop")
    os.mkfifo(tree / "pipe")
    conn = FilesystemConnector("s", tree)
    refs = {r.source_id: r for r in conn.list()}
    assert refs["link.txt"].version.startswith("symbolic link")
    assert refs["pipe"].version.startswith("FIFO")
    for name, kind in [("link.txt", "symbolic link"), ("loop", "symbolic link"), ("pipe", "FIFO")]:
        with pytest.raises(ConnectorError, match=f"is a {kind}"):
            conn.fetch(refs[name])  # refused before opening: a FIFO would block, a link would lead outside
    assert conn.change_token()  # a symlink loop does not break the cheap change check


def test_an_unreadable_file_is_listed_and_its_fetch_fails_with_the_reason(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.filesystem as fs

    real = fs._sha256

    def denied(path: Path) -> str:
        if path.name == "top.txt":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(fs, "_sha256", denied)
    conn = FilesystemConnector("s", tree)
    ref = next(r for r in conn.list() if r.source_id == "top.txt")
    assert ref.version.startswith("unreadable:")  # listed, so the run records it as failed
    monkeypatch.setattr(fs, "_sha256", real)
    fixed = next(r for r in conn.list() if r.source_id == "top.txt")
    assert fixed.version.startswith("sha256:") and fixed.version != ref.version  # retried once readable


def test_an_unreadable_folder_is_recorded_and_keeps_what_was_indexed_under_it(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = FilesystemConnector("s", tree)
    before = {r.source_id: r for r in conn.list()}
    known = {i: (r.fingerprint, r.version) for i, r in before.items()}
    real = os.scandir

    def denied(path: str | os.PathLike[str]) -> object:
        if Path(path) == tree / "a":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", denied)
    during = {r.source_id: r for r in conn.list(known)}
    # The folder is listed (its fetch fails with the reason, so the run records it) and what the
    # index holds under it keeps its recorded version: nothing is purged for a permission problem.
    assert set(during) == set(before) | {"a"}
    assert during["a"].version.startswith("unreadable folder:")
    assert during["a/mid.md"].version == before["a/mid.md"].version
    assert during["a/b/deep.pdf"].version == before["a/b/deep.pdf"].version
    with pytest.raises(ConnectorError, match="cannot read 'a': Permission denied"):
        conn.fetch(during["a"])
    # Without a record of what was indexed, the folder alone is listed.
    assert {r.source_id for r in conn.list()} == {"a", "top.txt"}
    monkeypatch.setattr(os, "scandir", real)
    assert {r.source_id for r in conn.list(known)} == set(before)


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="does not exist"):
        list(FilesystemConnector("s", tmp_path / "nope").list())


def test_listing_reads_only_new_or_touched_files(tree: Path) -> None:
    conn = FilesystemConnector("s", tree)
    first = {r.source_id: r for r in conn.list()}
    assert conn.hashed == 4
    known = {i: (r.fingerprint, r.version) for i, r in first.items()}
    # Unchanged size and mtime: the recorded version is kept without reading the file.
    again = {r.source_id: r.version for r in conn.list(known)}
    assert conn.hashed == 0
    assert again == {i: r.version for i, r in first.items()}
    # Touched without a content change: hashed again, and the content hash still says unchanged.
    os.utime(tree / "top.txt", (1, 1))
    (tree / "a" / "mid.md").write_text("# changed")
    after = {r.source_id: r.version for r in conn.list(known)}
    assert conn.hashed == 2
    assert after["top.txt"] == first["top.txt"].version
    assert after["a/mid.md"] != first["a/mid.md"].version


def test_a_recorded_version_is_trusted_only_with_the_same_fingerprint(tree: Path) -> None:
    conn = FilesystemConnector("s", tree)
    ref = next(r for r in conn.list() if r.source_id == "top.txt")
    stale = {"top.txt": ("0:0", "sha256:recorded-elsewhere")}
    assert next(r for r in conn.list(stale) if r.source_id == "top.txt").version == ref.version


def test_a_name_that_is_not_utf8_is_listed_escaped_and_fetched(tree: Path) -> None:
    raw = os.path.join(os.fsencode(tree), b"caf\xe9-notes.txt")
    with open(raw, "wb") as f:
        f.write(b"menu notes")
    conn = FilesystemConnector("s", tree)
    ref = next(r for r in conn.list() if r.source_id.startswith("caf"))
    assert ref.source_id == "caf\\xe9-notes.txt"
    ref.source_id.encode("utf-8")  # valid text: ids, URIs and rows can hold it
    assert ref.uri.endswith("caf%E9-notes.txt")
    assert conn.fetch(ref) == b"menu notes"
    assert conn.change_token()
