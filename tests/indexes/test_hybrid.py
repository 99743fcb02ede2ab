"""Hybrid retrieval (dense + full-text, fused by reciprocal rank) and request filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from groundwork.settings import RetrievalConfig
from indexes.results import SearchFilters
from indexes.search import Retriever
from orchestration.services import Services
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY, make_reader


@pytest.fixture(scope="module")
def hybrid_reader(ingested_demo: Services, redactor, embedder) -> Iterator[Services]:
    config = ingested_demo.config.model_copy(update={"retrieval": RetrievalConfig(mode="hybrid")})
    services = make_reader(config, redactor, embedder)
    yield services
    services.close()


def test_hybrid_fuses_lexical_and_dense_candidates(hybrid_reader: Retriever) -> None:
    alice = hybrid_reader.config.principal("alice")
    out = hybrid_reader.search(alice, "ACAS code of practice appeal", 5)
    top = out.results[0]
    assert top.source_uri.endswith("grievance-0142.eml")
    assert top.lexical_score is not None and top.lexical_score > 0
    assert top.fused_score is not None
    fused = [h.fused_score for h in out.results]
    assert fused == sorted(fused, reverse=True)


def test_hybrid_never_crosses_access_or_regions(hybrid_reader: Retriever) -> None:
    bob = hybrid_reader.config.principal("bob")
    for query in ["ACAS grievance", "salary bands L4", "pension contributions NHS"]:
        out = hybrid_reader.search(bob, query, 10)
        assert all(h.residency == "eu" and h.source == "handbook" for h in out.results)


def test_lexical_matches_a_question_whose_words_are_not_all_in_one_chunk(
    ingested_demo: Services, redactor, embedder
) -> None:
    config = ingested_demo.config.model_copy(update={"retrieval": RetrievalConfig(mode="lexical")})
    services = make_reader(config, redactor, embedder)
    try:
        bob = services.config.principal("bob")
        out = services.search(bob, "How many days of annual leave do I get as a new starter?", 5)
        assert out.results, out.reasons  # "starter" is in no chunk: every word ANDed would match nothing
        assert out.results[0].source_uri.endswith("annual-leave.md")
        scores = [h.lexical_score for h in out.results]
        assert scores == sorted(scores, reverse=True)
    finally:
        services.close()


def test_lexical_query_syntax_is_inert(hybrid_reader: Retriever) -> None:
    alice = hybrid_reader.config.principal("alice")
    for query in ["' OR 1=1 --", "-salary", '"unterminated', "a & b | !c", "<PERSON>"]:
        hybrid_reader.search(alice, query, 3)  # no error


def test_filters_narrow_results(demo_reader: Retriever) -> None:
    alice = demo_reader.config.principal("alice")
    retriever = demo_reader
    only_pdf = retriever.search(
        alice, "policy", 10, filters=SearchFilters(content_types=("application/pdf",))
    )
    assert only_pdf.results
    assert all(h.source_uri.endswith(".pdf") for h in only_pdf.results)
    only_hr = retriever.search(alice, "policy", 10, filters=SearchFilters(sources=("hr",)))
    assert {h.source for h in only_hr.results} == {"hr"}
    future = retriever.search(
        alice, "policy", 10, filters=SearchFilters(modified_after=datetime.now(UTC) + timedelta(days=1))
    )
    assert future.results == []
    assert future.reasons[0].value == "no_authorized_results"


def test_filters_through_the_api(demo_reader: Retriever) -> None:
    client = TestClient(create_app(demo_reader.config, demo_reader))
    auth = {"Authorization": f"Bearer {BOB_KEY}"}
    r = client.post(
        "/v1/search", json={"query": "leave", "k": 5, "filters": {"sources": ["hr"]}}, headers=auth
    )
    assert r.status_code == 200
    assert r.json()["results"] == []  # bob cannot read hr, whatever the filter asks
    r = client.post(
        "/v1/search", json={"query": "leave", "k": 5, "filters": {"sources": ["' OR 1=1 --"]}}, headers=auth
    )
    assert r.status_code == 200
    assert r.json()["results"] == []
    r = client.post(
        "/v1/search",
        json={"query": "leave", "k": 5, "filters": {"modified_after": "yesterday"}},
        headers={"Authorization": f"Bearer {ALICE_KEY}"},
    )
    assert r.status_code == 422
    assert "modified_after" in r.json()["message"]
