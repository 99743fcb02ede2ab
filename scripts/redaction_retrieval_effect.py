"""What redaction costs retrieval: naive dense nDCG@10 on raw and on redacted documents.

For each BEIR set under ``examples/eval/`` the documents and answerable queries are those of
``groundwork eval`` (its ``hold_out``: the relevant documents of every fourth query are removed,
and the queries left without an answer are not ranked). Each document is handled as ingest handles
it: written as a ``.txt`` file (title, blank line, text), partitioned by unstructured, and redacted
by the shipped :class:`~pipelines.redact.Redactor` with the default ``RedactionConfig``, in
micro-batches of ``ingest.batch_documents`` documents (sorted by file name, as the filesystem
connector lists them), through ``redact_batch`` with the evaluation's residency. Three versions of
the corpus are ranked with the naive dense baseline (:func:`cli.eval_baseline.naive_rankings`: 200-word
passages, a document scored by its best passage):

- ``raw``: the documents' text as ``groundwork eval`` writes it;
- ``partitioned``: the partitioned elements joined by blank lines, unredacted (what redaction reads);
- ``redacted``: the same elements after redaction.

Printed per set: the three nDCG@10 figures, the drop from redaction (partitioned - redacted, and raw -
redacted), the placeholders per 1,000 words and their types, and the documents whose redaction
changed anything. The target is a drop of at most 0.01.

Usage::

    nice -n 19 .venv/bin/python scripts/redaction_retrieval_effect.py [examples/eval/pgdocs ...] [--json F]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from groundwork.offline import configure_offline

configure_offline()

from cli.eval_baseline import naive_rankings  # noqa: E402  (after the offline switches)
from cli.evaluate import document_texts, hold_out, load_dataset, ranking_figures  # noqa: E402
from groundwork.errors import DocumentError  # noqa: E402
from groundwork.records import DocumentRef, ParsedElement  # noqa: E402
from groundwork.settings import EmbeddingConfig, IngestConfig, RedactionConfig  # noqa: E402
from pipelines.partition import partition_document  # noqa: E402
from pipelines.redact import Redactor  # noqa: E402

SETS = ("pgdocs", "perlfaq", "debian-faq", "gitfaq", "sqlite-faq")
EVAL_DIR = Path(__file__).resolve().parents[1] / "examples" / "eval"
#: The residency ``groundwork eval`` gives its source.
RESIDENCY = "eval"


def _joined(elements: list[ParsedElement]) -> str:
    return "\n\n".join(e.text for e in elements)


def evaluate(folder: Path, redactor: Redactor, embedding: EmbeddingConfig, batch: int) -> dict[str, Any]:
    """The three nDCG@10 figures of one set, and what redaction replaced in it."""
    data = load_dataset(folder)
    answerable, _, removed = hold_out(data)
    raw = document_texts(data, removed)
    names = sorted(raw, key=lambda d: f"{d}.txt")
    parsed: dict[str, list[ParsedElement]] = {}
    for d in names:
        data_bytes = raw[d].encode()
        ref = DocumentRef(
            source="eval", source_id=f"{d}.txt", uri=f"{d}.txt", version="-", size_bytes=len(data_bytes)
        )
        try:
            parsed[d] = partition_document(ref, data_bytes)[0]
        except DocumentError as exc:
            print(f"  {folder.name}/{d}: not partitioned ({exc.reason})", flush=True)
    redacted: dict[str, str] = {}
    counts: Counter[str] = Counter()
    changed, failed = 0, 0
    started = time.perf_counter()
    order = [d for d in names if d in parsed]
    for i in range(0, len(order), batch):
        ids = order[i : i + batch]
        results = redactor.redact_batch([parsed[d] for d in ids], [RESIDENCY] * len(ids))
        for d, result in zip(ids, results, strict=True):
            if isinstance(result, DocumentError):
                failed += 1
                continue
            elements, found = result
            redacted[d] = _joined(elements)
            counts.update(found)
            changed += bool(found)
    redaction_s = time.perf_counter() - started
    partitioned = {d: _joined(parsed[d]) for d in redacted}
    queries = {q: data.queries[q] for q in answerable}
    figures = {
        "raw": ranking_figures(naive_rankings(raw, queries, embedding), data.qrels)["ndcg@10"],
        "partitioned": ranking_figures(naive_rankings(partitioned, queries, embedding), data.qrels)[
            "ndcg@10"
        ],
        "redacted": ranking_figures(naive_rankings(redacted, queries, embedding), data.qrels)["ndcg@10"],
    }
    words = sum(len(t.split()) for t in partitioned.values())
    return {
        "set": folder.name,
        "documents": len(raw),
        "redacted_documents": len(redacted),
        "failed_redaction": failed,
        "documents_changed": changed,
        "answerable_queries": len(queries),
        "ndcg@10": figures,
        "drop_from_partitioned": figures["partitioned"] - figures["redacted"],
        "drop_from_raw": figures["raw"] - figures["redacted"],
        "words": words,
        "placeholders": sum(counts.values()),
        "placeholders_per_1000_words": 1000 * sum(counts.values()) / words if words else 0.0,
        "placeholders_by_type": dict(counts.most_common()),
        "redaction_seconds": redaction_s,
    }


def main() -> None:
    """Run every named set (default: all five) and print one block per set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", type=Path, default=[EVAL_DIR / s for s in SETS])
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    redactor = Redactor(RedactionConfig())
    redactor.detect(["warm up"])
    embedding = EmbeddingConfig()
    batch = IngestConfig().batch_documents
    print(f"{date.today()} on {platform.node()} ({platform.processor() or platform.machine()})", flush=True)
    out = []
    for folder in args.sets:
        r = evaluate(folder, redactor, embedding, batch)
        out.append(r)
        n = r["ndcg@10"]
        by_type = ", ".join(f"{k} {v}" for k, v in r["placeholders_by_type"].items()) or "none"
        print(
            f"{r['set']}: {r['documents']} documents ({r['documents_changed']} changed by redaction,"
            f" {r['failed_redaction']} failed), {r['answerable_queries']} answerable queries\n"
            f"  nDCG@10 raw {n['raw']:.4f}, partitioned {n['partitioned']:.4f}, redacted {n['redacted']:.4f};"
            f" drop {r['drop_from_partitioned']:+.4f} (from raw {r['drop_from_raw']:+.4f})\n"
            f"  placeholders: {r['placeholders']} in {r['words']:,} words ="
            f" {r['placeholders_per_1000_words']:.2f} per 1,000 ({by_type}); redaction {r['redaction_seconds']:.0f} s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
