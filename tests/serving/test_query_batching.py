"""Micro-batching on the query path: what is batched together, what a failure fails, a clean shutdown,
and batched embeddings and audit redactions equal to one query at a time (real models)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from groundwork.settings import ApiConfig, EmbeddingConfig
from indexes.search import Retriever
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor, redact_identifiers
from serving.api import create_app
from serving.batching import BatcherClosed, BatchFailed, MicroBatcher
from serving.retrieval import BatchedEncoder, ServingRetriever, build_retriever
from tests.conftest import ALICE_KEY

QUERIES = [
    "How many days of annual leave do I get?",
    "What are the salary bands for a senior engineer?",
    "What is the salary of Priya Raman, priya.raman@example.co.uk, 07700 900123?",
    "My NI number is QQ 12 34 56 C, SSN 123-45-6789, account 41234567: what is my leave?",
    "Did John Smith from 12 Acacia Road, London SW1A 1AA file a grievance?",
    "Call +44 20 7946 0958 about Maria Garcia's pension",
    "card 4111 1111 1111 1111 expired",
    "Can I work from home?",
    "IBAN GB82 WEST 1234 5698 7654 32 for Tomas Muller",
    "NHS number 943 476 5919",
    "who is Liam",
    "What is the best recipe for banana bread?",
]


class Gate:
    """A batch function that records its batches and holds the first one until released, so the
    items submitted meanwhile are queued: which items share a batch is then certain."""

    def __init__(self, fail_on: str | None = None, bad_item: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail_on = fail_on
        self.bad_item = bad_item

    def __call__(self, items: list[str]) -> list[str | BaseException]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(10)
        if self.fail_on in items:
            raise RuntimeError("the model broke")
        return [ValueError("bad item") if i == self.bad_item else i.upper() for i in items]


def _hold_first(batcher: MicroBatcher[str, str], gate: Gate, rest: list[str]) -> list:
    first = batcher.submit("first")
    assert gate.started.wait(10)
    futures = [batcher.submit(item) for item in rest]
    gate.release.set()
    return [first, *futures]


def test_items_queued_while_a_batch_runs_form_the_next_batches_up_to_the_size() -> None:
    gate = Gate()
    with MicroBatcher("test", gate, max_size=4, max_wait_s=0.0) as batcher:
        futures = _hold_first(batcher, gate, [f"q{i}" for i in range(6)])
        assert [f.result(10) for f in futures] == ["FIRST", *(f"Q{i}" for i in range(6))]
    assert gate.batches == [["first"], ["q0", "q1", "q2", "q3"], ["q4", "q5"]]


def test_a_lone_item_waits_for_company_at_most_the_wait() -> None:
    seen: list[list[int]] = []
    with MicroBatcher("test", lambda xs: seen.append(xs) or xs, max_size=8, max_wait_s=0.0) as batcher:
        assert batcher(7) == 7
    assert seen == [[7]]


def test_a_failing_batch_fails_exactly_its_requests_and_the_next_batch_runs() -> None:
    gate = Gate(fail_on="boom")
    with MicroBatcher("embed test", gate, max_size=3, max_wait_s=0.0) as batcher:
        first, *rest = _hold_first(batcher, gate, ["a", "boom", "c", "d", "e"])
        assert first.result(10) == "FIRST"
        for future in rest[:3]:  # the batch holding "boom"
            with pytest.raises(
                BatchFailed, match=r"embed test: the batch of 3 failed \(RuntimeError\)"
            ) as info:
                future.result(10)
            assert isinstance(info.value.__cause__, RuntimeError)
            assert "boom" not in str(info.value)  # an item may be a query: never in the message
        assert [f.result(10) for f in rest[3:]] == ["D", "E"]
        assert batcher("again") == "AGAIN"  # the worker goes on
    assert gate.batches[1] == ["a", "boom", "c"]


def test_an_error_for_one_item_fails_that_item_only() -> None:
    gate = Gate(bad_item="b")
    with MicroBatcher("test", gate, max_size=8, max_wait_s=0.0) as batcher:
        _, a, b, c = _hold_first(batcher, gate, ["a", "b", "c"])
        assert a.result(10) == "A" and c.result(10) == "C"
        with pytest.raises(ValueError, match="bad item"):
            b.result(10)


def test_a_wrong_number_of_results_fails_the_batch() -> None:
    batcher = MicroBatcher("test", lambda xs: xs[:-1], max_size=4, max_wait_s=0.0)
    with batcher, pytest.raises(BatchFailed, match="ValueError"):
        batcher("x")


def test_close_finishes_what_was_submitted_then_refuses_more_and_stops_its_thread() -> None:
    gate = Gate()
    batcher = MicroBatcher("test", gate, max_size=2, max_wait_s=0.0)
    futures = _hold_first(batcher, gate, ["a", "b", "c"])
    batcher.close()
    assert [f.result(0) for f in futures] == ["FIRST", "A", "B", "C"]
    with pytest.raises(BatcherClosed):
        batcher.submit("late")
    assert len(batcher.threads) == 1 and not batcher.threads[0].is_alive()
    batcher.close()  # idempotent


def test_several_workers_run_batches_side_by_side_and_all_stop() -> None:
    both = threading.Barrier(2, timeout=10)  # passes only when two batches run at once

    def process(items: list[int]) -> list[int]:
        both.wait()
        return items

    batcher = MicroBatcher("test", process, max_size=1, max_wait_s=0.0, workers=2)
    futures = [batcher.submit(i) for i in range(4)]
    assert [f.result(10) for f in futures] == [0, 1, 2, 3]
    batcher.close()
    assert len(batcher.threads) == 2 and not any(t.is_alive() for t in batcher.threads)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher("test", list, max_size=0, max_wait_s=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher("test", list, max_size=1, max_wait_s=-1)
    with pytest.raises(ValueError, match="workers"):
        MicroBatcher("test", list, max_size=1, max_wait_s=0, workers=0)


@pytest.mark.parametrize("backend", ["torch", "onnx_int8"])
def test_batched_query_vectors_equal_one_query_at_a_time(backend: str, embedder: Embedder) -> None:
    model = embedder if backend == "torch" else Embedder(EmbeddingConfig(backend=backend))
    alone = np.stack([model.embed([q])[0] for q in QUERIES])
    encoder = BatchedEncoder(model, ApiConfig(batch_max_size=8, batch_max_wait_ms=200))
    try:
        with ThreadPoolExecutor(len(QUERIES)) as pool:
            batched = np.stack(list(pool.map(lambda q: encoder.embed([q])[0], QUERIES)))
        together = encoder.embed(QUERIES)
    finally:
        encoder.close()
    assert max(encoder.batch_sizes) > 1  # the queries were embedded together
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert encoder.embed([]).shape == (0, 384)


def test_token_counts_beside_batches_never_break_a_batch(embedder: Embedder) -> None:
    # Counting tokens with sentence-transformers' shared tokenizer while a batch of texts of
    # different lengths was padded failed that batch with a ValueError under load.
    encoder = BatchedEncoder(embedder, ApiConfig(batch_max_size=16, batch_max_wait_ms=5))
    texts = [q * (1 + i % 4) for i, q in enumerate(QUERIES)]
    try:
        with ThreadPoolExecutor(8) as pool:
            embeds = [pool.submit(encoder.embed, [t]) for t in texts * 4]
            counts = [pool.submit(encoder.count_tokens, texts) for _ in range(40)]
            assert all(f.result(120).shape == (1, 384) for f in embeds)
            assert all(f.result(120) == counts[0].result() for f in counts)
    finally:
        encoder.close()


def test_a_model_that_fails_fails_the_requests_of_its_batch_with_a_clear_error(tmp_path: Path) -> None:
    broken = Embedder(EmbeddingConfig(model_path=tmp_path / "no-such-model"))
    encoder = BatchedEncoder(broken, ApiConfig(batch_max_size=8, batch_max_wait_ms=50))
    try:
        with pytest.raises(BatchFailed, match=r"embed .*no-such-model: the batch of") as info:
            encoder.embed(QUERIES[:3])
        assert isinstance(info.value.__cause__, OSError | ValueError)
    finally:
        encoder.close()


@pytest.fixture(scope="module")
def reader(ingested_demo: Services, redactor: Redactor, embedder: Embedder) -> Iterator[ServingRetriever]:
    config = ingested_demo.config.model_copy(
        update={"api": ingested_demo.config.api.model_copy(update={"batch_max_wait_ms": 100})}
    )
    with build_retriever(config, embedder=embedder, redactor=redactor) as retriever:
        yield retriever


def test_audit_redaction_in_batches_equals_one_query_at_a_time(
    reader: ServingRetriever, redactor: Redactor
) -> None:
    alone = [redact_identifiers(redactor.redact(q)[0]) for q in QUERIES]  # one at a time, as before
    futures = [reader._redact(q) for q in QUERIES]  # what a search hands the audit
    assert [f.result(60) for f in futures] == alone
    assert max(reader._redactions.batch_sizes) > 1
    assert "Priya" not in alone[2] and "123-45-6789" not in alone[3]  # identifier shapes always go


def test_concurrent_searches_equal_searches_one_at_a_time(
    reader: ServingRetriever, demo_reader: Retriever
) -> None:
    alice = reader.config.principal("alice")
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: reader.search(alice, q, 5), QUERIES))
    alone = [demo_reader.search(alice, q, 5) for q in QUERIES]
    for a, b in zip(together, alone, strict=True):
        assert [h.chunk_id for h in a.results] == [h.chunk_id for h in b.results]
        assert [h.score for h in a.results] == pytest.approx([h.score for h in b.results], abs=1e-4)
        assert a.decision == b.decision


def test_a_broken_model_is_a_503_in_the_error_shape(ingested_demo: Services, redactor: Redactor) -> None:
    # The live model's name, but it cannot make vectors of the size asked: every embedding fails.
    broken = Embedder(EmbeddingConfig(dimensions=128))
    with build_retriever(ingested_demo.config, embedder=broken, redactor=redactor) as retriever:
        client = TestClient(create_app(retriever.config, retriever), raise_server_exceptions=False)
        query = "How many days of annual leave does Priya Raman get?"
        r = client.post("/v1/search", json={"query": query}, headers={"Authorization": f"Bearer {ALICE_KEY}"})
    assert r.status_code == 503
    assert r.json() == {
        "error": "model_unavailable",
        "message": "the query could not be embedded or redacted; try again later",
    }


def test_a_closed_retriever_refuses_searches(
    ingested_demo: Services, redactor: Redactor, embedder: Embedder
) -> None:
    retriever = build_retriever(ingested_demo.config, embedder=embedder, redactor=redactor)
    alice = retriever.config.principal("alice")
    assert retriever.search(alice, "annual leave", 3).results
    retriever.close()
    with pytest.raises(BatcherClosed):
        retriever.search(alice, "annual leave", 3)
    threads = [
        *retriever._redactions.threads,
        *(t for e in retriever._batched.values() for t in e._batcher.threads),
        *(t for w in retriever._audits._writers.values() for t in w.threads),
    ]
    assert len(threads) == 4  # redaction, the embedder, the audits of uk and eu
    assert not any(t.is_alive() for t in threads)


def test_queries_are_redacted_in_a_process_of_their_own_and_a_dead_one_is_replaced(
    ingested_demo: Services, redactor: Redactor, embedder: Embedder
) -> None:
    assert ingested_demo.config.api.redaction_processes == 1  # the default
    alone = [redact_identifiers(redactor.redact(q)[0]) for q in QUERIES]  # one at a time, as before
    with build_retriever(ingested_demo.config, embedder=embedder) as retriever:  # no redactor given
        assert retriever._processes is not None
        assert [f.result(120) for f in [retriever._redact(q) for q in QUERIES]] == alone
        worker = retriever._processes._pool.schedule(os.getpid).result(120)
        assert worker != os.getpid()
        os.kill(worker, signal.SIGKILL)
        alice = retriever.config.principal("alice")
        assert retriever.search(alice, "How many days of annual leave do I get?", 3).results
        assert retriever._processes._pool.schedule(os.getpid).result(120) != worker
