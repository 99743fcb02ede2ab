"""Incremental sync: each change kind does exactly the work it needs, counted in embeddings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import connectors.filesystem as fs
from groundwork.errors import ConnectorError
from groundwork.ids import chunk_id, document_id
from groundwork.records import DocumentRef
from groundwork.settings import GroundworkConfig, load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import write_config
from tests.pipelines.test_policy import CountingEmbedder

FILES = {
    "a.txt": "Alpha\n\nThe alpha procedure covers onboarding of new starters.",
    "b.txt": "Bravo\n\nThe bravo policy covers travel and expenses.",
    "c.txt": "Charlie\n\nThe charlie guide covers laptops and security.",
}


class Sync:
    def __init__(self, folder: Path, url: str, redactor: Redactor, embedder: Embedder) -> None:
        self.folder = folder
        self.root = folder / "share"
        self.root.mkdir()
        for name, text in FILES.items():
            (self.root / name).write_text(text)
        self.url = url
        self.redactor = redactor
        self.embedder = CountingEmbedder(embedder)
        self.access = ["group:staff"]

    def config(self) -> GroundworkConfig:
        data = {
            "sources": [
                {
                    "name": "s",
                    "connector": "filesystem",
                    "path": "share",
                    "residency": "uk",
                    "contract": "none",
                    "access": self.access,
                }
            ],
            "database": {"url": self.url},
        }
        return load_config(write_config(self.folder / "g.yaml", data))

    def run(self):
        before = self.embedder.embedded
        services = Services(self.config(), redactor=self.redactor, embedder=self.embedder)
        try:
            plan, reports = run_all(services)
            rows = self.rows(services)
        finally:
            services.close()
        return plan, reports, self.embedder.embedded - before, rows

    def rows(self, services: Services) -> dict[str, tuple[str, list[str]]]:
        uk = services.index("uk")
        with uk.pool.connection() as conn:
            docs = conn.execute(
                f"SELECT document_id::text, source_id, access FROM {uk.schema}.documents"
            ).fetchall()
            chunks = conn.execute(
                f"SELECT document_id::text, chunk_id::text FROM {uk.schema}.chunks"
            ).fetchall()
        return {
            source_id: (doc_id, sorted(c for d, c in chunks if d == doc_id)) for doc_id, source_id, _ in docs
        }


@pytest.fixture
def sync(tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder) -> Sync:
    s = Sync(tmp_path, database_url, redactor, embedder)
    _plan, _, embedded, rows = s.run()
    assert embedded == 3
    assert set(rows) == set(FILES)
    return s


def test_unchanged_resync_embeds_nothing(sync: Sync) -> None:
    plan, _, embedded, _ = sync.run()
    assert embedded == 0
    assert plan.counts["s"] == {"unchanged": 3}


def test_add_embeds_only_the_new_document(sync: Sync) -> None:
    (sync.root / "d.txt").write_text("Delta\n\nThe delta note covers parking.")
    plan, _, embedded, rows = sync.run()
    assert [t.ref.source_id for t in plan.tasks] == ["d.txt"]
    assert embedded == 1
    assert set(rows) == {*FILES, "d.txt"}


def test_edit_embeds_only_the_edited_document(sync: Sync) -> None:
    (sync.root / "b.txt").write_text("Bravo\n\nThe bravo policy now covers rail travel only.")
    plan, _, embedded, _ = sync.run()
    assert [(t.ref.source_id, t.change) for t in plan.tasks] == [("b.txt", "changed")]
    assert embedded == 1


def test_access_change_embeds_nothing(sync: Sync) -> None:
    sync.access = ["group:staff", "group:contractors"]
    plan, reports, embedded, _rows = sync.run()
    assert embedded == 0
    assert len(plan.retags) == 3
    assert sum(r.retagged for r in reports) == 3


def test_delete_leaves_the_index_in_the_same_run(sync: Sync) -> None:
    (sync.root / "c.txt").unlink()
    plan, reports, embedded, rows = sync.run()
    assert embedded == 0
    assert plan.counts["s"]["deleted"] == 1
    assert set(rows) == {"a.txt", "b.txt"}
    assert sum(r.purged for r in reports) == 1


def test_rename_moves_chunks_to_the_new_identity_without_reembedding(sync: Sync) -> None:
    (sync.root / "a.txt").rename(sync.root / "alpha.txt")
    plan, _reports, embedded, rows = sync.run()
    assert embedded == 0
    assert plan.counts["s"]["rename"] == 1
    assert plan.counts["s"]["deleted"] == 0  # the old identity is the rename, not a deletion
    assert "a.txt" not in rows
    new_id = document_id("s", "alpha.txt")
    assert rows["alpha.txt"] == (new_id, [chunk_id(new_id, 0)])


def test_rename_and_edit_is_delete_plus_add(sync: Sync) -> None:
    (sync.root / "a.txt").unlink()
    (sync.root / "alpha.txt").write_text("Alpha\n\nA different text now.")
    _plan, _, embedded, rows = sync.run()
    assert embedded == 1
    assert set(rows) == {"alpha.txt", "b.txt", "c.txt"}


def test_failure_of_a_deleted_file_is_cleared(sync: Sync) -> None:
    (sync.root / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    sync.run()
    services = Services(sync.config(), redactor=sync.redactor, embedder=sync.embedder)
    try:
        assert {f["source_id"] for f in services.index("uk").failures.all()} == {"broken.pdf"}
        (sync.root / "broken.pdf").unlink()
        run_all(services)
        assert services.index("uk").failures.all() == []
    finally:
        services.close()


def failures_of(sync: Sync) -> dict[str, str]:
    services = Services(sync.config(), redactor=sync.redactor, embedder=sync.embedder)
    try:
        return {
            str(f["source_id"]): f"{f['reason']}: {f['message']}" for f in services.index("uk").failures.all()
        }
    finally:
        services.close()


def test_a_file_readable_again_with_its_indexed_content_clears_its_failure(
    sync: Sync, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fs._sha256

    def denied(path: Path) -> str:
        if path.name == "a.txt":
            raise PermissionError(13, "Permission denied")
        return real(path)

    def refused(self: fs.FilesystemConnector, ref: DocumentRef) -> bytes:
        if ref.source_id == "a.txt":
            raise ConnectorError("source 's': cannot read 'a.txt': Permission denied")
        return real_fetch(self, ref)

    real_fetch = fs.FilesystemConnector.fetch
    st = (sync.root / "a.txt").stat()
    os.utime(sync.root / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched: read again
    monkeypatch.setattr(fs, "_sha256", denied)
    monkeypatch.setattr(fs.FilesystemConnector, "fetch", refused)
    _plan, _, embedded, rows = sync.run()
    assert embedded == 0 and set(rows) == set(FILES)  # the indexed copy stays
    assert failures_of(sync) == {"a.txt": "fetch_error: source 's': cannot read 'a.txt': Permission denied"}
    monkeypatch.setattr(fs, "_sha256", real)
    monkeypatch.setattr(fs.FilesystemConnector, "fetch", real_fetch)
    _plan, _, embedded, rows = sync.run()
    assert embedded == 0 and set(rows) == set(FILES)
    assert failures_of(sync) == {}


def test_an_unreadable_folder_deletes_nothing_and_is_recorded(
    sync: Sync, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = sync.root / "team"
    team.mkdir()
    (team / "d.txt").write_text("Delta\n\nThe delta handbook covers parking permits.")
    _plan, _, embedded, before = sync.run()
    assert embedded == 1 and "team/d.txt" in before
    real = os.scandir

    def denied(path: str | os.PathLike[str]) -> object:
        if Path(path) == team:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", denied)
    plan, _, embedded, rows = sync.run()
    assert embedded == 0 and plan.purges == [] and rows == before
    assert failures_of(sync) == {"team": "fetch_error: source 's': cannot read 'team': Permission denied"}
    monkeypatch.setattr(os, "scandir", real)
    _plan, _, embedded, after = sync.run()
    assert embedded == 0 and after == before
    assert failures_of(sync) == {}


def test_unlistable_source_deletes_nothing(sync: Sync) -> None:
    (sync.root).rename(sync.folder / "moved-away")
    plan, _, _embedded, rows = sync.run()
    assert "s" in plan.source_errors
    assert set(rows) == set(FILES)
    assert plan.purges == []
