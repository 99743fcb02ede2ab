"""Benchmark: peak memory of ``groundwork ingest`` as the corpus grows (issue 14: 20k over 1k documents).

``python benchmarks/ingest_memory.py [--sizes 1000,20000] [--chars 200] [--every 1.0] [--keep DIR]``

For each size N it writes N distinct documents (.txt, .md, .html, .eml, .docx) of about ``--chars``
characters cut from the retrieval sets' real text (``examples/eval/*/corpus.jsonl``), a config with one
filesystem source (``contract: none``) and a state folder of its own (so its own embedded PostgreSQL),
starts that server, runs ``groundwork ingest`` as a child process and samples, every ``--every``
seconds from ``/proc``: the summed PSS and RSS of the ingest's process tree, the RSS of the ingest
process alone, each process's peak, and the PostgreSQL server's summed PSS (its own tree, apart).
It prints documents/s and the peaks for each N, then each peak at the largest N over that at the
smallest (the target: tree peak at 20k <= 1.2x that at 1k). Exits 1 when a document was not indexed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

PROJECT = Path(__file__).resolve().parents[1]
TEXTS = sorted((PROJECT / "examples" / "eval").glob("*/corpus.jsonl"))
#: Share of each file type in the corpus (the rest of the weights: plain text).
KINDS = [(".txt", 30), (".md", 25), (".html", 20), (".eml", 15), (".docx", 10)]
MIB = 1024**2
#: One filesystem source that admits every file; state (so the embedded server) in the run's folder.
CONFIG = """\
sources:
  - {name: bench, connector: filesystem, path: corpus, residency: uk, contract: none, access: [public]}
state_dir: .groundwork
"""


def load_texts() -> list[tuple[str, str]]:
    """(title, text) of every document of the shipped retrieval sets, whitespace tidied."""
    out = []
    for path in TEXTS:
        for line in path.read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            text = re.sub(r"[ \t]+", " ", str(doc.get("text", ""))).strip()
            if len(text) > 200:
                out.append((str(doc.get("title") or doc.get("_id")), text))
    if not out:
        raise SystemExit(f"no text found under {PROJECT / 'examples' / 'eval'}")
    return out


def window(rng: random.Random, texts: list[tuple[str, str]], chars: int) -> tuple[str, list[str]]:
    """A title and paragraphs: about ``chars`` characters from a random place in one or more texts."""
    title, text = rng.choice(texts)
    start = rng.randrange(0, max(1, len(text) - chars))
    start = text.rfind(" ", 0, start) + 1 if start else 0
    body = text[start : start + chars]
    while len(body) < chars:  # a short text: continue with another
        body += "\n" + rng.choice(texts)[1][: chars - len(body)]
    cut = body.rfind(" ")
    body = body[:cut] if cut > chars // 2 else body
    paras = [p.strip() for p in body.split("\n") if p.strip()]
    merged: list[str] = []  # lines of a few words become part of the paragraph before
    for p in paras:
        if merged and (len(p) < 60 or len(merged[-1]) < 60):
            merged[-1] += " " + p
        else:
            merged.append(p)
    return title, merged


def write_document(path: Path, kind: str, title: str, paras: list[str], n: int) -> None:
    """One file of type ``kind``; ``n`` (its number) is in its text, so no two are the same."""
    heading = f"{title} (note {n})"
    if kind == ".md":
        path.write_text(f"# {heading}\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    elif kind == ".html":
        body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paras)
        path.write_text(
            f"<!DOCTYPE html>\n<html><head><title>{html.escape(heading)}</title></head>\n"
            f"<body><h1>{html.escape(heading)}</h1>\n{body}</body></html>\n",
            encoding="utf-8",
        )
    elif kind == ".eml":
        path.write_text(
            f"From: Docs Team <docs{n % 97}@example.org>\nTo: Staff <staff@example.org>\n"
            f"Subject: {heading}\nDate: Mon, 2 Nov 2026 09:{n % 60:02d}:00 +0000\n"
            f"Message-ID: <note-{n}@example.org>\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n\n" + "\n\n".join(paras) + "\n",
            encoding="utf-8",
        )
    elif kind == ".docx":
        import docx

        doc = docx.Document()
        doc.add_heading(heading, level=1)
        for p in paras:
            doc.add_paragraph(p)
        doc.save(str(path))
    else:
        path.write_text(heading + "\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")


def build_corpus(root: Path, n: int, chars: int, seed: int) -> dict[str, int]:
    """``n`` documents under ``root`` (a folder per type, a thousand files a folder); counts by type.
    Sizes vary from half to one and a half times ``chars``."""
    texts = load_texts()
    kinds, weights = zip(*KINDS, strict=True)
    counts: dict[str, int] = {}
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        kind = rng.choices(kinds, weights)[0]
        title, paras = window(rng, texts, rng.randint(chars // 2, chars * 3 // 2))
        folder = root / kind.lstrip(".") / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        write_document(folder / f"doc-{i:06d}{kind}", kind, title, paras, i)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def write_config(dest: Path) -> Path:
    """A config for ``dest/corpus``: one source admitting every file, state in ``dest``."""
    path = dest / "groundwork.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in bytes from ``/proc/PID/smaps_rollup``; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        kib = {k: v.split()[0] for k, _, v in (ln.partition(":") for ln in text.splitlines()[1:])}
        return int(kib["Rss"]) * 1024, int(kib["Pss"]) * 1024
    except (OSError, ValueError, KeyError, IndexError):
        return 0, 0


@dataclass(slots=True)
class Peaks:
    """What the sampler saw."""

    tree_pss: int = 0
    tree_rss: int = 0
    ingest_rss: int = 0
    postgres_pss: int = 0
    samples: int = 0
    #: Peak RSS of each process of the tree, by pid: (role, bytes, seconds after the start).
    processes: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    #: (seconds, tree PSS, ingest RSS) of every sample, for the growth over the run.
    series: list[tuple[float, int, int]] = field(default_factory=list)


#: Roles of the ingest's child processes, by a word of their command line.
_ROLES = (("resource_tracker", "resource tracker"), ("forkserver", "forkserver"), ("spawn_main", "worker"))


class Sampler(threading.Thread):
    """Samples the memory of the ingest process, its descendants and the PostgreSQL server."""

    def __init__(self, pid: int, postgres_pid: int | None, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.postgres_pid, self.every_s = pid, postgres_pid, every_s
        self.peaks = Peaks()
        self.stop = threading.Event()

    def _role(self, pid: int) -> str:
        if pid == self.pid:
            return "ingest"
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return "?"
        for marker, role in _ROLES:
            if marker in cmd:
                return role
        return Path(cmd.split(" ", 1)[0]).name or "?"

    @staticmethod
    def _tree(pid: int | None) -> list[int]:
        """``pid`` and its descendants (parents read from ``/proc/*/stat``); empty once it is gone."""
        if pid is None or not Path(f"/proc/{pid}").exists():
            return []
        kids: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:  # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(stat.parent.name))
        out, todo = [], [pid]
        while todo:
            out.append(todo.pop())
            todo.extend(kids.get(out[-1], []))
        return out

    def run(self) -> None:
        """Sample until stopped or the ingest process is gone."""
        began, pk = time.monotonic(), self.peaks
        while not self.stop.is_set():
            procs = self._tree(self.pid)
            if not procs:
                return
            now = time.monotonic() - began
            pss = rss = ingest_now = 0
            for p in procs:
                r, s = _rollup(p)
                rss, pss = rss + r, pss + s
                if p == self.pid:
                    pk.ingest_rss = max(pk.ingest_rss, r)
                    ingest_now = r
                seen = pk.processes.get(p)
                if seen is None or r > seen[1]:
                    pk.processes[p] = (seen[0] if seen else self._role(p), r, now)
            pk.tree_pss, pk.tree_rss = max(pk.tree_pss, pss), max(pk.tree_rss, rss)
            pg = sum(_rollup(p)[1] for p in self._tree(self.postgres_pid))
            pk.postgres_pss = max(pk.postgres_pss, pg)
            pk.series.append((now, pss, ingest_now))
            pk.samples += 1
            self.stop.wait(self.every_s)


@dataclass(slots=True)
class Result:
    """One size's ingest: time, what was indexed, and the memory peaks."""

    n: int
    wall_s: float
    rc: int | None
    indexed: int
    chunks: int
    failed: int
    peaks: Peaks
    output: str


def child_env(dest: Path) -> dict[str, str]:
    """A child ingest's environment: a Dagster instance of its own under ``dest`` (the project's
    instance settings), the project importable, no database URL inherited."""
    home = dest / "dagster_home"
    home.mkdir(exist_ok=True)
    bundled = PROJECT / "dagster_home" / "dagster.yaml"
    if bundled.is_file():
        shutil.copy(bundled, home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT)}
    env.pop("GROUNDWORK_DATABASE_URL", None)
    return env


class Watcher(Protocol):
    """A thread that samples a child process until its ``stop`` event is set."""

    stop: threading.Event

    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


W = TypeVar("W", bound=Watcher)


def run_sampled(
    cmd: list[str], dest: Path, watch: Callable[[int], W], timeout_s: float
) -> tuple[W, int, float, bool]:
    """``cmd`` (a ``groundwork ingest``) as a child in its own session with :func:`child_env`, its
    output in ``dest/ingest.log``, sampled by ``watch(pid)`` until it ends; its process group is
    killed after ``timeout_s``. Returns the sampler, the exit status, the wall time and whether it
    timed out."""
    start = time.monotonic()
    timed_out = False
    with (dest / "ingest.log").open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT,
            env=child_env(dest),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = watch(proc.pid)
        sampler.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)
            proc.wait()
        sampler.stop.set()
        sampler.join()
    return sampler, proc.returncode, time.monotonic() - start, timed_out


def groundwork(
    args: list[str], dest: Path, *, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """A ``groundwork`` command (the script's entry point) with the run's environment, its output
    captured; ``timeout``: seconds before it is killed (``subprocess.TimeoutExpired``)."""
    cmd = [sys.executable, "-m", "cli.main", *args]
    return subprocess.run(
        cmd, cwd=PROJECT, env=child_env(dest), capture_output=True, text=True, timeout=timeout, check=False
    )


def _postgres_pid(dest: Path) -> int | None:
    try:
        return int((dest / ".groundwork" / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


_HOLDS = re.compile(r"holds (\d+) documents, (\d+) chunks, (\d+) failed")


def run_size(n: int, dest: Path, chars: int, seed: int, every_s: float, timeout_s: float) -> Result:
    """Build the corpus of ``n`` documents in ``dest``, ingest it and sample its memory."""
    t0 = time.monotonic()
    counts = build_corpus(dest / "corpus", n, chars, seed)
    size = sum(f.stat().st_size for f in (dest / "corpus").rglob("*") if f.is_file())
    print(
        f"  corpus: {n:,} documents ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}), "
        f"{size / MIB:.1f} MiB, built in {time.monotonic() - t0:.0f} s",
        flush=True,
    )
    config = write_config(dest)
    started = groundwork(["db", "start", "--config", str(config)], dest)
    if started.returncode != 0:
        raise SystemExit(f"the embedded PostgreSQL did not start:\n{started.stdout}{started.stderr}")
    try:
        cmd = [sys.executable, "-m", "cli.main", "ingest", "--config", str(config)]
        postgres = _postgres_pid(dest)
        sampler, rc, wall, _ = run_sampled(cmd, dest, lambda pid: Sampler(pid, postgres, every_s), timeout_s)
    finally:
        groundwork(["db", "stop", "--config", str(config)], dest)
    output = (dest / "ingest.log").read_text(errors="replace")
    holds = [tuple(map(int, m)) for m in _HOLDS.findall(output)]
    indexed, chunks, failed = (sum(h[i] for h in holds) for i in range(3))
    return Result(n, wall, rc, indexed, chunks, failed, sampler.peaks, output)


def _mib(b: int) -> str:
    return f"{b / MIB:,.0f} MiB"


def describe(r: Result) -> list[str]:
    """The lines printed for one size."""
    pk = r.peaks
    out = [
        f"  ingest: rc {r.rc}, {r.indexed:,} of {r.n:,} documents indexed, {r.chunks:,} chunks, {r.failed} failed",
        f"  {r.wall_s:,.1f} s -> {r.indexed / r.wall_s:.2f} documents/s, {r.chunks / r.wall_s:.2f} chunks/s",
        f"  peak tree PSS {_mib(pk.tree_pss)}, peak tree RSS {_mib(pk.tree_rss)}, peak ingest-process RSS "
        f"{_mib(pk.ingest_rss)}; PostgreSQL server PSS {_mib(pk.postgres_pss)} ({pk.samples} samples, "
        f"{len(pk.processes)} processes)",
    ]
    top = sorted(pk.processes.values(), key=lambda p: -p[1])[:6]
    out.append("  process peaks (RSS): " + ", ".join(f"{role} {_mib(b)} at {s:,.0f} s" for role, b, s in top))
    end = pk.series[-1][0] if pk.series else 0.0
    parts = [[s for s in pk.series if q * end / 4 <= s[0] <= (q + 1) * end / 4] for q in range(4)]
    peaks = [f"{_mib(max(s[1] for s in p))} / {_mib(max(s[2] for s in p))}" for p in parts if p]
    out.append("  peak in each quarter of the run (tree PSS / ingest RSS): " + ", ".join(peaks))
    return out


def ratios(small: Result, large: Result) -> list[str]:
    """The largest size's peaks over the smallest's."""

    def r(a: int, b: int) -> str:
        return f"{b / a:.2f}" if a else "n/a"

    s, g = small.peaks, large.peaks
    verdict = "meets" if s.tree_pss and g.tree_pss <= 1.2 * s.tree_pss else "misses"
    return [
        f"peak memory at {large.n:,} over {small.n:,} documents (target <= 1.2 for the tree): "
        f"tree PSS {r(s.tree_pss, g.tree_pss)} ({verdict} the target), tree RSS {r(s.tree_rss, g.tree_rss)}, "
        f"ingest process RSS {r(s.ingest_rss, g.ingest_rss)}, PostgreSQL PSS {r(s.postgres_pss, g.postgres_pss)}",
        f"documents/s at {large.n:,} over {small.n:,}: "
        f"{(large.indexed / large.wall_s) / (small.indexed / small.wall_s):.2f}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every size, print the figures and the ratio; exit 1 when a document was not indexed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,20000", help="documents per run (quick: 200,1000)")
    parser.add_argument("--chars", type=int, default=200, help="mean characters of text per document")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between memory samples")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before an ingest is killed")
    parser.add_argument("--keep", type=Path, default=None, help="build in this (new) folder and keep it")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: one or more positive numbers of documents")
    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="gw-ingest-mem-"))
    base.mkdir(parents=True, exist_ok=True)
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(
        f"ingest memory benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, {mem / 1024**3:.0f} GiB, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; sizes {sizes}, about {args.chars} characters a document",
        flush=True,
    )
    results = []
    try:
        for n in sizes:
            print(f"{n:,} documents:", flush=True)
            dest = base / f"n{n}"
            dest.mkdir()
            result = run_size(n, dest, args.chars, args.seed, args.every, args.timeout)
            results.append(result)
            print("\n".join(describe(result)), flush=True)
            if result.rc != 0 or not _HOLDS.search(result.output):
                print(result.output[-3000:], flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept in {base} (corpus, config, ingest.log per size)")
    if len(results) > 1:
        small, large = min(results, key=lambda r: r.n), max(results, key=lambda r: r.n)
        print("\n".join(ratios(small, large)))
    ok = all(r.rc == 0 and r.indexed == r.n and r.failed == 0 for r in results)
    if not ok:
        print("NOT EVERY DOCUMENT WAS INDEXED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
