"""The reranker runtime: loads offline from a weights folder and the base model, runs as int8 ONNX
close to float32, makes its export once, and refuses weights it cannot trust.

The weights here are made by the test from the base model with a seeded, untrained head (what is
tested is the runtime and its format, not a trained model's judgement)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.embedding import default_model_path
from pipelines.reranking import WORD_EMBEDDINGS, Reranker, RerankerUnavailable, save_weights
from tests.reranker_support import make_weights

PAIRS = [
    (
        "How can I undo my last commit?",
        "Run git reset --soft HEAD~1: the commit goes, its changes stay staged.",
    ),
    ("How can I undo my last commit?", "git-log shows the commit logs, newest first."),
    ("Why does my query not use the index?", "The planner prefers a sequential scan when most rows match."),
    ("Why does my query not use the index?", "CREATE INDEX constructs an index on a column of a table."),
    (
        "How do I remove duplicates from an array?",
        "Use a hash: grep { !$seen{$_}++ } @array keeps the first.",
    ),
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_weights(tmp_path_factory.mktemp("reranker") / "weights")


@pytest.fixture(scope="module")
def int8(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Reranker:
    return Reranker(weights, cache_dir=tmp_path_factory.mktemp("rerank-cache"))


@pytest.fixture(scope="module")
def fp32(weights: Path) -> Reranker:
    return Reranker(weights, backend="torch")


def test_the_weights_file_leaves_out_the_word_embeddings_and_names_its_base(weights: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(weights / "model.safetensors"), "np") as f:
        keys = set(f.keys())
        assert {str(f.get_tensor(k).dtype) for k in keys} == {"float16"}
    assert WORD_EMBEDDINGS not in keys
    assert "classifier.weight" in keys
    meta = json.loads((weights / "meta.json").read_text())
    assert len(meta["base_model_sha256"]) == 64
    assert (weights / "model.safetensors").stat().st_size < 30_000_000


def test_int8_logits_follow_float32_and_batches_match_single_passages(fp32: Reranker, int8: Reranker) -> None:
    a = [fp32.score(q, [p])[0] for q, p in PAIRS]
    b = [int8.score(q, [p])[0] for q, p in PAIRS]
    spread = max(a) - min(a)
    assert spread > 0.1  # the head makes distinct logits, so the comparison below means something
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.1 * spread
    query = PAIRS[2][0]
    passages = [PAIRS[2][1], PAIRS[3][1]]
    for model in (fp32, int8):
        together = model.score(query, passages)
        alone = [model.score(query, [p])[0] for p in passages]
        assert together == pytest.approx(alone, abs=1e-3)  # padding is masked
        assert model.score(query, []) == []


def test_probability_is_the_folders_platt_calibration(int8: Reranker) -> None:
    assert int8.probability(2.0) == pytest.approx(0.5)  # 0.5 * 2 - 1 = 0
    assert int8.probability(10.0) > int8.probability(0.0) > int8.probability(-10.0)
    assert int8.max_length == 128


def test_the_export_is_made_once_and_reused(weights: Path, tmp_path: Path) -> None:
    first = Reranker(weights, cache_dir=tmp_path)
    entries = list(tmp_path.glob("reranker-*/model.int8.onnx"))
    assert len(entries) == 1
    stamp = entries[0].stat().st_mtime_ns
    second = Reranker(weights, cache_dir=tmp_path)
    assert entries[0].stat().st_mtime_ns == stamp
    query, passage = PAIRS[0]
    assert first.score(query, [passage]) == second.score(query, [passage])


def test_another_base_model_or_missing_weights_are_refused(weights: Path, tmp_path: Path) -> None:
    other = tmp_path / "base"
    shutil.copytree(default_model_path(), other)
    (other / "model.safetensors").write_bytes(b"not the weights the reranker was trained on")
    with pytest.raises(RerankerUnavailable, match="another base model"):
        Reranker(weights, base_dir=other, backend="torch")
    with pytest.raises(RerankerUnavailable, match="no reranker weights"):
        Reranker(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown reranker backend"):
        Reranker(weights, backend="tpu")


def test_weights_whose_word_embeddings_moved_are_not_saved(tmp_path: Path) -> None:
    import torch
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(default_model_path()), num_labels=1)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[5] += 1.0
    with pytest.raises(ValueError, match="word embeddings changed"):
        save_weights(model, tmp_path / "w", {})
    assert not (tmp_path / "w" / "model.safetensors").exists()
