"""The ``agents`` section of the config: conversations, the action gate's rules and its brakes.

An agent quotes the ``request_id`` of the searches it relied on when it asks whether it may take an
external action (``POST /v1/actions/check``). The gate answers from the rule the operator wrote for
that action; an action with no rule is refused (closed by default).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from groundwork.enums import Decision
from groundwork.sections import Name, Region, Strict

#: An action's name as agents send it, e.g. ``create_ticket``.
ActionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class ActionRule(Strict):
    """When an agent may take one kind of external action.

    Every search quoted must meet every condition; the brakes close the action for everyone while
    the recent failure rate or today's reported cost is past its limit.
    """

    enabled: bool = Field(default=True, description="The kill switch: false refuses every check.")
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    require_decision: Decision | None = Decision.ANSWER
    sources: list[Name] | None = Field(
        default=None, description="Results may come only from these sources (None: any)."
    )
    regions: list[Region] | None = Field(
        default=None, description="Results may come only from these regions (None: any)."
    )
    rollout_percent: float = Field(
        default=100.0,
        ge=0.0,
        le=100.0,
        description="Share of conversations the action is open to, by a stable hash of the conversation.",
    )
    max_failure_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Brake: failed / (executed + failed) over the window."
    )
    min_outcomes: int = Field(
        default=5, ge=1, description="The failure brake waits for this many reported outcomes."
    )
    failure_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    max_daily_cost: float | None = Field(
        default=None, ge=0.0, description="Brake: the cost agents reported for this action today (UTC)."
    )


class AgentsConfig(Strict):
    """Conversations, the action gate and where their records are kept."""

    conversation_token_budget: int = Field(
        default=4000,
        ge=1,
        le=10_000_000,
        description="Retrieved context tokens one conversation may receive in all; past it searches are refused.",
    )
    ledger_region: Region | None = Field(
        default=None,
        description=(
            "The region whose database keeps the agents' ledger (search summaries, action checks, "
            "chain events; never document text) for every caller. Default: each caller's first region."
        ),
    )
    actions: dict[ActionName, ActionRule] = Field(default_factory=dict)
    max_request_ids: int = Field(default=20, ge=1, le=100, description="Searches one action check may quote.")
