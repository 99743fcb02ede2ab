"""Retrieval: top-k chunks a principal may read, from the regions it may read, with a decision."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from groundwork.config import PrincipalConfig
from groundwork.services import Services
from indexes.confidence import Decision, Reason, decide

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One retrieved chunk. ``score`` is the cosine similarity to the query (higher is closer)."""

    chunk_id: str
    document_id: str
    text: str
    score: float
    source: str
    source_uri: str
    residency: str
    seq: int
    page_number: int | None
    version: str
    redactions: dict[str, int]


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Results, confidence, decision and reasons for one query."""

    results: list[SearchHit]
    confidence: float
    decision: Decision
    reasons: list[Reason]
    regions_searched: list[str] = field(default_factory=list)


def set_caller(conn: Any, grants: list[str], regions: list[str]) -> None:
    """Set the caller's grants and regions for the current transaction only (read by RLS policies)."""
    for value in (*grants, *regions):
        if "," in value:  # grants and regions are validated names; a comma would split one in two
            raise ValueError(f"invalid grant or region {value!r}")
    conn.execute(
        "SELECT set_config('groundwork.grants', %s, true), set_config('groundwork.regions', %s, true)",
        (",".join(grants), ",".join(regions)),
    )


class Retriever:
    """Searches the region indexes a principal may read, as the database's reader role.

    Per transaction it sets the caller's grants and regions, which the row-level security policies
    compare with every row; the SQL filter below repeats them only to help the planner. Every
    search is recorded in each searched region's append-only audit table, with the query redacted.
    """

    def __init__(self, services: Services) -> None:
        if services.role != "reader":
            raise ValueError("retrieval must connect as the reader role (Services(config, role='reader'))")
        self.services = services
        self.config = services.config.retrieval

    def regions_for(self, principal: PrincipalConfig) -> list[str]:
        """The regions to search: the principal's regions that hold an index."""
        return sorted(set(principal.regions) & set(self.services.config.regions))

    def search(
        self, principal: PrincipalConfig, query: str, k: int, *, auth_method: str = "api_key"
    ) -> SearchOutcome:
        """The ``k`` closest chunks the principal may read, merged across its regions, audited."""
        vector = self.services.embedder.embed([query])[0]
        grants = principal.grants()
        regions = self.regions_for(principal)
        hits: list[SearchHit] = []
        for region in regions:
            hits.extend(self.search_region(region, regions, vector, grants, k))
        # Scores are cosine similarities from one model, so they compare across regions.
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        hits = hits[:k]
        conf, decision, reasons = decide([h.score for h in hits], self.config)
        outcome = SearchOutcome(hits, conf, decision, reasons, regions)
        self._audit(principal, auth_method, query, k, outcome)
        return outcome

    def _audit(
        self, principal: PrincipalConfig, auth_method: str, query: str, k: int, out: SearchOutcome
    ) -> None:
        redacted, _ = self.services.redactor.redact(query)
        request_id = uuid.uuid4()
        for region in out.regions_searched:
            index = self.services.index(region)
            chunk_ids = [uuid.UUID(h.chunk_id) for h in out.results if h.residency == region]
            with index.pool.connection() as conn:
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.retrieval_audit (request_id, principal, auth_method, regions, query_redacted,"
                        " k, chunk_ids, decision, reasons, confidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(sql.Identifier(index.schema)),
                    (
                        request_id,
                        principal.name,
                        auth_method,
                        out.regions_searched,
                        redacted,
                        k,
                        chunk_ids,
                        out.decision.value,
                        [r.value for r in out.reasons],
                        out.confidence,
                    ),
                )

    def search_region(
        self, region: str, regions: list[str], vector: Any, grants: list[str], k: int
    ) -> list[SearchHit]:
        """The ``k`` closest chunks in one region that ``grants`` may read (no audit, no decision)."""
        index = self.services.index(region)
        query = sql.SQL(
            """
            SELECT chunk_id, document_id, text, 1 - (embedding <=> %(v)s) AS score, source, source_uri,
                   residency, seq, page_number, version, redactions
            FROM {s}.chunks
            WHERE access && %(grants)s::text[] AND residency = %(region)s
            ORDER BY embedding <=> %(v)s
            LIMIT %(k)s
            """
        ).format(s=sql.Identifier(index.schema))
        with index.pool.connection() as conn, conn.transaction():
            set_caller(conn, grants, regions)
            # Iterative scans keep an access-filtered HNSW search returning k rows when k exist.
            conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(self.config.ef_search),))
            conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            rows = conn.execute(query, {"v": vector, "grants": grants, "region": region, "k": k}).fetchall()
        return [
            SearchHit(
                chunk_id=str(r[0]),
                document_id=str(r[1]),
                text=r[2],
                score=round(float(r[3]), 4),
                source=r[4],
                source_uri=r[5],
                residency=r[6],
                seq=r[7],
                page_number=r[8],
                version=r[9],
                redactions=r[10],
            )
            for r in rows
        ]
