"""The tagger's decoding of its label probabilities (no model needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from pipelines.pii_tagger import PiiTagger

LABELS = [
    "O",
    "B-GIVEN_NAME",
    "I-GIVEN_NAME",
    "B-SURNAME",
    "I-SURNAME",
    "B-URL",
    "B-CITY",
    "B-TAX_ID",
    "B-PASSPORT",
]


def _decide(probs: list[list[float]]) -> tuple[list[str], list[float]]:
    model: Any = SimpleNamespace(id2label=dict(enumerate(LABELS)))
    decided, mass = PiiTagger()._decide(model, np.array([probs], dtype=np.float32))
    return [LABELS[i] for i in decided[0]], [round(float(m), 3) for m in mass[0]]


def test_a_token_is_a_name_when_its_name_labels_together_are_likeliest() -> None:
    labels, mass = _decide(
        [
            # half given name, half surname: a name, though "O" is the likeliest single label
            [0.45, 0.30, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0],
            # "O" against names split the other way: still a name, under its likeliest label
            [0.40, 0.10, 0.0, 0.0, 0.50, 0.0, 0.0, 0.0, 0.0],
            # a label of no target type (URL) stands alone, not part of a name
            [0.30, 0.20, 0.0, 0.0, 0.0, 0.35, 0.15, 0.0, 0.0],
            # "O" likelier than every type together
            [0.60, 0.20, 0.0, 0.20, 0.0, 0.0, 0.0, 0.0, 0.0],
            # identifier labels are alternatives, not parts: a number no one of them claims is left
            [0.40, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.30, 0.30],
        ]
    )
    assert labels == ["B-GIVEN_NAME", "I-SURNAME", "B-URL", "O", "O"]
    assert mass == [0.55, 0.6, 0.35, 0.6, 0.4]
