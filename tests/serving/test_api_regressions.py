"""Regressions for what the schema-driven fuzz (tests/serving/test_schemathesis.py) found in the API.

Each test names the generated request that first showed the fault.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from groundwork.settings import GroundworkConfig
from indexes.search import Retriever
from serving.api import create_app
from serving.searching import QUERY_PATTERN, SPACE_CLASS
from tests.conftest import ALICE_KEY

AUTH = {"Authorization": f"Bearer {ALICE_KEY}"}


def _client(demo_reader: Retriever, **retrieval: Any) -> TestClient:
    config: GroundworkConfig = demo_reader.config
    config = config.model_copy(
        update={
            "api": config.api.model_copy(update={"rate_limit_burst": 10_000}),
            "retrieval": config.retrieval.model_copy(update=retrieval),
        }
    )
    return TestClient(create_app(config, demo_reader), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(demo_reader: Retriever) -> TestClient:
    return _client(demo_reader)


def _assert_error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error", "message"} and r.json()["error"] == code


# Found by: TRACE /healthz -> 405 without an Allow header (the error handler dropped the headers).
@pytest.mark.parametrize(
    ("method", "path", "allow"), [("TRACE", "/healthz", "GET"), ("DELETE", "/v1/search", "POST")]
)
def test_a_method_the_path_does_not_take_is_405_with_allow(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path, headers=AUTH)
    _assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allow


# Found by: PUT /healthz with no body -> 415 (the size middleware asked every POST/PUT/PATCH for JSON).
def test_a_body_sent_where_none_is_taken_is_404_or_405_not_415(client: TestClient) -> None:
    _assert_error(client.put("/healthz", headers=AUTH), 405, "method_not_allowed")
    _assert_error(
        client.put("/healthz", content=b"x", headers={**AUTH, "Content-Type": "text/plain"}),
        405,
        "method_not_allowed",
    )
    _assert_error(client.post("/v2/nowhere", content=b"x", headers=AUTH), 404, "not_found")
    # The search still takes JSON only, and bodies anywhere stay bounded in size.
    search = client.post("/v1/search", content=b"query=x", headers={**AUTH, "Content-Type": "text/plain"})
    _assert_error(search, 415, "unsupported_media_type")
    big = client.put("/healthz", content=b"x" * 20_000, headers={**AUTH, "Content-Type": "text/plain"})
    _assert_error(big, 413, "body_too_large")


# Found by: {"filters": {"modified_after": 0, ...}, "k": 5, "query": "0"} -> 200 (read as 1970-01-01).
@pytest.mark.parametrize(
    "value",
    [
        0,
        1_700_000_000,
        "0",
        "1700000000",
        True,
        "1999-12-31",
        "1999-12-31T23:59:59",
        "yesterday",
        "\u0662" * 4,
    ],
)
def test_modified_after_must_be_an_rfc3339_date_time(client: TestClient, value: object) -> None:
    r = client.post(
        "/v1/search", json={"query": "annual leave", "filters": {"modified_after": value}}, headers=AUTH
    )
    _assert_error(r, 422, "invalid_request")
    assert r.json()["message"].startswith("filters.modified_after: ")
    assert "RFC 3339" in r.json()["message"]


@pytest.mark.parametrize(
    "value", ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.5+01:00", "2020-01-01t00:00:00z"]
)
def test_an_rfc3339_date_time_is_accepted(client: TestClient, value: str) -> None:
    r = client.post(
        "/v1/search", json={"query": "annual leave", "filters": {"modified_after": value}}, headers=AUTH
    )
    assert r.status_code == 200, r.text


# Found by: {"k": 999, "query": "0"} -> 422 "k: at most 50" while the schema allowed k up to 1000.
def test_the_schema_states_the_configured_limits(demo_reader: Retriever) -> None:
    spec = _client(demo_reader, max_k=7, default_k=3, max_query_chars=100).get("/openapi.json").json()
    fields = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert (fields["k"]["minimum"], fields["k"]["maximum"], fields["k"]["default"]) == (1, 7, 3)
    assert fields["query"]["maxLength"] == 100
    assert fields["query"]["pattern"] == QUERY_PATTERN


# Found by: {"query": "\u001d", ...} -> 422 "must not be blank" while the schema allowed any 1 character.
def test_the_published_query_pattern_refuses_what_the_handler_calls_blank(client: TestClient) -> None:
    space = re.compile(f"[{SPACE_CLASS}]")
    assert [c for c in map(chr, range(0x110000)) if space.fullmatch(c)] == [
        c for c in map(chr, range(0x110000)) if c.isspace()
    ]
    pattern = re.compile(QUERY_PATTERN)
    for blank in ["\u001d", " \t\n", "\u3000\u2028"]:
        assert not pattern.search(blank)
        r = client.post("/v1/search", json={"query": blank}, headers=AUTH)
        _assert_error(r, 422, "invalid_request")
        assert r.json()["message"] == "query: must not be blank"
    for fine in ["a", " leave ", "\u00e9"]:
        assert pattern.search(fine)
    assert not pattern.search("annual\u0000leave")


# Found with the schema's default for k: the API used 5 whatever retrieval.default_k said.
def test_a_search_without_k_returns_default_k_results(demo_reader: Retriever) -> None:
    client = _client(demo_reader, default_k=2)
    r = client.post("/v1/search", json={"query": "How many days of annual leave do I get?"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 2
    r = client.post(
        "/v1/search", json={"query": "How many days of annual leave do I get?", "k": 3}, headers=AUTH
    )
    assert len(r.json()["results"]) == 3


# Found by: a body of b"[" -> 422 "1: JSON decode error" (the character offset read as a field).
@pytest.mark.parametrize("content", [b"[", b"\x00", b'{"query": "x",}'])
def test_a_body_that_is_not_json_says_so(client: TestClient, content: bytes) -> None:
    r = client.post("/v1/search", content=content, headers={**AUTH, "Content-Type": "application/json"})
    _assert_error(r, 422, "invalid_request")
    assert r.json()["message"] == "the request body is not valid JSON"


# {"query": "...", "conversation_id": null, "k": true} was answered 200 with one result: JSON true
# became k=1. A k that is not a JSON integer is refused like any other invalid k; 4.0 is an integer
# to JSON Schema ({"k": 4.0, ...} was then refused, as a strict int would), and is accepted.
@pytest.mark.parametrize("k", [True, False, "3", 2.5])
def test_k_must_be_a_json_integer(client: TestClient, k: object) -> None:
    r = client.post("/v1/search", json={"query": "annual leave", "k": k}, headers=AUTH)
    _assert_error(r, 422, "invalid_request")
    assert r.json()["message"].startswith("k: ")


def test_an_integral_float_k_is_an_integer(client: TestClient) -> None:
    r = client.post("/v1/search", json={"query": "annual leave", "k": 4.0}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 4
