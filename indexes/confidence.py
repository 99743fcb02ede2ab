"""Confidence and the answer/handoff decision, from the retrieval scores alone.

``confidence`` maps the best authorized result's cosine similarity linearly onto [0, 1]: at or below
``score_floor`` it is 0 (nothing related), at or above ``score_ceiling`` it is 1. all-MiniLM-L6-v2
puts unrelated passages mostly below 0.25 and passages that answer a question mostly between 0.45
and 0.8, which is where the defaults (0.25 and 0.75) sit. The decision is ``handoff`` when nothing
authorized was found or when confidence is below ``handoff_below`` (default 0.4, a top score of 0.45).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from groundwork.config import RetrievalConfig


class Decision(StrEnum):
    """What a downstream guardrail should do with the results."""

    ANSWER = "answer"
    HANDOFF = "handoff"


class Reason(StrEnum):
    """Why the decision is a handoff."""

    NO_AUTHORIZED_RESULTS = "no_authorized_results"
    LOW_CONFIDENCE = "low_confidence"


def confidence(scores: Sequence[float], config: RetrievalConfig) -> float:
    """The confidence in [0, 1] that the top result is relevant; 0 when there are no results."""
    if not scores:
        return 0.0
    top = max(scores)
    value = (top - config.score_floor) / (config.score_ceiling - config.score_floor)
    return round(min(1.0, max(0.0, value)), 4)


def decide(scores: Sequence[float], config: RetrievalConfig) -> tuple[float, Decision, list[Reason]]:
    """Confidence, decision and reason codes for one result list."""
    if not scores:
        return 0.0, Decision.HANDOFF, [Reason.NO_AUTHORIZED_RESULTS]
    conf = confidence(scores, config)
    if conf < config.handoff_below:
        return conf, Decision.HANDOFF, [Reason.LOW_CONFIDENCE]
    return conf, Decision.ANSWER, []
