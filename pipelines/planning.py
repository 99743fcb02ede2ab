"""Planning a run: list every source and decide, per document, the least work that keeps the
index exactly true to its sources."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from connectors import Connector
from groundwork.contracts import missing_contract_message
from groundwork.enums import PERMANENT_REASONS, ChangeKind, ErasureReason, Stage
from groundwork.errors import ConnectorError
from groundwork.ids import document_id, shard_of
from groundwork.records import DocumentTask, Failure, StoredState
from groundwork.settings import GroundworkConfig
from pipelines.policy import PolicyError, make_task, refused_task
from pipelines.ports import RegionStore

logger = logging.getLogger(__name__)


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
    #: The ingest run carrying out the plan (a Dagster run id, or ``local-...``), kept in lineage.
    run_id: str = ""


def plan_run(
    config: GroundworkConfig,
    connectors: Mapping[str, Connector],
    indexes: Mapping[str, RegionStore],
    *,
    sources: Collection[str] | None = None,
    shard: tuple[int, int] | None = None,
    run_id: str = "",
) -> Plan:
    """List every source and decide, per document, the least work that makes the index true.

    A document whose stored version and tags match is unchanged; one that failed before for a
    content reason at the same version is not retried until its content changes; one whose content
    is unchanged but whose policy changed is re-tagged (same region) or moved (new region); one gone
    from the listing is deleted, unless its content reappears under a new path (a rename), which is
    moved to its new identity. A source that cannot be listed is left as it is. A document forgotten
    on request is skipped (and any stored copy purged), and so is one whose version is the content
    digest of a forgotten document (the same bytes under another path or source id).

    ``sources`` limits the plan to those sources, and ``shard`` (i, n) to the documents in shard i
    of n (see :func:`~groundwork.ids.shard_of`), so shards can be planned and processed in parallel.
    A rename across two shards is seen as a deletion in one and a new document in the other.
    ``run_id`` names the run that carries the plan out, in the lineage of what it writes.
    """

    def mine(doc_id: str) -> bool:
        return shard is None or shard_of(doc_id, shard[1]) == shard[0]

    plan = Plan(run_id=run_id)
    forgotten = set().union(*(index.tombstones.ids(ErasureReason.FORGET) for index in indexes.values()))
    # A version that is a digest of the bytes (files, ...) shows forgotten content before any fetch;
    # other versions are checked once fetched (see pipelines.streaming).
    forgotten_content = set().union(*(index.tombstones.digests() for index in indexes.values()))
    now = datetime.now(UTC)
    for source in config.sources:
        if sources is not None and source.name not in sources:
            continue
        if not source.has_contract:  # fail closed: no agreement, nothing ingested or changed
            plan.source_errors[source.name] = missing_contract_message(source.name)
            logger.error("%s", plan.source_errors[source.name])
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
                i: v
                for i, v in index.failures.of_source(source.name).items()
                if mine(document_id(source.name, i))
            }
            failed.update({i: v for i, (v, reason) in recorded.items() if reason in PERMANENT_REASONS})
            failure_ids[region] = set(recorded)
        # What the index holds lets a connector keep a version without reading the content again.
        known = {
            s.source_id: (s.fingerprint, s.version)
            for copies in stored.values()
            for s in copies.values()
            if not s.stale
        }
        try:
            listing = connectors[source.name].list(known)
            refs = [r for r in listing if mine(document_id(r.source, r.source_id))]
        except ConnectorError as exc:
            plan.source_errors[source.name] = str(exc)
            logger.error("source %s could not be listed: %s", source.name, exc)
            continue
        listed: set[str] = set()
        new_tasks: list[DocumentTask] = []
        for ref in refs:
            doc_id = document_id(ref.source, ref.source_id)
            listed.add(doc_id)
            if doc_id in forgotten or ref.version in forgotten_content:  # erased on request: never again
                counts[ChangeKind.FORGOTTEN] += 1
                plan.purges.extend((doc_id, r) for r in sorted(stored.get(doc_id, {})))
                continue
            if cutoff is not None and ref.modified_at is not None and ref.modified_at < cutoff:
                counts[ChangeKind.EXPIRED] += 1
                plan.expired.extend((doc_id, r) for r in sorted(stored.get(doc_id, {})))
                continue
            try:
                task = make_task(source, ref, ChangeKind.NEW)
            except PolicyError as exc:
                counts[ChangeKind.REFUSED] += 1
                plan.failures.append(Failure(refused_task(ref, exc), Stage.POLICY, exc.reason, str(exc)))
                # Fail closed: a document the policy no longer admits leaves every index.
                plan.purges.extend((doc_id, r) for r in sorted(stored.get(doc_id, {})))
                continue
            kind = _classify(plan, task, stored.get(doc_id, {}), failed.get(ref.source_id))
            region = task.governance.residency
            if kind in (ChangeKind.UNCHANGED, ChangeKind.RETAG) and ref.source_id in failure_ids.get(
                region, ()
            ):
                # Failed once (unreadable for a while), readable again with the content indexed.
                plan.stale_failures.append((region, source.name, ref.source_id))
            if kind == ChangeKind.NEW:
                new_tasks.append(task)
            counts[kind] += 1
        gone = {d: copies for d, copies in stored.items() if d not in listed}
        _match_renames(plan, new_tasks, gone, counts)
        renamed_away = {old_id for _task, old_id, _region in plan.renames}
        for doc_id, copies in gone.items():
            if doc_id not in renamed_away:  # a rename's old identity is counted as the rename
                counts[ChangeKind.DELETED] += 1
            plan.purges.extend((doc_id, r) for r in sorted(copies))
        listed_ids = {ref.source_id for ref in refs}
        for region, ids in failure_ids.items():
            plan.stale_failures.extend((region, source.name, i) for i in sorted(ids - listed_ids))
        logger.info("source %s: %s", source.name, {str(k): n for k, n in counts.items()})
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
        plan.renames.append((replace(task, change=ChangeKind.RENAME), old_id, region))
        counts[ChangeKind.NEW] -= 1
        counts[ChangeKind.RENAME] += 1


def _classify(
    plan: Plan, task: DocumentTask, copies: dict[str, StoredState], failed_version: str | None
) -> ChangeKind:
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
            plan.retags.append(replace(task, change=ChangeKind.RETAG))
        plan.tasks.append(replace(task, change=ChangeKind.REBUILD))
        return ChangeKind.REBUILD
    if here is not None and here.version == version:
        if here.access_digest == task.governance.digest:
            return ChangeKind.UNCHANGED
        plan.retags.append(replace(task, change=ChangeKind.RETAG))
        return ChangeKind.RETAG
    same_content = sorted(r for r, s in elsewhere.items() if s.version == version and not s.stale)
    if here is None and same_content:
        plan.moves.append((replace(task, change=ChangeKind.MOVE), same_content[0]))
        return ChangeKind.MOVE
    if failed_version == version:
        return ChangeKind.FAILED_BEFORE
    change = ChangeKind.NEW if not copies else ChangeKind.CHANGED
    plan.tasks.append(replace(task, change=change))
    return change
