"""The pipeline stages over batches of documents: plain functions, testable without Dagster.

Each stage takes the previous stage's :class:`Batch`, passes its failures on, and turns a
:class:`DocumentError` (or an unexpected error) in one document into a recorded failure so the rest
of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import psycopg
from psycopg_pool import PoolTimeout

from connectors import Connector
from groundwork.config import GroundworkConfig
from groundwork.errors import ConnectorError, DocumentError, IndexError_
from indexes.store import RegionIndex, StoredState
from pipelines.chunking import chunk_document
from pipelines.embedding import Embedder
from pipelines.ids import document_id, shard_of
from pipelines.partition import check_size, partition_document
from pipelines.policy import PolicyError, make_task, refused_task
from pipelines.records import (
    PERMANENT_REASONS,
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
    """What a run will do: the least work that makes each index exactly true to its sources.

    ``tasks`` are (re)processed in full. ``retags`` only get new access tags; ``moves`` are copied
    to their new region and ``renames`` to their new identity, with their embeddings, never
    re-embedded. ``purges`` are (document id, region) copies to delete: documents gone from their
    source, refused by the policy, or left in a region the policy no longer names. ``failures`` are
    documents the policy refused; ``stale_failures`` (region, source, source id) are failure records
    of files that no longer exist. ``expired`` are (document id, region) copies past their source's
    retention period, erased with a tombstone.
    """

    tasks: list[DocumentTask] = field(default_factory=list)
    retags: list[DocumentTask] = field(default_factory=list)
    moves: list[tuple[DocumentTask, str]] = field(default_factory=list)
    renames: list[tuple[DocumentTask, str, str]] = field(default_factory=list)
    purges: list[tuple[str, str]] = field(default_factory=list)
    expired: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stale_failures: list[tuple[str, str, str]] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)


def plan_run(
    config: GroundworkConfig,
    connectors: Mapping[str, Connector],
    indexes: Mapping[str, RegionIndex],
    *,
    sources: Collection[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> Plan:
    """List every source and decide, per document, the least work that makes the index true.

    A document whose stored version and tags match is unchanged; one that failed before for a
    content reason at the same version is not retried until its content changes; one whose content
    is unchanged but whose policy changed is re-tagged (same region) or moved (new region); one gone
    from the listing is deleted, unless its content reappears under a new path (a rename), which is
    moved to its new identity. A source that cannot be listed is left as it is.

    ``sources`` limits the plan to those sources, and ``shard`` (i, n) to the documents in shard i
    of n (see :func:`~pipelines.ids.shard_of`), so shards can be planned and processed in parallel.
    A rename across two shards is seen as a deletion in one and a new document in the other.
    """

    def mine(doc_id: str) -> bool:
        return shard is None or shard_of(doc_id, shard[1]) == shard[0]

    plan = Plan()
    forgotten = set().union(*(index.erased_ids("forget") for index in indexes.values()))
    now = datetime.now(UTC)
    for source in config.sources:
        if sources is not None and source.name not in sources:
            continue
        cutoff = now - timedelta(days=source.retention_days) if source.retention_days else None
        counts: Counter[str] = Counter()
        plan.counts[source.name] = counts
        stored: dict[str, dict[str, StoredState]] = {}
        failed: dict[str, str] = {}  # source id -> version that failed for a content reason
        failure_ids: dict[str, set[str]] = {}
        for region, index in indexes.items():
            for doc_id, state in index.document_states(source.name).items():
                if mine(doc_id):
                    stored.setdefault(doc_id, {})[region] = state
            recorded = {
                i: v for i, v in index.failures_of(source.name).items() if mine(document_id(source.name, i))
            }
            failed.update({i: v for i, (v, reason) in recorded.items() if reason in PERMANENT_REASONS})
            failure_ids[region] = set(recorded)
        try:
            refs = [r for r in connectors[source.name].list() if mine(document_id(r.source, r.source_id))]
        except ConnectorError as exc:
            plan.source_errors[source.name] = str(exc)
            logger.error("source %s could not be listed: %s", source.name, exc)
            continue
        listed: set[str] = set()
        new_tasks: list[DocumentTask] = []
        for ref in refs:
            doc_id = document_id(ref.source, ref.source_id)
            listed.add(doc_id)
            if doc_id in forgotten:  # erased on request: never ingested again
                counts["forgotten"] += 1
                plan.purges.extend((doc_id, r) for r in sorted(stored.get(doc_id, {})))
                continue
            if cutoff is not None and ref.modified_at is not None and ref.modified_at < cutoff:
                counts["expired"] += 1
                plan.expired.extend((doc_id, r) for r in sorted(stored.get(doc_id, {})))
                continue
            try:
                task = make_task(source, ref, "new")
            except PolicyError as exc:
                counts["refused"] += 1
                plan.failures.append(Failure(refused_task(ref, exc), "policy", exc.reason, str(exc)))
                # Fail closed: a document the policy no longer admits leaves every index.
                plan.purges.extend((doc_id, r) for r in sorted(stored.get(doc_id, {})))
                continue
            kind = _classify(plan, task, stored.get(doc_id, {}), failed.get(ref.source_id))
            if kind == "new":
                new_tasks.append(task)
            counts[kind] += 1
        gone = {d: copies for d, copies in stored.items() if d not in listed}
        _match_renames(plan, new_tasks, gone, counts)
        for doc_id, copies in gone.items():
            counts["deleted"] += 1
            plan.purges.extend((doc_id, r) for r in sorted(copies))
        listed_ids = {ref.source_id for ref in refs}
        for region, ids in failure_ids.items():
            plan.stale_failures.extend((region, source.name, i) for i in sorted(ids - listed_ids))
        logger.info("source %s: %s", source.name, dict(counts))
    return plan


def _match_renames(
    plan: Plan, new_tasks: list[DocumentTask], gone: dict[str, dict[str, StoredState]], counts: Counter[str]
) -> None:
    """Turn a new document whose content equals a vanished one's into a rename (no re-embedding)."""
    by_version: dict[str, list[tuple[str, str]]] = {}
    for doc_id, copies in sorted(gone.items()):
        for region, state in sorted(copies.items()):
            if not state.stale:  # a copy from the previous index version is never reused
                by_version.setdefault(state.version, []).append((doc_id, region))
    for task in new_tasks:
        candidates = by_version.get(task.ref.version)
        if not candidates:
            continue
        old_id, region = candidates.pop(0)
        plan.tasks.remove(task)
        plan.renames.append((replace(task, change="rename"), old_id, region))
        counts["new"] -= 1
        counts["rename"] += 1


def _classify(
    plan: Plan, task: DocumentTask, copies: dict[str, StoredState], failed_version: str | None
) -> str:
    """Add the work one document needs to ``plan``; returns its change kind."""
    region = task.governance.residency
    version = task.ref.version
    here = copies.get(region)
    elsewhere = {r: s for r, s in copies.items() if r != region}
    plan.purges.extend((task.document_id, r) for r in sorted(elsewhere))
    if here is not None and here.stale:
        # Only in the live version while a new one (other model or chunking) is built: process it
        # again for the new version, and apply an access change to the live copy now.
        if here.access_digest != task.governance.digest:
            plan.retags.append(replace(task, change="retag"))
        plan.tasks.append(replace(task, change="rebuild"))
        return "rebuild"
    if here is not None and here.version == version:
        if here.access_digest == task.governance.digest:
            return "unchanged"
        plan.retags.append(replace(task, change="retag"))
        return "retag"
    same_content = sorted(r for r, s in elsewhere.items() if s.version == version and not s.stale)
    if here is None and same_content:
        plan.moves.append((replace(task, change="move"), same_content[0]))
        return "move"
    if failed_version == version:
        return "failed_before"
    change: ChangeKind = "new" if not copies else "changed"
    plan.tasks.append(replace(task, change=change))
    return change


#: Errors that a retry may cure: a lost connection, a pool that found no connection in time.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, PoolTimeout)
RETRY_DELAYS_S = (0.5, 1.0, 2.0)


def with_retries(work: Callable[[A], B], item: A, delays: Sequence[float] = RETRY_DELAYS_S) -> B:
    """``work(item)``, retried with backoff on a transient database error."""
    for delay in delays:
        try:
            return work(item)
        except TRANSIENT_ERRORS as exc:
            logger.warning("transient %s; retrying in %.1fs", type(exc).__name__, delay)
            time.sleep(delay)
    return work(item)


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
            out.items.append(with_retries(work, item))
        except TRANSIENT_ERRORS as exc:
            # Still failing after retries: the database is down. That is the run's failure, not the
            # document's; the next run picks up where this one stopped.
            raise IndexError_(f"index database unavailable during {stage}: {type(exc).__name__}") from exc
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
    plan: Plan, connectors: Mapping[str, Connector], config: GroundworkConfig
) -> Batch[ParsedDocument]:
    """Fetch and partition every task's document; the plan's policy failures are carried along."""

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

    return _each("partition", plan.tasks, lambda t: t, work, Batch(failures=list(plan.failures)))


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
    """What one region's index stage did."""

    region: str
    documents_written: int = 0
    chunks_written: int = 0
    retagged: int = 0
    moved_in: int = 0
    renamed_in: int = 0
    purged: int = 0
    failures: list[Failure] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)
    failed_moves: set[str] = field(default_factory=set)


def index_region(
    batch: Batch[EmbeddedDocument], plan: Plan, region: str, indexes: Mapping[str, RegionIndex]
) -> IndexReport:
    """Write, re-tag and move in this region's documents, and record this region's failures."""
    index = indexes[region]
    report = IndexReport(region=region)
    mine = [d for d in batch.items if d.chunked.document.task.governance.residency == region]

    def write(doc: EmbeddedDocument) -> EmbeddedDocument:
        report.chunks_written += index.write_document(doc)
        report.documents_written += 1
        report.redactions.update(doc.chunked.document.redactions)
        return doc

    def retag(task: DocumentTask) -> DocumentTask:
        index.retag(task.document_id, task.governance)
        report.retagged += 1
        return task

    def move(item: tuple[DocumentTask, str]) -> None:
        task, origin = item
        exported = indexes[origin].export_document(task.document_id)
        if exported is None:
            raise DocumentError(
                "the stored copy to move disappeared", stage="index", reason="move_source_missing"
            )
        index.import_document(*exported, task.governance)
        report.moved_in += 1

    failures = [f for f in batch.failures if f.task.governance.residency == region]
    failures += _each("index", mine, lambda d: d.chunked.document.task, write).failures
    failures += _each(
        "index", [t for t in plan.retags if t.governance.residency == region], lambda t: t, retag
    ).failures

    def rename(item: tuple[DocumentTask, str, str]) -> None:
        task, old_id, origin = item
        exported = indexes[origin].export_document(old_id)
        if exported is None:
            raise DocumentError(
                "the stored copy to rename disappeared", stage="index", reason="move_source_missing"
            )
        index.import_document(*exported, task.governance, task=task)
        report.renamed_in += 1

    moves = [m for m in plan.moves if m[0].governance.residency == region]
    moved = _each("index", moves, lambda m: m[0], move)
    renames = [r for r in plan.renames if r[0].governance.residency == region]
    renamed = _each("index", renames, lambda r: r[0], rename)
    # A failed move or rename keeps its old copy: the purge below must not delete it.
    report.failed_moves = {f.task.document_id for f in moved.failures}
    report.failed_moves |= {
        old for task, old, _ in renames if task.document_id in {f.task.document_id for f in renamed.failures}
    }
    failures += moved.failures + renamed.failures
    for failure in failures:
        index.record_failure(failure)
    report.failures = failures
    return report


def purge_stale(plan: Plan, indexes: Mapping[str, RegionIndex], reports: list[IndexReport]) -> int:
    """After all writes: delete deleted, refused and misplaced copies, and failures of vanished files."""
    keep = set().union(*(r.failed_moves for r in reports)) if reports else set()
    for region, source, source_id in plan.stale_failures:
        if region in indexes:
            indexes[region].clear_failure(source, source_id)
    for _task, old_id, origin in plan.renames:
        if old_id not in keep and (old_id, origin) not in plan.purges:
            plan.purges.append((old_id, origin))
    for doc_id, region in plan.expired:
        if region in indexes and indexes[region].erase(doc_id, by="retention", reason="retention"):
            for report in reports:
                if report.region == region:
                    report.purged += 1
    purged = 0
    for doc_id, region in plan.purges:
        if doc_id not in keep and region in indexes and indexes[region].delete_document(doc_id):
            purged += 1
            for report in reports:
                if report.region == region:
                    report.purged += 1
    return purged


def index_all(
    batch: Batch[EmbeddedDocument], plan: Plan, regions: list[str], indexes: Mapping[str, RegionIndex]
) -> list[IndexReport]:
    """The index stage for ``regions``: writes, re-tags and moves per region, then stale-copy purges."""
    reports = [index_region(batch, plan, region, indexes) for region in regions]
    purge_stale(plan, {r: indexes[r] for r in regions}, reports)
    return reports


def finish_builds(services: Services, plan: Plan, regions: list[str]) -> list[str]:
    """After a run: switch regions whose new index version is complete (see ``Services``).

    Not after a run in which a source could not be listed: its documents were not rebuilt.
    """
    if plan.source_errors:
        return []
    return services.finish_builds(regions)


def process(services: Services, plan: Plan) -> tuple[Batch[EmbeddedDocument], list[IndexReport]]:
    """Partition, redact, chunk, embed and index a plan's documents in this process, in memory."""
    config = services.config
    parsed = partition_all(plan, services.connectors, config)
    embedded = embed_all(chunk_all(redact_all(parsed, services.redactor), config), services.embedder)
    return embedded, index_all(embedded, plan, config.regions, services.indexes())


def run_all(services: Services) -> tuple[Plan, list[IndexReport]]:
    """Every stage in order without Dagster (benchmarks and tests); the Dagster job does the same."""
    plan = plan_run(services.config, services.connectors, services.indexes())
    _, reports = process(services, plan)
    finish_builds(services, plan, services.config.regions)
    return plan, reports
