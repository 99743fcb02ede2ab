"""Read-only counts over one region's index for the steward's report: never text, ids or URIs.

:class:`RegionInventory` connects as the owner (only the owner may read the retrieval audit and the
whole agents' ledger) in read-only transactions, and every query aggregates: documents and chunks
per source, redactions by entity type, failures by reason and day, access grants, erasures by
reason, the recorded index settings, and who retrieved what how often. No chunk text, source URI,
source id, failure message or query text is selected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from groundwork.enums import Role
from groundwork.errors import IndexUnavailable
from indexes.catalog import check_schema, connect_failure
from indexes.ddl import RECORD_TABLES
from indexes.regions import RegionTarget
from indexes.schema import build_schema_name


def sslmode(dsn: str) -> str | None:
    """The ``sslmode`` a DSN (URL or key=value) asks for, or None; nothing else of it is returned."""
    try:
        value = conninfo_to_dict(dsn).get("sslmode")
    except psycopg.ProgrammingError:
        return None
    return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class PrincipalUse:
    """How often one principal's searches read a region or returned a source's chunks."""

    principal: str
    searches: int
    answers: int
    handoffs: int
    last_at: datetime | None


class RegionInventory:
    """Aggregates over one region's index (live version), read as the owner in read-only transactions."""

    def __init__(self, conn: psycopg.Connection, target: RegionTarget, meta: dict[str, str]) -> None:
        self.conn = conn
        self.target = target
        self.region = target.region
        #: The recorded settings of the live version, and ``build.*`` for one being built.
        self.meta = meta
        self._s = sql.Identifier(target.schema)

    @classmethod
    @contextmanager
    def open(cls, target: RegionTarget, *, timeout: float = 10.0) -> Iterator[RegionInventory]:
        """One read-only connection to ``target`` as the owner; a missing index is a ``SchemaError``."""
        try:
            conn = psycopg.connect(target.dsn_for(Role.OWNER), connect_timeout=max(1, int(timeout)))
        except psycopg.OperationalError as exc:
            raise IndexUnavailable(
                f"cannot read the {target.region!r} index as the owner: {connect_failure(exc)}"
            ) from exc
        with conn:
            conn.read_only = True
            meta = check_schema(conn, target.schema)
            conn.commit()
            yield cls(conn, target, meta)

    def _rows(self, text: LiteralString, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        query = sql.SQL(text).format(s=self._s)
        with self.conn.transaction():
            return list(self.conn.execute(query, params))

    @property
    def building(self) -> bool:
        """Whether a new index version is being built beside the live one."""
        return any(k.startswith("build.") for k in self.meta)

    def documents_by_source(self) -> dict[str, tuple[int, int]]:
        """Source -> (documents, chunks) in the live version."""
        docs = dict(self._rows("SELECT source, count(*) FROM {s}.documents GROUP BY source"))
        chunks = dict(self._rows("SELECT source, count(*) FROM {s}.chunks GROUP BY source"))
        return {src: (int(docs.get(src, 0)), int(chunks.get(src, 0))) for src in sorted({*docs, *chunks})}

    def build_documents(self) -> int:
        """Documents already in the version being built (0 when none is)."""
        if not self.building:
            return 0
        query = sql.SQL("SELECT count(*) FROM {}.documents").format(
            sql.Identifier(build_schema_name(self.target.schema))
        )
        with self.conn.transaction():
            row = self.conn.execute(query).fetchone()
        return int(row[0]) if row else 0

    def redactions_by_source(self) -> dict[str, dict[str, int]]:
        """Source -> entity type -> values redacted (the documents' counts, never values)."""
        out: dict[str, dict[str, int]] = {}
        for source, entity, n in self._rows(
            "SELECT d.source, r.key, sum(r.value::bigint) FROM {s}.documents d,"
            " jsonb_each_text(d.redactions) r GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            out.setdefault(source, {})[entity] = int(n)
        return out

    def failures_by_source(self) -> dict[str, dict[str, int]]:
        """Source -> failure reason -> documents recorded as failed (reasons only, never messages)."""
        out: dict[str, dict[str, int]] = {}
        for source, reason, n in self._rows(
            "SELECT source, reason, count(*) FROM {s}.ingest_failures GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            out.setdefault(source, {})[reason] = int(n)
        return out

    def failures_by_day(self) -> list[tuple[str, date, str, int]]:
        """(source, day first seen (UTC), reason, failures) for every recorded failure."""
        return [
            (source, day, reason, int(n))
            for source, day, reason, n in self._rows(
                "SELECT source, (first_seen AT TIME ZONE 'UTC')::date, reason, count(*)"
                " FROM {s}.ingest_failures GROUP BY 1, 2, 3 ORDER BY 2, 1, 3"
            )
        ]

    def grants_by_source(self) -> dict[str, dict[str, int]]:
        """Source -> access grant (``group:hr``, ``public``...) -> documents carrying it."""
        out: dict[str, dict[str, int]] = {}
        for source, grant, n in self._rows(
            "SELECT source, g, count(*) FROM {s}.documents, unnest(access) g GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            out.setdefault(source, {})[grant] = int(n)
        return out

    def record_ages(self, cutoffs: dict[str, datetime | None]) -> dict[str, tuple[int, datetime | None, int]]:
        """Kind of record (``audit``, ``ledger``) -> (rows, oldest row's time, rows older than the
        kind's cutoff: 0 when it has none). Counts and times only."""
        out = {}
        for kind, tables in RECORD_TABLES.items():
            cutoff = cutoffs.get(kind)
            rows, oldest, due = 0, None, 0
            for table in tables:
                query = sql.SQL(
                    "SELECT count(*), min(at), count(*) FILTER (WHERE at < %s) FROM {}.{}"
                ).format(self._s, sql.Identifier(table))
                with self.conn.transaction():
                    row = self.conn.execute(query, (cutoff,)).fetchone()
                n, first, old = row if row else (0, None, 0)
                rows += int(n)
                due += int(old or 0)
                if first is not None and (oldest is None or first < oldest):
                    oldest = first
            out[kind] = (rows, oldest, due)
        return out

    def modified_stats(self, source: str, cutoff: datetime) -> tuple[datetime | None, int]:
        """(oldest modification time, documents last modified before ``cutoff``) of ``source``."""
        rows = self._rows(
            "SELECT min(modified_at), count(*) FILTER (WHERE modified_at < %s)"
            " FROM {s}.documents WHERE source = %s",
            (cutoff, source),
        )
        oldest, due = rows[0] if rows else (None, 0)
        return oldest, int(due or 0)

    def erasures_by_reason(self) -> dict[str, tuple[int, datetime | None]]:
        """Erasure reason -> (tombstones, latest); who asked is not read (it may name a person)."""
        return {
            reason: (int(n), last)
            for reason, n, last in self._rows(
                "SELECT reason, count(*), max(at) FROM {s}.erasures GROUP BY reason ORDER BY reason"
            )
        }

    def searches_by_principal(self) -> list[PrincipalUse]:
        """Searches that read this region, per principal and decision (the audit; no query text)."""
        return [
            PrincipalUse(p, int(n), int(a), int(h), last)
            for p, n, a, h, last in self._rows(
                "SELECT principal, count(*), count(*) FILTER (WHERE decision = 'answer'),"
                " count(*) FILTER (WHERE decision = 'handoff'), max(at)"
                " FROM {s}.retrieval_audit GROUP BY principal ORDER BY principal"
            )
        ]

    def retrievals_by_source(self) -> dict[str, list[PrincipalUse]]:
        """Source -> principals whose searches returned its chunks (still stored), and how often."""
        out: dict[str, list[PrincipalUse]] = {}
        for source, p, n, a, h, last in self._rows(
            "SELECT c.source, a.principal, count(DISTINCT a.audit_id),"
            " count(DISTINCT a.audit_id) FILTER (WHERE a.decision = 'answer'),"
            " count(DISTINCT a.audit_id) FILTER (WHERE a.decision = 'handoff'), max(a.at)"
            " FROM {s}.retrieval_audit a JOIN {s}.chunks c ON c.chunk_id = ANY (a.chunk_ids)"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            out.setdefault(source, []).append(PrincipalUse(p, int(n), int(a), int(h), last))
        return out

    def ledger_by_principal(self) -> dict[str, dict[str, int]]:
        """Principal -> agent searches, action checks and chain events kept in this region's ledger."""
        out: dict[str, dict[str, int]] = {}
        for table in ("agent_searches", "action_checks", "agent_events"):
            query = sql.SQL("SELECT principal, count(*) FROM {}.{} GROUP BY principal").format(
                self._s, sql.Identifier(table)
            )
            with self.conn.transaction():
                for principal, n in self.conn.execute(query):
                    out.setdefault(principal, {})[table] = int(n)
        return out
