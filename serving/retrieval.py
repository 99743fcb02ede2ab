"""The retriever a serving process uses: reader-role indexes, the embedding model, query redaction.

Concurrent requests share the models through micro-batches (:mod:`serving.batching`, sized by
``api.batch_max_size`` and ``api.batch_max_wait_ms``): their queries are embedded together, on one
thread per model, and redacted for the audit together while the search runs, in
``api.redaction_processes`` processes of their own (the spaCy pass holds the GIL for most of a
request's time); their audit rows are committed together, one transaction per region and batch
(``api.audit_batch_max_size``). A request is answered only once its own rows are committed, and
fails if they are not.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from groundwork.enums import Role
from groundwork.errors import IndexError_
from groundwork.offline import configure_offline
from groundwork.settings import ApiConfig, GroundworkConfig, RedactionConfig
from indexes.audit import AuditRecord, write_audits
from indexes.catalog import IndexCatalog
from indexes.results import PassageScorer, QueryEncoder
from indexes.search import Retriever
from pipelines.embedding import Embedder
from pipelines.redact import Redactor, redact_identifiers
from pipelines.reranking import cached_reranker
from serving.batching import MicroBatcher

logger = logging.getLogger(__name__)


def audit_redactions(redactor: Redactor, texts: list[str]) -> list[str]:
    """Queries as the audit records them: redacted, and with no identifier-shaped value at all
    (even one a detector deems a test value)."""
    return [redact_identifiers(text) for text, _ in redactor.redact_many(texts)]


#: The redactor of a redaction process (made by its initializer).
_process_redactor: Redactor | None = None


def _start_redaction_process(config: RedactionConfig) -> None:
    """Runs in each redaction process before its first batch: the models load once, there."""
    global _process_redactor  # one per process, by design
    configure_offline()
    _process_redactor = Redactor(config)
    _process_redactor.redact("warm up")


def _redact_in_process(texts: list[str]) -> list[str]:
    assert _process_redactor is not None, "the pool's initializer makes the redactor"
    return audit_redactions(_process_redactor, texts)


class RedactionProcesses:
    """Processes that redact batches of queries for the audit, each with its own models and GIL.

    A process that dies while redacting fails the batch it held (its requests get a 503) and is
    replaced. One that dies idle can leave the pool broken: a new pool replaces it and the batch runs
    there. Query text crosses to the processes through a pipe, never disk.
    """

    def __init__(self, config: RedactionConfig, processes: int) -> None:
        self._config = config
        self._processes = processes
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> Any:
        from pebble import ProcessPool

        return ProcessPool(
            max_workers=self._processes,
            initializer=_start_redaction_process,
            initargs=(self._config,),
            context=multiprocessing.get_context("forkserver"),
        )

    def __call__(self, texts: list[str]) -> list[str]:
        """The audit redactions of ``texts``, made in one of the processes."""
        for attempt in (1, 2):
            pool = self._pool
            try:
                return list(pool.schedule(_redact_in_process, args=(texts,)).result())
            except (BrokenProcessPool, RuntimeError):  # pebble's pool is broken or no longer active
                if pool.active or attempt == 2:
                    raise
                with self._lock:
                    if self._pool is pool:
                        logger.error("the redaction processes' pool broke; starting a new one")
                        pool.stop()
                        self._pool = self._start()
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the processes."""
        with self._lock:
            self._pool.stop()
            self._pool.join()


class BatchedEncoder:
    """A query encoder whose texts are embedded in micro-batches with other requests' texts.

    The vectors are those of the wrapped encoder for the same texts (a batch is one call of its
    ``embed``, which for the int8 backend still runs each text alone). Token counts are not batched
    and do not wait for a batch: the encoder counts with a tokenizer of its own (see
    :meth:`pipelines.embedding.Embedder.count_tokens`).
    """

    def __init__(self, encoder: QueryEncoder, api: ApiConfig) -> None:
        self._encoder = encoder
        self._model_lock = threading.Lock()
        self._batcher: MicroBatcher[str, npt.NDArray[np.float32]] = MicroBatcher(
            f"embed {encoder.model_name}",
            self._embed_batch,
            max_size=api.batch_max_size,
            max_wait_s=api.batch_max_wait_ms / 1000,
        )

    @property
    def model_name(self) -> str:
        """The wrapped encoder's model name."""
        return self._encoder.model_name

    @property
    def batch_sizes(self) -> list[int]:
        """The sizes of the latest batches (for tests and benchmarks)."""
        return self._batcher.batch_sizes

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """One unit-length vector per text, each embedded in a batch with other requests' texts."""
        if not texts:
            return self._encoder.embed([])
        futures = [self._batcher.submit(text) for text in texts]
        return np.stack([f.result() for f in futures])

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Model tokens per text (not batched: the tokenizer is cheap)."""
        return self._encoder.count_tokens(texts)

    def _embed_batch(self, texts: list[str]) -> list[npt.NDArray[np.float32]]:
        with self._model_lock:
            return list(self._encoder.embed(texts))

    def close(self) -> None:
        """Embed what was submitted, then stop the batch thread."""
        self._batcher.close()


class AuditBatches:
    """The audit sink of a serving process: per region, one thread commits queued rows together.

    A search's rows go to each region's writer at once; the call returns when all are committed
    and raises the first failure otherwise (:class:`indexes.audit.AuditWriteError`, or
    ``IndexUnavailable``). A region's writer, and its connection pool, start on first use.
    """

    def __init__(self, catalog: IndexCatalog, api: ApiConfig) -> None:
        self._catalog = catalog
        self._api = api
        self._writers: dict[str, MicroBatcher[tuple[AuditRecord, list[uuid.UUID]], None]] = {}
        self._lock = threading.Lock()

    def __call__(self, record: AuditRecord, chunk_ids: dict[str, list[uuid.UUID]]) -> None:
        """Record one search in every region searched; returns once every row is committed."""
        futures = [self._writer(region).submit((record, ids)) for region, ids in chunk_ids.items()]
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise errors[0]

    def _writer(self, region: str) -> MicroBatcher[tuple[AuditRecord, list[uuid.UUID]], None]:
        with self._lock:
            if region not in self._writers:
                self._writers[region] = MicroBatcher(
                    f"audit {region}",
                    lambda entries: self._commit(region, entries),
                    max_size=self._api.audit_batch_max_size,
                    max_wait_s=0.0,  # rows queue up while a commit runs: no need to wait for more
                )
            return self._writers[region]

    def _commit(
        self, region: str, entries: list[tuple[AuditRecord, list[uuid.UUID]]]
    ) -> Sequence[IndexError_ | None]:
        try:
            index = self._catalog.records(region)
        except IndexError_ as exc:
            return [exc] * len(entries)
        return write_audits(index, entries)

    def close(self) -> None:
        """Commit the rows already submitted, then stop every writer."""
        with self._lock:
            writers = list(self._writers.values())
        for writer in writers:
            writer.close()


class ServingRetriever(Retriever):
    """The API's retriever: batched query embedding, redaction beside the search, batched audit, and
    a reranker (``retrieval.reranker_weights``, one per process) when ``retrieval.rerank_depth`` is not 0.

    Queries are redacted by ``redactor`` in this process when one is given, else in
    ``api.redaction_processes`` processes (in this process when that is 0).
    """

    def __init__(
        self,
        config: GroundworkConfig,
        catalog: IndexCatalog,
        *,
        embedder: Embedder,
        redactor: Redactor | None = None,
        reranker: PassageScorer | None = None,
    ) -> None:
        api = config.api
        self._api = api
        self._lock = threading.Lock()
        self._batched: dict[str, BatchedEncoder] = {}
        self._processes: RedactionProcesses | None = None
        if redactor is None and api.redaction_processes > 0:
            self._processes = RedactionProcesses(config.redaction, api.redaction_processes)
            redact = self._processes.__call__
        else:
            redact = partial(audit_redactions, redactor or Redactor(config.redaction))
        self._redactions: MicroBatcher[str, str] = MicroBatcher(
            "redact queries",
            redact,
            max_size=api.batch_max_size,
            max_wait_s=api.batch_max_wait_ms / 1000,
            workers=api.redaction_processes if self._processes else 1,
        )
        self._audits = AuditBatches(catalog, api)

        def encoder_for(model: str, dimensions: int) -> QueryEncoder:
            # The model, its size and its backend as the index version recorded them.
            return self._batch(Embedder(config.embedding.for_recorded_model(model, dimensions)))

        super().__init__(
            catalog,
            encoder=self._batch(embedder),
            encoder_for=encoder_for,
            redact_query=self._redact,
            record_audit=self._audits,
            reranker=reranker or _configured_reranker(config),
        )

    def _batch(self, encoder: Embedder) -> BatchedEncoder:
        with self._lock:
            if encoder.model_name not in self._batched:
                self._batched[encoder.model_name] = BatchedEncoder(encoder, self._api)
            return self._batched[encoder.model_name]

    def _redact(self, query: str) -> Future[str]:
        return self._redactions.submit(query)

    def close(self) -> None:
        """Finish the work already submitted, stop the batch threads, then close the pools."""
        self._redactions.close()
        with self._lock:
            encoders = list(self._batched.values())
        for encoder in encoders:
            encoder.close()
        self._audits.close()
        if self._processes is not None:
            self._processes.close()
        super().close()


def _configured_reranker(config: GroundworkConfig) -> PassageScorer | None:
    if not config.retrieval.rerank_depth:
        return None
    settings = config.retrieval
    return cached_reranker(settings.rerank_backend, config.embedding.cache_dir, settings.reranker_weights)


def quiet_idle_threads() -> None:
    """Let idle OpenMP threads (torch's) sleep rather than spin: ``OMP_WAIT_POLICY=PASSIVE``, unless
    the operator set it. A serving process runs small batches with gaps between them, where spinning
    threads burn the CPU that requests need. Must run before torch is imported (OpenMP reads it then)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def build_retriever(
    config: GroundworkConfig,
    *,
    embedder: Embedder | None = None,
    redactor: Redactor | None = None,
    verify: bool = False,
) -> ServingRetriever:
    """A retriever over ``config``'s indexes as the reader role.

    With ``verify`` every region is checked first (:meth:`IndexCatalog.verify_reader`): a server
    refuses to start on a missing or outdated schema, or a role that could bypass row-level security.
    Models already loaded (a test session, a benchmark) may be passed in; a redactor passed in
    redacts in this process, else ``api.redaction_processes`` decides.
    """
    catalog = IndexCatalog(config, role=Role.READER)
    if verify:
        try:
            catalog.verify_reader()
        except Exception:
            catalog.close()
            raise
    return ServingRetriever(
        config, catalog, embedder=embedder or Embedder(config.embedding), redactor=redactor
    )
