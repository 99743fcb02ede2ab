"""What the command line prints: ingest summaries and search outcomes (never document values)."""

from __future__ import annotations

import textwrap
from collections import Counter

from groundwork.enums import ChangeKind
from indexes.results import SearchOutcome
from orchestration.runner import IngestSummary

#: The plan counts an ingest summary prints, in order.
LISTED = [
    ChangeKind.NEW,
    ChangeKind.CHANGED,
    ChangeKind.UNCHANGED,
    ChangeKind.RETAG,
    ChangeKind.MOVE,
    ChangeKind.RENAME,
    ChangeKind.DELETED,
    ChangeKind.FAILED_BEFORE,
    ChangeKind.REFUSED,
    ChangeKind.FORGOTTEN,
    ChangeKind.EXPIRED,
]


def terminal_safe(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``): a file name can hold an escape
    sequence or a newline that would forge lines or drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def unlisted_sources(summary: IngestSummary) -> dict[str, str]:
    """The sources an ingest run could not list (left as they were), with the reason."""
    errors = summary.assets.get("source_documents", {}).get("source_errors")
    return {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}


def ingest_exit_code(summary: IngestSummary) -> int:
    """1 when the run failed, 3 when it succeeded but a source could not be listed, else 0."""
    if not summary.success:
        return 1
    return 3 if unlisted_sources(summary) else 0


def print_ingest(summary: IngestSummary) -> None:
    """One block per ingest run: what was listed, redacted, embedded and written per region."""
    plan = summary.assets.get("source_documents", {})
    print(f"Dagster run {summary.run_id}: {'succeeded' if summary.success else 'FAILED'}")
    print("  listed: " + " ".join(f"{k.value}={plan.get(k.value, 0)}" for k in LISTED))
    for source, message in sorted(unlisted_sources(summary).items()):
        print(
            f"  source {terminal_safe(source)} NOT LISTED (nothing of it changed): {terminal_safe(message)}"
        )
    indexes = {k: m for k, m in summary.assets.items() if k.startswith("index/")}
    redactions: Counter[str] = Counter()
    for meta in indexes.values():
        redactions.update(meta.get("redactions_by_type") or {})
    if redactions:
        print(f"  redactions: {dict(sorted(redactions.items()))}")
    print(f"  embeddings computed: {sum(m.get('embeddings_computed', 0) for m in indexes.values())}")
    for key, meta in sorted(summary.assets.items()):
        if key.startswith("index/"):
            print(
                f"  {key}: wrote {meta.get('documents_written', 0)} documents / "
                f"{meta.get('chunks_written', 0)} chunks, re-tagged {meta.get('retagged_without_reembedding', 0)}, "
                f"moved in {meta.get('moved_in_without_reembedding', 0)}, "
                f"renamed {meta.get('renamed_without_reembedding', 0)}, deleted {meta.get('deleted_or_purged', 0)}; holds {meta.get('index_documents', 0)} documents, "
                f"{meta.get('index_chunks', 0)} chunks, {meta.get('index_failures', 0)} failed"
            )
    for check, passed in sorted(summary.checks.items()):
        print(f"  check {check}: {'passed' if passed else 'FAILED'}")


def print_outcome(who: str, query: str, outcome: SearchOutcome) -> None:
    """A search's decision, confidence and results, one line of text per result."""
    reasons = ", ".join(r.value for r in outcome.reasons) or "-"
    print(f"\n[{who}] {query}")
    print(
        f"  decision: {outcome.decision.value}   confidence: {outcome.confidence:.2f}   reasons: {reasons}   "
        f"regions searched: {', '.join(outcome.regions_searched) or '-'}"
    )
    if not outcome.results:
        print("  (no results the caller may read)")
    for i, hit in enumerate(outcome.results, 1):
        snippet = textwrap.shorten(hit.text, width=110, placeholder=" ...")
        name = hit.source_uri.rsplit("/", 1)[-1]
        print(f"  {i}. score {hit.score:.3f}  [{hit.residency}] {hit.source}:{name}")
        print(f"     {snippet}")
