"""Benchmark: ingest throughput, end-to-end vs raw embedding throughput, and API latency.

Every figure is printed with a baseline measured in the same run, since shared machines are noisy:
- ingest chunks/s against raw float32 embedding chunks/s on the same chunk texts (the ratio shows
  what partitioning, redaction and indexing cost on top of the model); with ``--backend onnx_int8``
  the ingest embeds with the int8 model, and its raw rate over float32's is printed too;
- API latency p50/p95 under 8 concurrent clients against the in-process retriever's latency for the
  same queries (the ratio is the HTTP, auth, serialisation and contention overhead);
- a re-ingest of the unchanged corpus, and a re-sync after 1% of the documents changed, against the
  first ingest (time, and embeddings computed).

Usage: python benchmarks/bench.py [--config examples/demo/groundwork.yaml] [--copies 4]
           [--backend torch|onnx_int8] [--requests 25]
The corpus of every source in the config is copied ``--copies`` times into a temporary folder and
ingested into a fresh embedded database there; nothing in the project is modified. The models and
the parser processes are loaded before the timed ingest (a run's fixed start-up is not throughput).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import platform
import shutil
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn
import yaml

from connectors.filesystem import FilesystemSettings
from groundwork.errors import DocumentError
from groundwork.offline import configure_offline
from groundwork.settings import PrincipalConfig, SourceConfig, load_config
from indexes.embedded import EmbeddedServer
from indexes.regions import embedded_data_dir
from indexes.search import Retriever
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.partition import SUPPORTED_TYPES, partition_document, suffix_of
from serving.api import create_app
from serving.retrieval import build_retriever

QUERIES = [
    "How many days of annual leave do I get?",
    "What are the salary bands for a senior engineer?",
    "How do I report sickness absence?",
    "What is the daily meal allowance when travelling?",
    "Is multi-factor authentication mandatory?",
    "Can I work from home?",
    "How do I declare a gift?",
    "What is the best recipe for banana bread?",
]
CLIENTS = 8


def folder_of(source: SourceConfig) -> Path:
    """The folder of a filesystem source (the benchmark copies and edits files)."""
    if not isinstance(source.settings, FilesystemSettings):
        raise SystemExit(f"the benchmark copies folders: source {source.name!r} is not a filesystem source")
    return source.settings.path


def prepare(config_path: Path, copies: int, workdir: Path, backend: str | None = None) -> tuple[Path, str]:
    """A config whose sources are ``copies`` copies of the originals, with a fresh state folder (and
    ``embedding.backend`` set to ``backend`` when given)."""
    config = load_config(config_path)
    data = yaml.safe_load(config_path.read_text())
    for raw, source in zip(data["sources"], config.sources, strict=True):
        target = workdir / "corpus" / source.name
        for i in range(copies):
            shutil.copytree(folder_of(source), target / f"copy{i}")
        raw["path"] = str(target)
    data["state_dir"] = str(workdir / "state")
    data.pop("database", None)
    if backend is not None:
        data["embedding"] = {**data.get("embedding", {}), "backend": backend}
    (workdir / "bench.yaml").write_text(yaml.safe_dump(data))
    principal = config.principals[0].name if config.principals else ""
    return workdir / "bench.yaml", principal


def pct(values: list[float], q: int) -> float:
    """The q-th percentile, in milliseconds."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def warm_partitioners(services: Services) -> None:
    """Partition one file of each type first, so the timed ingest excludes unstructured's lazy imports."""
    seen: set[str] = set()
    for connector in services.connectors.values():
        for ref in connector.list():
            suffix = suffix_of(ref.filename)
            if suffix in SUPPORTED_TYPES and suffix not in seen:
                seen.add(suffix)
                with contextlib.suppress(DocumentError):
                    partition_document(ref, connector.fetch(ref))
    # The parser processes load unstructured (seconds), as they do while a run loads its models.
    services.partition_pool.ready.result(timeout=180)


def timed_searches(
    retriever: Retriever, principal: PrincipalConfig, clients: int, rounds: int
) -> list[float]:
    """Latencies of in-process searches from ``clients`` threads, each running every query ``rounds`` times."""

    def one(n: int) -> list[float]:
        out = []
        for i in range(rounds * len(QUERIES)):
            t0 = time.perf_counter()
            retriever.search(principal, QUERIES[(n + i) % len(QUERIES)], 5)
            out.append(time.perf_counter() - t0)
        return out

    with ThreadPoolExecutor(clients) as pool:
        return [x for part in pool.map(one, range(clients)) for x in part]


def touch_one_percent(services: Services, indexed: int) -> int:
    """Append a line to 1% of the indexed documents (text formats), so their content changes."""
    wanted = max(1, round(indexed / 100))
    changed = 0
    for source in services.config.sources:
        for path in sorted(folder_of(source).rglob("*")):
            if changed >= wanted:
                return changed
            if path.suffix in {".md", ".txt"}:
                with path.open("a", encoding="utf-8") as f:
                    f.write("\n\nUpdated: this section was reviewed again this quarter.\n")
                changed += 1
    return changed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="examples/demo/groundwork.yaml")
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--requests", type=int, default=25, help="requests per API client")
    parser.add_argument(
        "--backend", choices=["torch", "onnx_int8"], default=None, help="embedding.backend of the ingest"
    )
    args = parser.parse_args()
    configure_offline()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    logging.getLogger("pipelines.stages").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        bench_config, principal_name = prepare(
            Path(args.config).resolve(), args.copies, Path(tmp), args.backend
        )
        config = load_config(bench_config)
        services = Services(config)
        try:
            print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
            print("loading models ...", flush=True)
            services.redactor.redact("warm up")
            services.embedder.embed(["warm up"])
            warm_partitioners(services)

            t0 = time.perf_counter()
            plan, reports = run_all(services)
            ingest_s = time.perf_counter() - t0
            docs = sum(r.documents_written for r in reports)
            failed = sum(len(r.failures) for r in reports)
            chunks = sum(r.chunks_written for r in reports)
            print(
                f"\ningest: {len(plan.tasks)} documents listed, {docs} indexed, {failed} failed, {chunks} chunks"
            )
            print(
                f"  {ingest_s:.2f} s  ->  {docs / ingest_s:.2f} documents/s, {chunks / ingest_s:.2f} chunks/s"
            )

            texts = []
            for region in config.regions:
                index = services.index(region)
                with index.pool.connection() as conn:
                    texts += [r[0] for r in conn.execute(f"SELECT text FROM {index.schema}.chunks")]  # noqa: S608
            fp32 = Embedder(config.embedding.model_copy(update={"backend": "torch"}))
            fp32.embed(["warm up"])
            t0 = time.perf_counter()
            fp32.embed(texts)
            raw_s = time.perf_counter() - t0
            raw_rate = len(texts) / raw_s
            print(
                f"raw float32 embedding of the same {len(texts)} chunks: {raw_s:.2f} s -> {raw_rate:.2f} chunks/s"
            )
            if config.embedding.backend != "torch":
                t0 = time.perf_counter()
                services.embedder.embed(texts)
                own_rate = len(texts) / (time.perf_counter() - t0)
                print(
                    f"raw {config.embedding.backend} embedding: {own_rate:.2f} chunks/s, "
                    f"{own_rate / raw_rate:.2f} x float32"
                )
            print(f"  end-to-end / raw float32 embedding throughput: {(chunks / ingest_s) / raw_rate:.3f}")

            t0 = time.perf_counter()
            plan2, reports2 = run_all(services)
            resync_s = time.perf_counter() - t0
            print(
                f"re-ingest of the unchanged corpus: {resync_s:.2f} s, {len(plan2.tasks)} documents processed, "
                f"{sum(r.documents_written for r in reports2)} written; ratio to first ingest {resync_s / ingest_s:.3f}"
            )

            changed = touch_one_percent(services, docs)
            t0 = time.perf_counter()
            plan3, reports3 = run_all(services)
            change_s = time.perf_counter() - t0
            embedded3 = sum(r.chunks_written for r in reports3)
            print(
                f"re-sync after changing {changed} documents (1% of {docs}): {change_s:.2f} s, "
                f"{len(plan3.tasks)} documents processed, {embedded3} embeddings computed"
            )
            print(
                f"  against the full ingest: time {change_s / ingest_s:.3f}, embeddings {embedded3 / max(chunks, 1):.3f}"
            )

            if not principal_name:
                print("\n(no principals configured: API latency skipped)")
                return
            principal = config.principal(principal_name)
            retriever = build_retriever(config, redactor=services.redactor, embedder=services.embedder)
            direct_1 = timed_searches(retriever, principal, 1, 3)
            direct_n = timed_searches(retriever, principal, CLIENTS, 3)
            hybrid_config = config.model_copy(
                update={"retrieval": config.retrieval.model_copy(update={"mode": "hybrid"})}
            )
            with build_retriever(
                hybrid_config, redactor=services.redactor, embedder=services.embedder
            ) as hybrid_reader:
                hybrid_1 = timed_searches(hybrid_reader, principal, 1, 3)
            print(
                f"\nhybrid / dense retrieval latency, 1 thread: p50 {pct(hybrid_1, 50) / pct(direct_1, 50):.2f}, "
                f"p95 {pct(hybrid_1, 95) / pct(direct_1, 95):.2f} "
                f"(hybrid p50 {pct(hybrid_1, 50):.1f} ms, dense p50 {pct(direct_1, 50):.1f} ms)"
            )

            key = "bench-key"
            data = yaml.safe_load(bench_config.read_text())
            for p in data["principals"]:
                if p["name"] == principal_name:
                    p["api_key_sha256"] = hashlib.sha256(key.encode()).hexdigest()
            # The benchmark measures latency, not the per-principal rate limit.
            data["api"] = {
                **data.get("api", {}),
                "rate_limit_per_minute": 1_000_000,
                "rate_limit_burst": 100_000,
            }
            bench_config.write_text(yaml.safe_dump(data))
            app = create_app(load_config(bench_config), retriever)
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)

            def client(n: int) -> list[float]:
                out = []
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                    for i in range(args.requests):
                        t0 = time.perf_counter()
                        r = c.post(
                            "/v1/search",
                            json={"query": QUERIES[(n + i) % len(QUERIES)], "k": 5},
                            headers={"Authorization": f"Bearer {key}"},
                        )
                        out.append(time.perf_counter() - t0)
                        r.raise_for_status()
                return out

            t0 = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                latencies = [x for part in pool.map(client, range(CLIENTS)) for x in part]
            wall = time.perf_counter() - t0
            server.should_exit = True
            thread.join(timeout=10)
            print(f"\nAPI POST /v1/search, {CLIENTS} concurrent clients, {len(latencies)} requests:")
            print(
                f"  p50 {pct(latencies, 50):.1f} ms, p95 {pct(latencies, 95):.1f} ms, {len(latencies) / wall:.1f} req/s"
            )
            for label, values in (("1 thread", direct_1), (f"{CLIENTS} threads", direct_n)):
                print(
                    f"in-process retriever, {label}: p50 {pct(values, 50):.1f} ms, p95 {pct(values, 95):.1f} ms"
                )
            print(
                f"  API / in-process at {CLIENTS} threads: p50 {pct(latencies, 50) / pct(direct_n, 50):.2f}, "
                f"p95 {pct(latencies, 95) / pct(direct_n, 95):.2f}"
            )
        finally:
            services.close()
            if "retriever" in locals():
                retriever.close()
            EmbeddedServer(embedded_data_dir(config)).stop()


if __name__ == "__main__":
    main()
