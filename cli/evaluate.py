"""``groundwork eval``: retrieval quality and handoff behaviour on a BEIR-format data set.

The data set goes through the real path: its documents are written as files, ingested by the
filesystem connector with redaction into a fresh embedded index, and every query is asked through
the retrieval API over HTTP, once per retrieval mode (dense, lexical, hybrid). The relevant
documents of every fourth query are held out of the corpus, so those queries have no answer: they
measure whether ``handoff`` fires when it should.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from cli.eval_baseline import PASSAGE_WORDS, naive_rankings
from groundwork.enums import RetrievalMode
from groundwork.errors import GroundworkError
from groundwork.settings import load_config
from indexes.confidence import FEATURES, Calibration, features
from indexes.embedded import EmbeddedServer
from indexes.regions import embedded_data_dir

logger = logging.getLogger(__name__)

MODES = tuple(RetrievalMode)
EVAL_KEY = "groundwork-eval-key"
HOLD_OUT_EVERY = 4


@dataclass(frozen=True, slots=True)
class Dataset:
    """A BEIR data set: documents, queries and graded relevance judgements."""

    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> document id -> grade


def load_dataset(folder: Path) -> Dataset:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv``; errors name the bad line."""
    try:
        corpus = {
            str(r["_id"]): (str(r.get("title", "")), str(r["text"])) for r in _jsonl(folder / "corpus.jsonl")
        }
        queries = {str(r["_id"]): str(r["text"]) for r in _jsonl(folder / "queries.jsonl")}
        qrels: dict[str, dict[str, int]] = {}
        lines = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise GroundworkError(f"{folder} is not a BEIR data set: {exc}") from None
    for n, line in enumerate(lines, 1):
        parts = line.split("\t")
        if n == 1 and parts[0] == "query-id":
            continue
        if len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit():
            raise GroundworkError(f"qrels/test.tsv line {n}: expected 'query-id<TAB>corpus-id<TAB>score'")
        if int(parts[2]) > 0:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return Dataset(corpus, {q: t for q, t in queries.items() if q in qrels}, qrels)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def hold_out(data: Dataset) -> tuple[set[str], set[str], set[str]]:
    """Split queries: (answerable, unanswerable) and the document ids removed from the corpus."""
    ordered = sorted(data.queries)
    held = {q for i, q in enumerate(ordered) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1}
    removed = {d for q in held for d in data.qrels[q]}
    unanswerable = {q for q in ordered if not (set(data.qrels[q]) - removed)}
    return set(ordered) - unanswerable, unanswerable, removed


def document_texts(data: Dataset, removed: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """Each document's text as an evaluation ingests it (its title, a blank line, its text), but the
    ``removed`` ones (the held-out answers)."""
    return {
        doc_id: f"{title}\n\n{text}" if title else text
        for doc_id, (title, text) in data.corpus.items()
        if doc_id not in removed
    }


def ranking_figures(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """nDCG@10, recall@10 and @100 and MRR, each the mean over the queries ranked (answerable ones)."""
    n = max(len(rankings), 1)
    return {
        "ndcg@10": sum(ndcg_at(r, qrels[q], 10) for q, r in rankings.items()) / n,
        "recall@10": sum(recall_at(r, qrels[q], 10) for q, r in rankings.items()) / n,
        "recall@100": sum(recall_at(r, qrels[q], 100) for q, r in rankings.items()) / n,
        "mrr": sum(reciprocal_rank(r, qrels[q]) for q, r in rankings.items()) / n,
    }


def ndcg_at(ranked: list[str], grades: dict[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of a ranked list of document ids."""
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(grades.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked: list[str], grades: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the top ``k``."""
    return len(set(ranked[:k]) & set(grades)) / len(grades) if grades else 0.0


def reciprocal_rank(ranked: list[str], grades: dict[str, int]) -> float:
    """1 / rank of the first relevant document, 0 if none."""
    return next((1.0 / (i + 1) for i, d in enumerate(ranked) if d in grades), 0.0)


def expected_calibration_error(pairs: list[tuple[float, bool]], bins: int = 10) -> float:
    """ECE of (confidence, top result relevant) pairs over equal-width bins."""
    if not pairs:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(c, ok) for c, ok in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if members:
            conf = sum(c for c, _ in members) / len(members)
            acc = sum(ok for _, ok in members) / len(members)
            total += len(members) / len(pairs) * abs(conf - acc)
    return total


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Figures per retrieval mode, and the confidence calibration fitted for each mode."""

    metrics: dict[str, dict[str, float]]
    calibrations: dict[str, Calibration]
    #: The naive dense baseline on the same documents and answerable queries (:mod:`cli.eval_baseline`).
    baseline: dict[str, float]
    #: One record per mode and query (ranks, features, confidence, decision), for ``--dump``.
    queries: list[dict[str, Any]]


def run_eval(
    dataset_dir: Path,
    workdir: Path,
    *,
    modes: tuple[str, ...] = MODES,
    retrieval: dict[str, Any] | None = None,
) -> EvalReport:
    """Ingest the data set (minus held-out documents) and evaluate each of ``modes``, with these
    ``retrieval`` settings over the evaluation's own (e.g. ``rerank_depth``, ``reranker_weights``)."""
    from orchestration.runner import run_ingest

    data = load_dataset(dataset_dir)
    answerable, unanswerable, removed = hold_out(data)
    kept = document_texts(data, removed)
    docs = workdir / "corpus"
    docs.mkdir(parents=True)
    for doc_id, text in kept.items():
        (docs / f"{_safe(doc_id)}.txt").write_text(text, encoding="utf-8")
    config_path = workdir / "eval.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "eval",
                        "connector": "filesystem",
                        "path": "corpus",
                        "residency": "eval",
                        "access": ["public"],
                        "contract": {
                            "data_owner": "the evaluation's operator",
                            "purpose": "measure retrieval and confidence on a labelled set",
                            "lawful_basis": "legitimate_interests",
                            "data_categories": ["published documentation"],
                            "data_subjects": ["authors named in the documentation"],
                            "agreement": "the set's published licence",
                            "residency_commitment": ["eval"],
                            "retention": "the evaluation's working folder, deleted after the run",
                        },
                    }
                ],
                "principals": [
                    {
                        "name": "evaluator",
                        "api_key_sha256": hashlib.sha256(EVAL_KEY.encode()).hexdigest(),
                        "regions": ["eval"],
                    }
                ],
                # The API's own decisions use the linear confidence: the shipped calibration was
                # fitted on a data set like this one, so its figures here come out of fold below.
                "retrieval": {"max_k": 100, "calibrated": False, **(retrieval or {})},
                "api": {"rate_limit_per_minute": 1_000_000, "rate_limit_burst": 100_000},
            }
        )
    )
    config = load_config(config_path)
    try:
        summary = run_ingest(config_path, config)
        if not summary.success:
            raise GroundworkError("the evaluation ingest failed; see the Dagster run")
        by_file = {f"{_safe(d)}.txt": d for d in data.corpus}
        outcomes = {m: _evaluate_mode(config_path, m, data, answerable, unanswerable, by_file) for m in modes}
        rankings = naive_rankings(kept, {q: data.queries[q] for q in answerable}, config.embedding)
        return EvalReport(
            metrics={m: figures for m, (figures, _, _) in outcomes.items()},
            calibrations={m: cal for m, (_, cal, _) in outcomes.items() if cal is not None},
            queries=[record for _, _, records in outcomes.values() for record in records],
            baseline=ranking_figures(rankings, data.qrels),
        )
    finally:
        EmbeddedServer(embedded_data_dir(config)).stop()


def _safe(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)


def _evaluate_mode(
    config_path: Path,
    mode: str,
    data: Dataset,
    answerable: set[str],
    unanswerable: set[str],
    by_file: dict[str, str],
) -> tuple[dict[str, float], Calibration | None, list[dict[str, Any]]]:
    import uvicorn

    from serving.api import create_app
    from serving.retrieval import build_retriever

    base = load_config(config_path)
    config = base.model_copy(update={"retrieval": base.retrieval.model_copy(update={"mode": mode})})
    with build_retriever(config, verify=True) as retriever:
        app = create_app(config, retriever)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        rows = []
        logits: dict[str, float | None] = {}  # the reranker's logit for the top result, if it reranked
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                for qid in sorted(data.queries):
                    r = client.post(
                        "/v1/search",
                        json={"query": data.queries[qid], "k": 100},
                        headers={"Authorization": f"Bearer {EVAL_KEY}"},
                    )
                    r.raise_for_status()
                    body = r.json()
                    ranked: list[str] = []
                    for hit in body["results"]:
                        doc = by_file.get(hit["source_uri"].rsplit("/", 1)[-1])
                        if doc is not None and doc not in ranked:
                            ranked.append(doc)
                    hits = body["results"]
                    x = features(
                        [h["score"] for h in hits],
                        [h["lexical_score"] for h in hits],
                        data.queries[qid],
                        [h["text"] for h in hits],
                    )
                    rows.append((qid, ranked, body["confidence"], body["decision"], x))
                    logits[qid] = hits[0].get("rerank_score") if hits else None
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    handoffs = {q for q, _, _, decision, _ in rows if decision == "handoff"}
    labels = {
        q: q in answerable and bool(ranked) and ranked[0] in data.qrels[q] for q, ranked, _, _, _ in rows
    }
    calib = [(conf, labels[q]) for q, _, conf, _, _ in rows]
    fitted, calibration = _fit_calibration(
        mode, config.embedding.model_name, rows, labels, unanswerable, config.retrieval.handoff_below
    )
    records = [
        {
            "mode": mode,
            "model": config.embedding.model_name,
            "query_id": q,
            "query": data.queries[q],
            "answerable": q in answerable,
            "relevant": sorted(data.qrels[q]) if q in answerable else [],
            "first_relevant_rank": next((i for i, d in enumerate(ranked, 1) if d in data.qrels[q]), None)
            if q in answerable
            else None,
            "top": ranked[:5],
            "confidence": conf,
            "decision": decision,
            "features": {name: round(float(v), 4) for name, v in zip(FEATURES, x, strict=True)},
            "rerank_score": logits[q],
        }
        for q, ranked, conf, decision, x in rows
    ]
    return (
        fitted
        | {
            **ranking_figures({q: ranked for q, ranked, _, _, _ in rows if q in answerable}, data.qrels),
            "ece": expected_calibration_error(calib),
            "handoff_precision": len(handoffs & unanswerable) / len(handoffs) if handoffs else 0.0,
            "handoff_recall": len(handoffs & unanswerable) / len(unanswerable) if unanswerable else 0.0,
            "answerable": float(len(answerable)),
            "unanswerable": float(len(unanswerable)),
        },
        calibration,
        records,
    )


def _fit_calibration(
    mode: str,
    model: str,
    rows: list[tuple[str, list[str], float, str, list[float]]],
    labels: dict[str, bool],
    unanswerable: set[str],
    threshold: float,
) -> tuple[dict[str, float], Calibration | None]:
    """Fit a logistic calibration on all queries; report its out-of-fold ECE and handoff figures.

    The figures come from two folds by query (fitted on one half, measured on the other), so they
    are not flattered by fitting and measuring on the same queries.
    """
    from sklearn.linear_model import LogisticRegression

    x = [r[4] for r in rows]
    y = [labels[r[0]] for r in rows]
    if len(set(y)) < 2:
        return {}, None
    folds = [
        [i for i, r in enumerate(rows) if int(hashlib.sha256(r[0].encode()).hexdigest(), 16) % 2 == f]
        for f in (0, 1)
    ]
    prob = [0.0] * len(rows)
    for f in (0, 1):
        train = folds[1 - f]
        if len({y[i] for i in train}) < 2:
            return {}, None
        clf = LogisticRegression(C=1.0, max_iter=1000).fit([x[i] for i in train], [y[i] for i in train])
        for i, p in zip(folds[f], clf.predict_proba([x[i] for i in folds[f]])[:, 1], strict=True):
            prob[i] = float(p)
    handoffs = {rows[i][0] for i, p in enumerate(prob) if p < threshold}
    full = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    calibration = Calibration(
        mode=mode,
        model=model,
        coef=tuple(float(c) for c in full.coef_[0]),
        intercept=float(full.intercept_[0]),
        fitted_on=f"{len(rows)} queries",
    )
    return {
        "ece_calibrated_oof": expected_calibration_error(list(zip(prob, y, strict=True))),
        "handoff_precision_calibrated_oof": len(handoffs & unanswerable) / len(handoffs) if handoffs else 0.0,
        "handoff_recall_calibrated_oof": len(handoffs & unanswerable) / len(unanswerable)
        if unanswerable
        else 0.0,
    }, calibration


def format_results(results: dict[str, dict[str, float]], baseline: dict[str, float] | None = None) -> str:
    """A plain table: one row per mode, and the naive baseline's ranking figures under it."""
    cols = ["ndcg@10", "recall@10", "recall@100", "mrr", "ece", "handoff_precision", "handoff_recall"]
    first = next(iter(results.values()))
    lines = [
        f"queries: {int(first['answerable'])} answerable, {int(first['unanswerable'])} unanswerable (held out)",
        "the API's decisions with the linear confidence (calibration off):",
        "mode     " + "  ".join(f"{c:>17}" for c in cols),
    ]
    for mode, m in results.items():
        lines.append(f"{mode:<8} " + "  ".join(f"{m[c]:>17.3f}" for c in cols))
    if baseline:
        lines.append(
            f"naive baseline ({PASSAGE_WORDS}-word passages, best per document, no redaction): "
            + ", ".join(f"{c} {baseline[c]:.3f}" for c in cols if c in baseline)
        )
    oof = ["ece_calibrated_oof", "handoff_precision_calibrated_oof", "handoff_recall_calibrated_oof"]
    if all(c in m for m in results.values() for c in oof):
        lines.append("with the logistic calibration (the default), out of fold (2 folds by query):")
        lines.append("mode     " + "  ".join(f"{c.removesuffix('_calibrated_oof'):>17}" for c in oof))
        for mode, m in results.items():
            lines.append(f"{mode:<8} " + "  ".join(f"{m[c]:>17.3f}" for c in oof))
    return "\n".join(lines)
