"""float32 (torch) against int8 (ONNX) embeddings on the shipped retrieval sets: quality and speed.

For each BEIR set (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv``), a plain dense ranking as
``groundwork eval``'s naive baseline makes it (:mod:`cli.eval_baseline`): every document cut into
200-word passages, a document scored by its best passage's cosine to the query. All documents and
all queries with a relevance judgement are used. The passages, the queries and the scoring are the
same for both backends; only the embedder differs. Printed per set:

- recall@10 and nDCG@10 of each backend, and the int8 - fp32 differences;
- the overlap of the two top-10 lists (the share of fp32's top 10 that int8's top 10 also holds);
- what the shipped dense confidence calibration (fitted with fp32) makes of each backend's results:
  the mean and largest change in calibrated confidence, and how many answer/handoff decisions
  (threshold 0.4) flip, a measure of whether int8 can reuse fp32's calibration;
- embedding throughput in passages/s: both backends warmed up, then 3 timed passes each over the same
  deterministic sample of passages, interleaved (fp32, int8, fp32, ...) so load on a shared machine
  falls on both alike; the median pass, and the int8/fp32 ratio. Beside it, the one full pass over
  all passages each backend made for the quality figures.

Usage::

    .venv/bin/python scripts/embedding_quality.py [examples/eval/pgdocs ...] [--sample 256]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from groundwork.offline import configure_offline

configure_offline()

from cli.eval_baseline import passages  # noqa: E402  (after the offline switches)
from cli.evaluate import load_dataset, ndcg_at, recall_at  # noqa: E402
from groundwork.enums import RetrievalMode  # noqa: E402
from groundwork.settings import DEFAULT_MODEL_NAME, EmbeddingConfig  # noqa: E402
from indexes.confidence import features, load_calibration  # noqa: E402
from pipelines.embedding import Embedder, available_cpus  # noqa: E402

SETS = ("pgdocs", "perlfaq", "debian-faq", "gitfaq", "sqlite-faq")
EVAL_DIR = Path(__file__).resolve().parents[1] / "examples" / "eval"
HANDOFF_BELOW = 0.4
Vectors = npt.NDArray[np.float32]


class Corpus:
    """One set's passages (with the document each belongs to) and its judged queries."""

    def __init__(self, folder: Path) -> None:
        data = load_dataset(folder)
        self.name = folder.name
        self.names = sorted(data.corpus)
        self.texts: list[str] = []
        owners: list[int] = []
        for i, doc_id in enumerate(self.names):
            title, text = data.corpus[doc_id]
            for passage in passages(f"{title}\n\n{text}" if title else text):
                owners.append(i)
                self.texts.append(passage)
        self.owners = np.array(owners, dtype=np.int64)
        self.query_ids = sorted(data.queries)
        self.queries = [data.queries[q] for q in self.query_ids]
        self.qrels = data.qrels

    def sample(self, n: int) -> list[str]:
        """``n`` passages spread evenly over the corpus (the same every run)."""
        if n >= len(self.texts):
            return list(self.texts)
        step = len(self.texts) / n
        return [self.texts[int(i * step)] for i in range(n)]


class Ranked:
    """One backend's dense ranking of a corpus's documents for its queries."""

    def __init__(self, corpus: Corpus, passage_vectors: Vectors, query_vectors: Vectors) -> None:
        self.top: dict[str, list[int]] = {}
        self.scores: dict[str, list[float]] = {}
        self.best_passage: dict[str, list[int]] = {}
        for qid, vector in zip(corpus.query_ids, query_vectors, strict=True):
            sims = passage_vectors @ vector
            best = np.full(len(corpus.names), -np.inf)
            np.maximum.at(best, corpus.owners, sims)
            order = np.argsort(-best, kind="stable")[:10]
            self.top[qid] = [int(i) for i in order]
            self.scores[qid] = [float(best[i]) for i in order]
            # The best passage of each top document, for the confidence features' texts.
            picks = []
            for doc in order:
                members = np.flatnonzero(corpus.owners == doc)
                picks.append(int(members[np.argmax(sims[members])]))
            self.best_passage[qid] = picks

    def figures(self, corpus: Corpus) -> tuple[float, float]:
        """Mean recall@10 and nDCG@10 over the queries."""
        recall, ndcg = [], []
        for qid, top in self.top.items():
            ranked = [corpus.names[i] for i in top]
            recall.append(recall_at(ranked, corpus.qrels[qid], 10))
            ndcg.append(ndcg_at(ranked, corpus.qrels[qid], 10))
        return statistics.fmean(recall), statistics.fmean(ndcg)


def timed(embed: Callable[[list[str]], Vectors], texts: list[str]) -> tuple[Vectors, float]:
    """The vectors of ``texts`` and the seconds it took."""
    started = time.perf_counter()
    vectors = embed(texts)
    return vectors, time.perf_counter() - started


def confidence_shift(corpus: Corpus, fp32: Ranked, int8: Ranked) -> tuple[float, float, int]:
    """Mean and largest change in the shipped dense calibration's confidence, and decision flips."""
    calibration = load_calibration(RetrievalMode.DENSE, DEFAULT_MODEL_NAME)
    if calibration is None:
        return float("nan"), float("nan"), 0
    shifts, flips = [], 0
    for qid, query in zip(corpus.query_ids, corpus.queries, strict=True):
        p = []
        for ranked in (fp32, int8):
            texts = [corpus.texts[i] for i in ranked.best_passage[qid]]
            p.append(calibration.probability(features(ranked.scores[qid], [], query, texts)))
        shifts.append(abs(p[1] - p[0]))
        flips += (p[0] < HANDOFF_BELOW) != (p[1] < HANDOFF_BELOW)
    return statistics.fmean(shifts), max(shifts), flips


def measure(corpus: Corpus, backends: dict[str, Embedder], sample: int, passes: int) -> dict[str, float]:
    """Every figure for one set; prints its table and returns the figures."""
    vectors: dict[str, tuple[Vectors, Vectors]] = {}
    full_rate: dict[str, float] = {}
    for name, embedder in backends.items():
        embedder.embed(corpus.texts[:16])  # warm up
        passage_vectors, took = timed(embedder.embed, corpus.texts)
        full_rate[name] = len(corpus.texts) / took
        vectors[name] = (passage_vectors, embedder.embed(corpus.queries))
    ranked = {name: Ranked(corpus, *v) for name, v in vectors.items()}

    texts = corpus.sample(sample)
    for embedder in backends.values():
        embedder.embed(texts[:16])
    seconds: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(passes):
        for name, embedder in backends.items():
            seconds[name].append(timed(embedder.embed, texts)[1])
    rate = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}

    (recall32, ndcg32), (recall8, ndcg8) = ranked["fp32"].figures(corpus), ranked["int8"].figures(corpus)
    overlap = statistics.fmean(
        len(set(ranked["fp32"].top[q]) & set(ranked["int8"].top[q])) / 10 for q in corpus.query_ids
    )
    top1 = statistics.fmean(ranked["fp32"].top[q][0] == ranked["int8"].top[q][0] for q in corpus.query_ids)
    cosines = (vectors["fp32"][0] * vectors["int8"][0]).sum(axis=1)
    query_cosines = (vectors["fp32"][1] * vectors["int8"][1]).sum(axis=1)
    mean_shift, max_shift, flips = confidence_shift(corpus, ranked["fp32"], ranked["int8"])

    print(
        f"\n== {corpus.name}: {len(corpus.names)} documents, {len(corpus.texts)} passages, "
        f"{len(corpus.queries)} queries; throughput on {len(texts)} passages"
    )
    print(
        f"{'backend':<12}{'recall@10':>10}{'nDCG@10':>9}{'passages/s':>12}{f'({passes} passes)':>22}{'full pass/s':>13}"
    )
    for name, label in (("fp32", "torch fp32"), ("int8", "onnx int8")):
        recall, ndcg = (recall32, ndcg32) if name == "fp32" else (recall8, ndcg8)
        passes_text = " ".join(f"{len(texts) / s:.1f}" for s in seconds[name])
        print(
            f"{label:<12}{recall:>10.4f}{ndcg:>9.4f}{rate[name]:>12.1f}{passes_text:>22}{full_rate[name]:>13.1f}"
        )
    ratio, full_ratio = rate["int8"] / rate["fp32"], full_rate["int8"] / full_rate["fp32"]
    print(
        f"{'int8 - fp32':<12}{recall8 - recall32:>+10.4f}{ndcg8 - ndcg32:>+9.4f}{'x' + format(ratio, '.2f'):>12}"
        f"{'':>22}{'x' + format(full_ratio, '.2f'):>13}"
    )
    print(
        f"top-10 overlap {overlap:.3f}, same top-1 {top1:.3f}; cosine int8 to fp32: passages "
        f"min {cosines.min():.4f} mean {cosines.mean():.4f}, queries min {query_cosines.min():.4f} "
        f"mean {query_cosines.mean():.4f}"
    )
    print(
        f"shipped dense calibration: confidence change mean {mean_shift:.4f}, max {max_shift:.4f}; "
        f"decisions flipped at {HANDOFF_BELOW}: {flips} of {len(corpus.queries)}"
    )
    return {
        "recall_delta": recall8 - recall32,
        "ndcg_delta": ndcg8 - ndcg32,
        "ratio": ratio,
        "full_ratio": full_ratio,
        "overlap": overlap,
        "queries": len(corpus.queries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sets", nargs="*", type=Path, help="BEIR set folders (default: the five shipped)")
    parser.add_argument("--sample", type=int, default=256, help="passages per timed pass (default 256)")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per backend (default 3)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the int8 export is cached")
    args = parser.parse_args()
    folders = args.sets or [EVAL_DIR / s for s in SETS]

    started = time.perf_counter()
    backends = {
        "fp32": Embedder(EmbeddingConfig(backend="torch")),
        "int8": Embedder(EmbeddingConfig(backend="onnx_int8", cache_dir=args.cache_dir)),
    }
    for embedder in backends.values():
        embedder.embed(["load the model"])
    print(
        f"{date.today().isoformat()}, {platform.node()}: {available_cpus()} CPUs usable, "
        f"load average {os.getloadavg()[0]:.1f} at start; models loaded in {time.perf_counter() - started:.0f} s"
    )
    results = {folder.name: measure(Corpus(folder), backends, args.sample, args.passes) for folder in folders}

    print("\n== summary (targets: int8 >= 2x fp32 throughput, recall@10 within 0.005 of fp32)")
    print(
        f"{'set':<12}{'d recall@10':>12}{'d nDCG@10':>11}{'overlap':>9}{'x (median)':>11}{'x (full)':>10}  met"
    )
    for name, r in results.items():
        met = r["ratio"] >= 2.0 and abs(r["recall_delta"]) <= 0.005
        print(
            f"{name:<12}{r['recall_delta']:>+12.4f}{r['ndcg_delta']:>+11.4f}{r['overlap']:>9.3f}"
            f"{r['ratio']:>11.2f}{r['full_ratio']:>10.2f}  {'yes' if met else 'no'}"
        )
    if len(results) > 1:  # every query of every set counted once
        n = sum(r["queries"] for r in results.values())
        pooled = {
            k: sum(r[k] * r["queries"] for r in results.values()) / n
            for k in ("recall_delta", "ndcg_delta", "overlap")
        }
        print(
            f"{f'all, {n:.0f} q':<12}{pooled['recall_delta']:>+12.4f}{pooled['ndcg_delta']:>+11.4f}"
            f"{pooled['overlap']:>9.3f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
