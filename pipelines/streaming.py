"""Streaming ingest: a plan's documents flow through every stage in bounded micro-batches.

Documents are fetched in this process and partitioned by worker processes (see
:mod:`pipelines.partition_pool`) while this process redacts, chunks, embeds and writes the batch
before. Each micro-batch's documents (one transaction each) and failures are committed as it
completes, so memory is bounded by the batch, not the corpus, and a run that stops, however it
stops, leaves everything it finished in the index: the next run plans only what is left.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from connectors import Connector
from groundwork.enums import FailureReason, Stage
from groundwork.errors import ConfigError, ConnectorError, DocumentError
from groundwork.faults import fault_point
from groundwork.ids import content_digest
from groundwork.records import Batch, ChunkedDocument, DocumentTask, Failure, ParsedDocument
from groundwork.settings import GroundworkConfig
from pipelines.batches import chunk_all, embed_all, redact_all
from pipelines.embedding import Embedder
from pipelines.partition import check_size
from pipelines.partition_pool import PartitionPool, map_large_allocations, outcome, release_free_memory
from pipelines.planning import Plan
from pipelines.ports import RegionStore
from pipelines.redact import Redactor
from pipelines.tracing import NO_TRACER, BatchTrace, timed
from pipelines.writing import IndexReport, Reports, apply_changes, purge_stale, record_failures, write_batch

logger = logging.getLogger(__name__)

#: At most this many fetched bytes wait for a parser at once (beside the batch being processed).
_MAX_PENDING_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class StreamReport:
    """What a streaming run did: per-region index reports (what each index got, redactions by type
    included) and totals across the stages; ``failed`` counts failures before the index stage."""

    regions: Reports
    batches: int = 0
    documents: int = 0
    failed: int = 0
    chunks: int = 0
    embeddings: int = 0
    seconds: float = 0.0

    @property
    def failures(self) -> list[Failure]:
        """Every failure recorded by the run, region by region."""
        return [f for r in self.regions.values() for f in r.failures]


@dataclass(frozen=True, slots=True)
class Parts:
    """What the stream works with: the config, connectors, models, parser pool and region indexes."""

    config: GroundworkConfig
    connectors: Mapping[str, Connector]
    redactor: Redactor
    embedder: Embedder
    pool: PartitionPool
    indexes: Mapping[str, RegionStore]
    #: Spans per batch and stage (counts only); a no-op unless telemetry is on.
    tracer: Tracer = NO_TRACER


def ingest_plan(plan: Plan, parts: Parts, regions: Iterable[str]) -> StreamReport:
    """Carry out ``plan`` in ``regions``: policy refusals, the documents batch by batch, then re-tags,
    moves and renames, then purges. Documents of other regions are left for a run that selects them."""
    began = time.monotonic()
    map_large_allocations()  # the embedding model's activations go back to the system after each batch
    report = StreamReport(regions={r: IndexReport(region=r) for r in regions})
    record_failures(plan.failures, parts.indexes, report.regions)
    fault_point("plan_failures_recorded")
    tasks = [t for t in plan.tasks if t.governance.residency in report.regions]
    forgotten = set().union(*(index.tombstones.digests() for index in parts.indexes.values()))

    def embed_and_write(
        parsed: Batch[ParsedDocument], chunked: Batch[ChunkedDocument], traced: BatchTrace
    ) -> None:
        embedded = traced.run("embed", embed_all, chunked, parts.embedder)
        traced.run("write", write_batch, embedded, parts.indexes, report.regions, run_id=plan.run_id)
        traced.end()
        # The model's activations are freed by now: without this the C heap would keep their pages.
        release_free_memory()
        fault_point("batch_committed")
        report.batches += 1
        report.documents += len(parsed.items) + len(parsed.failures)
        report.failed += len(embedded.failures)
        report.chunks += sum(len(d.chunked.chunks) for d in embedded.items)
        report.embeddings += sum(len(d.vectors) for d in embedded.items)
        rate = report.documents / max(time.monotonic() - began, 1e-9)
        logger.info(
            "batch %d: %d/%d documents done (%d failed), %d chunks, %.1f documents/s",
            report.batches,
            report.documents,
            len(tasks),
            report.failed,
            report.chunks,
            rate,
        )

    # The model embeds (and the index writes) one batch while this thread redacts the next: both
    # stages are CPU-bound but the model's kernels run outside the GIL. One batch at most is in
    # flight, so batches are written in order and memory holds two batches.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed") as tail:
        in_flight: Future[None] | None = None
        for number, (started, parsed) in enumerate(timed(parsed_batches(tasks, parts, forgotten)), 1):
            traced = BatchTrace(parts.tracer, number, parsed, started)
            redacted = traced.run("redact", redact_all, parsed, parts.redactor)
            chunked = traced.run("chunk", chunk_all, redacted, parts.config)
            if in_flight is not None:
                in_flight.result()
            in_flight = tail.submit(embed_and_write, parsed, chunked, traced)
        if in_flight is not None:
            in_flight.result()
    apply_changes(plan, parts.indexes, report.regions)
    purge_stale(plan, parts.indexes, report.regions)
    report.seconds = time.monotonic() - began
    return report


def parsed_batches(
    tasks: list[DocumentTask], parts: Parts, forgotten: Collection[str] = frozenset()
) -> Iterator[Batch[ParsedDocument]]:
    """The tasks fetched and partitioned, in micro-batches of ``ingest.batch_documents`` documents or
    ``ingest.batch_characters`` characters; fetch and partition failures travel in their batch.

    Up to a batch of documents is handed to the parsers ahead of the one being consumed, so the
    parsers work while the caller redacts and embeds. A document whose fetched bytes have a digest
    in ``forgotten`` (content forgotten on request, listed under another identity) fails at fetch.
    """
    limits = parts.config.ingest
    timeout = parts.config.partitioning.timeout_seconds
    pending: deque[tuple[DocumentTask, Future | DocumentError, int]] = deque()
    waiting_bytes = 0
    queue = iter(tasks)

    def feed() -> None:
        nonlocal waiting_bytes
        while len(pending) < limits.batch_documents and (not pending or waiting_bytes < _MAX_PENDING_BYTES):
            task = next(queue, None)
            if task is None:
                return
            started, size = _start(task, parts, forgotten)
            pending.append((task, started, size))
            waiting_bytes += size

    batch: Batch[ParsedDocument] = Batch()
    chars = 0
    try:
        feed()
        while pending:
            task, started, size = pending.popleft()
            waiting_bytes -= size
            _collect(batch, task, started, timeout)
            chars = sum(len(el.text) for d in batch.items for el in d.elements)
            feed()
            if (
                len(batch.items) + len(batch.failures) >= limits.batch_documents
                or chars >= limits.batch_characters
            ):
                yield batch
                batch = Batch()
        if batch.items or batch.failures:
            yield batch
    finally:
        # A run that stops early (the database went away) leaves no parsing behind it.
        for _, started, _ in pending:
            if isinstance(started, Future):
                started.cancel()


def _collect(
    batch: Batch[ParsedDocument], task: DocumentTask, started: Future | DocumentError, timeout: float
) -> None:
    """Add a document's parsed elements, or its failure, to ``batch``."""
    try:
        if isinstance(started, DocumentError):
            raise started
        elements, content_type = outcome(started, timeout)
        batch.items.append(ParsedDocument(task, elements, content_type))
    except DocumentError as exc:
        batch.failures.append(Failure(task, exc.stage, exc.reason, str(exc)))
        logger.warning("%s failed at %s: %s", task.log_name, exc.stage, exc.reason)
    except ConfigError:
        raise
    except Exception as exc:  # one bad document must never stop the run
        batch.failures.append(
            Failure(task, Stage.PARTITION, FailureReason.INTERNAL_ERROR, f"unexpected {type(exc).__name__}")
        )
        logger.error("%s failed at partition: unexpected %s", task.log_name, type(exc).__name__)


def _start(
    task: DocumentTask, parts: Parts, forgotten: Collection[str]
) -> tuple[Future | DocumentError, int]:
    """Fetch a document and hand it to a parser; a document that cannot be fetched gets its error."""
    config = parts.config.partitioning
    try:
        check_size(task.ref, config.max_file_bytes)
        data = parts.connectors[task.ref.source].fetch(task.ref)
        if forgotten and content_digest(data) in forgotten:
            # Says neither which document was forgotten nor anything of the content.
            raise DocumentError(
                "the content equals a document forgotten on request",
                stage=Stage.FETCH,
                reason=FailureReason.FORGOTTEN_CONTENT,
            )
    except DocumentError as exc:
        return exc, 0
    except ConnectorError as exc:
        return DocumentError(str(exc), stage=Stage.FETCH, reason=FailureReason.FETCH_ERROR), 0
    except ConfigError:
        raise
    except Exception as exc:  # a connector's own bug fails the document, not the run
        logger.error("%s failed at fetch: unexpected %s", task.log_name, type(exc).__name__)
        return DocumentError(
            f"unexpected {type(exc).__name__}", stage=Stage.FETCH, reason=FailureReason.INTERNAL_ERROR
        ), 0
    future = parts.pool.submit(
        task.ref, data, pdf_strategy=config.pdf_strategy, timeout_s=config.timeout_seconds
    )
    return future, len(data)
