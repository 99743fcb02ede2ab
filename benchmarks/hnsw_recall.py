"""Benchmark: HNSW recall@10 against exact search under a 1% access filter, at 100k and 1M chunks.

For each size a fresh database on a private embedded server gets the project's own schema (roles,
row-level security, the HNSW index ``vector_cosine_ops``), filled by binary COPY with synthetic
384-d vectors (clustered like sentence embeddings: topics, documents, chunks; see ``vectors``).
1% of the documents (and so of the chunks) are readable by the benchmark principal's group, the
rest by another group. The HNSW index is then built as ``groundwork migrate`` creates it (the
same DDL, run by the project's schema code) and timed.

Each query runs through the product's search path (``Retriever.search_region`` as the reader
role: row-level security, the access filter, ``retrieval.ef_search``, iterative scans) and its
top 10 is compared with the exact top 10 (the owner, the same filter, index scans off). Variants:
- exact: the product path with index scans off (the latency baseline; its recall must be 1.0);
- planned: the product path as the planner chooses (at 1% it may skip HNSW for an exact scan);
- hnsw: the product path with the planner made to use the HNSW index (what "HNSW recall" means),
  for each ``retrieval.hnsw_candidates`` of ``--candidates`` (how many readable chunks the index is
  asked for before the best 10 are kept; 10 is no over-fetch);
- hnsw+wide: as hnsw, with a larger iterative-scan budget (``hnsw.max_scan_tuples``,
  ``hnsw.scan_mem_multiplier``).
Planner settings are given to the reader role (``ALTER ROLE ... IN DATABASE``), so the product code
runs unchanged. Latency ratios are against the exact baseline of the same run.

Usage (from the project root): python -m benchmarks.hnsw_recall [--rows 100000 --rows 1000000] [--queries 200]
Quick check: python -m benchmarks.hnsw_recall --rows 20000 --queries 50
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml
from pgvector.psycopg import register_vector
from psycopg import sql

from benchmarks.hnsw_corpus import CHUNKS_PER_DOC, DIM, Corpus, Vectors, chunk_id, doc_id
from groundwork.offline import configure_offline
from groundwork.settings import GroundworkConfig, load_config
from indexes.catalog import IndexCatalog
from indexes.embedded import EmbeddedServer
from indexes.regions import RegionTarget
from indexes.schema import version_settings
from indexes.search import Retriever
from serving.retrieval import build_retriever

REGION = "uk"
GROUP = "group:bench-target"
OTHERS = "group:bench-others"
K = 10
#: Planner settings of each variant, given to the reader role.
EXACT = {"enable_indexscan": "off"}
FORCE_HNSW = {"enable_seqscan": "off", "enable_bitmapscan": "off"}
WIDE = {"hnsw.max_scan_tuples": "100000", "hnsw.scan_mem_multiplier": "8"}


class Progress:
    """Prints ``report()`` every ``every`` seconds from a thread while a long step runs."""

    def __init__(self, report: Callable[[], str | None], every: float) -> None:
        self.report, self.every = report, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(psycopg.Error):
                line = self.report()
                if line:
                    print(f"    ... {line}", flush=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Outcome:
    """One variant's figures over the query set."""

    name: str
    ef_search: int
    candidates: int
    recall: float
    recall_near: float
    recall_far: float
    p50_ms: float
    p95_ms: float
    hnsw_scans: int
    short: int
    queries: int


class Bench:
    """One size: a fresh database with the project's schema, the corpus loaded, the index built."""

    def __init__(self, server: EmbeddedServer, workdir: Path, corpus: Corpus, maintenance_mem: str) -> None:
        self.corpus = corpus
        name = f"hnsw_{corpus.rows}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.database = name
        data = {
            "sources": [
                dict(name="s", connector="filesystem", path="docs", residency=REGION, access=[OTHERS])
            ],
            "database": {"url": server.dsn(name)},
            "state_dir": str(workdir / name),
        }
        (workdir / "docs").mkdir(exist_ok=True)
        (workdir / f"{name}.yaml").write_text(yaml.safe_dump(data))
        self.config: GroundworkConfig = load_config(workdir / f"{name}.yaml")
        self.catalog = IndexCatalog(self.config)
        self.settings = version_settings(self.config, redaction="benchmark")
        self.catalog.migrate(REGION, self.settings)
        self.target: RegionTarget = self.catalog.targets[REGION]
        self.schema = sql.Identifier(self.target.schema)
        with psycopg.connect(self.target.owner_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET maintenance_work_mem = {}").format(
                    sql.Identifier(name), sql.Literal(maintenance_mem)
                )
            )

    def owner(self) -> psycopg.Connection:
        """A connection as the owner, with pgvector's types."""
        conn = psycopg.connect(self.target.owner_dsn)
        register_vector(conn)
        return conn

    def load(self) -> float:
        """COPY the documents and chunks (binary) with the HNSW index dropped; returns seconds."""
        c = self.corpus
        t0 = time.perf_counter()
        with self.owner() as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP INDEX {}.chunks_embedding_hnsw").format(self.schema))
            with cur.copy(
                sql.SQL(
                    "COPY {}.documents (document_id, source, source_id, source_uri, version, content_type,"
                    " residency, access, access_digest, element_count, chunk_count) FROM STDIN (FORMAT BINARY)"
                ).format(self.schema)
            ) as copy:
                copy.set_types(
                    ["uuid", "text", "text", "text", "text", "text", "text", "text[]", "text", "int4", "int4"]
                )
                target = set(c.target_docs.tolist())
                for d in range(c.n_docs):
                    access = [GROUP] if d in target else [OTHERS]
                    row = (doc_id(d), "s", f"doc-{d}", f"file:///doc-{d}", "v1", "text/plain", REGION)
                    copy.write_row((*row, access, "d", 1, CHUNKS_PER_DOC))
            with cur.copy(
                sql.SQL(
                    "COPY {}.chunks (chunk_id, document_id, seq, text, embedding, residency, access, source,"
                    " source_uri, version) FROM STDIN (FORMAT BINARY)"
                ).format(self.schema)
            ) as copy:
                copy.set_types(
                    ["uuid", "uuid", "int4", "text", "vector", "text", "text[]", "text", "text", "text"]
                )
                for start, block in c.blocks():
                    for j, vector in enumerate(block):
                        i = start + j
                        d = min(i // CHUNKS_PER_DOC, c.n_docs - 1)
                        access = [GROUP] if d in target else [OTHERS]
                        fields = (chunk_id(i), doc_id(d), i, f"chunk {i} of document {d}", vector, REGION)
                        copy.write_row((*fields, access, "s", f"file:///doc-{d}", "v1"))
                    if (start // 20_000) % 10 == 9:
                        print(
                            f"    ... {start + len(block):,} rows copied, {time.perf_counter() - t0:.0f} s",
                            flush=True,
                        )
            conn.commit()
            conn.autocommit = True
            cur.execute(sql.SQL("VACUUM ANALYZE {}.chunks").format(self.schema))
            cur.execute(sql.SQL("ANALYZE {}.documents").format(self.schema))
            # Vacuumed and analysed above. An autovacuum started now would wait for the index
            # build's transaction (it updates the table's pg_class row) while holding a lock the
            # rest of that transaction needs: PostgreSQL then ends the build with a deadlock.
            for table in ("chunks", "documents"):
                cur.execute(
                    sql.SQL("ALTER TABLE {}.{} SET (autovacuum_enabled = off)").format(
                        self.schema, sql.Identifier(table)
                    )
                )
        return time.perf_counter() - t0

    def build(self, workers: int) -> float:
        """Create the HNSW index with the project's schema code (as ``groundwork migrate``); returns seconds."""
        with psycopg.connect(self.target.owner_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET max_parallel_maintenance_workers = {}").format(
                    sql.Identifier(self.database), sql.Literal(workers)
                )
            )
        t0 = time.perf_counter()
        with psycopg.connect(self.target.owner_dsn, autocommit=True) as watcher:

            def report() -> str | None:
                row = watcher.execute(
                    "SELECT phase, tuples_done, tuples_total FROM pg_stat_progress_create_index"
                    " WHERE datname = current_database()"
                ).fetchone()
                if row is None:
                    return None
                phase, done, total = row
                total = total or self.corpus.rows  # pgvector counts the tuples done, not the total
                rate = done / max(1e-9, time.perf_counter() - t0)
                eta = f", about {(total - done) / rate / 60:.0f} min left" if total and rate else ""
                return f"{phase}: {done:,}/{total:,} tuples, {rate:,.0f}/s{eta}"

            with Progress(report, 30.0):
                # CREATE INDEX IF NOT EXISTS ... hnsw (repair: the index is otherwise up to date)
                self.catalog.migrate(REGION, self.settings, repair=True)
        return time.perf_counter() - t0

    def exact(self, queries: Vectors, grants: list[str] | None = None) -> list[list[str]]:
        """The true top ``K`` chunks ``grants`` may read per query: the owner, the same filter, no index scans."""
        out = []
        with self.owner() as conn:
            conn.execute("SET enable_indexscan = off")
            for q in queries:
                rows = conn.execute(
                    sql.SQL(
                        "SELECT chunk_id::text FROM {}.chunks WHERE access && %s::text[] AND residency = %s"
                        " ORDER BY embedding <=> %s, chunk_id LIMIT %s"
                    ).format(self.schema),
                    (grants or [GROUP], REGION, q, K),
                ).fetchall()
                out.append([r[0] for r in rows])
        return out

    def _reader_settings(self, settings: dict[str, str]) -> None:
        role = sql.Identifier(self.config.database.reader_role)
        with psycopg.connect(self.target.owner_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(role, sql.Identifier(self.database))
            )
            for key, value in settings.items():
                conn.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                        role, sql.Identifier(self.database), sql.SQL(key), sql.Literal(value)
                    )
                )

    def _hnsw_scans(self, *, after_reader_exits: bool = False) -> int:
        """Scans of the HNSW index so far; a backend's counts reach the view when it exits."""
        with psycopg.connect(self.target.owner_dsn, autocommit=True) as conn:
            for _ in range(100 if after_reader_exits else 0):
                left = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = %s",
                    (self.config.database.reader_role,),
                ).fetchone()
                if left is not None and left[0] == 0:
                    break
                time.sleep(0.05)
            row = conn.execute(
                "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'chunks_embedding_hnsw'"
                " AND schemaname = %s",
                (self.target.schema,),
            ).fetchone()
        return int(row[0]) if row else 0

    def variant(
        self,
        name: str,
        settings: dict[str, str],
        ef: int,
        queries: Vectors,
        truth: list[list[str]],
        grants: list[str] | None = None,
        candidates: int | None = None,
    ) -> Outcome:
        """Run every query through the product's search path with ``settings`` for the reader role
        (``retrieval.ef_search`` = ``ef``; ``retrieval.hnsw_candidates`` = ``candidates`` if given)."""
        grants = grants or [GROUP]
        self._reader_settings(settings)
        before = self._hnsw_scans()
        retriever: Retriever = build_retriever(self.config)
        update = {"ef_search": ef} | ({"hnsw_candidates": candidates} if candidates is not None else {})
        retriever.settings = retriever.settings.model_copy(update=update)
        candidates = retriever.settings.hnsw_candidates
        recalls, times, short = [], [], 0
        try:
            for q in queries[: min(20, len(queries))]:  # warm the caches and the pool
                retriever.search_region(REGION, [REGION], q, grants, K)
            for q, exact in zip(queries, truth, strict=True):
                t0 = time.perf_counter()
                hits = retriever.search_region(REGION, [REGION], q, grants, K)
                times.append(time.perf_counter() - t0)
                short += len(hits) < K
                recalls.append(recall_at_k([h.chunk_id for h in hits], exact))
        finally:
            retriever.close()
        total = len(times) + min(20, len(queries))
        scans = self._hnsw_scans(after_reader_exits=True) - before
        self._reader_settings({})
        half = len(queries) // 2
        near, far = statistics.fmean(recalls[:half] or [1.0]), statistics.fmean(recalls[half:] or [1.0])
        return Outcome(
            name,
            ef,
            candidates,
            statistics.fmean(recalls),
            near,
            far,
            ms(times, 50),
            ms(times, 95),
            scans,
            short,
            total,
        )


def recall_at_k(found: list[str], exact: list[str], k: int = K) -> float:
    """Share of the exact top ``k`` found among the first ``k`` results (1.0 when there is nothing to find)."""
    wanted = set(exact[:k])
    return len(wanted & set(found[:k])) / len(wanted) if wanted else 1.0


def ms(values: list[float], q: int) -> float:
    """The q-th percentile, in milliseconds."""
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def run_size(server: EmbeddedServer, workdir: Path, args: argparse.Namespace, rows: int) -> list[Outcome]:
    """Load, build and measure one size; prints as it goes."""
    corpus = Corpus(rows, args.share)
    print(
        f"\n== {rows:,} chunks, {len(corpus.target_docs) * CHUNKS_PER_DOC:,} readable ({args.share:.0%}), {DIM}-d",
        flush=True,
    )
    bench = Bench(server, workdir, corpus, args.maintenance_work_mem)
    print(f"  load (binary COPY): {bench.load():.1f} s", flush=True)
    build = bench.build(args.workers)
    print(
        f"  HNSW build (m=16, ef_construction=64, maintenance_work_mem={args.maintenance_work_mem},"
        f" {args.workers} parallel worker(s)): {build:.1f} s ({rows / build:,.0f} rows/s)",
        flush=True,
    )
    queries = corpus.queries(args.queries)
    truth = bench.exact(queries)
    default_ef = bench.config.retrieval.ef_search
    everyone = [GROUP, OTHERS]
    truth_all = bench.exact(queries, everyone) if args.unfiltered else []
    default_n = bench.config.retrieval.hnsw_candidates
    plan: list[tuple[str, dict[str, str], int, int, list[str]]] = [
        ("exact", EXACT, default_ef, default_n, [GROUP])
    ]
    plan += [("planned", {}, ef, default_n, [GROUP]) for ef in args.ef]
    plan += [("hnsw", FORCE_HNSW, ef, n, [GROUP]) for n in args.candidates for ef in args.ef]
    plan += [("hnsw+wide", FORCE_HNSW | WIDE, default_ef, default_n, [GROUP])]
    # The index's own recall with no filter: what the filter costs on top of it.
    plan += [("no filter", {}, ef, default_n, everyone) for ef in args.ef if args.unfiltered]
    outcomes = []
    print(
        f"  {'variant':<10} {'ef_search':>9} {'fetched':>7} {'recall@10':>9} {'near':>6} {'far':>6} {'p50 ms':>8} {'p95 ms':>8} {'x exact':>7} {'HNSW used':>10} {'<k':>4}"
    )
    for name, settings, ef, n, grants in plan:
        o = bench.variant(name, settings, ef, queries, truth if grants == [GROUP] else truth_all, grants, n)
        outcomes.append(o)
        base = outcomes[0].p50_ms
        mark = " (default)" if ef == default_ef and n == default_n else ""
        print(
            f"  {o.name:<10} {o.ef_search:>9} {o.candidates:>7} {o.recall:>9.4f} {o.recall_near:>6.3f} {o.recall_far:>6.3f} {o.p50_ms:>8.2f} {o.p95_ms:>8.2f}"
            f" {o.p50_ms / base:>7.2f} {o.hnsw_scans:>5}/{o.queries:<4} {o.short:>4}{mark}",
            flush=True,
        )
    print(
        f"  (wide = {', '.join(f'{k}={v}' for k, v in WIDE.items())}; near/far: recall of the queries near a readable document / about any topic; <k = queries returning fewer than {K}; no filter: every chunk readable, against its own exact top {K})"
    )
    bench.catalog.close()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, action="append", help="chunks per run (repeatable); default 100000 and 1000000"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--share", type=float, default=0.01, help="share of chunks the principal may read")
    parser.add_argument("--ef", default="40,100,200,400", help="ef_search values to try, comma-separated")
    parser.add_argument(
        "--candidates",
        default="10,40",
        help="retrieval.hnsw_candidates values to try with the forced index, comma-separated (10: no over-fetch)",
    )
    parser.add_argument("--maintenance-work-mem", default="6GB", help="for the index build")
    parser.add_argument("--workers", type=int, default=1, help="max_parallel_maintenance_workers")
    parser.add_argument("--unfiltered", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--data-dir", type=Path, help="embedded server folder (default: a temporary one)")
    args = parser.parse_args()
    args.ef = [int(x) for x in args.ef.split(",")]
    args.candidates = [int(x) for x in args.candidates.split(",")]
    configure_offline()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="gw-hnsw-") as tmp:
        workdir = Path(tmp)
        server = EmbeddedServer(args.data_dir or workdir / "pgdata")
        server.start()
        try:
            for rows in args.rows or [100_000, 1_000_000]:
                run_size(server, workdir, args, rows)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
