"""Confidence and the answer/handoff decision, from the retrieval results alone.

By default confidence is a calibrated probability that the top result answers the query: a
logistic (Platt) model over retrieval features (:data:`FEATURES`), fitted by ``groundwork eval
--fit-calibration`` on labelled queries and shipped per retrieval mode and embedding model.

Without a calibration for the live model (or with ``retrieval.calibrated: false``), ``confidence``
maps the best authorized result's cosine similarity linearly onto [0, 1]: at or below
``score_floor`` it is 0, at or above ``score_ceiling`` it is 1. The decision is ``handoff`` when
nothing authorized was found or when confidence is below ``handoff_below`` (default 0.4).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from groundwork.enums import Decision, Reason, RetrievalMode
from groundwork.settings import RetrievalConfig

#: Where fitted calibrations ship, one file per retrieval mode.
CALIBRATION_DIR = Path(__file__).with_name("calibration")

#: The retrieval features a calibration is fitted on, in order.
FEATURES = ("top_score", "margin", "top_lexical", "lexical_share", "query_coverage")
#: How many of the best candidates the features and the decision read, whatever ``k`` the caller asked
#: for: the same query gets the same confidence and decision at any ``k``.
WINDOW = 5

_WORD = re.compile(r"\w+")
#: Function words (question words, auxiliaries, pronouns, prepositions): they say nothing about
#: what a passage is about.
_STOP_WORDS = frozenset(
    """a about an and are as at be been but by can could did do does for from get got had has have how i if
    in into is it its many may me might much must my of on or our shall should so than that the their them
    then there these they this those to up us was we were what when where which who whom whose why will
    with would you your""".split()  # noqa: SIM905 (a word list reads better as words)
)


def query_coverage(query: str, texts: Sequence[str], top: int = WINDOW) -> float:
    """The largest share of the query's words (stop words aside) that one of the top results contains.

    An answer usually names what was asked about; a near miss (a related page, another command)
    lacks some of the query's words even when its embedding is close.
    """
    words = {w for w in _WORD.findall(query.lower()) if w not in _STOP_WORDS}
    if not words:
        return 0.0
    return max((len(words & set(_WORD.findall(t.lower()))) / len(words) for t in texts[:top]), default=0.0)


def features(
    scores: Sequence[float], lexical: Sequence[float | None], query: str = "", texts: Sequence[str] = ()
) -> list[float]:
    """Features of a ranked result list: top cosine, margin to the next, full-text agreement, and
    how much of the query the best results contain."""
    if not scores:
        return [0.0] * len(FEATURES)
    top = scores[0]
    margin = top - scores[1] if len(scores) > 1 else top
    top_lexical = float(lexical[0] or 0.0) if lexical else 0.0
    share = sum(1 for x in lexical[:WINDOW] if x) / min(len(scores), WINDOW) if lexical else 0.0
    return [top, margin, top_lexical, share, query_coverage(query, texts)]


@dataclass(frozen=True, slots=True)
class Calibration:
    """A Platt-scaled logistic model: P(top result answers the query | retrieval features).

    Fitted by ``groundwork eval --fit-calibration`` on labelled data and shipped per retrieval mode,
    tied to the embedding model it was fitted with.
    """

    mode: str
    model: str
    coef: tuple[float, ...]
    intercept: float
    fitted_on: str

    def probability(self, x: Sequence[float]) -> float:
        """The calibrated probability for one feature vector."""
        z = self.intercept + sum(c * v for c, v in zip(self.coef, x, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def save(self, path: Path) -> None:
        """Write the calibration as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "mode": self.mode,
                    "model": self.model,
                    "features": list(FEATURES),
                    "coef": list(self.coef),
                    "intercept": self.intercept,
                    "fitted_on": self.fitted_on,
                },
                indent=2,
            )
            + "\n"
        )


def load_calibration(mode: RetrievalMode, model: str, folder: Path = CALIBRATION_DIR) -> Calibration | None:
    """The shipped calibration for ``mode`` if it was fitted with ``model`` and these features.

    The int8 ONNX export of a model (``<model>+onnx-int8``) uses its float32 model's calibration: its
    vectors have a mean cosine of 0.998 to float32's, and on the five shipped sets 14 of 571
    decisions flip with it, against 127 with the uncalibrated mapping.
    """
    path = folder / f"{RetrievalMode(mode).value}.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if raw.get("model") not in (model, model.removesuffix("+onnx-int8")):
        return None
    if tuple(raw.get("features", ())) != FEATURES:
        return None
    return Calibration(
        mode, model, tuple(raw["coef"]), float(raw["intercept"]), str(raw.get("fitted_on", ""))
    )


def confidence(scores: Sequence[float], config: RetrievalConfig) -> float:
    """The confidence in [0, 1] that the top result is relevant; 0 when there are no results."""
    if not scores:
        return 0.0
    top = max(scores)
    value = (top - config.score_floor) / (config.score_ceiling - config.score_floor)
    return round(min(1.0, max(0.0, value)), 4)


_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")


def redacted_share(texts: Sequence[str]) -> float:
    """The share of words that are PII placeholders (``<PERSON>`` ...) in these texts."""
    words = [w for t in texts for w in t.split()]
    if not words:
        return 0.0
    return sum(1 for w in words if _PLACEHOLDER.search(w)) / len(words)


def decide(
    scores: Sequence[float],
    config: RetrievalConfig,
    *,
    query: str = "",
    lexical: Sequence[float | None] = (),
    calibration: Calibration | None = None,
    documents: Sequence[str] = (),
    texts: Sequence[str] = (),
    handoff_below: float | None = None,
    probability: float | None = None,
    over_budget: bool = False,
) -> tuple[float, Decision, list[Reason]]:
    """Confidence, decision and reason codes for one ranked result list.

    Confidence is ``probability`` when given (the reranker's), else the calibration's probability,
    else the linear mapping above. With no results the decision is ``handoff`` because nothing
    authorized was found, or because even the best result is over the context budget
    (``over_budget``: ``context_budget``). The
    decision is ``handoff`` when nothing authorized was found, when confidence is under the
    threshold (``handoff_below``, or the configured one), when the two best results come from
    different documents with scores closer than ``ambiguity_margin`` (``ambiguous``), or when most
    of the evidence is PII placeholders (``mostly_redacted``).
    """
    if not scores:
        return 0.0, Decision.HANDOFF, [Reason.CONTEXT_BUDGET if over_budget else Reason.NO_AUTHORIZED_RESULTS]
    if probability is not None:
        conf = round(probability, 4)
    elif calibration is not None:
        x = features(scores, lexical or [None] * len(scores), query, texts)
        conf = round(calibration.probability(x), 4)
    else:
        conf = confidence(scores, config)
    reasons = []
    if conf < (config.handoff_below if handoff_below is None else handoff_below):
        reasons.append(Reason.LOW_CONFIDENCE)
    if (
        len(scores) > 1
        and len(documents) > 1
        and documents[0] != documents[1]
        and abs(scores[0] - scores[1]) < config.ambiguity_margin
    ):
        reasons.append(Reason.AMBIGUOUS)
    if texts and redacted_share(texts[:3]) > config.max_redacted_share:
        reasons.append(Reason.MOSTLY_REDACTED)
    return conf, (Decision.HANDOFF if reasons else Decision.ANSWER), reasons
