"""Right to be forgotten and retention: nothing of the content remains, only a tombstone."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import psycopg
import pytest

from groundwork.errors import GroundworkError
from indexes.embedded import EmbeddedServer
from indexes.erasure import forget, purge_expired
from orchestration.local import run_all
from orchestration.services import Services
from tests.conftest import demo_config_on, make_reader, write_config

MARKER = "Zanzibar-7731 relocation allowance"


def _tables_text(services: Services) -> str:
    out = []
    for region in services.config.regions:
        target = services.targets[region]
        with psycopg.connect(target.dsn) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (target.schema,)
            ).fetchall()
            for (table,) in tables:
                out += [r[0] for r in conn.execute(f"SELECT t::text FROM {target.schema}.{table} t")]
    return "\n".join(out)


@pytest.fixture
def with_marker(demo_copy: Path, database_url: str, redactor, embedder):
    doc = demo_copy.parent / "corpus/handbook/relocation.md"
    doc.write_text(f"# Relocation\n\nStaff moving to Lisbon receive the {MARKER} of EUR 5,000.\n")
    config = demo_config_on(demo_copy, database_url)
    services = Services(config, redactor=redactor, embedder=embedder)
    run_all(services)
    yield services, doc
    services.close()


def test_forget_leaves_no_trace_of_the_content(
    with_marker, pg_server: EmbeddedServer, redactor, embedder
) -> None:
    services, doc = with_marker
    assert MARKER in _tables_text(services)
    eu = services.targets["eu"]
    with psycopg.connect(eu.dsn) as conn:
        chunk_file = conn.execute(f"SELECT pg_relation_filepath('{eu.schema}.chunks')").fetchone()[0]
    report = forget(services.catalog, by="dpo@example.test", source_uri=doc.resolve().as_uri())
    assert report.total == 1
    [doc_id] = report.erased["eu"]
    assert MARKER not in _tables_text(services)
    assert "Zanzibar" not in _tables_text(services)
    # The rewritten table file no longer holds the text either (VACUUM FULL ran).
    with psycopg.connect(eu.dsn) as conn:
        new_file = conn.execute(f"SELECT pg_relation_filepath('{eu.schema}.chunks')").fetchone()[0]
    assert new_file != chunk_file
    assert b"Zanzibar" not in (pg_server.data_dir / new_file).read_bytes()
    with psycopg.connect(eu.dsn) as conn:
        tomb = conn.execute(
            f"SELECT document_id::text, by, reason, content_digest FROM {eu.schema}.erasures"
        ).fetchall()
    # Who, when, which id and a digest of the bytes (the file's version): nothing of the content.
    assert tomb == [
        (doc_id, "dpo@example.test", "forget", "sha256:" + hashlib.sha256(doc.read_bytes()).hexdigest())
    ]
    # The file is still in the source: the next run keeps it out.
    plan, _ = run_all(services)
    assert plan.counts["handbook"]["forgotten"] == 1
    assert MARKER not in _tables_text(services)
    reader = make_reader(services.config, redactor, embedder)
    try:
        out = reader.search(services.config.principal("bob"), "relocation allowance Lisbon", 5)
        assert all(h.document_id != doc_id for h in out.results)
    finally:
        reader.close()
    # The state folder the project writes holds nothing of it either (the database files aside).
    for path in services.config.state_dir.rglob("*") if services.config.state_dir.exists() else []:
        if path.is_file() and "pgdata" not in path.parts:
            assert b"Zanzibar" not in path.read_bytes()


def test_forget_of_an_unknown_document_is_an_error(with_marker) -> None:
    services, _ = with_marker
    with pytest.raises(GroundworkError, match="no stored or failed document"):
        forget(services.catalog, by="x", document_id="00000000-0000-0000-0000-000000000000")


def test_retention_skips_and_purges_expired_documents(
    tmp_path: Path, database_url: str, redactor, embedder
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "old.txt").write_text("Old memo\n\nThe canteen closes early on Fridays.")
    (share / "new.txt").write_text("New memo\n\nThe canteen opens early on Mondays.")
    data = {
        "sources": [
            {
                "name": "memos",
                "connector": "filesystem",
                "path": "share",
                "residency": "uk",
                "contract": "none",
                "access": ["group:staff"],
                "retention_days": 30,
            }
        ],
        "database": {"url": database_url},
    }
    from groundwork.settings import load_config

    config = load_config(write_config(tmp_path / "g.yaml", data))
    ancient = time.time() - 90 * 86400
    os.utime(share / "old.txt", (ancient, ancient))
    services = Services(config, redactor=redactor, embedder=embedder)
    try:
        plan, _ = run_all(services)
        assert plan.counts["memos"]["expired"] == 1
        uk = services.index("uk")
        assert uk.counts().documents == 1
        # A stored document ages past retention: the scheduled purge erases it with a tombstone.
        os.utime(share / "new.txt", (ancient, ancient))
        with uk.pool.connection() as conn:
            conn.execute(f"UPDATE {uk.schema}.documents SET modified_at = now() - interval '60 days'")
        report = purge_expired(services.catalog)
        assert report.total == 1
        assert uk.counts().documents == 0
        with uk.pool.connection() as conn:
            tombs = conn.execute(f"SELECT reason, content_digest FROM {uk.schema}.erasures").fetchall()
        assert tombs == [("retention", None)]  # retention keeps its id-only tombstone
        plan, _ = run_all(services)
        assert plan.counts["memos"]["expired"] == 2
        assert uk.counts().documents == 0
    finally:
        services.close()
