"""Would embedding context with each chunk rank documents better? A study, not a product path.

For each evaluation set (with ``groundwork eval``'s held-out answers removed), every document is
partitioned as text and chunked with the shipped chunking settings (no redaction), and each variant of
a chunk's embedding input is embedded with the shipped model; a document is ranked by its best chunk
and nDCG@10 is averaged over the answerable queries. Variants:

- ``chunk``: the chunk's text (what the product embeds);
- ``title``: the document's title, a blank line, the chunk;
- ``window``: the chunk widened to 200 words with its neighbours' words (a third before, the rest after);
- ``title+passage``: ``title``'s best chunk score plus the naive baseline's best 200-word passage score.

The naive baseline (:mod:`cli.eval_baseline`) is printed beside them.

Usage: ``HF_HUB_OFFLINE=1 .venv/bin/python scripts/chunk_context_study.py [--sets pgdocs perlfaq ...]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cli.eval_baseline import passage_table
from cli.evaluate import document_texts, hold_out, load_dataset, ndcg_at
from groundwork.settings import ChunkingConfig, EmbeddingConfig
from pipelines.embedding import Embedder

EVAL_DIR = Path(__file__).resolve().parents[1] / "examples" / "eval"
SETS = ("pgdocs", "perlfaq", "debian-faq", "gitfaq", "sqlite-faq")
WINDOW_WORDS = 200


def chunk_inputs(title: str, text: str, config: ChunkingConfig) -> list[dict[str, str]]:
    """Each chunk of a document as every variant's embedding input."""
    from unstructured.chunking.title import chunk_by_title
    from unstructured.partition.text import partition_text

    pieces = chunk_by_title(
        partition_text(text=text, languages=["eng"]),
        max_characters=config.max_characters,
        new_after_n_chars=config.new_after_n_chars,
        combine_text_under_n_chars=config.combine_text_under_n_chars,
        multipage_sections=True,
    )
    words = [p.text.split() for p in pieces if p.text.strip()]
    out = []
    for k, own in enumerate(words):
        chunk = " ".join(own)
        before = [w for ws in words[:k] for w in ws]
        after = [w for ws in words[k + 1 :] for w in ws]
        need = max(0, WINDOW_WORDS - len(own))
        left = before[max(0, len(before) - need // 3) :] if need // 3 else []
        window = left + own + after[: need - len(left)]
        out.append(
            {
                "chunk": chunk,
                "title": f"{title}\n\n{chunk}" if title else chunk,
                "window": " ".join(window),
            }
        )
    return out


def best_per_document(
    vectors: npt.NDArray[np.float32], owners: npt.NDArray[np.int64], n: int, query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Each document's best cosine among its rows."""
    best = np.full(n, -np.inf)
    np.maximum.at(best, owners, vectors @ query)
    return best


def study(name: str, embedder: Embedder, config: ChunkingConfig) -> dict[str, float]:
    """nDCG@10 of every variant and of the naive baseline on one set."""
    data = load_dataset(EVAL_DIR / name)
    answerable, _, removed = hold_out(data)
    docs = document_texts(data, removed)
    names = sorted(docs)
    qids = sorted(answerable)
    queries = embedder.embed([data.queries[q] for q in qids])
    owners_list: list[int] = []
    inputs: list[dict[str, str]] = []
    for i, doc_id in enumerate(names):
        for row in chunk_inputs(data.corpus[doc_id][0], docs[doc_id], config):
            owners_list.append(i)
            inputs.append(row)
    owners = np.array(owners_list, dtype=np.int64)
    passage_owners, passages = passage_table(docs, names)
    passage_vectors = embedder.embed(passages)
    vectors = {v: embedder.embed([row[v] for row in inputs]) for v in ("chunk", "title", "window")}

    def ndcg(score: object) -> float:
        values = []
        for i, q in enumerate(qids):
            s = score(queries[i])  # type: ignore[operator]
            ranked = [names[j] for j in np.argsort(-s, kind="stable")[:10]]
            values.append(ndcg_at(ranked, data.qrels[q], 10))
        return round(float(np.mean(values)), 4)

    n = len(names)
    out = {"naive": ndcg(lambda q: best_per_document(passage_vectors, passage_owners, n, q))}
    for variant, v in vectors.items():
        out[variant] = ndcg(lambda q, v=v: best_per_document(v, owners, n, q))
    out["title+passage"] = ndcg(
        lambda q: (
            best_per_document(vectors["title"], owners, n, q)
            + best_per_document(passage_vectors, passage_owners, n, q)
        )
    )
    return out


def main() -> int:
    """Print one line per set: nDCG@10 of the baseline and of each variant."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    args = ap.parse_args()
    embedder = Embedder(EmbeddingConfig())
    config = ChunkingConfig()
    for name in args.sets:
        figures = study(name, embedder, config)
        print(name, " ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
