"""Retrieval: top-k chunks a principal may read, from the regions it may read, with a decision.

The retriever is given what it must not build itself: the query encoders (one per embedding model
an index may be built with) and the redaction applied to queries before they are audited.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from typing import Any

from psycopg import sql

from groundwork.enums import AuthMethod, Reason, RetrievalMode, Role
from groundwork.errors import IndexError_
from groundwork.settings import PrincipalConfig
from indexes.audit import AuditRecord, AuditSink, write_each
from indexes.catalog import IndexCatalog
from indexes.confidence import WINDOW, Calibration, decide, load_calibration
from indexes.pooling import connection
from indexes.ranking import fuse, rerank
from indexes.results import (
    NO_FILTERS,
    EncoderFactory,
    PassageScorer,
    QueryEncoder,
    SearchFilters,
    SearchHit,
    SearchOutcome,
)
from indexes.schema import read_meta, version_lock_key

logger = logging.getLogger(__name__)


def set_caller(conn: Any, grants: list[str], regions: list[str]) -> None:
    """Set the caller's grants and regions for the current transaction only (read by RLS policies)."""
    for value in (*grants, *regions):
        if "," in value:  # grants and regions are validated names; a comma would split one in two
            raise ValueError(f"invalid grant or region {value!r}")
    conn.execute(
        "SELECT set_config('groundwork.grants', %s, true), set_config('groundwork.regions', %s, true)",
        (",".join(grants), ",".join(regions)),
    )


class _VersionChanged(Exception):
    """A region's live index version uses another model than the query was embedded with."""


class Retriever:
    """Searches the region indexes a principal may read, as the database's reader role.

    Per transaction it sets the caller's grants and regions, which the row-level security policies
    compare with every row; the SQL filter below repeats them only to help the planner. Every
    search is recorded in each searched region's append-only audit table, with the query redacted, and
    returns once its rows are committed (``redact_query`` may give a future; ``record_audit`` may batch).

    A query is embedded with the model of each region's live index version, which may differ from
    the configured one while a new version is built. Each search transaction holds the region's
    version lock shared and checks that model, so a switch to a new version never lands between
    embedding the query and reading the index.
    """

    def __init__(
        self,
        catalog: IndexCatalog,
        *,
        encoder: QueryEncoder,
        encoder_for: EncoderFactory,
        redact_query: Callable[[str], str | Future[str]],
        record_audit: AuditSink | None = None,
        reranker: PassageScorer | None = None,
    ) -> None:
        if catalog.role != Role.READER:
            raise ValueError(
                "retrieval must connect as the reader role (IndexCatalog(config, role=Role.READER))"
            )
        self.catalog = catalog
        self.config = catalog.config
        self.settings = catalog.config.retrieval
        self.encoder = encoder
        self._encoder_for = encoder_for
        self.redact_query = redact_query
        self._record_audit = record_audit or partial(write_each, self.catalog.records)
        self.reranker = reranker if self.settings.rerank_depth > 0 else None
        # The live model of each region (name, dimensions), as last read from its index.
        self._live: dict[str, tuple[str, int]] = {}
        self._encoders: dict[str, QueryEncoder] = {encoder.model_name: encoder}
        self._calibrations: dict[str, Calibration | None] = {}

    @property
    def calibration(self) -> Calibration | None:
        """The calibration for the configured model, if enabled and fitted for it."""
        return self.calibration_for(self.encoder.model_name)

    def calibration_for(self, model: str) -> Calibration | None:
        """The shipped calibration of this retrieval mode for ``model`` (None when disabled)."""
        if not self.settings.calibrated:
            return None
        if model not in self._calibrations:
            self._calibrations[model] = load_calibration(self.settings.mode, model)
        return self._calibrations[model]

    def live_model(self, region: str) -> tuple[str, int]:
        """The model name and vector size of ``region``'s live index version."""
        if region not in self._live:
            index = self.catalog.index(region)
            with connection(index.pool) as conn:
                meta = read_meta(conn, index.schema)
            self._live[region] = (meta["model"], int(meta["dimensions"]))
        return self._live[region]

    def _embedder(self, model: str, dimensions: int) -> QueryEncoder:
        if model not in self._encoders:
            self._encoders[model] = self._encoder_for(model, dimensions)
        return self._encoders[model]

    def warm_up(self) -> None:
        """Load the query encoder, the reranker and the query redaction's models before the first request."""
        self.encoder.embed(["warm up"])
        if self.reranker is not None:
            self.reranker.score("warm up", ["warm up"])
        if isinstance(pending := self.redact_query("warm up"), Future):
            pending.result()

    def close(self) -> None:
        """Close the catalog's database pools."""
        self.catalog.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query_vectors(self, query: str, regions: list[str]) -> dict[str, Any]:
        """The query embedded with each region's live model (once per distinct model)."""
        by_model: dict[str, Any] = {}
        out = {}
        for region in regions:
            model, dims = self.live_model(region)
            if model not in by_model:
                try:
                    by_model[model] = self._embedder(model, dims).embed([query])[0]
                except (OSError, ValueError) as exc:
                    raise IndexError_(
                        f"the {region!r} index was built with model {model!r}, which cannot be loaded here"
                    ) from exc
            out[region] = by_model[model]
        return out

    def regions_for(self, principal: PrincipalConfig) -> list[str]:
        """The regions to search: the principal's regions that hold an index."""
        return sorted(set(principal.regions) & set(self.config.regions))

    def search(
        self,
        principal: PrincipalConfig,
        query: str,
        k: int,
        *,
        auth_method: AuthMethod = AuthMethod.API_KEY,
        filters: SearchFilters = NO_FILTERS,
        conversation_tokens_left: int | None = None,
    ) -> SearchOutcome:
        """The ``k`` best chunks the principal may read, merged across its regions, audited.

        ``conversation_tokens_left`` is what the caller's conversation may still receive: results
        past it are withheld like results past ``max_context_tokens`` (reason ``conversation_budget``).

        ``retrieval.mode`` picks the candidates (dense, lexical, or both fused by reciprocal rank); a
        reranker reorders the best ``retrieval.rerank_depth`` and its calibrated probability for the
        best is the confidence (else it comes from the cosine ``score``s).
        """
        grants = principal.grants()
        regions = self.regions_for(principal)
        redacted = self.redact_query(query)  # may run beside the search (a future)
        # Confidence and decision read the same candidates whatever k is (see WINDOW).
        depth = max(k, WINDOW, self.settings.rerank_depth if self.reranker else 0)
        try:
            hits = self._ranked(query, grants, regions, depth, filters)
        except _VersionChanged:  # a region switched index version meanwhile: embed again, once
            hits = self._ranked(query, grants, regions, depth, filters)
        probability = None
        if self.reranker is not None and hits:
            hits = rerank(query, hits, self.reranker, self.settings.rerank_depth)
            probability = self.reranker.probability(hits[0].rerank_score or 0.0)
        limit = self.settings.max_context_tokens
        left = limit if conversation_tokens_left is None else max(0, conversation_tokens_left)
        kept = self._within_budget(hits[:k], min(limit, left))
        model = self.live_model(kept[0].residency)[0] if kept else self.encoder.model_name
        evidence = hits[:WINDOW] if kept else []
        conf, decision, reasons = decide(
            [h.score for h in evidence],
            self.settings,
            query=query,
            lexical=[h.lexical_score for h in evidence],
            calibration=self.calibration_for(model),
            documents=[h.document_id for h in evidence],
            texts=[h.text for h in evidence],
            handoff_below=self._threshold(principal, kept),
            probability=probability,
            over_budget=bool(hits) and not kept,
        )
        if left < limit and reasons == [Reason.CONTEXT_BUDGET]:
            reasons = [Reason.CONVERSATION_BUDGET]
        outcome = SearchOutcome(kept, conf, decision, reasons, regions, sum(h.tokens for h in kept))
        text = redacted.result() if isinstance(redacted, Future) else redacted  # a failure fails the search
        self._audit(principal, auth_method, text, k, outcome)
        return outcome

    def _ranked(
        self, query: str, grants: list[str], regions: list[str], k: int, filters: SearchFilters
    ) -> list[SearchHit]:
        vectors = self.query_vectors(query, regions)
        mode = self.settings.mode
        n = max(k, self.settings.candidates) if mode == RetrievalMode.HYBRID else k
        dense, lexical = [], []
        for r in regions:
            if mode != RetrievalMode.LEXICAL:
                dense += self.search_region(r, regions, vectors[r], grants, n, filters)
            if mode != RetrievalMode.DENSE:
                lexical += self.lexical_region(r, regions, query, vectors[r], grants, n, filters)
        if mode == RetrievalMode.HYBRID:
            return fuse(dense, lexical, self.settings.rrf_k, n)
        # Cosine scores come from one model, so they compare across regions; so do full-text ranks.
        if mode == RetrievalMode.LEXICAL:
            return sorted(lexical, key=lambda h: (-(h.lexical_score or 0.0), h.chunk_id))
        return sorted(dense, key=lambda h: (-h.score, h.chunk_id))

    def _within_budget(self, hits: list[SearchHit], budget: int) -> list[SearchHit]:
        """Count each result's tokens and keep results, best first, while they fit ``budget``."""
        counts = self.encoder.count_tokens([h.text for h in hits])
        kept, used = [], 0
        for hit, n in zip(hits, counts, strict=True):
            if used + n > budget:
                break
            kept.append(replace(hit, tokens=n))
            used += n
        return kept

    def _threshold(self, principal: PrincipalConfig, hits: list[SearchHit]) -> float | None:
        """The handoff threshold: the principal's own, else the top result's source's, else the default."""
        if principal.handoff_below is not None:
            return principal.handoff_below
        if hits:
            source = next((s for s in self.config.sources if s.name == hits[0].source), None)
            if source is not None and source.handoff_below is not None:
                return source.handoff_below
        return None

    def _audit(
        self, principal: PrincipalConfig, auth_method: AuthMethod, redacted: str, k: int, out: SearchOutcome
    ) -> None:
        record = AuditRecord(
            request_id=out.request_id,
            principal=principal.name,
            auth_method=auth_method,
            regions=out.regions_searched,
            query_redacted=redacted,
            k=k,
            decision=out.decision,
            reasons=out.reasons,
            confidence=out.confidence,
        )
        ids = {
            r: [uuid.UUID(h.chunk_id) for h in out.results if h.residency == r] for r in out.regions_searched
        }
        self._record_audit(record, ids)

    def search_region(
        self,
        region: str,
        regions: list[str],
        vector: Any,
        grants: list[str],
        k: int,
        filters: SearchFilters = NO_FILTERS,
    ) -> list[SearchHit]:
        """The ``k`` closest chunks in one region that ``grants`` may read (no audit, no decision)."""
        index = self.catalog.index(region)
        query = sql.SQL(
            # The nearest n >= k by the index (an iterative scan asked for more searches wider under a
            # filter, and returns rows only roughly in order), then the best k by score (column 4), id.
            "SELECT * FROM (SELECT {cols}, NULL::real FROM {s}.chunks c WHERE {where}"
            " ORDER BY c.embedding <=> %(v)s LIMIT %(n)s) AS nearest ORDER BY 4 DESC, 1 LIMIT %(k)s"
        ).format(
            cols=_COLUMNS, where=_WHERE.format(s=sql.Identifier(index.schema)), s=sql.Identifier(index.schema)
        )
        params = {"v": vector, "grants": grants, "region": region, "k": k, **_filter_params(filters)}
        params["n"] = max(k, self.settings.hnsw_candidates)
        return self._run(region, query, params, grants, regions, hnsw=True)

    def lexical_region(
        self,
        region: str,
        regions: list[str],
        text: str,
        vector: Any,
        grants: list[str],
        k: int,
        filters: SearchFilters = NO_FILTERS,
    ) -> list[SearchHit]:
        """The ``k`` best full-text matches in one region (on redacted text), with their cosine scores."""
        index = self.catalog.index(region)
        query = sql.SQL(
            # The query's words as a full-text query that matches a chunk holding any of them (a question
            # in natural language rarely has all its words in one chunk): websearch syntax with its ANDs
            # turned into ORs and no negation. Lexemes hold no spaces, so " & " is always an operator.
            "SELECT {cols}, ts_rank_cd(c.tsv, q)::real FROM {s}.chunks c,"
            " (SELECT replace(replace(websearch_to_tsquery('english', %(q)s)::text, ' & ', ' | '), '!', '')::tsquery)"
            " AS w(q)"
            " WHERE c.tsv @@ q AND {where} ORDER BY ts_rank_cd(c.tsv, q) DESC, c.chunk_id LIMIT %(k)s"
        ).format(
            cols=_COLUMNS, where=_WHERE.format(s=sql.Identifier(index.schema)), s=sql.Identifier(index.schema)
        )
        params = {"q": text, "v": vector, "grants": grants, "region": region, "k": k}
        params.update(_filter_params(filters))
        return self._run(region, query, params, grants, regions, hnsw=False)

    def _run(
        self,
        region: str,
        query: sql.Composed,
        params: dict[str, Any],
        grants: list[str],
        regions: list[str],
        *,
        hnsw: bool,
    ) -> list[SearchHit]:
        index = self.catalog.index(region)
        with connection(index.pool) as conn, conn.transaction():
            # Held until commit: a switch to a new index version waits, or has already happened.
            conn.execute(
                "SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (version_lock_key(index.schema),)
            )
            if read_meta(conn, index.schema).get("model") != self.live_model(region)[0]:
                self._live.pop(region, None)
                raise _VersionChanged(region)
            set_caller(conn, grants, regions)
            if hnsw:
                # Iterative scans keep an access-filtered HNSW search returning k rows when k exist.
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(self.settings.ef_search),))
                conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            return _hits(conn.execute(query, params).fetchall())


_COLUMNS = sql.SQL(
    "c.chunk_id, c.document_id, c.text, 1 - (c.embedding <=> %(v)s), c.source, c.source_uri, c.residency,"
    " c.seq, c.page_number, c.version, c.redactions"
)
# Access and residency repeat the RLS policy (for the planner); the rest are the caller's filters.
# {s} is formatted with the schema where the query is composed.
_WHERE = sql.SQL(
    "c.access && %(grants)s::text[] AND c.residency = %(region)s"
    " AND (c.source_access IS NULL OR c.source_access && %(grants)s::text[])"
    " AND (%(sources)s::text[] IS NULL OR c.source = ANY(%(sources)s::text[]))"
    " AND (%(types)s::text[] IS NULL AND %(after)s::timestamptz IS NULL OR EXISTS ("
    "   SELECT 1 FROM {s}.documents d WHERE d.document_id = c.document_id"
    "   AND (%(types)s::text[] IS NULL OR d.content_type = ANY(%(types)s::text[]))"
    "   AND (%(after)s::timestamptz IS NULL OR d.modified_at > %(after)s::timestamptz)))"
)


def _filter_params(filters: SearchFilters) -> dict[str, Any]:
    return {
        "sources": list(filters.sources) if filters.sources is not None else None,
        "types": list(filters.content_types) if filters.content_types is not None else None,
        "after": filters.modified_after,
    }


def _hits(rows: list[Any]) -> list[SearchHit]:
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
            lexical_score=None if r[11] is None else round(float(r[11]), 4),
        )
        for r in rows
    ]
