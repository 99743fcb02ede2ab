"""The int8 ONNX embedding backend against sentence-transformers' float32, with the real model.

The export is made once into a temporary cache for this module (about 10 s on 2 cores), and once
more into another to show that it is reproducible byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from groundwork.settings import (
    DEFAULT_MODEL_NAME,
    DatabaseConfig,
    EmbeddingConfig,
    GroundworkConfig,
    load_config,
)
from indexes.embedded import EmbeddedServer
from indexes.schema import build_schema_name, ensure_schema, version_settings
from pipelines import onnx_export
from pipelines.embedding import Embedder, OnnxEncoder, default_model_path
from tests.conftest import new_database, write_config
from tests.pipelines.onnx_helpers import quantised_weights

#: Varied texts: empty, whitespace, a word, questions, prose, code, accents and CJK, a list, and one
#: longer than the model's 256-token limit (truncated).
TEXTS = [
    "",
    "   padded with spaces and\ttabs   ",
    "vacuum",
    "How do I change the editor that opens for commit messages?",
    "What happens to open transactions when the server shuts down?",
    "The retention policy keeps invoices for seven years; payslips are kept for six.",
    "SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 10;",
    "Crème brûlée, naïve façade, Zürich, 東京の天気は晴れです。",
    "1. Unplug the router. 2. Wait thirty seconds. 3. Plug it back in and check the lights.",
    " ".join(
        f"Section {i}: the replication slot keeps write-ahead log segments until every standby has "
        f"confirmed them, so a lagging standby can fill the disk."
        for i in range(30)
    ),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the int8 export, made here (the float32 export kept beside it)."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    onnx_export.cached_int8_model(default_model_path(), folder, keep_fp32=True)
    return folder


@pytest.fixture(scope="module")
def int8(cache: Path) -> Embedder:
    """The int8 embedder over that cache, loaded."""
    e = Embedder(EmbeddingConfig(backend="onnx_int8", cache_dir=cache))
    e.embed(["warm up"])
    return e


def _entry(cache: Path) -> Path:
    (entry,) = [p for p in cache.iterdir() if p.is_dir()]
    return entry


def test_fp32_export_matches_sentence_transformers(cache: Path, embedder: Embedder) -> None:
    fp32 = OnnxEncoder(_entry(cache) / "model.fp32.onnx", default_model_path())
    assert fp32.max_seq_length == 256
    diff = np.abs(fp32.encode(TEXTS, 3) - embedder.embed(TEXTS))
    assert diff.max() < 1e-5


def test_int8_vectors_are_close_to_fp32_and_unit_length(int8: Embedder, embedder: Embedder) -> None:
    reference, quantised = embedder.embed(TEXTS), int8.embed(TEXTS)
    assert quantised.shape == (len(TEXTS), 384)
    assert quantised.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    cosines = (reference * quantised).sum(axis=1)
    # Measured here (AVX2, no VNNI): 0.988-0.998 (mean 0.996); the empty text is the least faithful.
    assert cosines.min() >= 0.985
    assert min(c for c, t in zip(cosines, TEXTS, strict=True) if len(t.split()) >= 5) >= 0.993
    assert cosines.mean() >= 0.993


def test_int8_weights_fit_in_7_bits(cache: Path) -> None:
    # Every CPU then sums their products exactly: without VNNI (AVX2 only), x86 adds pairs of
    # uint8 x int8 products in 16 bits, which full-range int8 weights overflow (255 x 127 x 2).
    [made] = cache.glob(f"*/{onnx_export.INT8_FILE}")
    weights = quantised_weights(made)
    assert {w.dtype for w in weights} == {np.dtype(np.int8)}
    low, high = min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)
    assert low >= -64 and high <= 64  # 255 x 64 x 2 = 32,640: no 16-bit pair sum overflows
    assert high - low >= 100  # the range is used, not collapsed


def test_output_order_is_kept_across_length_sorted_batches(cache: Path, int8: Embedder) -> None:
    rng = np.random.default_rng(7)
    texts = [TEXTS[i] for i in rng.permutation(len(TEXTS))] + TEXTS[3:6]
    # The float32 export in length-sorted batches of 3: each row is its own text's vector.
    fp32 = OnnxEncoder(_entry(cache) / "model.fp32.onnx", default_model_path())
    alone = np.vstack([fp32.encode([t], 1) for t in texts])
    np.testing.assert_allclose(fp32.encode(texts, 3), alone, atol=1e-5)
    # int8 runs one text per run: a text's vector does not depend on what it is embedded with.
    alone = np.vstack([int8.embed([t]) for t in texts])
    np.testing.assert_allclose(int8.embed(texts), alone, atol=1e-6)


def test_token_counts_agree_between_backends(int8: Embedder, embedder: Embedder) -> None:
    counts = int8.count_tokens(TEXTS)
    assert counts == embedder.count_tokens(TEXTS)
    # Both count with their own tokenizer: the counts are those of sentence-transformers' tokenizer.
    model_tokenizer = embedder._load().tokenizer
    assert counts == [len(ids) for ids in model_tokenizer(TEXTS, add_special_tokens=False)["input_ids"]]
    assert counts[-1] > 256  # counted without truncation
    assert int8.count_tokens([]) == []


def test_the_cache_is_reused_and_the_export_is_reproducible(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _entry(cache)
    made = entry / onnx_export.INT8_FILE
    manifest = json.loads((entry / onnx_export.MANIFEST_FILE).read_text())
    assert manifest["sha256"] == hashlib.sha256(made.read_bytes()).hexdigest()
    stamp = made.stat().st_mtime_ns

    real_export = onnx_export.export_fp32

    def refuse(*args: object) -> None:
        raise AssertionError("exported again although the cache holds the export")

    monkeypatch.setattr(onnx_export, "export_fp32", refuse)
    fresh = Embedder(EmbeddingConfig(backend="onnx_int8", cache_dir=cache))
    assert fresh.embed(["reuse"]).shape == (1, 384)
    assert made.stat().st_mtime_ns == stamp
    assert [p for p in cache.iterdir() if p.is_dir()] == [entry]

    # Made again from scratch elsewhere: the same bytes.
    monkeypatch.setattr(onnx_export, "export_fp32", real_export)
    started = time.perf_counter()
    again = onnx_export.cached_int8_model(default_model_path(), tmp_path)
    assert time.perf_counter() - started > 0.5  # it really exported
    assert again.name == made.name and again.parent.name == entry.name
    assert again.read_bytes() == made.read_bytes()
    assert not [p for p in again.parent.iterdir() if p.name.startswith(".export-")]


def _config(tmp_path: Path, embedding: dict[str, object]) -> GroundworkConfig:
    (tmp_path / "share").mkdir(exist_ok=True)
    data: dict[str, object] = {
        "sources": [
            {
                "name": "s",
                "connector": "filesystem",
                "path": "share",
                "residency": "uk",
                "contract": "none",
                "access": ["public"],
            }
        ],
        "embedding": embedding,
    }
    return load_config(write_config(tmp_path / "g.yaml", data))


def test_version_settings_name_the_backend_only_when_not_torch(tmp_path: Path) -> None:
    default = _config(tmp_path, {})
    torch = _config(tmp_path, {"backend": "torch"})
    onnx = _config(tmp_path, {"backend": "onnx_int8"})
    before = {  # what version_settings gave before the backend existed
        "model": DEFAULT_MODEL_NAME,
        "dimensions": "384",
        "chunking": json.dumps(default.chunking.model_dump(), sort_keys=True),
        "redaction": "r1",
    }
    assert version_settings(default, redaction="r1") == before
    assert version_settings(torch, redaction="r1") == before
    changed = version_settings(onnx, redaction="r1")
    assert changed == {**before, "model": f"{DEFAULT_MODEL_NAME}+onnx-int8"}


def test_a_backend_change_builds_a_new_index_version(pg_server: EmbeddedServer, tmp_path: Path) -> None:
    settings = version_settings(_config(tmp_path, {}), redaction="r1")
    int8_settings = version_settings(_config(tmp_path, {"backend": "onnx_int8"}), redaction="r1")
    roles = DatabaseConfig()
    with psycopg.connect(new_database(pg_server), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

        def ensure(values: dict[str, str]) -> str | None:
            return ensure_schema(
                conn,
                "gw_uk",
                region="uk",
                settings=values,
                reader=roles.reader_role,
                writer=roles.writer_role,
            )

        assert ensure(settings) is None  # a new index, built with torch
        assert ensure(settings) is None  # the default changes nothing
        assert ensure(int8_settings) == build_schema_name("gw_uk")  # int8: the next version
        assert ensure(settings) is None  # back to torch: the build is dropped
        meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM gw_uk.index_meta").fetchall())
        assert meta["model"] == DEFAULT_MODEL_NAME
        assert not [k for k in meta if k.startswith("build.")]


def test_recorded_model_names_map_back_to_their_backend() -> None:
    int8 = EmbeddingConfig(backend="onnx_int8")
    assert int8.model_name == f"{DEFAULT_MODEL_NAME}+onnx-int8"
    # Each recorded name maps back to a config that records that same name.
    for name in (DEFAULT_MODEL_NAME, f"{DEFAULT_MODEL_NAME}+onnx-int8"):
        for config in (int8, EmbeddingConfig()):
            assert config.for_recorded_model(name, 384).model_name == name
    back = int8.for_recorded_model(DEFAULT_MODEL_NAME, 384)
    assert (back.backend, back.model_path, back.model_name) == ("torch", None, DEFAULT_MODEL_NAME)
    other = EmbeddingConfig().for_recorded_model("/models/other+onnx-int8", 768)
    assert (other.backend, other.model_path, other.dimensions) == ("onnx_int8", Path("/models/other"), 768)
    assert other.model_name == "/models/other+onnx-int8"


def test_the_int8_model_uses_its_float32_models_calibration() -> None:
    from groundwork.enums import RetrievalMode
    from indexes.confidence import load_calibration

    fp32 = load_calibration(RetrievalMode.DENSE, DEFAULT_MODEL_NAME)
    int8 = load_calibration(RetrievalMode.DENSE, DEFAULT_MODEL_NAME + "+onnx-int8")
    assert fp32 is not None and int8 is not None and int8.coef == fp32.coef
    assert load_calibration(RetrievalMode.DENSE, "/some/other/model") is None
