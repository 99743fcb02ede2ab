"""Leave-one-domain-out evaluation of the cross-encoder reranker.

``fold SET``: train on the other four sets (:func:`scripts.reranker.train.train`) and score the held-out
set's candidates (:mod:`scripts.reranker.mine_pairs`: the naive dense top 20 over the corpus minus the
held-out answers, each document's best passage), writing one JSON line per query to
``/tmp/reranker/lodo/SET.jsonl``. ``report``: from the five dumps, per held-out set, nDCG@10 and
recall@10 of the dense baseline and of its top N reranked by the cross-encoder (N = 5, 10, 20;
answerable queries); handoff on the unanswerable queries with the top logit as the signal, a Platt
calibration and threshold fitted on the other four sets' dumps; ECE; the oracle precision at recall
>= 0.8; and the cost of scoring N passages beside the bi-encoder's query embedding.

Usage::

    nice -n 19 .venv/bin/python -m scripts.reranker.lodo fold gitfaq
    nice -n 19 .venv/bin/python -m scripts.reranker.lodo report [--cost] > /tmp/reranker/report.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from cli.evaluate import expected_calibration_error, ndcg_at, recall_at
from scripts.reranker.mine_pairs import SETS, WORK
from scripts.reranker.train import MINED, Recipe, load_pairs, train

logger = logging.getLogger(__name__)

LODO = WORK / "lodo"
DEPTHS = (5, 10, 20)
TARGET_RECALL = 0.8


def score(model: Any, pairs: list[tuple[str, str]], batch_size: int = 32, net: Any = None) -> list[float]:
    """Raw logits of (query, passage) pairs, batched by length; the order of ``pairs`` is kept.
    ``net``: another network to run with ``model``'s tokenizer and ``max_length``."""
    import torch

    net, tok = net if net is not None else model.model, model.tokenizer
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
    out = [0.0] * len(pairs)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            features = tok(
                [pairs[i][0] for i in idx],
                [pairs[i][1] for i in idx],
                padding=True,
                truncation="longest_first",
                max_length=model.max_length,
                return_tensors="pt",
            )
            for i, v in zip(idx, net(**features).logits.view(-1).tolist(), strict=True):
                out[i] = float(v)
    return out


def run_fold(held: str, mined: Path = MINED, recipe: Recipe | None = None) -> Path:
    """Train without ``held`` and dump its scored candidates."""
    recipe = recipe or Recipe()
    pairs = load_pairs([s for s in SETS if s != held], mined, recipe)
    logger.info("fold %s: %d pairs", held, len(pairs))
    model = train(pairs, WORK / f"fold-{held}", recipe)
    candidates = json.loads((mined / f"{held}.json").read_text())["candidates"]
    flat = [(c["query"], p) for c in candidates for p in c["passages"]]
    started = time.monotonic()
    logits = iter(score(model, flat))
    logger.info("fold %s: scored %d pairs in %.1fs", held, len(flat), time.monotonic() - started)
    LODO.mkdir(parents=True, exist_ok=True)
    path = LODO / f"{held}.jsonl"
    with path.open("w") as f:
        for c in candidates:
            record = {k: c[k] for k in ("qid", "answerable", "relevant", "docs", "dense")}
            record["logits"] = [next(logits) for _ in c["docs"]]
            f.write(json.dumps(record) + "\n")
    return path


def reranked(record: dict[str, Any], depth: int, alpha: float = 0.0) -> list[str]:
    """The dense ranking with its top ``depth`` documents reordered by the cross-encoder's logit
    (plus ``alpha`` times the dense cosine: the fused variant)."""
    key = [x + alpha * c for x, c in zip(record["logits"], record["dense"], strict=True)]
    top = sorted(range(min(depth, len(record["docs"]))), key=lambda i: -key[i])
    return [record["docs"][i] for i in top] + record["docs"][depth:]


ALPHAS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def fit_alpha(records: list[dict[str, Any]], depth: int) -> float:
    """The fusion weight of the dense cosine with the best mean nDCG@10 on ``records`` (answerable)."""
    answerable = [r for r in records if r["answerable"]]

    def quality(alpha: float) -> float:
        return sum(ndcg_at(reranked(r, depth, alpha), r["relevant"], 10) for r in answerable)

    return max(ALPHAS, key=quality)


def signal(record: dict[str, Any], depth: int | None) -> tuple[float, bool]:
    """(handoff signal, top result relevant): the top logit at ``depth``, or the dense top cosine."""
    if depth is None:
        return record["dense"][0], bool(record["answerable"]) and record["docs"][0] in record["relevant"]
    first = reranked(record, depth)[0]
    return max(record["logits"][:depth]), bool(record["answerable"]) and first in record["relevant"]


def _handoff(probs: list[float], unanswerable: list[bool], threshold: float) -> tuple[float, float]:
    handed = [u for p, u in zip(probs, unanswerable, strict=True) if p < threshold]
    caught = sum(handed)
    total = sum(unanswerable)
    return (caught / len(handed) if handed else 0.0), (caught / total if total else 0.0)


def fit_threshold(probs: list[float], unanswerable: list[bool]) -> float:
    """The threshold (handoff below it) of best precision at recall >= 0.8; ties: higher recall."""
    values = sorted(set(probs))
    cuts = [values[0] - 1e-9] + [(a + b) / 2 for a, b in itertools.pairwise(values)]
    cuts.append(values[-1] + 1e-9)
    best: tuple[float, float, float] = (-1.0, -1.0, cuts[-1])
    for cut in cuts:
        precision, recall = _handoff(probs, unanswerable, cut)
        if recall >= TARGET_RECALL and (precision, recall) > best[:2]:
            best = (precision, recall, cut)
    return best[2]


def platt(xs: list[float], ys: list[bool]) -> tuple[float, float]:
    """A 1-D logistic calibration (coef, intercept) of the signal against the label."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e4).fit([[x] for x in xs], [int(y) for y in ys])
    return float(fit.coef_[0][0]), float(fit.intercept_[0])


def _prob(x: float, cal: tuple[float, float]) -> float:
    return 1.0 / (1.0 + math.exp(-(cal[0] * x + cal[1])))


def domain_figures(dumps: dict[str, list[dict[str, Any]]], held: str) -> dict[str, Any]:
    """All figures for the held-out set ``held`` (calibration fitted on the other sets' dumps)."""
    records = dumps[held]
    answerable = [r for r in records if r["answerable"]]
    out: dict[str, Any] = {"queries": len(records), "unanswerable": len(records) - len(answerable)}

    def ranking(rank: Any) -> dict[str, float]:
        n = max(len(answerable), 1)
        return {
            "ndcg@10": sum(ndcg_at(rank(r), r["relevant"], 10) for r in answerable) / n,
            "recall@10": sum(recall_at(rank(r), r["relevant"], 10) for r in answerable) / n,
        }

    out["dense"] = ranking(lambda r: r["docs"])  # the naive dense baseline
    for depth in DEPTHS:
        out[f"rerank@{depth}"] = ranking(lambda r, d=depth: reranked(r, d))
        others = [r for s, rs in dumps.items() if s != held for r in rs]
        if others:  # an extra, labelled as such: the logit plus alpha x cosine, alpha fitted elsewhere
            alpha = fit_alpha(others, depth)
            out[f"fused@{depth}"] = {"alpha": alpha, **ranking(lambda r, d=depth, a=alpha: reranked(r, d, a))}
    variants: list[tuple[str, int | None]] = [("dense", None)] + [(f"rerank@{d}", d) for d in DEPTHS]
    unanswerable = [not r["answerable"] for r in records]
    for name, at in variants:
        hx, hy = zip(*(signal(r, at) for r in records), strict=True)
        # Oracle: the best threshold on the held-out set itself, on the raw signal.
        oracle = _handoff(list(hx), unanswerable, fit_threshold(list(hx), unanswerable))
        out[name]["oracle_precision_at_recall_0.8"] = oracle[0] if oracle[1] >= TARGET_RECALL else 0.0
        out[name]["oracle_recall"] = oracle[1]
        others = [r for s, rs in dumps.items() if s != held for r in rs]
        if not others:
            continue
        xs, ys = zip(*(signal(r, at) for r in others), strict=True)
        cal = platt(list(xs), list(ys))
        threshold = fit_threshold([_prob(x, cal) for x in xs], [not r["answerable"] for r in others])
        probs = [_prob(x, cal) for x in hx]
        precision, recall = _handoff(probs, unanswerable, threshold)
        out[name].update(
            platt=cal,
            threshold=threshold,
            handoff_precision=precision,
            handoff_recall=recall,
            ece=expected_calibration_error(list(zip(probs, hy, strict=True))),
        )
    return out


def cost(model_dir: Path, mined: Path = MINED, queries: int = 10) -> dict[str, float]:
    """Median ms per query to score 5/10/20 passages (1 and 2 threads) and to embed the query."""
    import statistics

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.cross_encoder import CrossEncoder

    from scripts.reranker.train import base_model_path

    model = CrossEncoder(str(model_dir), max_length=256, device="cpu")
    model.model.eval()
    bi = SentenceTransformer(str(base_model_path()), device="cpu")
    cands = json.loads((mined / "pgdocs.json").read_text())["candidates"][:queries]
    out: dict[str, float] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        score(model, [(cands[0]["query"], p) for p in cands[0]["passages"]])  # warm-up
        for depth in DEPTHS:
            times = []
            for c in cands:
                started = time.perf_counter()
                score(model, [(c["query"], p) for p in c["passages"][:depth]], batch_size=depth)
                times.append(1000 * (time.perf_counter() - started))
            out[f"rerank{depth}_ms_{threads}t"] = statistics.median(times)
        times = []
        for c in cands:
            started = time.perf_counter()
            bi.encode([c["query"]])
            times.append(1000 * (time.perf_counter() - started))
        out[f"query_embed_ms_{threads}t"] = statistics.median(times)
    return out


def write_meta(dumps: dict[str, list[dict[str, Any]]], report: dict[str, Any], folder: Path) -> None:
    """Record in ``folder``'s ``meta.json`` the Platt calibration and threshold fitted on all the
    dumps (per depth; the signal is the top logit among the top ``depth`` passages) and the figures."""
    path = folder / "meta.json"
    meta = json.loads(path.read_text())
    records = [r for rs in dumps.values() for r in rs]
    calibration: dict[str, Any] = {}
    for depth in DEPTHS:
        xs, ys = zip(*(signal(r, depth) for r in records), strict=True)
        cal = platt(list(xs), list(ys))
        threshold = fit_threshold([_prob(x, cal) for x in xs], [not r["answerable"] for r in records])
        calibration[str(depth)] = {"coef": cal[0], "intercept": cal[1], "handoff_below": threshold}
    meta["platt"] = {
        "signal": "max raw logit over the top-N passages; p = 1 / (1 + exp(-(coef * logit + intercept)))",
        "label": "the top result after reranking is relevant",
        "fitted_on": sorted(dumps),
        "by_depth": calibration,
    }
    # The keys pipelines/reranking.py reads: one calibration (depth 10) and the truncation length.
    meta["calibration"] = {"depth": 10, **calibration["10"]}
    meta["max_length"] = meta["recipe"]["max_length"]
    meta["lodo"] = {k: v for k, v in report.items() if k in SETS}
    if "cost" in report:
        meta["cost_ms"] = report["cost"]
    path.write_text(json.dumps(meta, indent=1) + "\n")


def markdown(report: dict[str, Any]) -> str:
    """The README tables: ranking per held-out set and depth, then handoff and ECE per signal."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "| held-out set | dense nDCG@10 | rerank@5 | rerank@10 | rerank@20 | dense recall@10 | rerank@5 / @10 / @20 recall@10 | fused@5 / @10 / @20 nDCG@10 (extra) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sets = [s for s in SETS if s in report]
    for s in sets:
        r = report[s]
        fused = " / ".join(f(r.get(f"fused@{d}", {}).get("ndcg@10")) for d in DEPTHS)
        lines.append(
            f"| {s} | {f(r['dense']['ndcg@10'])} | "
            + " | ".join(f(r[f"rerank@{d}"]["ndcg@10"]) for d in DEPTHS)
            + f" | {f(r['dense']['recall@10'])} | "
            + " / ".join(f(r[f"rerank@{d}"]["recall@10"]) for d in DEPTHS)
            + f" | {fused} |"
        )
    lines += [
        "",
        "| held-out set | signal | handoff precision / recall (threshold fitted on the other four) | ECE | oracle precision at recall >= 0.8 |",
        "|---|---|---|---|---|",
    ]
    for s in sets:
        for name in ("dense", *(f"rerank@{d}" for d in DEPTHS)):
            r = report[s][name]
            label = "dense top cosine" if name == "dense" else f"top logit, N={name.split('@')[1]}"
            lines.append(
                f"| {s} | {label} | {f(r.get('handoff_precision'))} / {f(r.get('handoff_recall'))} | "
                f"{f(r.get('ece'))} | {f(r['oracle_precision_at_recall_0.8'])} |"
            )
    return "\n".join(lines)


def main() -> int:
    """``fold SET`` or ``report``; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("fold", "report"))
    ap.add_argument("held", nargs="?", choices=SETS)
    ap.add_argument("--max-pairs", type=int, default=Recipe().max_pairs)
    ap.add_argument("--cost", type=Path, help="a trained model folder to time")
    ap.add_argument("--markdown", action="store_true", help="print the README tables instead of JSON")
    ap.add_argument(
        "--write-meta",
        nargs="?",
        const=Path(__file__).resolve().parents[2] / "pipelines" / "reranker_weights",
        type=Path,
        help="record calibration and figures in this reranker folder's meta.json (default pipelines/reranker_weights/)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "fold":
        if not args.held:
            ap.error("fold needs the held-out set")
        run_fold(args.held, recipe=Recipe(max_pairs=args.max_pairs))
        return 0
    dumps = {
        s: [json.loads(line) for line in (LODO / f"{s}.jsonl").read_text().splitlines()]
        for s in SETS
        if (LODO / f"{s}.jsonl").exists()
    }
    report: dict[str, Any] = {s: domain_figures(dumps, s) for s in dumps}
    if args.cost:
        report["cost"] = cost(args.cost)
    if args.write_meta:
        write_meta(dumps, report, args.write_meta)
    print(markdown(report) if args.markdown else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
