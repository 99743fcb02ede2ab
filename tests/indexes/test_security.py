"""The database enforces access and residency: bare queries as the API's role, role properties,
the writer's region guard, residency routing and the append-only, redacted retrieval audit."""

from __future__ import annotations

import psycopg
import pytest

from groundwork.settings import PrincipalConfig
from indexes.search import Retriever, set_caller
from orchestration.services import Services
from pipelines.embedding import Embedder
from tests.conftest import make_reader


def reader_conn(retriever: Retriever, region: str) -> psycopg.Connection:
    return psycopg.connect(retriever.catalog.targets[region].reader_dsn)


def test_bare_select_as_reader_sees_only_the_callers_rows(demo_reader: Retriever) -> None:
    schema = demo_reader.catalog.targets["uk"].schema
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


def demo_reader_total(retriever: Retriever, region: str) -> int:
    target = retriever.catalog.targets[region]
    with psycopg.connect(target.owner_dsn) as conn:  # the owner is not subject to RLS
        return int(conn.execute(f"SELECT count(*) FROM {target.schema}.chunks").fetchone()[0])


def test_reader_role_cannot_bypass_own_or_write(demo_reader: Retriever) -> None:
    target = demo_reader.catalog.targets["uk"]
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
    services = make_reader(ingested_demo.config, redactor, embedder)
    try:
        carol = PrincipalConfig(name="carol", api_key_sha256="c" * 64, groups=["hr", "staff"], regions=["uk"])
        out = services.search(carol, "annual leave and salary bands", 10)
        assert out.regions_searched == ["uk"]
        assert {h.residency for h in out.results} == {"uk"}
        assert dict(services.catalog.pools.opened) == {"uk": 1}
    finally:
        services.close()


def test_retriever_refuses_a_writer_connection(ingested_demo: Services, embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="reader role"):
        Retriever(
            ingested_demo.catalog, encoder=embedder, encoder_for=lambda m, d: embedder, redact_query=str
        )


def test_search_is_audited_with_the_query_redacted(demo_reader: Retriever) -> None:
    query = "What is the salary of Priya Raman, priya.raman@example.co.uk, 07700 900123?"
    out = demo_reader.search(demo_reader.config.principal("alice"), query, 3)
    uk = demo_reader.catalog.targets["uk"]
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


def test_audit_is_append_only_even_for_the_owner(demo_reader: Retriever) -> None:
    demo_reader.search(demo_reader.config.principal("bob"), "annual leave", 1)
    eu = demo_reader.catalog.targets["eu"]
    with psycopg.connect(eu.owner_dsn) as conn:
        before = conn.execute(f"SELECT count(*) FROM {eu.schema}.retrieval_audit").fetchone()
        assert before is not None and before[0] > 0
        for statement in (
            f"UPDATE {eu.schema}.retrieval_audit SET principal = 'mallory'",
            f"DELETE FROM {eu.schema}.retrieval_audit",
            f"TRUNCATE {eu.schema}.retrieval_audit",
            f"TRUNCATE {eu.schema}.erasures",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"), conn.transaction():
                conn.execute(statement)
        assert conn.execute(f"SELECT count(*) FROM {eu.schema}.retrieval_audit").fetchone() == before
    with reader_conn(demo_reader, "eu") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {eu.schema}.retrieval_audit")
