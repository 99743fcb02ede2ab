"""Groundwork's own records keep to their periods: the daily ``retention`` job, run by Dagster on a
real PostgreSQL, deletes retrieval audit and agents' ledger rows older than ``records.*`` says and
nothing newer, through the one function the tables' append-only triggers let through."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from groundwork.enums import Role
from groundwork.errors import ConfigError, IndexUnavailable
from groundwork.settings import GroundworkConfig, load_config
from indexes.erasure import purge_old_records
from orchestration.definitions import build_definitions
from orchestration.services import Services
from tests.conftest import write_config

AUDIT_DAYS = 30
LEDGER_DAYS = 60


def _config(tmp_path: Path, database_url: str, records: dict[str, int]) -> tuple[Path, GroundworkConfig]:
    (tmp_path / "share").mkdir(exist_ok=True)
    data = {
        "sources": [
            {
                "name": "memos",
                "connector": "filesystem",
                "path": "share",
                "residency": "uk",
                "contract": "none",
                "access": ["group:staff"],
            }
        ],
        "database": {"url": database_url},
        "records": records,
    }
    path = write_config(tmp_path / "groundwork.yaml", data)
    return path, load_config(path)


def _plant(conn: psycopg.Connection, schema: str, table: str, days_old: int) -> None:
    """One row of ``table`` written ``days_old`` days ago (as the owner, as if long since)."""
    at = f"now() - interval '{days_old} days'"
    rid = str(uuid.uuid4())
    statements = {
        "retrieval_audit": "INSERT INTO {s}.retrieval_audit (request_id, at, principal, auth_method, regions,"
        " query_redacted, k, chunk_ids, decision, reasons, confidence)"
        " VALUES (%s, {at}, 'alice', 'api_key', '{{uk}}', 'leave for <PERSON>', 3, '{{}}', 'answer', '{{}}', 0.9)",
        "agent_searches": "INSERT INTO {s}.agent_searches (request_id, principal, conversation_id, at, decision,"
        " confidence, reasons, sources, regions, context_tokens)"
        " VALUES (%s, 'alice', 'c1', {at}, 'answer', 0.9, '{{}}', '{{memos}}', '{{uk}}', 120)",
        "action_checks": "INSERT INTO {s}.action_checks (principal, idempotency_key, at, action, conversation_id,"
        " request_ids, inputs_digest, allowed, decision, reasons)"
        " VALUES ('alice', %s, {at}, 'send_email', 'c1', '{{}}', 'd', true, 'answer', '{{}}')",
        "agent_events": "INSERT INTO {s}.agent_events (principal, conversation_id, at, kind, detail)"
        " VALUES ('alice', 'c1', {at}, 'draft', %s)",
    }
    conn.execute(statements[table].format(s=schema, at=at), (rid,))


def _ages(conn: psycopg.Connection, schema: str, table: str) -> list[int]:
    rows = conn.execute(
        f"SELECT extract(day FROM now() - at)::int FROM {schema}.{table} ORDER BY at"
    ).fetchall()
    return [r[0] for r in rows]


def test_the_retention_job_deletes_only_records_past_their_period(
    tmp_path: Path, database_url: str, redactor, embedder
) -> None:
    config_path, config = _config(
        tmp_path, database_url, {"audit_retention_days": AUDIT_DAYS, "ledger_retention_days": LEDGER_DAYS}
    )
    with Services(config, redactor=redactor, embedder=embedder) as services:
        services.migrate()
        target = services.targets["uk"]
    schema = target.schema
    tables = ("retrieval_audit", "agent_searches", "action_checks", "agent_events")
    with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
        for table in tables:
            for days in (2, AUDIT_DAYS + 5, LEDGER_DAYS + 5):
                _plant(conn, schema, table, days)
        # Outside the purge even the owner deletes nothing, however old the row.
        for table in tables:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(f"DELETE FROM {schema}.{table} WHERE at < now() - interval '1 day'")
        # The purge function keeps its floors whatever it is asked.
        with pytest.raises(psycopg.errors.RaiseException, match="at least 1 day"):
            conn.execute(f"SELECT * FROM {schema}.purge_records(0, NULL)")
        with pytest.raises(psycopg.errors.RaiseException, match="at least 8 days"):
            conn.execute(f"SELECT * FROM {schema}.purge_records(NULL, 7)")
        assert all(_ages(conn, schema, t) == [LEDGER_DAYS + 5, AUDIT_DAYS + 5, 2] for t in tables)
    # Ingest's and the API's roles may not call it at all.
    for role in (Role.WRITER, Role.READER):
        with (
            psycopg.connect(target.dsn_for(role)) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(f"SELECT * FROM {schema}.purge_records(30, 60)")

    defs = build_definitions(config_path, config)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("retention").execute_in_process(instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("expired_records_purge")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert meta["audit_rows_deleted"] == 2  # the audit's two rows older than 30 days
    assert meta["ledger_rows_deleted"] == 3  # one row older than 60 days in each ledger table
    with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
        assert _ages(conn, schema, "retrieval_audit") == [2]
        for table in tables[1:]:
            assert _ages(conn, schema, table) == [AUDIT_DAYS + 5, 2]
        # Recent rows stay append-only after the purge, the owner included.
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"DELETE FROM {schema}.agent_events")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute(f"DELETE FROM {schema}.retrieval_audit")


def test_records_left_unset_are_kept_and_the_ledger_keeps_the_brakes_window(
    tmp_path: Path, database_url: str, redactor, embedder
) -> None:
    with pytest.raises(ConfigError, match="ledger_retention_days"):
        _config(tmp_path, database_url, {"ledger_retention_days": 7})
    _, config = _config(tmp_path, database_url, {"audit_retention_days": AUDIT_DAYS})
    with Services(config, redactor=redactor, embedder=embedder) as services:
        services.migrate()
        target = services.targets["uk"]
        with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
            _plant(conn, target.schema, "retrieval_audit", 400)
            _plant(conn, target.schema, "agent_events", 4000)
        purge = purge_old_records(services.catalog)
        assert (purge.audit, purge.ledger) == ({"uk": 1}, {"uk": 0})
        with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
            assert _ages(conn, target.schema, "retrieval_audit") == []
            assert _ages(conn, target.schema, "agent_events") == [4000]  # no ledger period: kept
    # A region that cannot be reached fails the purge with the server's reason, never the password.
    _, unreachable = _config(
        tmp_path, "postgresql://groundwork:s3cret-pw@127.0.0.1:9/nowhere", {"audit_retention_days": 30}
    )
    with (
        Services(unreachable, redactor=redactor, embedder=embedder) as services,
        pytest.raises(IndexUnavailable, match="cannot purge the 'uk' index's records") as err,
    ):
        purge_old_records(services.catalog)
    assert "s3cret-pw" not in str(err.value)
