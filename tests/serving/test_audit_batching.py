"""Batched audit writes on a real database: several searches' rows commit in one transaction, every
answered search has its rows, and a search whose row cannot be committed fails (503) rather than
being answered unrecorded."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient

from groundwork.enums import AuthMethod, Decision
from indexes.audit import AuditRecord, AuditWriteError, write_audits
from indexes.search import Retriever
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from serving.api import create_app
from serving.retrieval import ServingRetriever, build_retriever
from tests.conftest import ALICE_KEY, BOB_KEY

QUERY = "How many days of annual leave does Priya Raman get?"


def _record(query: str = "how many days of leave") -> AuditRecord:
    return AuditRecord(
        request_id=uuid.uuid4(),
        principal="alice",
        auth_method=AuthMethod.API_KEY,
        regions=["eu"],
        query_redacted=query,
        k=3,
        decision=Decision.ANSWER,
        reasons=[],
        confidence=0.9,
    )


def _rows(reader: Retriever, region: str, ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
    target = reader.catalog.targets[region]
    with psycopg.connect(target.owner_dsn) as conn:
        return conn.execute(
            f"SELECT request_id, xmin::text FROM {target.schema}.retrieval_audit WHERE request_id = ANY(%s)",
            (ids,),
        ).fetchall()


def _count(services: Services, region: str) -> int:
    target = services.targets[region]
    with psycopg.connect(target.owner_dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {target.schema}.retrieval_audit").fetchone()
    assert row is not None
    return int(row[0])


def test_several_searches_rows_commit_in_one_transaction(demo_reader: Retriever) -> None:
    entries = [(_record(), [uuid.uuid4()]) for _ in range(5)]
    assert write_audits(demo_reader.catalog.index("eu"), entries) == [None] * 5
    rows = _rows(demo_reader, "eu", [r.request_id for r, _ in entries])
    assert len(rows) == 5
    assert len({xmin for _, xmin in rows}) == 1  # one transaction


def test_a_row_the_database_refuses_fails_its_own_search_only(demo_reader: Retriever) -> None:
    good, bad, other = _record(), _record("a NUL \x00 cannot be stored"), _record()
    outcomes = write_audits(demo_reader.catalog.index("eu"), [(good, []), (bad, []), (other, [])])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], AuditWriteError)
    assert "NUL" not in str(outcomes[1]) and "DataError" in str(outcomes[1])
    assert {r for r, _ in _rows(demo_reader, "eu", [good.request_id, bad.request_id, other.request_id])} == {
        good.request_id,
        other.request_id,
    }


@pytest.fixture
def served(
    demo_services: Services, redactor: Redactor, embedder: Embedder
) -> Iterator[tuple[TestClient, ServingRetriever]]:
    """The API over a throwaway database (migrated, empty: every search is still audited)."""
    config = demo_services.config.model_copy(
        update={"api": demo_services.config.api.model_copy(update={"rate_limit_burst": 10_000})}
    )
    with build_retriever(config, embedder=embedder, redactor=redactor) as retriever:
        yield TestClient(create_app(config, retriever), raise_server_exceptions=False), retriever


def _post(client: TestClient, key: str, query: str = QUERY) -> tuple[int, dict[str, object]]:
    r = client.post("/v1/search", json={"query": query, "k": 3}, headers={"Authorization": f"Bearer {key}"})
    return r.status_code, r.json()


def _owner(services: Services, region: str, statement: str) -> None:
    target = services.targets[region]
    with psycopg.connect(target.owner_dsn, autocommit=True) as conn:
        conn.execute(statement.format(schema=target.schema, reader=services.config.database.reader_role))


def test_every_answered_search_is_audited_once(
    demo_services: Services, served: tuple[TestClient, Retriever]
) -> None:
    client, _ = served
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _post(client, ALICE_KEY, f"{QUERY} ({i})"), range(24)))
    assert [status for status, _ in answers] == [200] * 24
    assert _count(demo_services, "uk") == 24
    assert _count(demo_services, "eu") == 24


def test_a_search_whose_audit_row_cannot_be_written_fails_with_503(
    demo_services: Services, served: tuple[TestClient, ServingRetriever]
) -> None:
    client, retriever = served
    assert _post(client, ALICE_KEY)[0] == 200
    _owner(demo_services, "uk", "REVOKE INSERT ON {schema}.retrieval_audit FROM {reader}")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _post(client, ALICE_KEY), range(6)))
    for status, body in answers:  # alice searches uk and eu: her uk row is refused
        assert status == 503
        assert body == {
            "error": "audit_unavailable",
            "message": "the search could not be recorded in the audit; try again later",
        }
    assert _count(demo_services, "uk") == 1  # nothing was answered unrecorded
    assert _post(client, BOB_KEY)[0] == 200  # bob searches eu only, whose audit works

    _owner(demo_services, "uk", "GRANT INSERT ON {schema}.retrieval_audit TO {reader}")
    assert _post(client, ALICE_KEY)[0] == 200
    assert _count(demo_services, "uk") == 2

    _owner(demo_services, "eu", "DROP TABLE {schema}.retrieval_audit")
    status, body = _post(client, BOB_KEY)
    assert status == 503 and body["error"] == "audit_unavailable"
    assert "Priya" not in str(body)
    with pytest.raises(AuditWriteError, match="UndefinedTable"):  # what the log and the cause name
        retriever.search(retriever.config.principal("bob"), QUERY, 3)


def test_a_failed_audit_write_raises_from_the_retriever(
    demo_services: Services, served: tuple[TestClient, ServingRetriever]
) -> None:
    _, retriever = served
    _owner(demo_services, "eu", "REVOKE INSERT ON {schema}.retrieval_audit FROM {reader}")
    with pytest.raises(AuditWriteError, match=r"'eu' retrieval audit refused .*InsufficientPrivilege"):
        retriever.search(retriever.config.principal("bob"), QUERY, 3)
