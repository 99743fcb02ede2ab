"""Right to be forgotten, complete: the audit keeps that a search happened and nothing that names the
document; a document that only failed can be forgotten; its content stays out under any other name;
Dagster's stored run data never names a document."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest

from cli.main import main
from groundwork.enums import ChangeKind, FailureReason, Role
from groundwork.errors import GroundworkError
from groundwork.ids import chunk_id, document_id
from groundwork.settings import load_config
from indexes.embedded import EmbeddedServer
from indexes.erasure import ERASED_QUERY, forget
from orchestration.local import run_all
from orchestration.services import Services
from tests.conftest import demo_config_on, make_reader, write_config

MARKER = "Zanzibar-7731 relocation allowance"
QUERY = "How much is the Zanzibar-7731 relocation allowance for Lisbon?"


def _source(path: str, **extra: object) -> dict[str, object]:
    return {
        "name": "notes",
        "connector": "filesystem",
        "path": path,
        "residency": "eu",
        "access": ["group:staff"],
        "contract": "none",
        **extra,
    }


def _config(tmp_path: Path, database_url: str, sources: list[dict[str, object]]) -> Path:
    data = {
        "sources": sources,
        "database": {"url": database_url},
        "principals": [{"name": "bob", "api_key_sha256": "b" * 64, "groups": ["staff"], "regions": ["eu"]}],
    }
    return write_config(tmp_path / "groundwork.yaml", data)


def _rows(
    services: Services, region: str, query: str, role: Role = Role.OWNER, params: tuple | None = None
) -> list[tuple]:
    """``query`` (``{s}``: the region's schema) as ``role``; its rows, if it returns any."""
    target = services.targets[region]
    with psycopg.connect(target.dsn_for(role)) as conn:
        cur = conn.execute(query.replace("{s}", target.schema), params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def searched(demo_copy: Path, database_url: str, redactor, embedder):
    """The demo with a marker document, ingested, searched by bob (finding it) and by alice."""
    doc = demo_copy.parent / "corpus/handbook/relocation.md"
    doc.write_text(f"# Relocation\n\nStaff moving to Lisbon receive the {MARKER} of EUR 5,000.\n")
    services = Services(demo_config_on(demo_copy, database_url), redactor=redactor, embedder=embedder)
    run_all(services)
    reader = make_reader(services.config, redactor, embedder)
    try:
        bob = services.config.principal("bob")
        hit = reader.search(bob, QUERY, 3)
        other = reader.search(services.config.principal("alice"), "What are the salary bands?", 3)
    finally:
        reader.close()
    doc_id = document_id("handbook", "relocation.md")
    assert any(h.document_id == doc_id for h in hit.results)
    yield services, doc, doc_id, hit, other
    services.close()


def test_forget_scrubs_the_audit_and_keeps_that_a_search_happened(
    searched, pg_server: EmbeddedServer
) -> None:
    services, doc, doc_id, hit, other = searched
    audit = (
        "SELECT request_id, principal, decision, k, at, chunk_ids, query_redacted FROM {s}.retrieval_audit"
    )
    before = {r[0]: r for r in _rows(services, "eu", audit)}
    assert set(before) == {hit.request_id, other.request_id}
    assert "Zanzibar-7731" in before[hit.request_id][6]  # the query as audited (redacted)
    uk_before = _rows(services, "uk", audit)
    assert [r[0] for r in uk_before] == [other.request_id]
    forgotten_chunks = {uuid.UUID(h.chunk_id) for h in hit.results if h.document_id == doc_id}
    assert forgotten_chunks <= set(before[hit.request_id][5])
    # A search in the past returned a chunk of an earlier, longer version of the document.
    [(count,)] = _rows(
        services, "eu", f"SELECT chunk_count FROM {{s}}.documents WHERE document_id = '{doc_id}'"
    )
    earlier = uuid.UUID(chunk_id(doc_id, count + 40))
    keep = uuid.uuid4()
    target = services.targets["eu"]
    with psycopg.connect(target.dsn_for(Role.READER)) as conn:
        conn.execute(
            f"INSERT INTO {target.schema}.retrieval_audit (request_id, principal, auth_method, regions,"
            " query_redacted, k, chunk_ids, decision, reasons, confidence)"
            " VALUES (%s, 'carol', 'cli', '{eu}', 'Zanzibar-7731 then', 2, %s, 'answer', '{}', 0.5)",
            (uuid.uuid4(), [earlier, keep]),
        )
    before = {r[0]: r for r in _rows(services, "eu", audit)}
    doc_chunks = {uuid.UUID(chunk_id(doc_id, i)) for i in range(count + 41)}
    naming = {r for r, row in before.items() if doc_chunks & set(row[5])}
    assert hit.request_id in naming and len(naming) >= 2
    report = forget(services.catalog, by="dpo@example.test", source_uri=doc.resolve().as_uri())
    assert report.erased == {"eu": [doc_id]}
    assert report.audit_scrubbed == {"eu": len(naming)}
    after = {r[0]: r for r in _rows(services, "eu", audit)}
    assert set(after) == set(before)  # every row stays: a retrieval happened
    [old] = [r for r in after.values() if r[1] == "carol"]
    assert (old[5], old[6]) == ([keep], ERASED_QUERY)
    for request, row in before.items():
        if request in naming:
            assert after[request][1:5] == row[1:5]  # who, decision, k, when
            assert after[request][5] == [c for c in row[5] if c not in doc_chunks]  # order kept
            assert after[request][6] == ERASED_QUERY
        else:
            assert after[request] == row  # a search that never returned it
    assert _rows(services, "uk", audit) == uk_before  # another region's audit: scrubbed, found nothing
    # Nothing of the query or the chunk ids is left in the audit's table file (rewritten).
    [(path,)] = _rows(services, "eu", "SELECT pg_relation_filepath('{s}.retrieval_audit')")
    raw = (pg_server.data_dir / path).read_bytes()
    assert b"Zanzibar" not in raw
    assert all(c.bytes not in raw for c in forgotten_chunks)
    # The tombstone carries the content digest: the file's version, a SHA-256 of its bytes.
    digest = "sha256:" + hashlib.sha256(doc.read_bytes()).hexdigest()
    assert _rows(services, "eu", "SELECT document_id::text, reason, content_digest FROM {s}.erasures") == [
        (doc_id, "forget", digest)
    ]


def test_the_audit_refuses_every_other_change(searched) -> None:
    services, _doc, _doc_id, hit, _other = searched
    everything = "SELECT * FROM {s}.retrieval_audit ORDER BY audit_id"
    before = _rows(services, "eu", everything)
    owner_sql = [
        "UPDATE {s}.retrieval_audit SET k = k + 1",
        "UPDATE {s}.retrieval_audit SET query_redacted = '[erased]'",  # the scrub's shape, not through it
        "DELETE FROM {s}.retrieval_audit",
        "TRUNCATE {s}.retrieval_audit",
        # Setting the flag by hand only admits the scrub's shape: any other column is still refused.
        "SET LOCAL groundwork.audit_scrub = 'on'; UPDATE {s}.retrieval_audit SET principal = 'mallory'",
        "SET LOCAL groundwork.audit_scrub = 'on'; UPDATE {s}.retrieval_audit"
        " SET chunk_ids = chunk_ids || gen_random_uuid(), query_redacted = '[erased]'",
    ]
    for statement in owner_sql:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            _rows(services, "eu", statement)
    for statement in ("UPDATE {s}.retrieval_audit SET k = 1", "DELETE FROM {s}.retrieval_audit"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _rows(services, "eu", statement, Role.WRITER)
    # The writer may scrub only chunks that are no longer stored: not those of a live document.
    live = [uuid.UUID(h.chunk_id) for h in hit.results]
    with pytest.raises(psycopg.errors.RaiseException, match="erased documents"):
        _rows(services, "eu", "SELECT {s}.scrub_audit(%s)", Role.WRITER, (live,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _rows(services, "eu", "SELECT {s}.scrub_audit(%s)", Role.READER, ([uuid.uuid4()],))
    assert _rows(services, "eu", everything) == before and len(before) == 2


def test_a_document_that_only_failed_is_forgotten_and_its_copies_stay_out(
    tmp_path: Path,
    database_url: str,
    redactor,
    embedder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    bad = share / "Quokka-case-0142.pdf"
    bad.write_bytes(b"%PDF-1.7\nnot really a pdf: the Quokka grievance\n")
    (share / "ok.txt").write_text("Canteen\n\nThe canteen opens at eight.")
    config_path = _config(tmp_path, database_url, [_source("share")])
    services = Services(load_config(config_path), redactor=redactor, embedder=embedder)
    try:
        run_all(services)
        eu = services.index("eu")
        assert [f["source_id"] for f in eu.failures.all()] == [bad.name]
        forget_args = ["forget", "--config", str(config_path), "--uri", bad.resolve().as_uri(), "--by", "dpo"]
        with services.catalog.run_lock():  # never beside an ingest run
            assert main(forget_args) != 0
        assert "another ingest run is writing region 'eu'" in capsys.readouterr().err
        assert [f["source_id"] for f in eu.failures.all()] == [bad.name]
        # The plan a step-isolated run left in Dagster's storage names documents: forget removes it.
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
        stored_plan = tmp_path / "dagster" / "storage" / "source_documents"
        stored_plan.parent.mkdir(parents=True)
        stored_plan.write_bytes(bad.name.encode())
        assert main(forget_args) == 0
        out = capsys.readouterr().out
        doc_id = document_id("notes", bad.name)
        assert f"forgot {doc_id}: no stored copy; failure record deleted in eu" in out
        assert "content digest recorded" in out and "audit rows scrubbed" in out
        assert "removed the last ingest plan stored by Dagster" in out and not stored_plan.exists()
        assert eu.failures.all() == []
        digest = "sha256:" + hashlib.sha256(bad.read_bytes()).hexdigest()
        assert _rows(services, "eu", "SELECT document_id::text, by, content_digest FROM {s}.erasures") == [
            (doc_id, "dpo", digest)
        ]
        # The same bytes under other names: a copy and a rename are refused before any fetch.
        (share / "copy.pdf").write_bytes(bad.read_bytes())
        bad.rename(share / "renamed.pdf")
        plan, _ = run_all(services)
        assert plan.counts["notes"][ChangeKind.FORGOTTEN] == 2
        assert eu.failures.all() == [] and eu.counts().documents == 1
        with pytest.raises(GroundworkError, match="no stored or failed document"):
            forget(services.catalog, by="dpo", document_id=doc_id)
    finally:
        services.close()


def test_stored_copies_of_the_same_content_are_erased_with_it(
    tmp_path: Path, database_url: str, redactor, embedder
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    text = f"Relocation\n\nStaff moving to Lisbon receive the {MARKER}."
    for name in ("a.txt", "b.txt"):
        (share / name).write_text(text)
    (share / "c.txt").write_text("Canteen\n\nThe canteen opens at eight.")
    services = Services(
        load_config(_config(tmp_path, database_url, [_source("share")])), redactor=redactor, embedder=embedder
    )
    try:
        run_all(services)
        report = forget(services.catalog, by="dpo", document_id=document_id("notes", "a.txt"))
        assert sorted(report.erased["eu"]) == sorted(document_id("notes", n) for n in ("a.txt", "b.txt"))
        assert report.same_content == [document_id("notes", "b.txt")]
        eu = services.index("eu")
        assert eu.counts().documents == 1
        plan, _ = run_all(services)
        assert plan.counts["notes"][ChangeKind.FORGOTTEN] == 2
        assert eu.counts().documents == 1
    finally:
        services.close()


def test_content_known_only_after_fetch_is_refused_at_fetch(
    tmp_path: Path, database_url: str, redactor, embedder
) -> None:
    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, updated TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, ?, '2026-01-01T00:00:00')", (MARKER,))
        conn.execute("INSERT INTO notes VALUES (2, 'The canteen opens at eight.', '2026-01-01T00:00:00')")
    source = {
        "name": "rows",
        "connector": "sql",
        "url": f"sqlite:///{db}",
        "table": "notes",
        "id_column": "id",
        "text_columns": ["body"],
        "updated_at_column": "updated",
        "residency": "eu",
        "access": ["group:staff"],
        "contract": "none",
    }
    services = Services(
        load_config(_config(tmp_path, database_url, [source])), redactor=redactor, embedder=embedder
    )
    try:
        run_all(services)
        eu = services.index("eu")
        assert eu.counts().documents == 2
        first = document_id("rows", "1")
        [(version,)] = _rows(
            services, "eu", f"SELECT version FROM {{s}}.documents WHERE document_id = '{first}'"
        )
        assert not version.startswith("sha256:")  # an updated-at version: no digest before a fetch
        report = forget(services.catalog, by="dpo", document_id=first, connectors=services.connectors)
        assert report.digests == {first: True}
        with sqlite3.connect(db) as conn:  # the same text as a new row
            conn.execute("INSERT INTO notes VALUES (3, ?, '2026-02-01T00:00:00')", (MARKER,))
        plan, _ = run_all(services)
        assert plan.counts["rows"][ChangeKind.FORGOTTEN] == 1 and plan.counts["rows"][ChangeKind.NEW] == 1
        [failure] = eu.failures.all()
        assert (failure["source_id"], failure["stage"], failure["reason"]) == (
            "3",
            "fetch",
            FailureReason.FORGOTTEN_CONTENT,
        )
        assert first not in str(failure["message"]) and "Zanzibar" not in str(failure["message"])
        assert eu.counts().documents == 1
        plan, _ = run_all(services)  # not fetched again while its version stays
        assert plan.counts["rows"][ChangeKind.FAILED_BEFORE] == 1
    finally:
        services.close()


def test_dagster_run_data_names_no_document(tmp_path: Path, database_url: str, monkeypatch) -> None:
    """After an ingest with failures, nothing under the Dagster instance names a failed document."""
    from orchestration.runner import run_ingest

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    share = tmp_path / "share"
    share.mkdir()
    (share / "Quokka-grievance-0142.pdf").write_bytes(b"%PDF-1.7\nbroken\n")
    (share / "Wombat-case.docx").write_bytes(b"not a zip at all")
    (share / "ok.txt").write_text("Canteen\n\nThe canteen opens at eight.")
    config_path = _config(tmp_path, database_url, [_source("share")])
    summary = run_ingest(config_path, load_config(config_path))
    assert summary.success
    assert summary.assets["index/eu"]["failures"] == 2
    found, recorded = [], False
    for path in (tmp_path / "dagster").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {w}" for w in (b"Quokka", b"Wombat", b"grievance-0142") if w in data]
            recorded = recorded or b"| notes |" in data  # the failure counts are there, in plain bytes
    assert recorded and found == []
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["index", "eu"]))
        assert event is not None and event.asset_materialization is not None
        table = event.asset_materialization.metadata["failure_details"].value
    assert "| notes | partition |" in str(table) or "| notes | fetch |" in str(table)


def test_after_forget_no_step_isolated_run_data_names_the_document(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under the multiprocess executor the plan (document references) passes through the instance's
    storage and steps' output could be captured: after ``forget``, nothing there names the document."""
    from orchestration.runner import run_ingest

    home = tmp_path / "dagster"  # a new instance: it takes the project's instance settings
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    share = tmp_path / "share"
    share.mkdir()
    bad = share / "Quokka-grievance-0142.pdf"
    bad.write_bytes(b"%PDF-1.7\nbroken\n")
    (share / "ok.txt").write_text("Canteen\n\nThe canteen opens at eight.")
    data = {
        "sources": [_source("share")],
        "database": {"url": database_url},
        "orchestration": {"executor": "multiprocess", "max_concurrent": 1},
    }
    config_path = write_config(tmp_path / "groundwork.yaml", data)
    summary = run_ingest(config_path, load_config(config_path))
    assert summary.success and summary.assets["index/eu"]["failures"] == 1

    def naming() -> list[str]:
        return [
            str(p.relative_to(home))
            for p in home.rglob("*")
            # the name's parts, not "0142" alone: four digits turn up in any run's timestamps
            if p.is_file() and (b"Quokka" in p.read_bytes() or b"grievance-0142" in p.read_bytes())
        ]

    assert naming() == ["storage/source_documents"]  # the plan between the steps, and nothing else
    assert main(["forget", "--config", str(config_path), "--uri", bad.resolve().as_uri()]) == 0
    assert "removed the last ingest plan stored by Dagster" in capsys.readouterr().out
    assert naming() == []
