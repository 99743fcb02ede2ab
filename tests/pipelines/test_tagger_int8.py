"""The tagger's int8 model: its 4-bit weights read back exactly, made once, and tagging as the 4-bit model does."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines import tagger_int8
from pipelines.pii_tagger import MODEL_FILE, PiiTagger, default_model_dir
from tests.pipelines.onnx_helpers import quantised_weights

TEXT = (
    "Hi Siobhan, this is Priya Raman. I moved to 12 Mill Lane, Leeds LS6 2AB last week; "
    "call me on 07700 900123 or write to priya.raman@example.co.uk."
)


def _logits(path: Path, text: str) -> Any:
    import onnxruntime
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0][0]


def test_the_4bit_weights_read_back_give_the_4bit_models_outputs(tmp_path: Path) -> None:
    q4 = default_model_dir().joinpath(*MODEL_FILE)
    fp32 = tmp_path / "model.fp32.onnx"
    tagger_int8.dequantize(q4, fp32)
    import onnx

    assert not [n for n in onnx.load(str(fp32)).graph.node if n.op_type == "MatMulNBits"]
    assert np.abs(_logits(fp32, TEXT) - _logits(q4, TEXT)).max() < 1e-3


def test_the_int8_model_is_made_once_and_the_same_each_time(tmp_path: Path) -> None:
    q4 = default_model_dir().joinpath(*MODEL_FILE)
    first = tagger_int8.cached_int8_tagger(q4, tmp_path / "a")
    made = first.stat().st_mtime_ns
    assert tagger_int8.cached_int8_tagger(q4, tmp_path / "a") == first
    assert first.stat().st_mtime_ns == made  # found, not made again
    again = tagger_int8.cached_int8_tagger(q4, tmp_path / "b")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(first.read_bytes()).digest()
    # Its labels are the 4-bit model's on nearly all of this text's word pieces (one of 50 differs: a
    # piece of the e-mail address read as a surname).
    assert (_logits(first, TEXT).argmax(-1) == _logits(q4, TEXT).argmax(-1)).mean() >= 0.95
    # Unsigned weights, which every CPU sums exactly (signed full-range weights overflow the 16-bit
    # pair sums of x86 CPUs without VNNI; see test_embedding_backends), over their whole range.
    weights = quantised_weights(first)
    assert {w.dtype for w in weights} == {np.dtype(np.uint8)}
    assert min(int(w.min()) for w in weights) == 0 and max(int(w.max()) for w in weights) == 255


@pytest.mark.parametrize("weights", ["int8", "q4"])
def test_both_weights_tag_the_same_values(weights: str) -> None:
    [spans] = PiiTagger(weights=weights).tag([TEXT])
    found = {(TEXT[s.start : s.end], s.label) for s in spans}
    for value, label in [
        ("Siobhan", "PERSON"),
        ("Priya Raman", "PERSON"),
        ("12 Mill Lane", "STREET_ADDRESS"),
        ("LS6 2AB", "POSTCODE"),
        ("07700 900123", "PHONE_NUMBER"),
    ]:
        assert (value, label) in found, (value, found)


def test_unknown_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="weights must be one of q4, int8"):
        PiiTagger(weights="fp16")
