"""``groundwork eval-pii``: redaction measured as a detector, on labelled sets and PII-free prose.

Each set goes through the ingest path up to redaction: every document is partitioned by
unstructured as a file, then redacted as the config says, one batch per set (as a run redacts its
documents together). Three kinds of set, told apart by what the path holds:

- a ``.json`` file of presidio-evaluator InputSamples (``full_text`` with ``spans``): each sample is
  a ``.txt`` document;
- a folder with ``gold.jsonl`` (one line per file: ``{"file", "entities": [{"type", "value"}]}``);
- a folder without one: PII-free text, where every placeholder is a false one.

Reported per set and per category: recall, partial catches, precision, F2 and the share of values
that survive verbatim in the stored text; on PII-free sets, false placeholders per 1,000 words; and
the redaction throughput beside the embedding throughput on the same texts in the same run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli.pii_metrics import GoldValue, Score, false_hits_per_1000_words, score_document
from groundwork.errors import DocumentError, GroundworkError
from groundwork.records import DocumentRef
from groundwork.settings import EmbeddingConfig, RedactionConfig
from pipelines.embedding import Embedder
from pipelines.partition import partition_document
from pipelines.redact import Redactor
from pipelines.spans import Span, apply

logger = logging.getLogger(__name__)

#: Embedding throughput is measured on at most this many characters of each set.
EMBED_SAMPLE_CHARS = 200_000


@dataclass(slots=True)
class PiiSet:
    """Documents of one set: (file name, bytes, gold values; None for PII-free text)."""

    name: str
    kind: str
    documents: list[tuple[str, bytes, list[GoldValue] | None]] = field(default_factory=list)


def load_set(path: Path) -> PiiSet:
    """Read one evaluation set; errors name the file and what is wrong with it."""
    if path.is_file() and path.suffix == ".json":
        try:
            samples = json.loads(path.read_text(encoding="utf-8"))
            docs: list[tuple[str, bytes, list[GoldValue] | None]] = [
                (
                    f"sample-{i:05d}.txt",
                    str(s["full_text"]).encode(),
                    [GoldValue(str(sp["entity_type"]), str(sp["entity_value"])) for sp in s.get("spans", [])],
                )
                for i, s in enumerate(samples)
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GroundworkError(
                f"{path} is not a list of InputSamples: {type(exc).__name__}: {exc}"
            ) from None
        return PiiSet(str(path), "samples", docs)
    if not path.is_dir():
        raise GroundworkError(f"{path}: expected an InputSample .json file or a folder")
    gold_file = path / "gold.jsonl"
    if not gold_file.is_file():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return PiiSet(str(path), "clean", [(p.name, p.read_bytes(), None) for p in files])
    out = PiiSet(str(path), "gold")
    for n, line in enumerate(gold_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            gold = [GoldValue(str(e["type"]), str(e["value"])) for e in row["entities"]]
            out.documents.append((str(row["file"]), (path / row["file"]).read_bytes(), gold))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GroundworkError(f"{gold_file} line {n}: {type(exc).__name__}: {exc}") from None
    return out


def evaluate_set(
    pii_set: PiiSet, redactor: Redactor, embedder: Embedder
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Figures for one set, and its misses and false hits (for ``--dump``)."""
    parsed, gold, failed = [], [], 0
    for name, data, values in pii_set.documents:
        ref = DocumentRef(source="eval", source_id=name, uri=name, version="-", size_bytes=len(data))
        try:
            elements, _ = partition_document(ref, data)
        except DocumentError:
            failed += 1
            continue
        parsed.append(elements)
        gold.append(values)
    started = time.perf_counter()
    per_document = redactor.analyze_documents(parsed)
    redacted = [[apply(u.text, u.spans)[0] for u in units] for units in per_document]
    redaction_s = time.perf_counter() - started
    texts = [u.text for units in per_document for u in units]
    chars = sum(len(t) for t in texts)
    figures: dict[str, Any] = {"set": pii_set.name, "kind": pii_set.kind, "documents": len(parsed)}
    figures["unreadable"] = failed
    figures["redaction_chars_per_s"] = chars / redaction_s if redaction_s else math.nan
    figures["embedding_chars_per_s"] = _embedding_rate(embedder, [t for t in redacted_texts(redacted) if t])
    dump: list[dict[str, str]] = []
    units_spans: list[tuple[str, list[Span]]] = [(u.text, u.spans) for units in per_document for u in units]
    if pii_set.kind == "clean":
        rate, by_type, words = false_hits_per_1000_words(units_spans)
        figures.update(words=words, false_per_1000_words=rate, false_by_type=dict(by_type.most_common()))
        for text, spans in units_spans:
            dump += [
                {"kind": "false_hit", "type": s.entity, "source": s.source, "value": text[s.start : s.end]}
                for s in spans
            ]
        return figures, dump
    score = Score()
    for units, values, out in zip(per_document, gold, redacted, strict=True):
        score_document(score, [(u.text, u.spans) for u in units], values or [], "\n".join(out))
    figures["unlocated_gold"] = score.unlocated
    figures["words"] = sum(len(t.split()) for t in texts)
    figures["categories"] = {
        name: _tally_figures(t) for name, t in sorted(score.by_category.items()) if t.gold or t.hits
    }
    figures["all"] = _tally_figures(score.overall)
    dump += [{"kind": "miss", **m} for m in score.misses] + [
        {"kind": "false_hit", **f} for f in score.false_hits
    ]
    return figures, dump


def redacted_texts(redacted: list[list[str]]) -> list[str]:
    """Every redacted unit text of a set, in order."""
    return [t for units in redacted for t in units]


def _embedding_rate(embedder: Embedder, texts: list[str]) -> float:
    sample, total = [], 0
    for t in texts:
        if total >= EMBED_SAMPLE_CHARS:
            break
        sample.append(t)
        total += len(t)
    if not sample:
        return math.nan
    embedder.embed(sample[:4])  # the model is loaded before the clock starts
    started = time.perf_counter()
    embedder.embed(sample)
    return total / (time.perf_counter() - started)


def _tally_figures(t: Any) -> dict[str, float]:
    return {
        "gold": t.gold,
        "recall": t.recall,
        "partly": t.partly,
        "precision": t.precision,
        "f2": t.f2,
        "hits": t.hits,
        "verbatim_survival": t.survival,
    }


def run_pii_eval(
    paths: list[Path], redaction: RedactionConfig, embedding: EmbeddingConfig, dump: Path | None = None
) -> list[dict[str, Any]]:
    """Evaluate every set with one redactor and one embedder; optionally write misses to ``dump``."""
    redactor, embedder = Redactor(redaction), Embedder(embedding)
    redactor.detect(["warm up"])  # models load before any clock starts
    results, dumped = [], []
    for path in paths:
        logger.info("evaluating redaction on %s", path)
        figures, misses = evaluate_set(load_set(path), redactor, embedder)
        results.append(figures)
        dumped += [{"set": str(path), **m} for m in misses]
    if dump is not None:
        dump.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dumped), encoding="utf-8")
    return results


def format_pii_results(results: list[dict[str, Any]]) -> str:
    """One block per set: a row per category, then throughput."""
    lines = []
    for r in results:
        lines.append(f"\n{r['set']} ({r['kind']}: {r['documents']} documents, {r.get('words', 0):,} words)")
        if r["kind"] == "clean":
            by_type = ", ".join(f"{k} {v}" for k, v in r["false_by_type"].items()) or "none"
            lines.append(f"  false placeholders per 1,000 words: {r['false_per_1000_words']:.2f} ({by_type})")
        else:
            lines.append(
                f"  {'category':<14}{'gold':>6}{'recall':>8}{'partly':>8}{'precision':>10}{'F2':>7}{'verbatim':>10}"
            )
            rows: list[tuple[str, dict[str, float]]] = [*r["categories"].items(), ("all", r["all"])]
            for name, c in rows:
                lines.append(
                    f"  {name:<14}{c['gold']:>6}{c['recall']:>8.3f}{c['partly']:>8}{c['precision']:>10.3f}"
                    f"{c['f2']:>7.3f}{c['verbatim_survival']:>10.3f}"
                )
            if r["unlocated_gold"]:
                lines.append(
                    f"  ({r['unlocated_gold']} gold values not found in the partitioned text: not scored)"
                )
        lines.append(
            f"  redaction {r['redaction_chars_per_s']:,.0f} chars/s, embedding {r['embedding_chars_per_s']:,.0f} chars/s"
            f" (same run): redaction / embedding {r['redaction_chars_per_s'] / r['embedding_chars_per_s']:.2f}"
        )
    return "\n".join(lines)
