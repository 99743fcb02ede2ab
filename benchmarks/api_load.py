"""Benchmark: the retrieval API under concurrent clients, against the model work its requests need.

Ingests the demo corpus into a fresh embedded database in a temporary folder, then measures in the
same run (shared machines are noisy, so every figure has its baseline beside it):

- the model work each request needs, alone and batched (``api.batch_max_size``), before and after
  the load: the queries embedded with the live index version's model, and redacted for the audit;
- ``groundwork serve`` (uvicorn on 127.0.0.1, its own process) under 1, 16 and 64 keep-alive
  clients: requests/s, p50, p99, errors, and CPU time a request (serving tree and PostgreSQL);
- the ratios the targets name, memory, and that every answered request has its audit rows.

Usage: python benchmarks/api_load.py [--config examples/demo/groundwork.yaml] [--backend onnx_int8]
           [--clients 1,16,64] [--seconds 20] [--as alice] [--api redaction_processes=0 ...]"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
import yaml
from bench import QUERIES as BENCH_QUERIES  # run as a script beside bench.py, as `make bench` does

from connectors.filesystem import FilesystemSettings
from groundwork.offline import configure_offline
from groundwork.settings import GroundworkConfig, load_config
from indexes.embedded import EmbeddedServer
from indexes.regions import embedded_data_dir
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder

#: The demo keys (the demo config stores their SHA-256).
KEYS = {"alice": "demo-key-alice", "bob": "demo-key-bob"}

#: Distinct questions an employee might ask of the demo corpus: every client cycles through them.
QUERIES = [
    *BENCH_QUERIES,  # the ingest benchmark's questions, then more of the same kind
    "Who do I contact about my pension?",
    "How long is the notice period for resignation?",
    "What happens at a grievance hearing?",
    "Can I carry over unused holiday to next year?",
    "How do I claim back travel expenses?",
    "What equipment do I get for remote working?",
    "Which hotels can I book on a business trip?",
    "When is payroll run each month?",
    "What should new starters do in their first week?",
    "How do I report a lost laptop?",
    "Is private health insurance included?",
    "What is the policy on accepting hospitality?",
    "How often are passwords rotated?",
    "Do I need a fit note after seven days off sick?",
    "How are salary reviews decided?",
    "What is the code of conduct about conflicts of interest?",
    "Can I use my own phone for work email?",
    "What counts as gross misconduct?",
    "How much parental leave is there?",
    "Where do I find the expenses form?",
    "How do I book a meeting room?",
    "Are there rules about working abroad?",
    "What is the dress code?",
    "Who approves overtime?",
]


def prepare(config_path: Path, workdir: Path, backend: str | None, api: list[str]) -> Path:
    """A copy of the config over a copy of its corpus, a fresh state folder, no rate limit."""
    config = load_config(config_path)
    data = yaml.safe_load(config_path.read_text())
    for raw, source in zip(data["sources"], config.sources, strict=True):
        if not isinstance(source.settings, FilesystemSettings):
            raise SystemExit(f"the benchmark copies folders: {source.name!r} is not a filesystem source")
        target = workdir / "corpus" / raw["name"]
        shutil.copytree(source.settings.path, target)
        raw["path"] = str(target)
    data["state_dir"] = str(workdir / "state")
    data.pop("database", None)
    if backend:
        data.setdefault("embedding", {})["backend"] = backend
    # The benchmark measures throughput, not the per-principal rate limit.
    data["api"] = {**data.get("api", {}), "rate_limit_per_minute": 1_000_000, "rate_limit_burst": 100_000}
    for setting in api:  # e.g. redaction_processes=0
        name, _, value = setting.partition("=")
        data["api"][name] = yaml.safe_load(value)
    path = workdir / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: int) -> float:
    """The q-th percentile of ``values`` (seconds), in milliseconds."""
    values = values * 2 if len(values) == 1 else values or [float("nan")] * 2
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def model_rates(services: Services, batch: int, seconds: float) -> list[tuple[float, float]]:
    """[(queries/s, CPU ms per query)] of embedding, then of audit redaction, over :data:`QUERIES` in
    batches of ``batch``, for ``seconds`` each. CPU time counts every thread (the models' own too)."""
    embedder = Embedder(services.config.embedding)  # the model the fresh index version recorded
    embedder.embed(QUERIES[:batch])
    rates = []
    for work in (embedder.embed, services.redactor.redact_many):
        done, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            texts = [QUERIES[(done + i) % len(QUERIES)] for i in range(batch)]
            work(texts)
            done += batch
        rates.append((done / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / done))
    return rates


class Client:
    """One keep-alive HTTP/1.1 connection that posts searches (cheap: the client shares the CPUs)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def search(self, query: str) -> int:
        """POST one search; returns the status (an answer must carry a decision)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = json.dumps({"query": query, "k": 5}).encode()
        head = (
            f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        status = int(status_line.split()[1])
        if status == 200 and "decision" not in json.loads(payload):
            return 0
        return status

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def load(port: int, key: str, clients: int, seconds: float) -> tuple[list[float], Counter[int], float]:
    """``clients`` concurrent clients posting searches for ``seconds``: latencies, errors by status
    (-1: the connection failed, 0: a 200 without a decision), wall time."""
    latencies: list[float] = []
    errors: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds

    async def run(n: int) -> None:
        client = Client(port, key)
        i = n
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    status = await client.search(QUERIES[i % len(QUERIES)])
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    status = -1
                    await client.close()
                    client = Client(port, key)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors[status] += 1
                i += 1
        finally:
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(run(n) for n in range(clients)))
    return latencies, errors, time.perf_counter() - start


def start_server(config_path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``groundwork serve`` in its own process; returns once /healthz answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--config", str(config_path), "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"groundwork serve exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"groundwork serve did not answer within 180 s; see {log}")


def process_tree(pid: int) -> dict[int, list[str]]:
    """The /proc stat fields (after the name) of process ``pid`` and its living descendants (Linux)."""
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
    tree, todo = {}, [pid]
    while todo:
        p = todo.pop()
        tree[p] = stats.get(p, [])
        todo += [c for c, fields in stats.items() if int(fields[1]) == p]
    return tree


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident memory of process ``pid``, of its descendants), in MiB: the stat's RSS pages."""
    pages = {p: int(f[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20 for p, f in process_tree(pid).items() if f}
    return pages.get(pid, 0.0), sum(v for p, v in pages.items() if p != pid)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and its living descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / ticks for f in process_tree(pid).values() if f)


def postmaster_pid(config: GroundworkConfig) -> int:
    """The embedded PostgreSQL server's process id (its backends are its children)."""
    return int((embedded_data_dir(config) / "postmaster.pid").read_text().split()[0])


def audit_rows(services: Services) -> int:
    """Rows in every region's audit (read as the owner)."""
    total = 0
    for target in services.targets.values():
        with psycopg.connect(target.owner_dsn) as conn:
            row = conn.execute(f"SELECT count(*) FROM {target.schema}.retrieval_audit").fetchone()  # noqa: S608
            total += int(row[0]) if row else 0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="examples/demo/groundwork.yaml")
    parser.add_argument("--backend", choices=["torch", "onnx_int8"], default=None, help="embedding.backend")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per concurrency level")
    parser.add_argument("--as", dest="principal", default="alice", choices=sorted(KEYS))
    parser.add_argument("--api", action="append", default=[], metavar="KEY=VALUE", help="an api setting")
    args = parser.parse_args()
    configure_offline()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("pypdf", "pipelines.stages", "presidio-analyzer"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    levels = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="gw-api-load-") as tmp:
        config_path = prepare(Path(args.config).resolve(), Path(tmp), args.backend, args.api)
        config = load_config(config_path)
        services = Services(config)
        server: subprocess.Popen[bytes] | None = None
        try:
            print(f"date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
            print(
                f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
                f"embedding backend {config.embedding.backend}, principal {args.principal}, "
                f"batches: at most {config.api.batch_max_size} queries, {config.api.batch_max_wait_ms:g} ms wait, "
                f"{config.api.redaction_processes} redaction processes"
            )
            reports = run_all(services)[1]
            print(
                f"ingested: {sum(r.documents_written for r in reports)} documents, "
                f"{sum(r.chunks_written for r in reports)} chunks"
            )
            batch = config.api.batch_max_size
            before = model_rates(services, batch, 5.0)
            audited_before = audit_rows(services)

            port = free_port()
            server = start_server(config_path, port, Path(tmp) / "serve.log")
            rss_ready = memory_mib(server.pid)
            key = KEYS[args.principal]
            results = {}
            answered = 0
            cpu_ms: dict[int, tuple[float, float]] = {}
            for clients in levels:
                warm, warm_errors, _ = asyncio.run(load(port, key, clients, 2.0))  # connections, pools
                answered += len(warm) - warm_errors.total()
                before_cpu = cpu_seconds(server.pid), cpu_seconds(postmaster_pid(config))
                latencies, errors, wall = asyncio.run(load(port, key, clients, args.seconds))
                cpu_ms[clients] = (
                    (cpu_seconds(server.pid) - before_cpu[0]) * 1000 / max(1, len(latencies)),
                    (cpu_seconds(postmaster_pid(config)) - before_cpu[1]) * 1000 / max(1, len(latencies)),
                )
                results[clients] = (latencies, errors, wall)
                answered += len(latencies) - errors.total()
            rss_loaded = memory_mib(server.pid)
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            server = None
            if any(e for _, e, _ in results.values()):  # what the server logged (types, never queries)
                logged = (Path(tmp) / "serve.log").read_text().splitlines()
                print(
                    "\n".join(dict.fromkeys(line.split(": ", 1)[-1] for line in logged if " ERROR " in line))
                )
            after = model_rates(services, batch, 5.0)

            embed_rate = (before[0][0] + after[0][0]) / 2
            redact_rate = (before[1][0] + after[1][0]) / 2
            both_rate = 1 / (1 / embed_rate + 1 / redact_rate)
            embed_cpu = (before[0][1] + after[0][1]) / 2
            redact_cpu = (before[1][1] + after[1][1]) / 2
            print(
                f"\nper-request model work alone, batched ({batch} queries a batch, before/after the load):"
            )
            print(
                f"  query embedding:      {embed_rate:7.1f} queries/s ({before[0][0]:.1f} / {after[0][0]:.1f}), "
                f"{embed_cpu:.1f} CPU ms a query"
            )
            print(
                f"  query redaction:      {redact_rate:7.1f} queries/s ({before[1][0]:.1f} / {after[1][0]:.1f}), "
                f"{redact_cpu:.1f} CPU ms a query"
            )
            print(f"  embedding+redaction:  {both_rate:7.1f} queries/s (one after the other)")
            print("\nAPI POST /v1/search (groundwork serve, keep-alive clients):")
            for clients, (latencies, errors, wall) in results.items():
                print(
                    f"  {clients:3d} clients: {len(latencies) / wall:7.1f} req/s, p50 {pct(latencies, 50):7.1f} ms, "
                    f"p99 {pct(latencies, 99):7.1f} ms, {errors.total()} errors {dict(errors)} of {len(latencies)}; "
                    "CPU ms a request: "
                    f"{cpu_ms[clients][0]:.1f} serving (+ children), {cpu_ms[clients][1]:.1f} PostgreSQL"
                )
            print(
                f"  resident memory, serving process + its children (forkserver, redaction processes): "
                f"{rss_ready[0]:.0f} + {rss_ready[1]:.0f} MiB when ready, "
                f"{rss_loaded[0]:.0f} + {rss_loaded[1]:.0f} MiB after the load"
            )
            if 16 in results and 1 in results:
                lat16, _, wall16 = results[16]
                rate16 = len(lat16) / wall16
                print("\ntargets:")
                print(
                    f"  API at 16 clients / batched embedding rate: {rate16 / embed_rate:.3f} (target >= 0.6)"
                )
                print(f"  API at 16 clients / batched embedding+redaction rate: {rate16 / both_rate:.3f}")
                print(
                    f"  p99 at 16 clients / single-client p50: {pct(lat16, 99) / pct(results[1][0], 50):.2f} "
                    "(target <= 4)"
                )
            regions = len(set(config.principal(args.principal).regions) & set(config.regions))
            added = audit_rows(services) - audited_before
            print(
                f"\naudit rows written: {added}, for {answered} answered requests (warm-ups included) x "
                f"{regions} regions = {answered * regions}"
            )
        finally:
            if server is not None:
                server.kill()
            services.close()
            EmbeddedServer(embedded_data_dir(config)).stop()


if __name__ == "__main__":
    main()
