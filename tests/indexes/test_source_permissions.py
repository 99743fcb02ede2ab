"""Source permissions: where a source names its readers (here the sql connector's readers column), a
reader needs one of those grants AND one of the operator's policy grants (fail closed), in search and
in a bare SELECT under row-level security; a change of readers re-tags without re-embedding."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from groundwork.settings import GroundworkConfig, load_config
from indexes.search import set_caller
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.conftest import make_reader, write_config

ROWS = [
    ("1", "Refunds are approved by the support lead within five days.", "support"),
    ("2", "Refunds for enterprise customers need the finance controller.", "finance"),
    ("3", "Refunds on the legacy plan are handled by the billing desk.", "support,finance"),
    ("4", "Refunds for staff purchases go through payroll.", ""),  # the source names nobody
]


def _config(tmp_path: Path, database_url: str) -> GroundworkConfig:
    with sqlite3.connect(tmp_path / "kb.db") as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS articles (id text PRIMARY KEY, body text, changed text, readers text)"
        )
        db.executemany("INSERT OR REPLACE INTO articles VALUES (?, ?, '2026-11-01T09:00:00', ?)", ROWS)
    source = {
        "name": "kb",
        "connector": "sql",
        "url": f"sqlite:///{tmp_path / 'kb.db'}",
        "table": "articles",
        "id_column": "id",
        "text_columns": ["body"],
        "updated_at_column": "changed",
        "readers_column": "readers",
        "reader_groups": {"support": ["group:support"], "finance": ["group:finance"]},
        "residency": "uk",
        "access": ["group:staff"],  # the operator's policy: staff only
        "contract": "none",
    }
    key = {"api_key_sha256": "a" * 64, "regions": ["uk"]}
    principals = [
        {"name": "sam", "groups": ["staff", "support"], **key},  # both: sees support rows
        {"name": "fin", "groups": ["staff", "finance"], **key | {"api_key_sha256": "b" * 64}},
        {"name": "outsider", "groups": ["support"], **key | {"api_key_sha256": "c" * 64}},  # no policy grant
    ]
    data = {"sources": [source], "principals": principals, "database": {"url": database_url}}
    return load_config(write_config(tmp_path / "g.yaml", data))


@pytest.fixture
def ingested(
    tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> tuple[GroundworkConfig, Services]:
    config = _config(tmp_path, database_url)
    services = Services(config, redactor=redactor, embedder=embedder)
    plan, _ = run_all(services)
    assert [f.reason for f in plan.failures] == ["no_access_rule"]  # row 4: nobody may read it
    return config, services


def _seen(config: GroundworkConfig, redactor: Redactor, embedder: Embedder, who: str) -> set[str]:
    with make_reader(config, redactor, embedder) as reader:
        outcome = reader.search(config.principal(who), "Who approves refunds?", 10)
    return {hit.source_uri.rsplit("/", 1)[-1] for hit in outcome.results}


def test_a_reader_needs_a_source_grant_and_a_policy_grant(
    ingested: tuple[GroundworkConfig, Services], redactor: Redactor, embedder: Embedder
) -> None:
    config, services = ingested
    try:
        assert _seen(config, redactor, embedder, "sam") == {"1", "3"}
        assert _seen(config, redactor, embedder, "fin") == {"2", "3"}
        assert _seen(config, redactor, embedder, "outsider") == set()  # source grant alone is not enough
        # Row-level security says the same to a bare SELECT as the reader role.
        with make_reader(config, redactor, embedder) as reader:
            index = reader.catalog.index("uk")
            with psycopg.Connection.connect(index.pool.conninfo) as conn, conn.transaction():
                set_caller(conn, config.principal("sam").grants(), ["uk"])
                rows = {r[0] for r in conn.execute("SELECT source_id FROM groundwork_uk.documents")}
                assert rows == {"1", "3"}
                set_caller(conn, ["group:support", "public"], ["uk"])
                assert conn.execute("SELECT count(*) FROM groundwork_uk.chunks").fetchone() == (0,)
    finally:
        services.close()


def test_a_change_of_readers_retags_without_reembedding(
    tmp_path: Path, ingested: tuple[GroundworkConfig, Services], redactor: Redactor, embedder: Embedder
) -> None:
    config, services = ingested
    services.close()
    with sqlite3.connect(tmp_path / "kb.db") as db:
        db.execute("UPDATE articles SET readers = 'finance' WHERE id = '1'")
    services = Services(config, redactor=redactor, embedder=embedder)
    try:
        plan, reports = run_all(services)
        assert plan.counts["kb"]["retag"] == 1 and not plan.tasks  # nothing re-embedded
        assert sum(r.chunks_written for r in reports) == 0
        assert _seen(config, redactor, embedder, "sam") == {"3"}
        assert _seen(config, redactor, embedder, "fin") == {"1", "2", "3"}
    finally:
        services.close()
