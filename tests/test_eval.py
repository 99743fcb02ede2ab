"""The evaluation command: metrics by hand-computed examples, and a tiny BEIR set end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cli.evaluate import (
    expected_calibration_error,
    hold_out,
    load_dataset,
    ndcg_at,
    recall_at,
    reciprocal_rank,
    run_eval,
)
from groundwork.errors import GroundworkError


def test_metrics_match_hand_computed_values() -> None:
    grades = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], grades, 10) == pytest.approx(1.0)
    assert ndcg_at(["c", "a"], grades, 10) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert recall_at(["c", "a"], grades, 1) == 0.0
    assert recall_at(["c", "a"], grades, 2) == 0.5
    assert reciprocal_rank(["c", "x", "b"], grades) == pytest.approx(1 / 3)
    assert reciprocal_rank(["c"], grades) == 0.0
    assert expected_calibration_error([(0.9, True), (0.9, True)]) == pytest.approx(0.1)
    assert expected_calibration_error([(1.0, False)]) == pytest.approx(1.0)


def _write(
    folder: Path, corpus: dict[str, str], queries: dict[str, str], qrels: list[tuple[str, str]]
) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in corpus.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels)
    )
    return folder


CORPUS = {
    "d1": "Vacuum reclaims storage occupied by dead tuples in PostgreSQL tables.",
    "d2": "Streaming replication sends write-ahead log records to standby servers.",
    "d3": "A B-tree index speeds up equality and range lookups on sorted data.",
    "d4": "The holiday policy grants twenty-five days of annual leave to every employee.",
    "d5": "Row-level security policies restrict which rows a role may select.",
}
QUERIES = {
    "q1": "how to reclaim dead tuple storage",
    "q2": "replicate write-ahead log to a standby",
    "q3": "index for range lookups",
    "q4": "how many days of annual leave",
}
QRELS = [("q1", "d1"), ("q2", "d2"), ("q3", "d3"), ("q4", "d4")]


def test_hold_out_makes_every_fourth_query_unanswerable(tmp_path: Path) -> None:
    data = load_dataset(_write(tmp_path / "ds", CORPUS, QUERIES, QRELS))
    answerable, unanswerable, removed = hold_out(data)
    assert unanswerable == {"q4"}
    assert removed == {"d4"}
    assert answerable == {"q1", "q2", "q3"}


def test_bad_dataset_is_a_clear_error(tmp_path: Path) -> None:
    folder = _write(tmp_path / "ds", CORPUS, QUERIES, QRELS)
    (folder / "qrels" / "test.tsv").write_text("q1 d1 1\n")
    with pytest.raises(GroundworkError, match="line 1"):
        load_dataset(folder)
    with pytest.raises(GroundworkError, match="not a BEIR data set"):
        load_dataset(tmp_path / "missing")


def test_eval_runs_the_real_pipeline_for_every_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    report = run_eval(_write(tmp_path / "ds", CORPUS, QUERIES, QRELS), tmp_path / "work")
    results = report.metrics
    assert set(results) == {"dense", "lexical", "hybrid"}
    dense = results["dense"]
    assert dense["answerable"] == 3
    assert dense["unanswerable"] == 1
    assert dense["recall@10"] == pytest.approx(1.0)
    assert dense["mrr"] == pytest.approx(1.0)
    assert dense["handoff_recall"] == pytest.approx(1.0)  # the held-out leave question hands off
    for m in results.values():
        assert 0.0 <= m["ece"] <= 1.0
        assert 0.0 <= m["ndcg@10"] <= 1.0
    assert report.baseline["recall@10"] == pytest.approx(1.0)  # three short documents: all in the top 10
    assert set(report.baseline) == {"ndcg@10", "recall@10", "recall@100", "mrr"}
    dense_records = [r for r in report.queries if r["mode"] == "dense"]
    assert len(report.queries) == 3 * len(dense_records) == 12
    for record in dense_records:
        assert record["decision"] in {"answer", "handoff"}
        assert set(record["features"]) == {
            "top_score",
            "margin",
            "top_lexical",
            "lexical_share",
            "query_coverage",
        }
        if record["answerable"]:
            assert record["first_relevant_rank"] == 1 and record["top"][0] in record["relevant"]
        else:
            assert record["first_relevant_rank"] is None and record["relevant"] == []
