"""Search with a reranker on the ingested demo: the best candidates are reordered by the
cross-encoder's logits, confidence is its calibrated probability for the best, and neither depends
on ``k``; with ``rerank_depth: 0`` (the default) nothing is reranked. A top result over the context
budget says so. The reranker's weights are made by the test (see ``tests/reranker_support.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from groundwork.enums import Decision, Reason
from groundwork.settings import GroundworkConfig
from indexes.ranking import rerank
from indexes.results import SearchHit
from indexes.search import Retriever
from orchestration.services import Services
from tests.conftest import make_reader
from tests.reranker_support import make_weights

QUERY = "Can I work from home?"


def _with(config: GroundworkConfig, **retrieval: object) -> GroundworkConfig:
    return config.model_copy(update={"retrieval": config.retrieval.model_copy(update=retrieval)})


@pytest.fixture(scope="module")
def reranking_reader(
    ingested_demo: Services, redactor, embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Retriever]:
    weights = make_weights(tmp_path_factory.mktemp("reranker") / "weights")
    config = _with(ingested_demo.config, rerank_depth=6, reranker_weights=weights)
    config = config.model_copy(
        update={
            "embedding": config.embedding.model_copy(update={"cache_dir": Path(weights.parent / "cache")})
        }
    )
    with make_reader(config, redactor, embedder) as reader:
        yield reader


def test_the_best_candidates_are_reordered_by_the_reranker(reranking_reader: Retriever) -> None:
    reader = reranking_reader
    assert reader.reranker is not None
    alice = reader.config.principal("alice")
    dense = {h.chunk_id for h in _dense(reader, alice)}
    out = reader.search(alice, QUERY, 10)
    head, tail = out.results[:6], out.results[6:]
    logits = [h.rerank_score for h in head]
    assert all(s is not None for s in logits)
    assert logits == sorted(logits, reverse=True)  # type: ignore[type-var]
    assert all(h.rerank_score is None for h in tail)
    assert {h.chunk_id for h in head} == dense  # the same six candidates, reordered
    assert out.confidence == pytest.approx(reader.reranker.probability(logits[0] or 0.0), abs=1e-4)
    again = reader.reranker.score(QUERY, [h.text for h in head])
    assert again == pytest.approx([s or 0.0 for s in logits], abs=1e-3)


def _dense(reader: Retriever, principal) -> list[SearchHit]:
    vectors = reader.query_vectors(QUERY, reader.regions_for(principal))
    hits = [
        h
        for r in reader.regions_for(principal)
        for h in reader.search_region(r, reader.regions_for(principal), vectors[r], principal.grants(), 6)
    ]
    return sorted(hits, key=lambda h: -h.score)[:6]


def test_confidence_and_top_result_do_not_depend_on_k(reranking_reader: Retriever) -> None:
    alice = reranking_reader.config.principal("alice")
    outs = [reranking_reader.search(alice, QUERY, k) for k in (1, 3, 10)]
    assert len({o.confidence for o in outs}) == 1
    assert len({o.results[0].chunk_id for o in outs}) == 1
    assert len({o.decision for o in outs}) == 1


def test_no_reranking_by_default(demo_reader: Retriever) -> None:
    assert demo_reader.settings.rerank_depth == 0
    assert demo_reader.reranker is None
    out = demo_reader.search(demo_reader.config.principal("alice"), QUERY, 5)
    assert out.results
    assert all(h.rerank_score is None for h in out.results)
    scores = [h.score for h in out.results]
    assert scores == sorted(scores, reverse=True)


def test_a_top_result_over_the_context_budget_is_named(demo_reader: Retriever, redactor, embedder) -> None:
    config = _with(demo_reader.config, max_context_tokens=1)
    with make_reader(config, redactor, embedder) as reader:
        out = reader.search(config.principal("alice"), QUERY, 5)
    assert out.results == []
    assert out.decision is Decision.HANDOFF
    assert out.reasons == [Reason.CONTEXT_BUDGET]


class _ByLength:
    """Scores a passage by its length: a stand-in that makes the expected order obvious."""

    def score(self, query: str, passages: list[str]) -> list[float]:
        return [float(len(p)) for p in passages]

    def probability(self, logit: float) -> float:
        return 0.5


def _hit(n: int, text: str) -> SearchHit:
    return SearchHit(str(n), "d", text, 1.0 - n / 10, "s", "u", "eu", n, None, "v", {})


def test_rerank_reorders_only_its_depth_and_keeps_ties_in_rank_order() -> None:
    hits = [_hit(0, "aa"), _hit(1, "aaaa"), _hit(2, "aa"), _hit(3, "aaaaaaaa")]
    out = rerank("q", hits, _ByLength(), depth=3)
    assert [h.chunk_id for h in out] == ["1", "0", "2", "3"]
    assert [h.rerank_score for h in out] == [4.0, 2.0, 2.0, None]


@pytest.mark.parametrize("query", [QUERY, "What is the best recipe for banana bread?", "leave and expenses"])
def test_without_reranker_confidence_and_decision_do_not_depend_on_k(
    demo_reader: Retriever, query: str
) -> None:
    alice = demo_reader.config.principal("alice")
    outs = [demo_reader.search(alice, query, k) for k in (1, 2, 5, 20)]
    assert len({(o.confidence, o.decision, tuple(o.reasons)) for o in outs}) == 1
    assert [len(o.results) for o in outs][:3] == [1, 2, min(5, len(outs[-1].results))]
