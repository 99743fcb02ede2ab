"""The HNSW recall benchmark measures what it claims, on a small real index.

5,000 chunks, 1% readable by the benchmark's group, the project's own schema and HNSW index on the
session's embedded server. The benchmark's exact answers must be the true nearest readable chunks
(checked here in NumPy), the product's path with index scans off must find all of them, and the
product's path made to use HNSW must use it and find most of them. Behaviour only, no timing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.hnsw_corpus import CHUNKS_PER_DOC, Corpus, chunk_id
from benchmarks.hnsw_recall import EXACT, FORCE_HNSW, Bench, K, recall_at_k
from indexes.embedded import EmbeddedServer

ROWS = 5_000
QUERIES = 20


def _built(server: EmbeddedServer, folder: Path, share: float) -> Iterator[Bench]:
    b = Bench(server, folder, Corpus(ROWS, share), "256MB")
    b.load()
    b.build(workers=0)
    yield b
    b.catalog.close()


@pytest.fixture(scope="module")
def bench(pg_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    yield from _built(pg_server, tmp_path_factory.mktemp("hnsw"), 0.01)


def test_recall_at_k_counts_the_exact_answers_found() -> None:
    exact = [str(i) for i in range(10)]
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(list(reversed(exact)), exact) == 1.0  # order within the top k does not matter
    assert recall_at_k(exact[:5] + ["x"] * 5, exact) == 0.5
    assert recall_at_k(exact[:7], exact) == 0.7  # a short answer is penalised
    assert recall_at_k(["x"] * 10 + exact, exact) == 0.0  # only the first k count
    assert recall_at_k([], []) == 1.0


def test_the_exact_answers_are_the_nearest_readable_chunks(bench: Bench) -> None:
    corpus = bench.corpus
    assert len(corpus.target_docs) * CHUNKS_PER_DOC == ROWS // 100  # the 1% filter
    queries = corpus.queries(QUERIES)
    truth = bench.exact(queries)
    readable_docs = set(corpus.target_docs.tolist())
    all_vectors = np.concatenate([block for _, block in corpus.blocks()])
    readable = np.array([i for i in range(ROWS) if i // CHUNKS_PER_DOC in readable_docs])
    ids = {str(chunk_id(i)): i for i in range(ROWS)}
    for query, exact in zip(queries, truth, strict=True):
        distance = 1 - all_vectors[readable] @ query
        nearest = readable[np.argsort(distance)[:K]]
        assert set(exact) == {str(chunk_id(int(i))) for i in nearest}
        found = [float(1 - all_vectors[ids[c]] @ query) for c in exact]
        assert all(a <= b + 1e-5 for a, b in itertools.pairwise(found))  # nearest first


def test_exact_path_finds_all_and_forced_hnsw_uses_the_index(bench: Bench) -> None:
    queries = bench.corpus.queries(QUERIES)
    truth = bench.exact(queries)
    exact = bench.variant("exact", EXACT, 100, queries, truth)
    assert exact.recall == 1.0
    assert exact.short == 0
    assert exact.hnsw_scans == 0  # index scans off: the answers came from a scan of the readable rows

    hnsw = bench.variant("hnsw", FORCE_HNSW, 400, queries, truth)
    assert hnsw.hnsw_scans == hnsw.queries  # every search went through the HNSW index
    assert hnsw.short == 0  # iterative scans: k readable results despite the 1% filter
    assert 0.8 <= hnsw.recall <= 1.0
    assert 0.0 <= hnsw.recall_near <= 1.0 and 0.0 <= hnsw.recall_far <= 1.0


@pytest.fixture(scope="module")
def wide_bench(pg_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """The same corpus size with 10% readable: a filter the planner hands to the index."""
    yield from _built(pg_server, tmp_path_factory.mktemp("hnsw-wide"), 0.1)


def test_fetching_more_candidates_finds_more_of_the_true_nearest_through_the_index(wide_bench: Bench) -> None:
    """``retrieval.hnsw_candidates``: the index is asked for that many readable chunks (the iterative
    scan goes on until it has them) and the best k of them are kept. With every readable chunk
    fetched the index's answer is the exact one, however narrow its search list (``ef_search`` 10)."""
    bench = wide_bench
    queries = bench.corpus.queries(QUERIES)
    truth = bench.exact(queries)
    readable = len(bench.corpus.target_docs) * CHUNKS_PER_DOC
    narrow = bench.variant("hnsw", FORCE_HNSW, 10, queries, truth, candidates=K)
    wider = bench.variant("hnsw", FORCE_HNSW, 10, queries, truth, candidates=4 * K)
    everything = bench.variant("hnsw", FORCE_HNSW, 10, queries, truth, candidates=readable)
    for outcome in (narrow, wider, everything):
        assert outcome.hnsw_scans == outcome.queries and outcome.short == 0  # through the index
    assert narrow.recall < wider.recall <= everything.recall == 1.0
