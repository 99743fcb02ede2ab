"""Mine cross-encoder training pairs and evaluation candidates from the BEIR sets.

For every set in ``examples/eval`` the documents are cut into the naive baseline's 200-word passages
(:func:`cli.eval_baseline.passages`, the text ``groundwork eval`` ingests: title, blank line, text) and
embedded once with the shipped all-MiniLM-L6-v2 bi-encoder (:class:`pipelines.embedding.Embedder`).

Training pairs (whole corpus, every query): per query, the best passage (by the bi-encoder) of each
relevant document, at most ``MAX_POSITIVES``, labelled 1; the best passages of the ``HARD_NEGATIVES``
top-ranked non-relevant documents, labelled 0 (neighbouring FAQ answers, distractor reference pages);
``RANDOM_NEGATIVES`` passages of random non-relevant documents, labelled 0. Seeded per set.

Evaluation candidates mimic ``groundwork eval`` exactly: the relevant documents of every fourth query
(:func:`cli.evaluate.hold_out`) leave the corpus; for every query the top ``CANDIDATES`` documents of
the naive dense ranking over the rest, each with its best passage (what a reranker would score).

Usage::

    nice -n 19 .venv/bin/python -m scripts.reranker.mine_pairs [--out /tmp/reranker/mined]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
from pathlib import Path

import numpy as np

from cli.eval_baseline import passage_table
from cli.evaluate import document_texts, hold_out, load_dataset

logger = logging.getLogger(__name__)

SETS = ("pgdocs", "perlfaq", "debian-faq", "gitfaq", "sqlite-faq")
EVAL_DIR = Path(__file__).resolve().parents[2] / "examples" / "eval"
#: Work files and checkpoints (mined pairs, LODO dumps, fold models): under the temporary directory.
WORK = Path(tempfile.gettempdir()) / "reranker"
SEED = 12
MAX_POSITIVES = 2
HARD_NEGATIVES = 3
RANDOM_NEGATIVES = 1
CANDIDATES = 20


def _best_passages(
    scores: np.ndarray, owners: np.ndarray, n_docs: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per document, its best passage's cosine and that passage's index (-inf where not allowed)."""
    best = np.full(n_docs, -np.inf)
    np.maximum.at(best, owners, scores)
    best[~allowed] = -np.inf
    # The index of the first passage reaching its document's best score.
    arg = np.full(n_docs, -1, dtype=np.int64)
    hit = scores >= best[owners]
    for i in np.flatnonzero(hit)[::-1]:
        arg[owners[i]] = i
    return best, arg


def mine_set(name: str, embed: object, seed: int = SEED) -> dict:
    """Training pairs and evaluation candidates for one set (see the module docstring)."""
    folder = EVAL_DIR / name
    data = load_dataset(folder)
    docs = document_texts(data)  # the dataset read once, every document (held-out ones are masked below)
    names = sorted(docs)
    owners, texts = passage_table(docs, names)
    corpus = embed(texts)  # type: ignore[operator]
    qids = sorted(data.queries)
    asked = embed([data.queries[q] for q in qids])  # type: ignore[operator]
    answerable, unanswerable, removed = hold_out(data)
    everything = np.ones(len(names), dtype=bool)
    kept = np.array([d not in removed for d in names])
    rng = random.Random(f"{seed}:{name}")
    pairs: list[dict] = []
    candidates: list[dict] = []
    for qid, vector in zip(qids, asked, strict=True):
        query = data.queries[qid]
        relevant = data.qrels[qid]
        scores = corpus @ vector
        best, arg = _best_passages(scores, owners, len(names), everything)
        order = [int(i) for i in np.argsort(-best, kind="stable")]
        positives = [i for i in order if names[i] in relevant][:MAX_POSITIVES]
        negatives = [i for i in order if names[i] not in relevant]
        for i in positives:
            pairs.append({"qid": qid, "query": query, "passage": texts[arg[i]], "label": 1.0, "kind": "pos"})
        for i in negatives[:HARD_NEGATIVES]:
            pairs.append({"qid": qid, "query": query, "passage": texts[arg[i]], "label": 0.0, "kind": "hard"})
        pool = negatives[HARD_NEGATIVES:]
        for i in rng.sample(pool, min(RANDOM_NEGATIVES, len(pool))):
            passage = texts[rng.choice(np.flatnonzero(owners == i).tolist())]
            pairs.append({"qid": qid, "query": query, "passage": passage, "label": 0.0, "kind": "random"})
        best, arg = _best_passages(scores, owners, len(names), kept)
        top = [int(i) for i in np.argsort(-best, kind="stable")[:CANDIDATES]]
        candidates.append(
            {
                "qid": qid,
                "query": query,
                "answerable": qid in answerable,
                "relevant": relevant,
                "docs": [names[i] for i in top],
                "dense": [float(best[i]) for i in top],
                "passages": [texts[arg[i]] for i in top],
            }
        )
    assert not (answerable & unanswerable)
    logger.info("%s: %d passages, %d queries, %d pairs", name, len(texts), len(qids), len(pairs))
    return {"set": name, "seed": seed, "pairs": pairs, "candidates": candidates}


def main() -> int:
    """Mine every set into ``--out``/<set>.json."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=WORK / "mined")
    ap.add_argument("--sets", nargs="*", default=list(SETS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from groundwork.settings import EmbeddingConfig
    from pipelines.embedding import Embedder

    embedder = Embedder(EmbeddingConfig())
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        mined = mine_set(name, embedder.embed)
        (args.out / f"{name}.json").write_text(json.dumps(mined), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
