"""Leave-one-domain-out view of the confidence calibration, from ``groundwork eval --dump`` files.

For every retrieval mode and every set, a logistic calibration (the one ``groundwork eval
--fit-calibration`` fits: the same features, the same label "the top result is relevant") is fitted on
the other sets' queries only and measured on the set left out: expected calibration error, and the
precision and recall of ``handoff`` (confidence below the threshold) on the unanswerable queries.
Beside it, the same figures for the calibration shipped now (``indexes/calibration/``: if it was
fitted on the set left out too, its figure there is in-sample) and for the linear confidence the API
uses without one. With ``--write``, the calibration fitted on every set is written where the shipped
one lives.

Usage::

    groundwork eval --dataset examples/eval/pgdocs --dump /tmp/dumps/pgdocs.jsonl   # one per set
    .venv/bin/python scripts/calibration_lodo.py /tmp/dumps/*.jsonl [--threshold 0.4] [--write]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.evaluate import expected_calibration_error
from groundwork.enums import RetrievalMode
from indexes.confidence import CALIBRATION_DIR, FEATURES, Calibration, load_calibration


def _label(record: dict) -> bool:
    return bool(record["answerable"]) and record["first_relevant_rank"] == 1


def _figures(
    records: list[dict], probs: list[float], threshold: float, api: bool = False
) -> dict[str, float]:
    pairs = zip(records, probs, strict=True)
    handed = [r for r, p in pairs if (r["decision"] == "handoff" if api else p < threshold)]
    unanswerable = [r for r in records if not r["answerable"]]
    caught = sum(1 for r in handed if not r["answerable"])
    return {
        "ece": expected_calibration_error([(p, _label(r)) for r, p in zip(records, probs, strict=True)]),
        "handoff_precision": caught / len(handed) if handed else 0.0,
        "handoff_recall": caught / len(unanswerable) if unanswerable else 0.0,
    }


def _x(record: dict) -> list[float]:
    return [float(record["features"][f]) for f in FEATURES]


def main() -> int:
    """Print the leave-one-domain-out table; with ``--write``, ship the all-domain calibration."""
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dumps", nargs="+", type=Path, help="one --dump file per set, named after the set")
    ap.add_argument("--threshold", type=float, default=0.4, help="handoff below this confidence")
    ap.add_argument("--write", action="store_true", help="write the all-set calibration per mode")
    args = ap.parse_args()
    sets = {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in args.dumps}
    print(f"threshold {args.threshold}; figures: ECE, handoff precision / recall on the set left out")
    print(f"{'mode':<8} {'left out':<12} {'fitted on the others':>24} {'shipped':>24} {'linear':>24}")
    for mode in RetrievalMode:
        model = next(iter(sets.values()))[0]["model"]
        shipped = load_calibration(mode, model)
        for held, records in sets.items():
            rows = [r for r in records if r["mode"] == mode]
            train = [r for name, rs in sets.items() if name != held for r in rs if r["mode"] == mode]
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(
                [_x(r) for r in train], [_label(r) for r in train]
            )
            cells = [
                _figures(rows, list(clf.predict_proba([_x(r) for r in rows])[:, 1]), args.threshold),
                _figures(rows, [shipped.probability(_x(r)) for r in rows], args.threshold)
                if shipped
                else None,
                # The evaluation asks the API with the calibration off: its confidence is the linear one,
                # and its decision the API's own (which also hands off on no result or mostly redacted).
                _figures(rows, [float(r["confidence"]) for r in rows], args.threshold, api=True),
            ]
            shown = [
                f"{c['ece']:.3f} {c['handoff_precision']:.3f}/{c['handoff_recall']:.3f}" if c else "-"
                for c in cells
            ]
            print(f"{mode:<8} {held:<12} " + " ".join(f"{s:>24}" for s in shown))
        if args.write:
            everything = [r for rs in sets.values() for r in rs if r["mode"] == mode]
            clf = LogisticRegression(C=1.0, max_iter=1000).fit(
                [_x(r) for r in everything], [_label(r) for r in everything]
            )
            Calibration(
                mode=mode,
                model=model,
                coef=tuple(float(c) for c in clf.coef_[0]),
                intercept=float(clf.intercept_[0]),
                fitted_on=f"{len(everything)} queries of {len(sets)} sets: {', '.join(sorted(sets))}",
            ).save(CALIBRATION_DIR / f"{mode}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
