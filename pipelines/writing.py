"""The writing stage: store each micro-batch's documents and failures in their region's index as it
completes, then re-tag, move and rename, then purge what no longer belongs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from groundwork.enums import ErasureReason, FailureReason, Stage
from groundwork.errors import DocumentError
from groundwork.faults import fault_point
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


#: One report per region a run writes to, by region.
Reports = dict[str, IndexReport]


def write_batch(
    batch: Batch[EmbeddedDocument], indexes: Mapping[str, RegionStore], reports: Reports, *, run_id: str = ""
) -> None:
    """Write one micro-batch's documents to their region's index and record its failures there.

    Each document is one transaction; a failure is committed as soon as it is recorded, so what a
    run did survives the run. Documents and failures of regions without a report are left alone.
    ``run_id`` names the ingest run in each document's lineage.
    """
    for region, report in reports.items():

        def write(
            doc: EmbeddedDocument, index: RegionStore = indexes[region], report: IndexReport = report
        ) -> None:
            report.chunks_written += index.write_document(doc, run_id=run_id)
            report.documents_written += 1
            report.redactions.update(doc.chunked.document.redactions)
            fault_point("document_written")

        mine = [d for d in batch.items if d.chunked.document.task.governance.residency == region]
        written = each(Stage.INDEX, mine, lambda d: d.chunked.document.task, write)
        record_failures(written.failures, indexes, reports)
    record_failures(batch.failures, indexes, reports)


def record_failures(failures: list[Failure], indexes: Mapping[str, RegionStore], reports: Reports) -> None:
    """Record each failure in its region's index (regions without a report are left alone)."""
    for failure in failures:
        region = failure.task.governance.residency
        if region in reports:
            indexes[region].failures.record(failure)
            reports[region].failures.append(failure)


def apply_changes(plan: Plan, indexes: Mapping[str, RegionStore], reports: Reports) -> None:
    """Re-tag, move in and rename the plan's documents, in the regions that have a report."""
    for region, report in reports.items():
        index = indexes[region]

        def retag(task: DocumentTask, index: RegionStore = index, report: IndexReport = report) -> None:
            index.retag(task.document_id, task.governance)
            report.retagged += 1
            fault_point("change_applied")

        def move(
            item: tuple[DocumentTask, str], index: RegionStore = index, report: IndexReport = report
        ) -> None:
            task, origin = item
            index.import_document(*_export(indexes[origin], task.document_id), task.governance)
            report.moved_in += 1
            fault_point("change_applied")

        def rename(
            item: tuple[DocumentTask, str, str], index: RegionStore = index, report: IndexReport = report
        ) -> None:
            task, old_id, origin = item
            index.import_document(*_export(indexes[origin], old_id), task.governance, task=task)
            report.renamed_in += 1
            fault_point("change_applied")

        retagged = each(
            Stage.INDEX, [t for t in plan.retags if t.governance.residency == region], lambda t: t, retag
        )
        moves = [m for m in plan.moves if m[0].governance.residency == region]
        moved = each(Stage.INDEX, moves, lambda m: m[0], move)
        renames = [r for r in plan.renames if r[0].governance.residency == region]
        renamed = each(Stage.INDEX, renames, lambda r: r[0], rename)
        # A failed move or rename keeps its old copy: the purge must not delete it.
        report.failed_moves = {f.task.document_id for f in moved.failures}
        failed_renames = {f.task.document_id for f in renamed.failures}
        report.failed_moves |= {old for task, old, _ in renames if task.document_id in failed_renames}
        record_failures(retagged.failures + moved.failures + renamed.failures, indexes, {region: report})


def _export(origin: RegionStore, document_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    exported = origin.export_document(document_id)
    if exported is None:
        raise DocumentError(
            "the stored copy to move disappeared", stage=Stage.INDEX, reason=FailureReason.MOVE_SOURCE_MISSING
        )
    return exported


def purge_stale(plan: Plan, indexes: Mapping[str, RegionStore], reports: Reports) -> int:
    """After all writes: delete deleted, refused and misplaced copies, and failures of vanished files.

    Only in the regions that have a report.
    """
    indexes = {r: indexes[r] for r in reports}
    keep = set().union(*(r.failed_moves for r in reports.values()))
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
            reports[region].purged += 1
            fault_point("purge_deleted")
    purged = 0
    for doc_id, region in plan.purges:
        if doc_id not in keep and region in indexes and indexes[region].delete_document(doc_id):
            purged += 1
            reports[region].purged += 1
            fault_point("purge_deleted")
    return purged
