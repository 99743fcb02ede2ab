"""The full fuzz run (``make fuzz``): malformed files beside good ones, ingested by ``groundwork ingest``.

``python -m tests.fuzz.run [--bad N] [--good M] [--seed S] [--keep DIR]`` builds the corpus
(:mod:`tests.fuzz.corpus`) in a temporary folder, writes a config with one filesystem source that
admits every file and a state folder of its own (so its own embedded PostgreSQL), runs the ingest
command as a child process while sampling the memory of its process tree, then accounts for every
entry from what the index holds and the failures it recorded, and prints a table with PASS/FAIL per
target. It exits 1 when a target fails.

Targets: the run finishes; every good file is indexed; every bad file is recorded as failed with a
reason or indexed (counted apart), every special entry recorded as failed, nothing unaccounted;
peak RSS <= 1.5 GiB; no document over its time limit; no text from outside the root in the index.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmarks.ingest_memory import groundwork, run_sampled
from tests.fuzz.corpus import BAD, GOOD, SECRET_MARKER, SPECIAL, Entry, Manifest, build_corpus, remove_corpus
from tests.fuzz.timing import Timings, read_timings

if TYPE_CHECKING:
    from groundwork.settings import GroundworkConfig
    from orchestration.services import Services

PROJECT = Path(__file__).resolve().parents[2]
SOURCE = "fuzz"
REGION = "uk"
#: Peak resident memory of the ingest process tree allowed by the target.
RSS_LIMIT_BYTES = int(1.5 * 1024**3)
#: The per-document partitioning time limit used when the config names none.
DEFAULT_DOC_LIMIT_S = 60.0


def grace(limit_s: float) -> float:
    """Slack over a limit before a document counts as over it (stopping work takes a moment)."""
    return max(2.0, 0.05 * limit_s)


#: Text that must never reach the index: the secret beside the corpus, and /etc/passwd.
LEAK_MARKERS = (SECRET_MARKER, "root:x:0:0:")


# --------------------------------------------------------------------------------------------
# Config and the ingest child process


def write_config(dest: Path, *, database_url: str | None = None) -> Path:
    """A config for the corpus under ``dest``: one source admitting every file, state in ``dest``."""
    data: dict[str, Any] = {
        "sources": [
            {
                "name": SOURCE,
                "connector": "filesystem",
                "path": "corpus",
                "residency": REGION,
                "contract": "none",
                "access": ["public"],
            }
        ],
        "state_dir": ".groundwork",
    }
    if database_url is not None:
        data["database"] = {"url": database_url}
    path = dest / "groundwork.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-document time limits of a config: partitioning, and redaction when it has one."""

    partition_s: float
    partition_from: str
    redact_s: float | None
    redact_from: str


def _time_setting(model: object) -> tuple[float, str] | None:
    for name in getattr(type(model), "model_fields", {}):
        value = getattr(model, name)
        if any(w in name for w in ("timeout", "time_limit")) and isinstance(value, int | float):
            return float(value), name
    return None


def document_time_limits(config: GroundworkConfig) -> Limits:
    """The per-document time limits the config sets (a ``*timeout*`` or ``*time_limit*`` setting of
    its ``partitioning`` and ``redaction`` sections), the fuzz default for partitioning else."""
    part = _time_setting(config.partitioning)
    red = _time_setting(config.redaction)
    return Limits(
        part[0] if part else DEFAULT_DOC_LIMIT_S,
        f"partitioning.{part[1]}" if part else "fuzz default: the config names no partitioning limit",
        red[0] if red else None,
        f"redaction.{red[1]}" if red else "none",
    )


@dataclass(slots=True)
class RunResult:
    """How the ingest child process ended and what it used."""

    rc: int | None
    wall_s: float
    timed_out: bool
    #: Peak of the process tree's summed proportional set size (shared pages counted once).
    peak_tree_pss: int
    #: Peak of the process tree's summed RSS (pages shared by forked processes counted in each).
    peak_tree_rss: int
    #: Peak RSS of the largest single process (sampled, and ru_maxrss of reaped children).
    max_process_rss: int
    processes: int
    samples: int
    output: str
    #: Seconds after the start at which the tree's PSS peaked.
    peak_pss_at_s: float = 0.0
    #: Each process's peak, largest first.
    peaks: list[ProcessPeak] = field(default_factory=list)
    #: Each process at the tree's PSS peak: role, PSS and private bytes (USS), largest first.
    at_peak: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def peak_memory(self) -> int:
        """What the memory target is judged on: the tree's PSS when sampled, else the largest RSS."""
        return self.peak_tree_pss or self.max_process_rss


@dataclass(slots=True)
class ProcessPeak:
    """The largest RSS one process of the tree reached, and when (seconds after the start)."""

    role: str
    rss: int
    at_s: float


class _TreeSampler(threading.Thread):
    """Polls the memory of a process and its descendants (needs psutil): summed PSS and RSS, and
    each process's peak RSS; once a second by default (reading PSS costs CPU time)."""

    def __init__(self, pid: int, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.every_s = every_s
        self.peak_pss = 0
        self.peak_pss_at = 0.0
        self.peak_rss = 0
        self.peaks: dict[int, ProcessPeak] = {}
        self.at_peak: list[tuple[str, int, int]] = []
        self.samples = 0
        self.stop = threading.Event()

    def _role(self, p: Any) -> str:
        try:
            cmd = " ".join(p.cmdline())
            parent = p.ppid()
        except Exception:
            return "?"
        if p.pid == self.pid:
            return "ingest"
        if "forkserver" in cmd:
            return "parser server" if parent == self.pid else "parser worker"
        if "--multiprocessing-fork" in cmd:  # a spawned process: the parser workers
            return "parser worker"
        if "resource_tracker" in cmd:
            return "resource tracker"
        return Path(cmd.split(" ", 1)[0]).name or "?"

    def run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        began = time.monotonic()
        while not self.stop.is_set():
            pss = rss = 0
            parts: list[tuple[str, int, int]] = []
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                return
            now = time.monotonic() - began
            for p in procs:
                try:
                    info = p.memory_full_info()
                except psutil.Error:
                    continue
                rss += info.rss
                pss += getattr(info, "pss", 0)
                peak = self.peaks.get(p.pid)
                if peak is None:
                    peak = self.peaks[p.pid] = ProcessPeak(self._role(p), 0, now)
                if info.rss > peak.rss:
                    peak.rss, peak.at_s = info.rss, now
                parts.append((peak.role, getattr(info, "pss", 0), getattr(info, "uss", 0)))
            if pss > self.peak_pss:
                self.peak_pss, self.peak_pss_at = pss, now
                self.at_peak = sorted(parts, key=lambda part: -part[1])
            self.peak_rss = max(self.peak_rss, rss)
            self.samples += 1
            self.stop.wait(self.every_s)


def run_ingest(config: Path, dest: Path, timings: Path | None, *, timeout: float) -> RunResult:
    """``groundwork ingest --config CONFIG`` as a child process (timed per document unless
    ``timings`` is None), its tree's memory sampled; killed after ``timeout`` seconds."""
    if timings is None:
        cmd = [sys.executable, "-m", "cli.main", "ingest", "--config", str(config)]
    else:
        cmd = [sys.executable, "-m", "tests.fuzz.timed_cli", "--timings", str(timings)]
        cmd += ["ingest", "--config", str(config)]
    sampler, rc, wall, timed_out = run_sampled(cmd, dest, _TreeSampler, timeout)
    import resource

    # ru_maxrss of waited-for children: the largest single process, in KiB on Linux.
    max_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return RunResult(
        rc=rc,
        wall_s=wall,
        timed_out=timed_out,
        peak_tree_pss=sampler.peak_pss,
        peak_tree_rss=sampler.peak_rss,
        max_process_rss=max([max_rss, *(p.rss for p in sampler.peaks.values())]),
        processes=len(sampler.peaks),
        samples=sampler.samples,
        output=(dest / "ingest.log").read_text(errors="replace"),
        peak_pss_at_s=sampler.peak_pss_at,
        peaks=sorted(sampler.peaks.values(), key=lambda p: -p.rss),
        at_peak=sampler.at_peak,
    )


# --------------------------------------------------------------------------------------------
# What the index holds, and the accounting


@dataclass(frozen=True, slots=True)
class FailureRow:
    """A recorded failure of one document."""

    stage: str
    reason: str
    message: str


@dataclass(slots=True)
class Observed:
    """What the index of the fuzz source holds after the run."""

    indexed: set[str]
    failures: dict[str, FailureRow]
    leaks: dict[str, int]


def observe(services: Services, source: str = SOURCE, region: str = REGION) -> Observed:
    """The source's indexed documents and recorded failures (by source id), and leak counts."""
    from psycopg import sql

    from indexes.pooling import connection

    index = services.index(region)
    indexed = {s.source_id for s in index.document_states(source).values()}
    failures = {
        str(f["source_id"]): FailureRow(
            str(f["stage"] or ""), str(f["reason"] or ""), str(f["message"] or "")
        )
        for f in index.failures.all()
        if f["source"] == source
    }
    leaks: dict[str, int] = {}
    with connection(index.pool) as conn:
        for marker in LEAK_MARKERS:
            found = 0
            for schema in index.data_schemas:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.chunks WHERE strpos(text, %s) > 0").format(
                        sql.Identifier(schema)
                    ),
                    (marker,),
                ).fetchone()
                found += int(row[0]) if row else 0
            found += sum(marker in f.message for f in failures.values())
            leaks[marker] = found
    return Observed(indexed, failures, leaks)


def observe_config(config_path: Path) -> Observed:
    """:func:`observe` for a config file (the embedded server is started if stopped)."""
    from groundwork.settings import load_config
    from orchestration.services import Services

    with Services(load_config(config_path)) as services:
        return observe(services)


#: An entry's outcome: indexed, failed with a reason, failed without one, both, or neither.
INDEXED, FAILED, NO_REASON, BOTH, MISSING, COLLISION = (
    "indexed",
    "failed",
    "failed-no-reason",
    "indexed+failed",
    "unaccounted",
    "id-collision",
)


@dataclass(slots=True)
class Accounting:
    """Every manifest entry with its outcome, grouped for the report and the targets."""

    outcomes: list[tuple[Entry, str, FailureRow | None]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    collisions: list[list[Entry]] = field(default_factory=list)

    def rows(self, group: str) -> list[tuple[Entry, str, FailureRow | None]]:
        """Outcomes of one report group (see :func:`group_of`)."""
        return [o for o in self.outcomes if group_of(o[0]) == group]

    def count(self, group: str, outcome: str) -> int:
        """How many entries of ``group`` had ``outcome``."""
        return sum(1 for _, out, _ in self.rows(group) if out == outcome)

    def violations(self) -> list[tuple[Entry, str, FailureRow | None]]:
        """Entries whose outcome breaks their expectation."""
        return [
            (entry, out, row)
            for entry, out, row in self.outcomes
            if out in (MISSING, COLLISION, NO_REASON, BOTH)
            or (entry.expect == GOOD and out != INDEXED)
            or (entry.expect == SPECIAL and out != FAILED)
        ]


GROUPS = {
    "good": "good files",
    "names": "malformed: hostile names, good content (must be indexed)",
    "bad": "malformed: bad content (failed with a reason, or indexed)",
    "special": "malformed: special entries (must be recorded failed)",
}


def group_of(entry: Entry) -> str:
    """The report group of an entry."""
    if not entry.malformed:
        return "good"
    if entry.expect == GOOD:
        return "names"
    return "special" if entry.kind in _SPECIAL_KINDS else "bad"


_SPECIAL_KINDS = {
    "fifo",
    "socket",
    "device",
    "unreadable",
    "unreadable-dir",
    "symlink-loop",
    "symlink-loop-pair",
    "symlink-dangling",
    "symlink-outside",
    "symlink-inside",
    "symlink-dotdot",
    "symlink-dir-outside",
    "symlink-etc-passwd",
    "symlink-dev-zero",
    "symlink-to-fifo",
    "symlink-dir-loop",
}


def account(manifest: Manifest, observed: Observed) -> Accounting:
    """Match every manifest entry to what the index holds: indexed, failed (with a reason), or not."""
    acc = Accounting()
    by_id: dict[str, list[Entry]] = defaultdict(list)
    for entry in manifest.entries:
        by_id[entry.source_id].append(entry)
    for sid, entries in by_id.items():
        row = observed.failures.get(sid)
        indexed = sid in observed.indexed
        if indexed and row is not None:
            out = BOTH
        elif indexed:
            out = INDEXED
        elif row is not None:
            out = FAILED if row.reason.strip() and row.message.strip() else NO_REASON
        else:
            out = MISSING
        acc.outcomes.append((entries[0], out, row))
        if len(entries) > 1:  # one id for several files: one record at most, the others unaccounted
            acc.collisions.append(entries)
            acc.outcomes.extend((e, COLLISION, None) for e in entries[1:])
    known = set(by_id)
    acc.unexpected = sorted((observed.indexed | set(observed.failures)) - known)
    return acc


# --------------------------------------------------------------------------------------------
# The report


@dataclass(slots=True)
class Target:
    """One target of the issue, with whether it passed and the figures behind it."""

    name: str
    passed: bool
    detail: str


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.0f} MiB"


def evaluate(
    manifest: Manifest,
    acc: Accounting,
    observed: Observed,
    timings: Timings,
    limits: Limits,
    run: RunResult | None,
) -> list[Target]:
    """The targets, each PASS or FAIL."""
    targets = []
    if run is not None:
        finished = run.rc == 0 and not run.timed_out
        targets.append(
            Target(
                "the run finishes", finished, f"rc {run.rc}, {run.wall_s:,.0f} s, timed out: {run.timed_out}"
            )
        )
    goods = acc.rows("good") + acc.rows("names")
    good_ok = sum(1 for _, out, _ in goods if out == INDEXED)
    targets.append(Target("every good file is indexed", good_ok == len(goods), f"{good_ok}/{len(goods)}"))
    special = acc.rows("special")
    special_ok = sum(1 for e, out, _ in special if out == FAILED or (e.expect == BAD and out == INDEXED))
    targets.append(
        Target(
            "every special entry is recorded failed",
            special_ok == len(special),
            f"{special_ok}/{len(special)}",
        )
    )
    lost = [v for v in acc.violations() if v[1] in (MISSING, COLLISION, NO_REASON, BOTH)]
    targets.append(
        Target(
            "nothing unaccounted (every failure has a reason)",
            not lost and not acc.unexpected,
            f"{len(lost)} unaccounted or without a reason, {len(acc.unexpected)} records of no entry",
        )
    )
    if run is not None:
        peak = run.peak_memory
        targets.append(
            Target(
                f"peak RSS <= {_mb(RSS_LIMIT_BYTES)} (process tree, PSS)",
                peak <= RSS_LIMIT_BYTES,
                f"{_mb(peak)} over {run.processes} processes",
            )
        )
    targets.append(time_target(timings, limits))
    leaked = sum(observed.leaks.values())
    targets.append(
        Target("no text from outside the root is indexed", leaked == 0, f"{leaked} chunks or messages")
    )
    return targets


def time_target(timings: Timings, limits: Limits) -> Target:
    """No finished parse over the partitioning limit, no redaction share over the redaction limit."""
    name = "no document over its time limit"
    if not timings.measured:
        return Target(name, False, "not measured: no partitioning timings were recorded")
    p_over = [s for s in timings.partition.values() if s > limits.partition_s + grace(limits.partition_s)]
    worst = max(timings.partition.values(), default=0.0)
    detail = (
        f"partitioning: {len(p_over)} over {limits.partition_s:g} s, slowest finished {worst:,.1f} s, "
        f"{len(timings.unfinished)} stopped unfinished"
    )
    r_over: list[float] = []
    # The redactor's own charge per document when recorded (what its limit is compared with), else
    # each document's share of its batch's time by characters (an outside estimate).
    charged = timings.redact_charged or timings.redact_share()
    what = "charged" if timings.redact_charged else "share"
    if limits.redact_s is not None and charged:
        r_over = [s for s in charged.values() if s > limits.redact_s + grace(limits.redact_s)]
        detail += (
            f"; redaction: {len(r_over)} over {limits.redact_s:g} s, largest {what} "
            f"{max(charged.values()):,.1f} s"
        )
    return Target(name, not p_over and not r_over, detail)


def report(
    manifest: Manifest,
    acc: Accounting,
    observed: Observed,
    targets: list[Target],
    timings: Timings,
    limits: Limits,
    run: RunResult | None = None,
    build_s: float | None = None,
) -> str:
    """The printed table."""
    out: list[str] = []
    bad_total = sum(e.malformed for e in manifest.entries)
    good_total = len(manifest.entries) - bad_total
    built = f" (built in {build_s:.1f} s)" if build_s is not None else ""
    out.append(
        f"Groundwork ingest fuzz, seed {manifest.seed}: {bad_total:,} malformed entries beside "
        f"{good_total:,} good files{built}"
    )
    out.extend(f"note: {n}" for n in manifest.notes)
    if run is not None:
        out.append(
            f"ingest: rc {run.rc}, wall {run.wall_s:,.1f} s; memory of the process tree ({run.processes} "
            f"processes, {run.samples} samples): peak PSS {_mb(run.peak_tree_pss)}, peak summed RSS "
            f"{_mb(run.peak_tree_rss)}, largest single process RSS {_mb(run.max_process_rss)}"
        )
        out.append(
            f"memory: tree PSS peaked {run.peak_pss_at_s:,.0f} s after the start; process peaks: "
            + ", ".join(f"{p.role} {_mb(p.rss)} at {p.at_s:,.0f} s" for p in run.peaks[:5])
        )
        out.append(
            "memory at the tree's peak, PSS (private): "
            + ", ".join(f"{role} {_mb(pss)} ({_mb(uss)})" for role, pss, uss in run.at_peak[:5])
        )
    out.append("")
    cols = [INDEXED, FAILED, NO_REASON, BOTH, MISSING, COLLISION]
    out.append(f"{'':62}{'total':>7}" + "".join(f"{c:>17}" for c in cols))
    for group, label in GROUPS.items():
        rows = acc.rows(group)
        if not rows and group != "good":
            continue
        out.append(f"{label:62}{len(rows):>7}" + "".join(f"{acc.count(group, c):>17}" for c in cols))
    out.append("")
    bad_rows = acc.rows("bad")
    out.append(
        f"bad content: {sum(o == FAILED for _, o, _ in bad_rows)} failed with a reason, "
        f"{sum(o == INDEXED for _, o, _ in bad_rows)} indexed (damage left a readable file), "
        f"{sum(o not in (FAILED, INDEXED) for _, o, _ in bad_rows)} unaccounted"
    )
    reasons = Counter(f"{r.stage}:{r.reason}" for _, o, r in acc.outcomes if r is not None and o != INDEXED)
    out.append("failures by stage:reason: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    out.append("")
    out.append("by family (bad content and specials): family  total  indexed  failed  other  [reasons]")
    fams: dict[str, list[tuple[Entry, str, FailureRow | None]]] = defaultdict(list)
    for o in acc.rows("bad") + acc.rows("special"):
        fams[o[0].family].append(o)
    for fam, rows in sorted(fams.items()):
        fr = Counter(r.reason for _, o, r in rows if r is not None and o == FAILED)
        out.append(
            f"  {fam:24}{len(rows):>5}{sum(o == INDEXED for _, o, _ in rows):>9}"
            f"{sum(o == FAILED for _, o, _ in rows):>8}{sum(o not in (INDEXED, FAILED) for _, o, _ in rows):>7}"
            f"  [{', '.join(f'{k} {v}' for k, v in fr.most_common())}]"
        )
    if timings.measured:
        out.append("")
        out.append(
            f"partitioning per document: {len(timings.partition)} finished, {len(timings.unfinished)} stopped "
            f"unfinished; limit {limits.partition_s:g} s ({limits.partition_from}); slowest:"
        )
        for sid, secs in sorted(timings.partition.items(), key=lambda kv: -kv[1])[:8]:
            out.append(f"  {secs:8.2f} s  {ascii(sid)[1:-1]}")
        for sid in sorted(timings.unfinished):
            row = observed.failures.get(sid)
            out.append(
                f"  stopped   {ascii(sid)[1:-1]}: {f'{row.stage}:{row.reason}' if row else 'NOT RECORDED'}"
            )
        shares = timings.redact_share()
        if shares:
            slowest = max(timings.redact_batches, key=lambda b: b[2])
            out.append(
                f"redaction: {len(timings.redact_batches)} batches, slowest {slowest[2]:,.1f} s "
                f"({len(slowest[0])} documents); limit {limits.redact_s} s ({limits.redact_from}); largest "
                "shares by characters:"
            )
            for sid, secs in sorted(shares.items(), key=lambda kv: -kv[1])[:5]:
                out.append(f"  {secs:8.2f} s  {ascii(sid)[1:-1]}")
            if timings.redact_charged:
                out.append("detection seconds the redactor charged (its limit's measure), largest:")
                for sid, secs in sorted(timings.redact_charged.items(), key=lambda kv: -kv[1])[:5]:
                    out.append(f"  {secs:8.2f} s  {ascii(sid)[1:-1]}")
    violations = acc.violations()
    if violations:
        out.append("")
        out.append(f"violations ({len(violations)}):")
        for entry, outcome, row in violations[:40]:
            why = f" - {row.stage}:{row.reason}: {row.message[:120]}" if row else ""
            out.append(f"  {outcome:16} {entry.expect:8} {entry.kind:26} {entry.shown[:90]}{why}")
        if len(violations) > 40:
            out.append(f"  ... and {len(violations) - 40} more")
    for shared in acc.collisions:
        out.append(
            "id collision: " + " | ".join(e.shown for e in shared) + f" -> one id {shared[0].source_id!r}"
        )
    if acc.unexpected:
        out.append(f"records of no manifest entry: {[ascii(u) for u in acc.unexpected[:10]]}")
    out.append(f"leak markers found in the index: {observed.leaks}")
    out.append("")
    out.append("TARGETS")
    for t in targets:
        out.append(f"  {'PASS' if t.passed else 'FAIL'}  {t.name}: {t.detail}")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Build, ingest, account and report; exit 1 when a target fails."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--bad", type=int, default=1000, help="malformed entries (default 1000)")
    parser.add_argument("--good", type=int, default=100, help="good files (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="build in this (new) folder and keep it")
    parser.add_argument("--giant-chars", type=int, default=1_500_000, help="length of the giant single lines")
    parser.add_argument(
        "--bomb-bytes", type=int, default=30_000_000, help="what a zip or flate bomb expands to"
    )
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds before the ingest is killed")
    parser.add_argument("--plain", action="store_true", help="run the plain CLI: no per-document timing")
    args = parser.parse_args(argv)

    from groundwork.settings import load_config

    dest = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="gw-fuzz-"))
    if args.keep and dest.exists() and any(dest.iterdir()):
        parser.error(f"--keep {dest}: the folder must be new or empty")
    start = time.monotonic()
    manifest = build_corpus(
        dest, args.bad, args.good, args.seed, giant_chars=args.giant_chars, bomb_bytes=args.bomb_bytes
    )
    build_s = time.monotonic() - start
    (dest / "manifest.json").write_text(manifest.to_json())
    config_path = write_config(dest)
    limits = document_time_limits(load_config(config_path))
    print(
        f"corpus of {len(manifest.entries):,} entries in {dest} ({build_s:.1f} s); ingesting ...", flush=True
    )
    timings_path = None if args.plain else dest / "timings.jsonl"
    try:
        started = groundwork(["db", "start", "--config", str(config_path)], dest, timeout=600)
        if started.returncode != 0:
            print(started.stdout + started.stderr, file=sys.stderr)
            return 2
        run = run_ingest(config_path, dest, timings_path, timeout=args.timeout)
        print(run.output[-4000:])
        observed = observe_config(config_path)
        failures_cli = groundwork(["failures", "--config", str(config_path)], dest, timeout=600)
        (dest / "failures.txt").write_text(failures_cli.stdout + failures_cli.stderr)
        ids = {e.source_id for e in manifest.entries}
        timings = read_timings(timings_path, ids) if timings_path else Timings()
        acc = account(manifest, observed)
        targets = evaluate(manifest, acc, observed, timings, limits, run)
        print(report(manifest, acc, observed, targets, timings, limits, run, build_s))
    finally:
        groundwork(["db", "stop", "--config", str(config_path)], dest, timeout=600)
        if args.keep:
            manifest.unlock()
            print(f"kept in {dest} (manifest.json, ingest.log, failures.txt, timings.jsonl)")
        else:
            remove_corpus(manifest)
    return 0 if all(t.passed for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
