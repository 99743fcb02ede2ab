"""The agent's side of the API: conversations, the action gate and chain events.

- ``POST /v1/actions/check``: may the agent take an external action on the strength of the searches
  it quotes (``request_ids``)? Answered from the operator's rule for the action
  (:class:`groundwork.agents.ActionRule`), closed when no rule matches, once per idempotency key.
- ``POST /v1/events``: the agent reports its own steps (a draft, an action executed or failed, a
  handoff) with latency and cost; ``detail`` is redacted before it is stored.
- ``GET /v1/conversations/{id}``: the caller's chain in time order, searches and checks included.

Everything is kept in the caller's ledger (:mod:`indexes.ledger`), as the reader role, under
row-level security by principal: no caller sees or answers under another's records.
"""

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import Strict as PydanticStrict

from groundwork.agents import ActionName, ActionRule
from groundwork.enums import ActionDecision, EventKind, GateReason
from groundwork.errors import GroundworkError
from groundwork.settings import GroundworkConfig, PrincipalConfig
from indexes.ledger import (
    AppendedEvent,
    ChainEvent,
    CheckResult,
    GateAnswer,
    Ledger,
    OutcomeReader,
    SearchSummary,
)
from indexes.results import SearchOutcome
from indexes.search import Retriever
from serving.auth import Caller
from serving.metrics import Metrics

#: A conversation's id as agents send it.
ConversationId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
#: An idempotency key: long enough not to collide by accident.
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{8,128}$")]


class NotFound(GroundworkError):
    """Nothing the caller may see has this id (answered 404)."""


class AgentLedgers:
    """Finds each caller's ledger: ``agents.ledger_region``, else the caller's first region.

    One per serving process, shared by its transports (HTTP and MCP), so that a conversation's
    searches in this process take their turns (:meth:`conversation_turn`).
    """

    def __init__(self, config: GroundworkConfig, retriever: Retriever) -> None:
        self.config = config
        self.retriever = retriever
        self._guard = threading.Lock()
        #: (principal, conversation) -> its lock and how many searches hold or wait for it.
        self._turns: dict[tuple[str, str], tuple[threading.Lock, int]] = {}

    @contextmanager
    def conversation_turn(self, principal: str, conversation_id: str) -> Iterator[None]:
        """Hold the conversation's turn: its other searches in this process wait until it ends.

        A search reads what the conversation has spent of its token budget, searches and records
        what it got; under its turn, concurrent searches of one conversation (an agent's parallel
        tool calls) each see the ones before them, so together they stay within the budget. Only
        searches of the same principal and conversation wait on each other; the waiting holds no
        database connection. A lock is kept only while a search holds or waits for it.
        """
        key = (principal, conversation_id)
        with self._guard:
            lock, users = self._turns.get(key, (threading.Lock(), 0))
            self._turns[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._turns[key]
                if users == 1:
                    del self._turns[key]
                else:
                    self._turns[key] = (lock, users - 1)

    def of(self, principal: PrincipalConfig) -> Ledger | None:
        """The caller's ledger, or None for a caller with no region (it can find nothing)."""
        region = self.config.ledger_region_for(self.retriever.regions_for(principal))
        return Ledger(self.retriever.catalog.records(region)) if region is not None else None


def summary(outcome: SearchOutcome, conversation_id: str | None) -> SearchSummary:
    """What the ledger keeps of a search: its decision and where its results came from."""
    return SearchSummary(
        request_id=outcome.request_id,
        decision=outcome.decision.value,
        confidence=outcome.confidence,
        reasons=[r.value for r in outcome.reasons],
        sources=sorted({h.source for h in outcome.results}),
        regions=sorted({h.residency for h in outcome.results}),
        context_tokens=outcome.context_tokens,
        conversation_id=conversation_id,
    )


def in_rollout(action: str, conversation: str, percent: float) -> bool:
    """Whether ``conversation`` falls in the ``percent`` of conversations ``action`` is open to.

    A stable hash (the same conversation always lands in the same place, on every replica), per
    action, so widening 1% -> 10% -> 100% only ever adds conversations.
    """
    digest = hashlib.sha256(f"{action}\x00{conversation}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent


def evaluate(
    rule: ActionRule | None,
    *,
    action: str,
    conversation: str,
    conversation_id: str | None,
    request_ids: list[uuid.UUID],
    searches: dict[uuid.UUID, SearchSummary],
    outcomes: OutcomeReader,
) -> GateAnswer:
    """The gate's answer: every condition of ``rule`` checked, every failing one named."""
    if rule is None:
        return GateAnswer(False, ActionDecision.HANDOFF, [GateReason.NO_RULE])
    if not rule.enabled:
        return GateAnswer(False, ActionDecision.HANDOFF, [GateReason.DISABLED])
    reasons: list[GateReason] = []
    if not in_rollout(action, conversation, rule.rollout_percent):
        reasons.append(GateReason.NOT_IN_ROLLOUT)
    found = [searches[r] for r in request_ids if r in searches]
    if len(found) < len(request_ids):
        reasons.append(GateReason.UNKNOWN_REQUEST)
    if conversation_id is not None and any(s.conversation_id not in (None, conversation_id) for s in found):
        reasons.append(GateReason.OTHER_CONVERSATION)
    if any(s.confidence < rule.min_confidence for s in found):
        reasons.append(GateReason.LOW_CONFIDENCE)
    if rule.require_decision is not None and any(s.decision != rule.require_decision for s in found):
        reasons.append(GateReason.DECISION)
    if rule.sources is not None and any(set(s.sources) - set(rule.sources) for s in found):
        reasons.append(GateReason.SOURCE_NOT_ALLOWED)
    if rule.regions is not None and any(set(s.regions) - set(rule.regions) for s in found):
        reasons.append(GateReason.REGION_NOT_ALLOWED)
    if rule.max_failure_rate is not None or rule.max_daily_cost is not None:
        seen = outcomes(action, rule.failure_window_minutes)
        total = seen.executed + seen.failed
        if (
            rule.max_failure_rate is not None
            and total >= rule.min_outcomes
            and seen.failed / total > rule.max_failure_rate
        ):
            reasons.append(GateReason.FAILURE_BRAKE)
        if rule.max_daily_cost is not None and seen.cost_today >= rule.max_daily_cost:
            reasons.append(GateReason.COST_BRAKE)
    if reasons:
        return GateAnswer(False, ActionDecision.HANDOFF, reasons)
    return GateAnswer(True, ActionDecision.PROCEED, [])


class ActionCheckRequest(BaseModel):
    """May the agent take ``action``, on the strength of the searches it quotes?"""

    model_config = ConfigDict(extra="forbid")

    request_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    action: ActionName
    idempotency_key: IdempotencyKey = Field(description="The same key returns the same answer.")
    conversation_id: ConversationId | None = None


class ActionCheckResponse(BaseModel):
    """The gate's answer."""

    allowed: bool
    decision: ActionDecision
    reasons: list[GateReason]
    idempotency_key: str
    replayed: bool = Field(description="This key was checked before: the stored answer.")
    executed: bool = Field(description="The agent reported the action executed under this key.")


class EventRequest(BaseModel):
    """A step of the agent's chain. An action's outcome names the action and its idempotency key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {
                "properties": {"kind": {"enum": [EventKind.ACTION_EXECUTED, EventKind.ACTION_FAILED]}},
                "required": ["kind"],
            },
            "then": {
                "properties": {"action": {"type": "string"}, "idempotency_key": {"type": "string"}},
                "required": ["action", "idempotency_key"],
            },
        },
    )

    conversation_id: ConversationId
    kind: EventKind
    action: ActionName | None = None
    idempotency_key: IdempotencyKey | None = None
    latency_ms: Annotated[float, PydanticStrict()] | None = Field(default=None, ge=0, le=86_400_000)
    cost: Annotated[float, PydanticStrict()] | None = Field(
        default=None, ge=0, le=1_000_000, description="In the operator's currency unit."
    )
    detail: str | None = Field(default=None, max_length=2000, pattern=r"^[^\x00]*$")


class EventResponse(BaseModel):
    """Where the step was recorded."""

    event_id: int


class ChainResponse(BaseModel):
    """A conversation's steps in time order."""

    conversation_id: str
    steps: list[dict[str, Any]]


def _digest(body: ActionCheckRequest) -> str:
    inputs = {
        "action": body.action,
        "conversation_id": body.conversation_id,
        "request_ids": sorted(str(r) for r in body.request_ids),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def check_action(
    config: GroundworkConfig, ledgers: AgentLedgers, who: Caller, body: ActionCheckRequest
) -> ActionCheckResponse:
    """Answer one check (the route's and the MCP tool's path)."""
    if len(body.request_ids) > config.agents.max_request_ids:
        raise InvalidAgentRequest(f"request_ids: at most {config.agents.max_request_ids}")
    name = who.principal.name
    ledger = ledgers.of(who.principal)
    ids = list(dict.fromkeys(body.request_ids))
    rule = config.agents.actions.get(body.action)
    if ledger is None:
        answer = GateAnswer(False, ActionDecision.HANDOFF, [GateReason.UNKNOWN_REQUEST])
        result = CheckResult(answer, replayed=False, executed=False)
    else:
        result = ledger.check(
            name,
            idempotency_key=body.idempotency_key,
            inputs_digest=_digest(body),
            action=body.action,
            conversation_id=body.conversation_id,
            request_ids=ids,
            decide=lambda searches, outcomes: evaluate(
                rule,
                action=body.action,
                conversation=body.conversation_id or name,
                conversation_id=body.conversation_id,
                request_ids=ids,
                searches=searches,
                outcomes=outcomes,
            ),
        )
    answer = result.answer
    if result.executed:  # a retry after the action was done: never twice
        answer = GateAnswer(False, ActionDecision.ALREADY_EXECUTED, [GateReason.ALREADY_EXECUTED])
    elif answer.allowed and (rule is None or not rule.enabled):  # the kill switch wins over a replay
        answer = GateAnswer(
            False, ActionDecision.HANDOFF, [GateReason.NO_RULE if rule is None else GateReason.DISABLED]
        )
    return ActionCheckResponse(
        allowed=answer.allowed,
        decision=answer.decision,
        reasons=answer.reasons,
        idempotency_key=body.idempotency_key,
        replayed=result.replayed,
        executed=result.executed,
    )


class InvalidAgentRequest(GroundworkError):
    """A check or event past this server's limits or missing what its kind needs (answered 422)."""


def record_event(
    retriever: Retriever, ledgers: AgentLedgers, who: Caller, body: EventRequest
) -> AppendedEvent:
    """Append a reported step, ``detail`` redacted first (a redaction failure fails the request).

    Returns the stored event: its id, whether it opened its conversation's chain of events, and
    the chain's duration when the step ends it.
    """
    if body.kind in (EventKind.ACTION_EXECUTED, EventKind.ACTION_FAILED) and (
        body.action is None or body.idempotency_key is None
    ):
        raise InvalidAgentRequest(f"kind {body.kind.value} needs action and idempotency_key")
    ledger = ledgers.of(who.principal)
    if ledger is None:
        raise InvalidAgentRequest("this caller has no region to record events in")
    detail = None
    if body.detail is not None:
        pending = retriever.redact_query(body.detail)
        detail = pending.result() if isinstance(pending, Future) else pending
    event = ChainEvent(
        conversation_id=body.conversation_id,
        kind=body.kind,
        action=body.action,
        idempotency_key=body.idempotency_key,
        latency_ms=body.latency_ms,
        cost=body.cost,
        detail=detail,
    )
    return ledger.append_event(who.principal.name, event)


def agent_router(
    config: GroundworkConfig,
    retriever: Retriever,
    ledgers: AgentLedgers,
    caller: Any,
    errors: dict[int | str, dict[str, Any]],
    metrics: Metrics,
) -> APIRouter:
    """The routes above, authenticated by the API's ``caller`` dependency; ``errors`` documents refusals."""
    router = APIRouter(tags=["agents"])
    Who = Annotated[Caller, Depends(caller)]

    @router.post("/v1/actions/check", response_model=ActionCheckResponse, responses=errors)
    def check(body: ActionCheckRequest, who: Who) -> ActionCheckResponse:
        """May the agent take ``action`` now? Closed unless the operator's rule for it is met."""
        answer = check_action(config, ledgers, who, body)
        metrics.record_check(answer.decision, answer.reasons)
        return answer

    @router.post("/v1/events", response_model=EventResponse, status_code=201, responses=errors)
    def event(body: EventRequest, who: Who) -> EventResponse:
        """Record a step of the agent's chain (latency, cost; detail redacted)."""
        stored = record_event(retriever, ledgers, who, body)
        metrics.record_event(body.kind, body.latency_ms, body.cost, stored.first, stored.chain_seconds)
        return EventResponse(event_id=stored.event_id)

    @router.get("/v1/conversations/{conversation_id}", response_model=ChainResponse, responses=errors)
    def conversation(conversation_id: ConversationId, who: Who) -> ChainResponse:
        """The caller's conversation: searches, checks and reported steps in time order."""
        ledger = ledgers.of(who.principal)
        steps = ledger.chain(who.principal.name, conversation_id) if ledger is not None else []
        if not steps:
            raise NotFound("no conversation with this id")
        return ChainResponse(conversation_id=conversation_id, steps=steps)

    return router
