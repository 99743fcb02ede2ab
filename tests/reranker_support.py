"""A reranker weights folder for tests: the base model with a seeded, untrained head."""

from __future__ import annotations

from pathlib import Path

from pipelines.embedding import default_model_path
from pipelines.reranking import save_weights


def make_weights(folder: Path, *, seed: int = 7) -> Path:
    """A reranker folder from the base model with a seeded head scaled so that logits spread."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(str(default_model_path()), num_labels=1)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    save_weights(
        model,
        folder,
        {"name": "test-reranker", "max_length": 128, "calibration": {"coef": 0.5, "intercept": -1.0}},
    )
    return folder
