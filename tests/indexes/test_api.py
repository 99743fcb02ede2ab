"""The retrieval API over HTTP semantics: auth, validation, response shape, per-principal results."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from indexes.search import Retriever
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY


@pytest.fixture(scope="module")
def client(demo_reader: Retriever) -> TestClient:
    # This module checks behaviour, not the rate limit (tests/indexes/test_api_security.py does).
    config = demo_reader.config.model_copy(
        update={"api": demo_reader.config.api.model_copy(update={"rate_limit_burst": 10_000})}
    )
    app = create_app(config, demo_reader)
    return TestClient(app, raise_server_exceptions=False)


def search(client: TestClient, key: str | None, body: object, **kw: object):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/search", json=body, headers=headers, **kw)


def test_search_returns_the_documented_shape(client: TestClient) -> None:
    r = search(client, ALICE_KEY, {"query": "How many days of annual leave do I get?", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"results", "confidence", "decision", "reasons"}
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["decision"] == "answer"
    assert len(body["results"]) == 3
    top = body["results"][0]
    assert set(top) >= {"chunk_id", "document_id", "text", "score", "source_uri", "residency"}
    assert "25 days" in top["text"]
    assert top["residency"] == "eu"


def test_two_principals_see_different_results(client: TestClient) -> None:
    q = {"query": "grievance hearing arrangements", "k": 10}
    alice = search(client, ALICE_KEY, q).json()
    bob = search(client, BOB_KEY, q).json()
    assert any(r["residency"] == "uk" for r in alice["results"])
    assert all(r["residency"] == "eu" for r in bob["results"])
    assert {r["chunk_id"] for r in bob["results"]} < {r["chunk_id"] for r in alice["results"]} | {
        r["chunk_id"] for r in bob["results"]
    }


def test_off_topic_query_hands_off(client: TestClient) -> None:
    body = search(client, ALICE_KEY, {"query": "What is the best recipe for banana bread?", "k": 3}).json()
    assert body["decision"] == "handoff"
    assert "low_confidence" in body["reasons"]


@pytest.mark.parametrize("key", [None, "", "wrong-key", ALICE_KEY + "x", "demo-key-carol"])
def test_missing_or_unknown_key_is_401(client: TestClient, key: str | None) -> None:
    r = search(client, key, {"query": "annual leave", "k": 3})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_wrong_scheme_is_401(client: TestClient) -> None:
    r = client.post("/v1/search", json={"query": "x"}, headers={"Authorization": f"Basic {ALICE_KEY}"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "blank"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": 51}, "at most 50"),
        ({"query": "x", "k": "many"}, "k"),
        ({"query": 42}, "query"),
        ({"query": "x", "filter": "1=1"}, "filter"),
        ({"query": "x" * 2001}, "at most 2000"),
        (["query"], "body"),
    ],
)
def test_invalid_body_is_422_with_a_message(client: TestClient, body: object, fragment: str) -> None:
    r = search(client, ALICE_KEY, body)
    assert r.status_code == 422
    payload = r.json()
    assert payload["error"] == "invalid_request"
    assert fragment in payload["message"]


def test_malformed_json_is_422_and_not_echoed(client: TestClient) -> None:
    r = client.post(
        "/v1/search",
        content=b'{"query": "Priya Raman salary',
        headers={"Authorization": f"Bearer {ALICE_KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert "Priya" not in r.text


def test_sql_in_the_query_is_just_text(client: TestClient) -> None:
    r = search(client, BOB_KEY, {"query": "x' OR 1=1; DROP TABLE groundwork_uk.chunks; --", "k": 50})
    assert r.status_code == 200
    assert all(res["residency"] == "eu" for res in r.json()["results"])
    assert search(client, ALICE_KEY, {"query": "salary bands", "k": 1}).json()["results"]


def test_healthz_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"]


def test_each_search_names_its_audit_row(client: TestClient, demo_reader: Retriever) -> None:
    import uuid

    import psycopg

    first = search(client, ALICE_KEY, {"query": "annual leave", "k": 2}).json()
    second = search(client, ALICE_KEY, {"query": "annual leave", "k": 2}).json()
    assert first["request_id"] != second["request_id"]
    for region in first["regions_searched"]:
        target = demo_reader.catalog.targets[region]
        with psycopg.connect(target.dsn) as conn:
            row = conn.execute(
                f"SELECT principal, k FROM {target.schema}.retrieval_audit WHERE request_id = %s",
                (uuid.UUID(first["request_id"]),),
            ).fetchone()
        assert row == ("alice", 2)
