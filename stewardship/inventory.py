"""The facts a steward's report shows, gathered from the config and every region's index.

Counts only: documents, chunks, failures by reason, redactions by entity type, access grants,
retention and the next purge, index versions, and who retrieved which source how often. Nothing
here reads chunk text, source ids or URIs, failure messages or queries (see :mod:`indexes.inventory`).
The result is plain JSON-ready data; :mod:`stewardship.render` draws it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from groundwork.contracts import DataContract
from groundwork.errors import ConfigError, IndexError_
from groundwork.settings import GroundworkConfig, PrincipalConfig, RecordsConfig, SourceConfig
from indexes.inventory import PrincipalUse, RegionInventory
from indexes.regions import resolve_targets

#: The ``daily_retention`` schedule runs the purge at this time (UTC) every day.
PURGE_AT = time(3, 0, tzinfo=UTC)


def scoped_sources(config: GroundworkConfig, customer: str | None) -> list[SourceConfig]:
    """Every source, or only those whose contract names ``customer``; an unknown one lists the known."""
    if customer is None:
        return list(config.sources)
    known = sorted(
        {
            s.contract.customer
            for s in config.sources
            if isinstance(s.contract, DataContract) and s.contract.customer is not None
        }
    )
    chosen = [
        s for s in config.sources if isinstance(s.contract, DataContract) and s.contract.customer == customer
    ]
    if not chosen:
        raise ConfigError(
            f"no source's contract names customer {customer!r}; known customers: {', '.join(known) or 'none'}"
        )
    return chosen


def contract_status(source: SourceConfig) -> str:
    """``agreed`` (a contract), ``none`` (acknowledged: no contract) or ``missing`` (refused at ingest)."""
    if isinstance(source.contract, DataContract):
        return "agreed"
    return "none" if source.contract_acknowledged_none else "missing"


def source_grants(source: SourceConfig) -> list[str]:
    """Every access grant the source's policy can give a document (its own and its rules')."""
    grants = set(source.access)
    for rule in source.rules:
        grants.update(rule.access or [])
    return sorted(grants)


def recipients(config: GroundworkConfig, source: SourceConfig) -> list[PrincipalConfig]:
    """Principals that may read some of the source's documents: a shared grant and a shared region."""
    grants = set(source_grants(source))
    return [p for p in config.principals if grants & set(p.grants()) and source.regions & set(p.regions)]


def next_purge(now: datetime) -> datetime:
    """When the ``retention`` job next runs (daily at 03:00 UTC)."""
    today = datetime.combine(now.astimezone(UTC).date(), PURGE_AT)
    return today if today > now else today + timedelta(days=1)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _use(u: PrincipalUse) -> dict[str, Any]:
    return {**asdict(u), "last_at": _iso(u.last_at)}


def _add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def _records(inv: RegionInventory, records: RecordsConfig, purge: datetime) -> dict[str, dict[str, Any]]:
    """The region's audit and ledger: their periods, rows, oldest row and rows the next purge deletes."""
    days = {"audit": records.audit_retention_days, "ledger": records.ledger_retention_days}
    ages = inv.record_ages({k: purge - timedelta(days=d) if d else None for k, d in days.items()})
    return {
        kind: {"retention_days": days[kind], "rows": rows, "oldest": _iso(oldest), "due_at_next_purge": due}
        for kind, (rows, oldest, due) in ages.items()
    }


def _read_region(
    inv: RegionInventory, sources: list[SourceConfig], purge: datetime, records: RecordsConfig
) -> dict[str, Any]:
    """Everything one region contributes, per source in scope and for the region as a whole."""
    names = {s.name for s in sources}
    docs = inv.documents_by_source()
    failures = inv.failures_by_source()
    redactions = inv.redactions_by_source()
    grants = inv.grants_by_source()
    retrievals = inv.retrievals_by_source()
    per_source: dict[str, dict[str, Any]] = {}
    for s in sources:
        if inv.region not in s.regions and s.name not in docs and s.name not in failures:
            continue
        oldest, due = (None, 0)
        if s.retention_days:
            oldest, due = inv.modified_stats(s.name, purge - timedelta(days=s.retention_days))
        per_source[s.name] = {
            "documents": docs.get(s.name, (0, 0))[0],
            "chunks": docs.get(s.name, (0, 0))[1],
            "failures": failures.get(s.name, {}),
            "redactions": redactions.get(s.name, {}),
            "grants": grants.get(s.name, {}),
            "retrievals": [_use(u) for u in retrievals.get(s.name, [])],
            "oldest_modified": _iso(oldest),
            "due_at_next_purge": due,
        }
    meta = inv.meta
    return {
        "region": inv.region,
        "available": True,
        "message": None,
        "documents": sum(v["documents"] for v in per_source.values()),
        "chunks": sum(v["chunks"] for v in per_source.values()),
        "failures": sum(sum(v["failures"].values()) for v in per_source.values()),
        "index": {
            "schema_version": meta.get("schema_version"),
            "model": meta.get("model"),
            "dimensions": meta.get("dimensions"),
            "chunking": meta.get("chunking"),
            "redaction_policy": meta.get("redaction"),
            "building": inv.building,
            "build": {k.removeprefix("build."): v for k, v in meta.items() if k.startswith("build.")},
            "build_documents": inv.build_documents(),
        },
        "failures_by_day": [
            {"day": day.isoformat(), "reason": reason, "failures": n}
            for source, day, reason, n in inv.failures_by_day()
            if source in names
        ],
        "searches": [_use(u) for u in inv.searches_by_principal()],
        "ledger": inv.ledger_by_principal(),
        "records": _records(inv, records, purge),
        "erasures": {r: {"count": n, "last_at": _iso(at)} for r, (n, at) in inv.erasures_by_reason().items()},
        "per_source": per_source,
    }


def _source_facts(
    config: GroundworkConfig, source: SourceConfig, regions: dict[str, dict[str, Any]], purge: datetime
) -> dict[str, Any]:
    """One source's row of the report: its contract and policy, and its counts over every region."""
    contract = source.contract if isinstance(source.contract, DataContract) else None
    facts: dict[str, Any] = {
        "name": source.name,
        "connector": source.connector,
        "customer": contract.customer if contract else None,
        "contract_status": contract_status(source),
        "contract": contract.model_dump(mode="json") if contract else None,
        "regions": sorted(source.regions),
        "access": source_grants(source),
        "path_rules": len(source.rules),
        "retention_days": source.retention_days,
        "next_purge": _iso(purge) if source.retention_days else None,
        "documents": 0,
        "chunks": 0,
        "by_region": {},
        "failures": {},
        "redactions": {},
        "grants": {},
        "due_at_next_purge": 0,
        "oldest_modified": None,
    }
    uses: dict[str, dict[str, Any]] = {}
    for region, data in sorted(regions.items()):
        mine = data.get("per_source", {}).get(source.name)
        if mine is None:
            continue
        facts["by_region"][region] = {"documents": mine["documents"], "chunks": mine["chunks"]}
        facts["documents"] += mine["documents"]
        facts["chunks"] += mine["chunks"]
        facts["due_at_next_purge"] += mine["due_at_next_purge"]
        for key in ("failures", "redactions", "grants"):
            _add(facts[key], mine[key])
        if mine["oldest_modified"] and (
            facts["oldest_modified"] is None or mine["oldest_modified"] < facts["oldest_modified"]
        ):
            facts["oldest_modified"] = mine["oldest_modified"]
        for use in mine["retrievals"]:
            seen = uses.setdefault(
                use["principal"], {"searches": 0, "answers": 0, "handoffs": 0, "last_at": None}
            )
            for key in ("searches", "answers", "handoffs"):
                seen[key] += use[key]
            seen["last_at"] = max(filter(None, [seen["last_at"], use["last_at"]]), default=None)
    facts["recipients"] = [
        {
            "principal": p.name,
            "groups": list(p.groups),
            "regions": sorted(p.regions),
            "reads_regions": sorted(source.regions & set(p.regions)),
            "transfer": bool(set(p.regions) - source.regions),
            **uses.pop(p.name, {"searches": 0, "answers": 0, "handoffs": 0, "last_at": None}),
        }
        for p in recipients(config, source)
    ]
    # Callers no longer configured (or JWT subjects) who retrieved this source's chunks.
    facts["other_readers"] = [{"principal": name, **use} for name, use in sorted(uses.items())]
    return facts


def gather(
    config: GroundworkConfig, *, customer: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The report's facts: sources, regions, principals and totals, scoped to ``customer`` if given."""
    now = now or datetime.now(UTC)
    sources = scoped_sources(config, customer)
    purge = next_purge(now)
    in_scope = sorted(set().union(*(s.regions for s in sources)))
    targets = resolve_targets(config, create=False)
    regions: dict[str, dict[str, Any]] = {}
    for region in in_scope:
        try:
            with RegionInventory.open(targets[region], timeout=config.database.timeout_seconds) as inv:
                regions[region] = _read_region(inv, sources, purge, config.records)
        except IndexError_ as exc:  # not migrated yet, or unreachable: say so, report the rest
            regions[region] = {"region": region, "available": False, "message": str(exc)}
    facts = [_source_facts(config, s, regions, purge) for s in sources]
    readers = {r["principal"] for f in facts for r in f["recipients"]}
    principals = [
        {"name": p.name, "groups": list(p.groups), "regions": sorted(p.regions)}
        for p in config.principals
        if customer is None or p.name in readers
    ]
    for data in regions.values():
        data.pop("per_source", None)
        if customer is not None:  # region-wide figures would count other customers' use
            for key in ("searches", "ledger", "records", "erasures"):
                data.pop(key, None)
    totals: dict[str, Any] = {
        "sources": len(facts),
        "documents": sum(f["documents"] for f in facts),
        "chunks": sum(f["chunks"] for f in facts),
        "failures": {},
        "redactions": {},
    }
    for f in facts:
        _add(totals["failures"], f["failures"])
        _add(totals["redactions"], f["redactions"])
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "customer": customer,
        "sources": facts,
        "regions": [regions[r] for r in in_scope],
        "principals": principals,
        "jwt_callers": config.auth.jwt is not None,
        "failures_by_day": sorted(
            (row for r in regions.values() for row in r.get("failures_by_day", [])),
            key=lambda row: (row["day"], row["reason"]),
        ),
        "totals": totals,
    }
