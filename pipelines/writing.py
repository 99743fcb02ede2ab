"""The writing stage: store, re-tag, move and rename a plan's documents in their region's index,
record failures, then purge what no longer belongs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from groundwork.enums import ErasureReason, FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.records import Batch, DocumentTask, EmbeddedDocument, Failure
from pipelines.batches import each
from pipelines.planning import Plan
from pipelines.ports import RegionStore


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
    batch: Batch[EmbeddedDocument], plan: Plan, region: str, indexes: Mapping[str, RegionStore]
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
                "the stored copy to move disappeared",
                stage=Stage.INDEX,
                reason=FailureReason.MOVE_SOURCE_MISSING,
            )
        index.import_document(*exported, task.governance)
        report.moved_in += 1

    failures = [f for f in batch.failures if f.task.governance.residency == region]
    failures += each(Stage.INDEX, mine, lambda d: d.chunked.document.task, write).failures
    failures += each(
        Stage.INDEX, [t for t in plan.retags if t.governance.residency == region], lambda t: t, retag
    ).failures

    def rename(item: tuple[DocumentTask, str, str]) -> None:
        task, old_id, origin = item
        exported = indexes[origin].export_document(old_id)
        if exported is None:
            raise DocumentError(
                "the stored copy to rename disappeared",
                stage=Stage.INDEX,
                reason=FailureReason.MOVE_SOURCE_MISSING,
            )
        index.import_document(*exported, task.governance, task=task)
        report.renamed_in += 1

    moves = [m for m in plan.moves if m[0].governance.residency == region]
    moved = each(Stage.INDEX, moves, lambda m: m[0], move)
    renames = [r for r in plan.renames if r[0].governance.residency == region]
    renamed = each(Stage.INDEX, renames, lambda r: r[0], rename)
    # A failed move or rename keeps its old copy: the purge below must not delete it.
    report.failed_moves = {f.task.document_id for f in moved.failures}
    report.failed_moves |= {
        old for task, old, _ in renames if task.document_id in {f.task.document_id for f in renamed.failures}
    }
    failures += moved.failures + renamed.failures
    for failure in failures:
        index.failures.record(failure)
    report.failures = failures
    return report


def purge_stale(plan: Plan, indexes: Mapping[str, RegionStore], reports: list[IndexReport]) -> int:
    """After all writes: delete deleted, refused and misplaced copies, and failures of vanished files."""
    keep = set().union(*(r.failed_moves for r in reports)) if reports else set()
    for region, source, source_id in plan.stale_failures:
        if region in indexes:
            indexes[region].failures.clear(source, source_id)
    for _task, old_id, origin in plan.renames:
        if old_id not in keep and (old_id, origin) not in plan.purges:
            plan.purges.append((old_id, origin))
    for doc_id, region in plan.expired:
        if region in indexes and indexes[region].erase(
            doc_id, by="retention", reason=ErasureReason.RETENTION
        ):
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
    batch: Batch[EmbeddedDocument], plan: Plan, regions: list[str], indexes: Mapping[str, RegionStore]
) -> list[IndexReport]:
    """The index stage for ``regions``: writes, re-tags and moves per region, then stale-copy purges."""
    reports = [index_region(batch, plan, region, indexes) for region in regions]
    purge_stale(plan, {r: indexes[r] for r in regions}, reports)
    return reports
