"""The database enforces access and residency: bare queries as the API's role, role properties,
the writer's region guard, residency routing and the append-only, redacted retrieval audit."""

from __future__ import annotations

import psycopg
import pytest

from groundwork.config import PrincipalConfig
from groundwork.services import Services
from indexes.search import Retriever, set_caller


def reader_conn(services: Services, region: str) -> psycopg.Connection:
    return psycopg.connect(services.targets[region].reader_dsn)


def test_bare_select_as_reader_sees_only_the_callers_rows(demo_reader: Services) -> None:
    schema = demo_reader.targets["uk"].schema
    with reader_conn(demo_reader, "uk") as conn:
        # Nothing set: fail closed.
        assert conn.execute(f"SELECT count(*) FROM {schema}.chunks").fetchone() == (0,)
        assert conn.execute(f"SELECT count(*) FROM {schema}.documents").fetchone() == (0,)
        with conn.transaction():
            set_caller(conn, ["public", "principal:bob", "group:staff"], ["eu"])
            assert conn.execute(f"SELECT count(*) FROM {schema}.chunks").fetchone() == (0,)
        with conn.transaction():
            set_caller(conn, ["public", "principal:alice", "group:hr", "group:staff"], ["uk", "eu"])
            visible = conn.execute(f"SELECT count(*) FROM {schema}.chunks").fetchone()[0]
            assert visible == demo_reader_total(demo_reader, "uk") > 0
        with conn.transaction():
            set_caller(conn, ["group:hr"], ["eu"])  # right group, wrong region
            assert conn.execute(f"SELECT count(*) FROM {schema}.chunks").fetchone() == (0,)
        # set_config(..., true) lasts one transaction only.
        assert conn.execute(f"SELECT count(*) FROM {schema}.chunks").fetchone() == (0,)


def demo_reader_total(services: Services, region: str) -> int:
    with psycopg.connect(services.targets[region].dsn) as conn:  # the owner is not subject to RLS
        return int(
            conn.execute(f"SELECT count(*) FROM {services.targets[region].schema}.chunks").fetchone()[0]
        )


def test_reader_role_cannot_bypass_own_or_write(demo_reader: Services) -> None:
    target = demo_reader.targets["uk"]
    with reader_conn(demo_reader, "uk") as conn:
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (False, False)
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s", (target.schema,)
        ).fetchall()
        assert ("groundwork_reader",) not in owners
        for statement in (
            f"UPDATE {target.schema}.chunks SET access = ARRAY['public']",
            f"DELETE FROM {target.schema}.documents",
            f"SELECT * FROM {target.schema}.ingest_failures",
            f"ALTER TABLE {target.schema}.chunks DISABLE ROW LEVEL SECURITY",
            "SET ROLE groundwork_writer",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)


def test_writer_cannot_store_another_regions_rows(ingested_demo: Services) -> None:
    eu = ingested_demo.targets["eu"]
    with psycopg.connect(eu.writer_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"UPDATE {eu.schema}.chunks SET residency = 'uk'")


def test_uk_only_caller_never_connects_to_eu(ingested_demo: Services, redactor, embedder) -> None:
    services = Services(ingested_demo.config, role="reader", redactor=redactor, embedder=embedder)
    try:
        carol = PrincipalConfig(name="carol", api_key_sha256="c" * 64, groups=["hr", "staff"], regions=["uk"])
        out = Retriever(services).search(carol, "annual leave and salary bands", 10)
        assert out.regions_searched == ["uk"]
        assert {h.residency for h in out.results} == {"uk"}
        assert dict(services.pools.opened) == {"uk": 1}
    finally:
        services.close()


def test_retriever_refuses_a_writer_connection(ingested_demo: Services) -> None:
    with pytest.raises(ValueError, match="reader role"):
        Retriever(ingested_demo)


def test_search_is_audited_with_the_query_redacted(demo_reader: Services) -> None:
    query = "What is the salary of Priya Raman, priya.raman@example.co.uk, 07700 900123?"
    out = Retriever(demo_reader).search(demo_reader.config.principal("alice"), query, 3)
    uk = demo_reader.targets["uk"]
    with psycopg.connect(uk.dsn) as conn:
        row = conn.execute(
            f"SELECT principal, query_redacted, chunk_ids::text[], decision, regions FROM {uk.schema}.retrieval_audit"
            " ORDER BY audit_id DESC LIMIT 1"
        ).fetchone()
    principal, stored, chunk_ids, decision, regions = row
    assert principal == "alice"
    assert "Priya" not in stored and "priya.raman" not in stored and "900123" not in stored
    assert "<EMAIL_ADDRESS>" in stored
    assert set(chunk_ids) == {h.chunk_id for h in out.results if h.residency == "uk"}
    assert decision == out.decision.value
    assert regions == ["eu", "uk"]


def test_audit_is_append_only_even_for_the_owner(demo_reader: Services) -> None:
    Retriever(demo_reader).search(demo_reader.config.principal("bob"), "annual leave", 1)
    eu = demo_reader.targets["eu"]
    with psycopg.connect(eu.dsn) as conn:
        for statement in (
            f"UPDATE {eu.schema}.retrieval_audit SET principal = 'mallory'",
            f"DELETE FROM {eu.schema}.retrieval_audit",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"), conn.transaction():
                conn.execute(statement)
    with reader_conn(demo_reader, "eu") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {eu.schema}.retrieval_audit")
