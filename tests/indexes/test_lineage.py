"""Per-chunk lineage: the steward route (row-level security applies, other callers are refused) and
the command line's view as the writer."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from cli.lineage import terminal_safe_lines
from groundwork.settings import PrincipalConfig
from indexes.lineage import chunk_lineage
from indexes.pooling import connection
from indexes.schema import read_meta
from indexes.search import Retriever
from orchestration.services import Services
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY

CAROL_KEY = "steward-key-carol"


@pytest.fixture(scope="module")
def client(demo_reader: Retriever) -> TestClient:
    config = demo_reader.config
    alice = config.principal("alice").model_copy(update={"roles": ["steward"]})
    carol = PrincipalConfig(
        name="carol",
        api_key_sha256=hashlib.sha256(CAROL_KEY.encode()).hexdigest(),
        groups=["staff"],
        regions=["eu"],
        roles=["steward"],
    )
    principals = [alice, config.principal("bob"), carol]
    return TestClient(create_app(config.model_copy(update={"principals": principals}), demo_reader))


def _chunk(client: TestClient, query: str, residency: str) -> str:
    body = client.post(
        "/v1/search", json={"query": query, "k": 10}, headers={"Authorization": f"Bearer {ALICE_KEY}"}
    )
    return next(r["chunk_id"] for r in body.json()["results"] if r["residency"] == residency)


def test_a_steward_reads_a_chunks_lineage(client: TestClient, ingested_demo: Services) -> None:
    chunk_id = _chunk(client, "grievance hearing arrangements", "uk")
    r = client.get(f"/v1/lineage/{chunk_id}", headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chunk"]["chunk_id"] == chunk_id
    assert body["document"]["source"] == "hr"
    assert body["document"]["source_uri"].startswith("file://")
    assert body["ingest_run"]["run_id"].startswith("local-")  # the fixture ingests without Dagster
    assert body["ingest_run"]["orchestrator"] == "local"
    assert body["governance"] == {
        "residency": "uk",
        "access": ["group:hr"],
        "source_access": None,  # files keep no permissions of their own
        "decided_by": "source 'hr': residency by source default, access by source default",
    }
    index = ingested_demo.index("uk")
    with connection(index.pool) as conn:
        meta = read_meta(conn, index.schema)
    assert body["redaction"]["policy_version"] == meta["redaction"]
    assert body["index"]["embedding_model"] == meta["model"] and body["index"]["region"] == "uk"
    assert set(body["chunk"]) == {"chunk_id", "seq", "page_number", "redactions"}  # metadata, never text


def test_lineage_is_refused_to_readers_without_the_steward_role(client: TestClient) -> None:
    chunk_id = _chunk(client, "annual leave", "eu")
    r = client.get(f"/v1/lineage/{chunk_id}", headers={"Authorization": f"Bearer {BOB_KEY}"})
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden", "message": "lineage is for principals with the steward role"}
    assert client.get(f"/v1/lineage/{chunk_id}").status_code == 401


def test_a_steward_sees_only_chunks_it_may_read(client: TestClient) -> None:
    hr_chunk = _chunk(client, "grievance hearing arrangements", "uk")
    handbook_chunk = _chunk(client, "annual leave", "eu")
    carol = {"Authorization": f"Bearer {CAROL_KEY}"}
    assert client.get(f"/v1/lineage/{handbook_chunk}", headers=carol).status_code == 200
    hidden = client.get(f"/v1/lineage/{hr_chunk}", headers=carol)  # uk, group:hr: neither is carol's
    assert hidden.status_code == 404
    assert hidden.json()["error"] == "not_found"


def test_a_bad_chunk_id_is_a_422_that_echoes_nothing(client: TestClient) -> None:
    r = client.get("/v1/lineage/robert-smith-1967", headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert r.status_code == 422
    assert "robert" not in r.text and "smith" not in r.text
    assert r.json()["message"] == "chunk_id: not a valid UUID"


def test_the_command_line_reads_any_chunk_as_the_writer(client: TestClient, ingested_demo: Services) -> None:
    chunk_id = _chunk(client, "grievance hearing arrangements", "uk")
    found = chunk_lineage(ingested_demo.catalog, chunk_id)
    assert found is not None and found["index"]["region"] == "uk"
    text = terminal_safe_lines(found)
    assert chunk_id in text and "decided by source 'hr'" in text
    assert chunk_lineage(ingested_demo.catalog, "00000000-0000-0000-0000-000000000000") is None
    with pytest.raises(ValueError, match="a chunk id is a UUID"):
        chunk_lineage(ingested_demo.catalog, "x")
