"""Dagster assets: thin adapters that call the stages and record what happened as metadata.

Lineage: source_documents (the plan) -> index/<region>. The index assets stream the plan's documents
through fetch, partition, redact, chunk, embed and write in micro-batches, each committed as it
completes (see :mod:`pipelines.streaming`): a stage per asset would hold the whole corpus in memory
between steps. Only the plan (references, no content) passes between assets, in process memory (or,
under an executor that runs each region's index in a process of its own, through the Dagster
instance's storage), so raw, unredacted text is never written to disk.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dagster as dg

from groundwork.enums import ChangeKind
from groundwork.records import Failure
from indexes.erasure import purge_expired, purge_old_records
from orchestration.local import finish_builds, process, process_region
from orchestration.resources import GroundworkResource
from pipelines.planning import Plan, plan_run
from pipelines.streaming import StreamReport

GROUP = "ingest"


def failure_table(failures: list[Failure]) -> dg.MetadataValue:
    """Failures counted by source, stage and reason, as a markdown table for the Dagster UI.

    Never a document's id, path or message (a message may quote the path): the Dagster instance
    keeps its event log for good, and a document forgotten later must leave no trace there.
    ``groundwork failures`` lists the documents themselves, from the index, where forget erases them.
    """
    counts = Counter((str(f.task.ref.source), str(f.stage), str(f.reason)) for f in failures)
    lines = ["| source | stage | reason | documents |", "|---|---|---|---|"]
    lines += [
        f"| {source} | {stage} | {reason} | {n} |" for (source, stage, reason), n in sorted(counts.items())
    ]
    return dg.MetadataValue.md("\n".join(lines) if failures else "no failures")


@dg.asset(group_name=GROUP, kinds={"python"})
def source_documents(context: dg.AssetExecutionContext, groundwork: GroundworkResource) -> Plan:
    """Every source listed and compared with the index: the new and changed documents to process."""
    services = groundwork.services
    plan = plan_run(services.config, services.connectors, services.indexes(), run_id=context.run_id)
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


def index_key(region: str) -> dg.AssetKey:
    """The asset key of one region's index."""
    return dg.AssetKey(["index", region])


def report_links(groundwork: GroundworkResource) -> dict[str, dg.MetadataValue]:
    """Where a steward reads more: the steward report (``groundwork report``'s default folder) and
    the command that follows one chunk's lineage."""
    report = groundwork.services.config.state_dir / "report" / "index.html"
    return {
        "report": dg.MetadataValue.path(str(report)),
        "lineage": dg.MetadataValue.text(f"groundwork lineage CHUNK_ID --config {groundwork.config_path}"),
    }


def _index_spec(region: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        index_key(region),
        deps=["source_documents"],
        group_name=GROUP,
        kinds={"postgres"},
        description=f"The {region!r} pgvector index: governed chunks of documents resident in {region}.",
        # Stale when not refreshed for a day (the nightly schedule plus slack).
        freshness_policy=dg.FreshnessPolicy.time_window(
            warn_window=timedelta(hours=26), fail_window=timedelta(hours=50)
        ),
    )


def _results(
    groundwork: GroundworkResource, plan: Plan, selected: list[str], run: StreamReport
) -> Iterator[dg.MaterializeResult]:
    """Switch completed index versions, then one materialization per region with what it got."""
    services = groundwork.services
    indexes = services.indexes()
    building = {r for r in selected if indexes[r].build_schema is not None}
    switched = set(finish_builds(services, plan, selected))
    for report in run.regions.values():
        counts = indexes[report.region].counts()
        yield dg.MaterializeResult(
            asset_key=index_key(report.region),
            metadata={
                "documents_written": report.documents_written,
                "embeddings_computed": report.chunks_written,
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
                "run_batches": run.batches,
                "run_documents_per_second": round(run.documents / run.seconds, 2) if run.seconds else 0.0,
                "index_version": "switched to a new version"
                if report.region in switched
                else "new version being built"
                if report.region in building
                else "live",
                **report_links(groundwork),
            },
        )


def build_index_assets(regions: list[str]) -> dg.AssetsDefinition:
    """One asset per residency region, in one step: a document is written only to its own region's index."""

    @dg.multi_asset(
        name="index",
        specs=[_index_spec(r) for r in regions],
        ins={"source_documents": dg.AssetIn("source_documents")},
        can_subset=True,
    )
    def index_assets(
        context: dg.AssetExecutionContext, groundwork: GroundworkResource, source_documents: Plan
    ) -> Any:
        """Fetch, partition, redact, chunk, embed and write the plan's documents in micro-batches."""
        services = groundwork.services
        selected = sorted(key.path[-1] for key in context.selected_asset_keys)
        run = process(services, source_documents, selected)
        yield from _results(groundwork, source_documents, selected, run)

    return index_assets


def _region_step(region: str) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"index_{region}",
        specs=[_index_spec(region)],
        ins={"source_documents": dg.AssetIn("source_documents")},
    )
    def index_region(groundwork: GroundworkResource, source_documents: Plan) -> Any:
        """This region's share of the plan, beside the other regions' steps (see ``process_region``)."""
        run = process_region(groundwork.services, source_documents, region)
        yield from _results(groundwork, source_documents, [region], run)

    return index_region


def build_region_index_assets(regions: list[str]) -> list[dg.AssetsDefinition]:
    """One asset per residency region, each a step of its own, so an executor can run them in parallel."""
    return [_region_step(r) for r in regions]


@dg.asset(group_name="governance", kinds={"postgres"})
def expired_documents_purge(context: dg.AssetExecutionContext, groundwork: GroundworkResource) -> None:
    """Documents past their source's retention period, erased with a tombstone (who, when, id)."""
    report = purge_expired(groundwork.services.catalog)
    context.add_output_metadata(
        {"erased": report.total, "by_region": {r: len(ids) for r, ids in report.erased.items()}}
    )


@dg.asset(group_name="governance", kinds={"postgres"})
def expired_records_purge(context: dg.AssetExecutionContext, groundwork: GroundworkResource) -> None:
    """Retrieval audit and agents' ledger rows past their retention (``records``), deleted."""
    purge = purge_old_records(groundwork.services.catalog)
    context.add_output_metadata(
        {
            "audit_rows_deleted": sum(purge.audit.values()),
            "ledger_rows_deleted": sum(purge.ledger.values()),
            "audit_by_region": purge.audit,
            "ledger_by_region": purge.ledger,
        }
    )
