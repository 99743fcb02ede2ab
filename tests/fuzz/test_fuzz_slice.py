"""A slice of the ingest fuzz (the whole is ``make fuzz``): 40 malformed entries of every family
that a small corpus samples (damaged files of every type, a giant line, a zip bomb, deep nesting,
external entities, FIFOs, a socket, link loops, hostile names ...) beside 8 good files, ingested
for real on the session's PostgreSQL with the real models. Every good file must be indexed, every
other entry recorded as failed with a reason or indexed, nothing unaccounted, nothing from outside
the root indexed, and no finished parse over its time limit."""

from __future__ import annotations

from pathlib import Path

from groundwork.enums import FailureReason
from groundwork.settings import load_config
from orchestration.local import run_all
from orchestration.services import Services
from pipelines.embedding import Embedder
from pipelines.redact import Redactor
from tests.fuzz.corpus import build_corpus
from tests.fuzz.run import account, document_time_limits, evaluate, observe, report, write_config
from tests.fuzz.timing import install_timing, read_timings

#: The slice: small sizes for the costly families, so it stays well under a minute and a half.
SLICE = {"bad": 40, "good": 8, "seed": 0, "giant_chars": 100_000, "bomb_bytes": 3_000_000}


def test_every_malformed_entry_is_indexed_or_recorded_with_a_reason(
    tmp_path: Path, database_url: str, redactor: Redactor, embedder: Embedder
) -> None:
    manifest = build_corpus(tmp_path / "fuzz", **SLICE)
    timings_path = tmp_path / "timings.jsonl"
    try:
        config = load_config(write_config(manifest.dest, database_url=database_url))
        undo = install_timing(timings_path)
        try:
            with Services(config, redactor=redactor, embedder=embedder) as services:
                run_all(services)
                observed = observe(services)
        finally:
            undo()
    finally:
        manifest.unlock()
    timings = read_timings(timings_path, {e.source_id for e in manifest.entries})
    limits = document_time_limits(config)
    accounting = account(manifest, observed)
    targets = evaluate(manifest, accounting, observed, timings, limits, run=None)
    table = report(manifest, accounting, observed, targets, timings, limits)
    print(table)  # shown with -s or -rA

    assert sum(e.malformed for e in manifest.entries) == SLICE["bad"]
    assert {f.reason for f in observed.failures.values()} <= set(FailureReason), table
    # Parser processes started by an earlier test are not timed: the time target then has no figures.
    judged = [t for t in targets if timings.measured or t.name != "no document over its time limit"]
    assert all(t.passed for t in judged), table
