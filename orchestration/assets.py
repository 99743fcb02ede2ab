"""Dagster assets: thin adapters that call the stages and record what happened as metadata.

Lineage: source_documents -> partitioned_documents -> redacted_documents -> chunks -> embeddings
-> index/<region>. Intermediate assets live in process memory only (see ``definitions.py``), so raw,
unredacted text is never written to disk.
"""

from collections import Counter
from datetime import timedelta
from typing import Any

import dagster as dg

from groundwork.enums import ChangeKind
from groundwork.records import Batch, Failure
from indexes.erasure import purge_expired
from orchestration.local import finish_builds
from orchestration.resources import GroundworkResource
from pipelines.batches import chunk_all, embed_all, partition_all, redact_all
from pipelines.planning import Plan, plan_run
from pipelines.writing import index_all

GROUP = "ingest"


def failure_table(failures: list[Failure]) -> dg.MetadataValue:
    """Failures as a markdown table for the Dagster UI (reasons only, never content)."""
    lines = ["| source | document | stage | reason | message |", "|---|---|---|---|---|"]
    for f in failures:
        message = f.message.replace("|", "\\|")
        lines.append(f"| {f.task.ref.source} | {f.task.ref.source_id} | {f.stage} | {f.reason} | {message} |")
    return dg.MetadataValue.md("\n".join(lines) if failures else "no failures")


def _batch_metadata(batch: Batch[Any], new_failures_from: int) -> dict[str, Any]:
    return {
        "documents": len(batch.items),
        "failures": len(batch.failures),
        "new_failures": dg.MetadataValue.md(
            "\n".join(f"- {f.task.ref.source_id}: {f.reason}" for f in batch.failures[new_failures_from:])
            or "none"
        ),
    }


@dg.asset(group_name=GROUP, kinds={"python"})
def source_documents(context: dg.AssetExecutionContext, groundwork: GroundworkResource) -> Plan:
    """Every source listed and compared with the index: the new and changed documents to process."""
    services = groundwork.services
    plan = plan_run(services.config, services.connectors, services.indexes())
    totals: Counter[str] = Counter()
    for counts in plan.counts.values():
        totals.update(counts)
    context.add_output_metadata(
        {
            "to_process": len(plan.tasks),
            **{k.value: totals.get(k, 0) for k in ChangeKind},
            "policy_refusals": failure_table(plan.failures),
            "by_source": {name: {str(k): v for k, v in c.items()} for name, c in plan.counts.items()},
            "source_errors": plan.source_errors or "none",
        }
    )
    return plan


@dg.asset(group_name=GROUP, kinds={"python"})
def partitioned_documents(
    context: dg.AssetExecutionContext, groundwork: GroundworkResource, source_documents: Plan
) -> Batch:
    """Documents fetched and partitioned into elements by unstructured (held in memory only)."""
    services = groundwork.services
    batch = partition_all(source_documents, services.connectors, services.config)
    context.add_output_metadata(
        {
            **_batch_metadata(batch, 0),
            "elements": sum(len(d.elements) for d in batch.items),
            "failure_details": failure_table(batch.failures),
        }
    )
    return batch


@dg.asset(group_name=GROUP, kinds={"presidio"})
def redacted_documents(
    context: dg.AssetExecutionContext, groundwork: GroundworkResource, partitioned_documents: Batch
) -> Batch:
    """Elements with PII replaced by typed placeholders; counts by entity type, never values."""
    batch = redact_all(partitioned_documents, groundwork.services.redactor)
    by_type: Counter[str] = Counter()
    for doc in batch.items:
        by_type.update(doc.redactions)
    context.add_output_metadata(
        {
            **_batch_metadata(batch, len(partitioned_documents.failures)),
            "redactions_total": sum(by_type.values()),
            "redactions_by_type": dict(sorted(by_type.items())),
        }
    )
    return batch


@dg.asset(group_name=GROUP, kinds={"python"})
def chunks(
    context: dg.AssetExecutionContext, groundwork: GroundworkResource, redacted_documents: Batch
) -> Batch:
    """Redacted documents cut by title/section, each chunk tagged with residency and access."""
    batch = chunk_all(redacted_documents, groundwork.services.config)
    sizes = [len(c.text) for d in batch.items for c in d.chunks]
    context.add_output_metadata(
        {
            **_batch_metadata(batch, len(redacted_documents.failures)),
            "chunks": len(sizes),
            "mean_chunk_chars": round(sum(sizes) / len(sizes), 1) if sizes else 0,
        }
    )
    return batch


@dg.asset(group_name=GROUP, kinds={"torch"})
def embeddings(context: dg.AssetExecutionContext, groundwork: GroundworkResource, chunks: Batch) -> Batch:
    """One all-MiniLM-L6-v2 vector per chunk."""
    embedder = groundwork.services.embedder
    batch = embed_all(chunks, embedder)
    context.add_output_metadata(
        {
            **_batch_metadata(batch, len(chunks.failures)),
            "embeddings_computed": sum(len(d.vectors) for d in batch.items),
            "model": embedder.model_name,
        }
    )
    return batch


def index_key(region: str) -> dg.AssetKey:
    """The asset key of one region's index."""
    return dg.AssetKey(["index", region])


def build_index_assets(regions: list[str]) -> dg.AssetsDefinition:
    """One asset per residency region: a document is written only to its own region's index."""

    @dg.multi_asset(
        name="index",
        specs=[
            dg.AssetSpec(
                index_key(r),
                deps=["embeddings", "source_documents"],
                group_name=GROUP,
                kinds={"postgres"},
                description=f"The {r!r} pgvector index: governed chunks of documents resident in {r}.",
                # Stale when not refreshed for a day (the nightly schedule plus slack).
                freshness_policy=dg.FreshnessPolicy.time_window(
                    warn_window=timedelta(hours=26), fail_window=timedelta(hours=50)
                ),
            )
            for r in regions
        ],
        ins={"embeddings": dg.AssetIn("embeddings"), "source_documents": dg.AssetIn("source_documents")},
        can_subset=True,
    )
    def index_assets(
        context: dg.AssetExecutionContext,
        groundwork: GroundworkResource,
        embeddings: Batch,
        source_documents: Plan,
    ) -> Any:
        services = groundwork.services
        indexes = services.indexes()
        selected = sorted(key.path[-1] for key in context.selected_asset_keys)
        reports = index_all(embeddings, source_documents, selected, indexes)
        building = {r for r in selected if indexes[r].build_schema is not None}
        switched = set(finish_builds(services, source_documents, selected))
        for report in reports:
            counts = indexes[report.region].counts()
            yield dg.MaterializeResult(
                asset_key=index_key(report.region),
                metadata={
                    "documents_written": report.documents_written,
                    "chunks_written": report.chunks_written,
                    "retagged_without_reembedding": report.retagged,
                    "moved_in_without_reembedding": report.moved_in,
                    "renamed_without_reembedding": report.renamed_in,
                    "deleted_or_purged": report.purged,
                    "failures": len(report.failures),
                    "failure_details": failure_table(report.failures),
                    "redactions_by_type": dict(sorted(report.redactions.items())),
                    "index_documents": counts.documents,
                    "index_chunks": counts.chunks,
                    "index_failures": counts.failures,
                    "index_version": "switched to a new version"
                    if report.region in switched
                    else "new version being built"
                    if report.region in building
                    else "live",
                },
            )

    return index_assets


def _governance_check(region: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=index_key(region), name="chunks_are_governed", blocking=True)
    def chunks_are_governed(groundwork: GroundworkResource) -> dg.AssetCheckResult:
        """Every chunk carries this region's residency and at least one access grant."""
        bad = groundwork.services.index(region).ungoverned_chunks()
        return dg.AssetCheckResult(passed=bad == 0, metadata={"ungoverned_chunks": bad})

    return chunks_are_governed


def build_index_checks(regions: list[str]) -> list[dg.AssetChecksDefinition]:
    """Per region: a blocking check that no chunk lacks residency or access tags."""
    return [_governance_check(r) for r in regions]


@dg.asset(group_name="governance", kinds={"postgres"})
def expired_documents_purge(context: dg.AssetExecutionContext, groundwork: GroundworkResource) -> None:
    """Documents past their source's retention period, erased with a tombstone (who, when, id)."""
    report = purge_expired(groundwork.services.catalog)
    context.add_output_metadata(
        {"erased": report.total, "by_region": {r: len(ids) for r, ids in report.erased.items()}}
    )


INTERMEDIATE_ASSETS = [source_documents, partitioned_documents, redacted_documents, chunks, embeddings]
