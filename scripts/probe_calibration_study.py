"""Would a calibration fitted on probes made from a collection's own documents transfer to its real
questions? A feasibility study, not a product path.

For each evaluation set (with ``groundwork eval``'s held-out answers removed), documents are cut
into the naive baseline's 200-word passages and embedded with the shipped model. Probes are made
from the collection alone, with no labelled question: a passage is drawn, a sentence of it is
drawn, and the query is 3-6 of that sentence's rarest content words. Each probe is searched twice:
over every passage (labelled 1 when the top passage belongs to the probe's document) and with the
probe's document excluded (labelled 0: the answer is gone, related pages remain). A logistic model
over the confidence's dense features (top cosine, margin, query coverage) is fitted on the probes
and measured on the set's real queries; beside it, the same model fitted on the other sets' real
queries (leave one domain out). The last column, the area under the ROC curve of telling
unanswerable from answerable queries by that model's confidence, bounds what any calibration of these
features can do: calibration moves the threshold, not the order.

Usage: ``.venv/bin/python scripts/probe_calibration_study.py [--probes 200] [--seed 7]``
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cli.eval_baseline import passage_table
from cli.evaluate import document_texts, expected_calibration_error, hold_out, load_dataset
from groundwork.settings import EmbeddingConfig
from indexes.confidence import _STOP_WORDS, query_coverage
from pipelines.embedding import Embedder

SETS = ("pgdocs", "perlfaq", "debian-faq", "gitfaq", "sqlite-faq")
EVAL_DIR = Path(__file__).resolve().parents[1] / "examples" / "eval"
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]+")
_SENTENCE = re.compile(r"(?<=[.?!])\s+|\n+")


def _features(scores: npt.NDArray[np.float64], texts: list[str], query: str) -> list[float]:
    top = float(scores[0])
    margin = top - float(scores[1]) if len(scores) > 1 else top
    return [top, margin, query_coverage(query, texts[:5])]


def _search(vector: Any, table: dict[str, Any], exclude: int | None = None) -> tuple[list[int], Any]:
    scores = table["vectors"] @ vector
    if exclude is not None:
        scores = np.where(table["owners"] == exclude, -np.inf, scores)
    order = np.argsort(-scores)[:10]
    return [int(i) for i in order], scores[order]


def load_set(name: str, embedder: Embedder) -> dict[str, Any]:
    """The set's passages and vectors, and its real queries' features, labels and answerability."""
    data = load_dataset(EVAL_DIR / name)
    answerable, unanswerable, removed = hold_out(data)
    docs = document_texts(data, removed)
    names = sorted(docs)
    owners, texts = passage_table(docs, names)
    table = {"owners": owners, "texts": texts, "vectors": np.asarray(embedder.embed(texts))}
    ids = sorted(answerable | unanswerable)
    x, label, unans = [], [], []
    for qid, vector in zip(ids, embedder.embed([data.queries[q] for q in ids]), strict=True):
        order, scores = _search(vector, table)
        x.append(_features(scores, [texts[i] for i in order], data.queries[qid]))
        label.append(int(qid in answerable and names[owners[order[0]]] in data.qrels[qid]))
        unans.append(int(qid in unanswerable))
    table.update(x=np.array(x), y=np.array(label), unanswerable=np.array(unans))
    return table


def probes(table: dict[str, Any], embedder: Embedder, n: int, rng: random.Random) -> tuple[Any, Any]:
    """Features and labels of ``n`` probes and their answer-removed twins."""
    texts, owners = table["texts"], table["owners"]
    df: dict[str, int] = {}
    for text in texts:
        for w in {w.lower() for w in _WORD.findall(text)}:
            df[w] = df.get(w, 0) + 1
    queries, sources = [], []
    for i in rng.sample(range(len(texts)), min(n, len(texts))):
        sentences = [s for s in _SENTENCE.split(texts[i]) if len(s.split()) >= 6]
        if not sentences:
            continue
        words = list(dict.fromkeys(w.lower() for w in _WORD.findall(rng.choice(sentences))))
        rare = sorted((w for w in words if w not in _STOP_WORDS), key=lambda w: df.get(w, 1))[:8]
        if rare:
            queries.append(" ".join(rng.sample(rare, min(len(rare), rng.randint(3, 6)))))
            sources.append(int(owners[i]))
    x, y = [], []
    for query, vector, source in zip(queries, embedder.embed(queries), sources, strict=True):
        order, scores = _search(vector, table)
        x.append(_features(scores, [texts[i] for i in order], query))
        y.append(int(owners[order[0]] == source))
        order, scores = _search(vector, table, exclude=source)
        x.append(_features(scores, [texts[i] for i in order], query))
        y.append(0)
    return np.array(x), np.array(y)


def figures(p: npt.NDArray[np.float64], table: dict[str, Any], threshold: float = 0.4) -> str:
    """ECE; handoff precision / recall at ``threshold``; AUC of confidence for unanswerable."""
    from sklearn.metrics import roc_auc_score

    ece = expected_calibration_error([(float(a), bool(b)) for a, b in zip(p, table["y"], strict=True)])
    unans = table["unanswerable"] == 1
    handed = p < threshold
    caught = int((handed & unans).sum())
    precision = caught / max(1, int(handed.sum()))
    recall = caught / max(1, int(unans.sum()))
    auc = roc_auc_score(unans, -p)
    return f"{ece:.3f}; {precision:.2f} / {recall:.2f}; AUC {auc:.3f}"


def main() -> None:
    """Print, per set, the probe-fitted and the other-sets-fitted calibration's figures."""
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probes", type=int, default=200, help="probes per set (each searched twice)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    embedder = Embedder(EmbeddingConfig())
    tables = {name: load_set(name, embedder) for name in SETS}
    print("| set | fitted on probes of its own documents | fitted on the other sets' queries |")
    print("|---|---|---|")
    for name in SETS:
        table = tables[name]
        x, y = probes(table, embedder, args.probes, random.Random(args.seed))
        own = LogisticRegression(max_iter=1000).fit(x, y).predict_proba(table["x"])[:, 1]
        others = [o for o in SETS if o != name]
        lodo = LogisticRegression(max_iter=1000).fit(
            np.vstack([tables[o]["x"] for o in others]), np.concatenate([tables[o]["y"] for o in others])
        )
        print(f"| {name} | {figures(own, table)} | {figures(lodo.predict_proba(table['x'])[:, 1], table)} |")


if __name__ == "__main__":
    main()
