"""The backfill: one Dagster partition per source, each split into shards that run in parallel.

The ``backfill`` job is partitioned by source. A run for one source fans out
one ``ingest_shard`` step per shard (``backfill.shards``); under the multiprocess executor the steps
run in parallel processes (at most ``backfill.max_parallel`` per run, and at most the
``groundwork_shards`` pool's limit across runs, set in ``dagster_home/dagster.yaml``). Each step
lists its source, keeps its shard's documents and takes them from fetch to index inside the step,
in memory: only shard numbers and counts cross step boundaries, so raw text never reaches Dagster's
storage. The last step records a materialization of each ``index/<region>`` asset it wrote to, and
switches a region to a new index version once that version is complete.

Backfilling every partition from the UI runs the sources side by side, within the run limits of
``dagster_home/dagster.yaml``.
"""

from collections import Counter
from typing import Any

import dagster as dg

from groundwork.settings import GroundworkConfig
from orchestration.assets import index_key
from orchestration.local import process
from orchestration.resources import BACKFILL_JOB, GroundworkResource
from pipelines.planning import plan_run

#: Dagster pool that limits shard steps across all runs (``concurrency.pools`` in dagster.yaml).
SHARD_POOL = "groundwork_shards"


def source_partitions(config: GroundworkConfig) -> dg.StaticPartitionsDefinition:
    """One partition per configured source."""
    return dg.StaticPartitionsDefinition([s.name for s in config.sources])


@dg.op(out=dg.DynamicOut(int))
def source_shards(context: dg.OpExecutionContext, groundwork: GroundworkResource) -> Any:
    """One output per shard of this run's source."""
    shards = groundwork.services.config.backfill.shards
    context.log.info(f"source {context.partition_key}: {shards} shard(s)")
    for i in range(shards):
        yield dg.DynamicOutput(i, mapping_key=f"shard_{i}")


@dg.op(pool=SHARD_POOL)
def ingest_shard(context: dg.OpExecutionContext, groundwork: GroundworkResource, shard: int) -> dict:
    """Plan, partition, redact, chunk, embed and index one shard of the source, within this step."""
    services = groundwork.services
    source = context.partition_key
    shards = services.config.backfill.shards
    plan = plan_run(
        services.config,
        services.connectors,
        services.indexes(),
        sources={source},
        shard=(shard, shards),
        run_id=context.run_id,
    )
    run = process(services, plan)
    reports = list(run.regions.values())
    failures = run.failures
    counts: Counter[str] = Counter(plan.counts.get(source, {}))
    result = {
        "shard": shard,
        "to_process": len(plan.tasks),
        "embeddings_computed": run.embeddings,
        "documents_written": sum(r.documents_written for r in reports),
        "deleted_or_purged": sum(r.purged for r in reports),
        "failures": len(failures),
        "source_errors": len(plan.source_errors),
        **{f"plan_{k}": v for k, v in sorted(counts.items())},
    }
    context.add_output_metadata(result)
    written = {
        r.region: r.documents_written + r.retagged + r.moved_in + r.renamed_in + r.purged for r in reports
    }
    return {**result, "by_region": written}


@dg.op
def finish_source(context: dg.OpExecutionContext, groundwork: GroundworkResource, shards: list[dict]) -> dict:
    """Totals over the shards; switch regions to a new index version once it is complete."""
    totals: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    for result in shards:
        totals.update({k: v for k, v in result.items() if k not in ("shard", "by_region")})
        changed.update(result["by_region"])
    services = groundwork.services
    switched = [] if totals["source_errors"] else services.finish_builds(services.config.regions)
    for region in sorted(set(changed) | set(switched)):
        counts = services.index(region).counts()
        context.log_event(
            dg.AssetMaterialization(
                asset_key=index_key(region),
                description=f"backfill of source {context.partition_key}",
                metadata={
                    "source": context.partition_key,
                    "documents_changed": changed[region],
                    "index_documents": counts.documents,
                    "index_chunks": counts.chunks,
                    "index_version": "switched to a new version" if region in switched else "live",
                },
            )
        )
    summary = {**dict(sorted(totals.items())), "shards": len(shards)}
    context.add_output_metadata(summary)
    return summary


@dg.graph
def backfill() -> None:
    """One source's shards in parallel, then totals and the version switch."""
    finish_source(source_shards().map(ingest_shard).collect())


def build_backfill_job(config: GroundworkConfig, resource: GroundworkResource) -> dg.JobDefinition:
    """The backfill job: partitioned by source, shards in parallel processes.

    Its outputs (shard numbers and counts, never content) go through a filesystem IO manager in
    the Dagster instance's storage, which the step processes share.
    """
    return backfill.to_job(
        name=BACKFILL_JOB,
        description="Index one source (a partition) in parallel shards; backfill all partitions for a full load.",
        partitions_def=source_partitions(config),
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": config.backfill.max_parallel}),
        resource_defs={"groundwork": resource, "io_manager": dg.FilesystemIOManager()},
    )
