"""The pipeline stages over batches of documents: plain functions, testable without Dagster.

Each stage takes the previous stage's :class:`Batch`, passes its failures on, and turns a
:class:`DocumentError` (or an unexpected error) in one document into a recorded failure so the rest
of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from connectors import Connector
from groundwork.config import GroundworkConfig
from groundwork.errors import ConnectorError, DocumentError
from indexes.store import RegionIndex
from pipelines.chunking import chunk_document
from pipelines.embedding import Embedder
from pipelines.partition import check_size, partition_document
from pipelines.policy import make_task
from pipelines.records import (
    Batch,
    ChangeKind,
    ChunkedDocument,
    DocumentTask,
    EmbeddedDocument,
    Failure,
    ParsedDocument,
    ParsedElement,
    RedactedDocument,
    Stage,
)
from pipelines.redact import Redactor

if TYPE_CHECKING:
    from groundwork.services import Services

logger = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")

_PROGRESS_EVERY_S = 5.0


@dataclass(slots=True)
class Plan:
    """What a run will do: the tasks to process and per-source counts of every change kind."""

    tasks: list[DocumentTask] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)


def plan_run(
    config: GroundworkConfig,
    connectors: Mapping[str, Connector],
    indexes: Mapping[str, RegionIndex],
) -> Plan:
    """List every source and keep the documents that are new, changed or newly re-tagged.

    A document whose stored version and access tags match is unchanged; one that failed before at
    the same version is not retried until its content changes.
    """
    plan = Plan()
    for source in config.sources:
        counts: Counter[str] = Counter()
        plan.counts[source.name] = counts
        index = indexes[source.residency]
        stored = index.document_states(source.name)
        failed = index.failed_versions(source.name)
        try:
            refs = list(connectors[source.name].list())
        except ConnectorError as exc:
            plan.source_errors[source.name] = str(exc)
            logger.error("source %s could not be listed: %s", source.name, exc)
            continue
        for ref in refs:
            task = make_task(source, ref, "new")
            state = stored.get(task.document_id)
            if (
                state is not None
                and state.version == ref.version
                and state.access_digest == task.governance.digest
            ):
                counts["unchanged"] += 1
            elif failed.get(ref.source_id) == ref.version:
                counts["failed_before"] += 1
            else:
                change: ChangeKind = "new" if state is None else "changed"
                counts[change] += 1
                plan.tasks.append(make_task(source, ref, change))
        logger.info("source %s: %s", source.name, dict(counts))
    return plan


def _each(
    stage: Stage,
    items: Iterable[A],
    task_of: Callable[[A], DocumentTask],
    work: Callable[[A], B],
    previous: Batch[object] | None = None,
) -> Batch[B]:
    """Run ``work`` on every item, turning a per-document error into a recorded failure."""
    out: Batch[B] = Batch(failures=list(previous.failures) if previous else [])
    items = list(items)
    last_log = time.monotonic()
    for i, item in enumerate(items, 1):
        task = task_of(item)
        try:
            out.items.append(work(item))
        except DocumentError as exc:
            out.failures.append(Failure(task, stage, exc.reason, str(exc)))
            logger.warning("%s failed at %s: %s", task.ref.source_id, stage, exc.reason)
        except Exception as exc:  # one bad document must never stop the batch
            out.failures.append(Failure(task, stage, "internal_error", f"unexpected {type(exc).__name__}"))
            # The exception's message may quote document content: the class name goes to the log,
            # the traceback only at debug level.
            logger.error("%s failed at %s: unexpected %s", task.ref.source_id, stage, type(exc).__name__)
            logger.debug("traceback", exc_info=True)
        if time.monotonic() - last_log > _PROGRESS_EVERY_S:
            logger.info("%s: %d/%d documents", stage, i, len(items))
            last_log = time.monotonic()
    return out


def partition_all(
    tasks: list[DocumentTask], connectors: Mapping[str, Connector], config: GroundworkConfig
) -> Batch[ParsedDocument]:
    """Fetch and partition every task's document."""

    def work(task: DocumentTask) -> ParsedDocument:
        check_size(task.ref, config.partitioning.max_file_bytes)
        try:
            data = connectors[task.ref.source].fetch(task.ref)
        except ConnectorError as exc:
            raise DocumentError(str(exc), stage="fetch", reason="fetch_error") from None
        elements, content_type = partition_document(
            task.ref, data, pdf_strategy=config.partitioning.pdf_strategy
        )
        return ParsedDocument(task, elements, content_type)

    return _each("partition", tasks, lambda t: t, work)


def redact_all(batch: Batch[ParsedDocument], redactor: Redactor) -> Batch[RedactedDocument]:
    """Redact PII from every element of every document, the batch together (names found in one
    document are redacted in all); if that fails, document by document so one bad input is isolated."""

    def build(doc: ParsedDocument, result: tuple[list[ParsedElement], Counter[str]]) -> RedactedDocument:
        elements, counts = result
        return RedactedDocument(doc.task, elements, doc.content_type, dict(counts))

    try:
        results = redactor.redact_documents([d.elements for d in batch.items])
    except Exception as exc:
        logger.error("batch redaction failed (%s); redacting document by document", type(exc).__name__)
        return _each(
            "redact",
            batch.items,
            lambda d: d.task,
            lambda d: build(d, redactor.redact_documents([d.elements])[0]),
            batch,  # type: ignore[arg-type]
        )
    out: Batch[RedactedDocument] = Batch(failures=list(batch.failures))
    out.items = [build(d, r) for d, r in zip(batch.items, results, strict=True)]
    return out


def chunk_all(batch: Batch[RedactedDocument], config: GroundworkConfig) -> Batch[ChunkedDocument]:
    """Chunk every redacted document by title/section."""

    def work(doc: RedactedDocument) -> ChunkedDocument:
        chunked = chunk_document(doc, config.chunking)
        if not chunked.chunks:
            raise DocumentError("no text left to index after redaction", stage="chunk", reason="no_text")
        return chunked

    return _each("chunk", batch.items, lambda d: d.task, work, batch)  # type: ignore[arg-type]


def embed_all(batch: Batch[ChunkedDocument], embedder: Embedder) -> Batch[EmbeddedDocument]:
    """Embed every chunk; all documents' chunks go through the model together for throughput."""
    texts = [c.text for doc in batch.items for c in doc.chunks]
    try:
        vectors = embedder.embed(texts)
    except Exception as exc:
        logger.error("batch embedding failed (%s); embedding document by document", type(exc).__name__)
        return _each(
            "embed",
            batch.items,
            lambda d: d.document.task,
            lambda d: EmbeddedDocument(d, embedder.embed([c.text for c in d.chunks])),
            batch,  # type: ignore[arg-type]
        )
    out: Batch[EmbeddedDocument] = Batch(failures=list(batch.failures))
    start = 0
    for doc in batch.items:
        end = start + len(doc.chunks)
        out.items.append(EmbeddedDocument(doc, vectors[start:end]))
        start = end
    return out


@dataclass(slots=True)
class IndexReport:
    """What one region's index stage wrote."""

    region: str
    documents_written: int = 0
    chunks_written: int = 0
    failures: list[Failure] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)


def index_region(batch: Batch[EmbeddedDocument], index: RegionIndex) -> IndexReport:
    """Write this region's documents to its index and record this region's failures."""
    report = IndexReport(region=index.region)
    mine = [d for d in batch.items if d.chunked.document.task.governance.residency == index.region]

    def work(doc: EmbeddedDocument) -> EmbeddedDocument:
        report.chunks_written += index.write_document(doc)
        report.documents_written += 1
        report.redactions.update(doc.chunked.document.redactions)
        return doc

    written = _each("index", mine, lambda d: d.chunked.document.task, work)
    failures = [f for f in batch.failures if f.task.governance.residency == index.region]
    failures += written.failures
    for failure in failures:
        index.record_failure(failure)
    report.failures = failures
    return report


def run_all(services: Services) -> tuple[Plan, list[IndexReport]]:
    """Every stage in order without Dagster (benchmarks and tests); the Dagster job does the same."""
    config = services.config
    indexes = services.indexes()
    plan = plan_run(config, services.connectors, indexes)
    parsed = partition_all(plan.tasks, services.connectors, config)
    embedded = embed_all(chunk_all(redact_all(parsed, services.redactor), config), services.embedder)
    return plan, [index_region(embedded, indexes[r]) for r in config.regions]
