"""The demo's support-agent flow: retrieve, draft, create a ticket, through the action gate.

It calls the functions behind ``POST /v1/search``, ``POST /v1/actions/check`` and
``POST /v1/events`` (:mod:`serving.searching`, :mod:`serving.actions`) as a configured principal, so
the demo shows what an agent over HTTP or MCP gets: a strong answer lets the ticket through once
(a retry with the same idempotency key is told it was done), a weak one is stopped and handed off.
"""

from __future__ import annotations

import uuid

from groundwork.enums import ActionDecision, AuthMethod, EventKind
from groundwork.settings import GroundworkConfig
from indexes.search import Retriever
from serving.actions import (
    ActionCheckRequest,
    ActionCheckResponse,
    AgentLedgers,
    EventRequest,
    check_action,
    record_event,
)
from serving.auth import Caller
from serving.searching import SearchRequest, SearchResponse, run_search

#: The action the demo agent takes, and the questions it is asked: one the corpus answers, one it does not.
ACTION = "create_ticket"
QUESTIONS = ("How many days of annual leave do I get?", "What is the best recipe for banana bread?")


def run_support_flow(config: GroundworkConfig, retriever: Retriever, principal: str = "alice") -> list[str]:
    """Run the scripted flow as ``principal``; prints each step and returns the chain's step kinds."""
    who = Caller(config.principal(principal), AuthMethod.CLI)
    ledgers = AgentLedgers(config, retriever)
    conversation = f"demo-{uuid.uuid4().hex[:12]}"
    print(f"-- conversation {conversation}, as {principal}; rule for {ACTION}: {_rule(config)}")
    for question in QUESTIONS:
        request = SearchRequest(query=question, k=3, conversation_id=conversation)
        _, found = run_search(retriever, config.retrieval, who, request, ledgers)
        print(f'\n  search "{question}"')
        print(
            f"    -> {found.decision.value} (confidence {found.confidence:.2f}), request {found.request_id[:8]}"
        )
        _event(
            retriever, ledgers, who, conversation, EventKind.DRAFT, detail=f"drafted a reply to: {question}"
        )
        key = uuid.uuid4().hex
        answer = _check(config, ledgers, who, found, conversation, key)
        print(f"  check {ACTION} -> {answer.decision.value}{_why(answer)}")
        if answer.decision != ActionDecision.PROCEED:
            _event(retriever, ledgers, who, conversation, EventKind.HANDED_OFF, action=ACTION)
            print("    stopped: handed off to a person instead of creating a ticket")
            continue
        _event(retriever, ledgers, who, conversation, EventKind.ACTION_EXECUTED, action=ACTION, key=key)
        print("    ticket created; the agent reports action_executed")
        retry = _check(config, ledgers, who, found, conversation, key)
        print(f"  retry with the same idempotency key -> {retry.decision.value}: not created twice")
    ledger = ledgers.of(who.principal)
    steps = ledger.chain(principal, conversation) if ledger is not None else []
    kinds = [step.get("kind") or step["type"] for step in steps]
    print(f"\n  chain ({len(steps)} steps, GET /v1/conversations/{conversation}): {', '.join(kinds)}")
    return kinds


def _rule(config: GroundworkConfig) -> str:
    rule = config.agents.actions.get(ACTION)
    if rule is None:
        return "none (every check is refused)"
    return f"min_confidence {rule.min_confidence}, decision {rule.require_decision or 'any'}"


def _why(answer: ActionCheckResponse) -> str:
    return f" [{', '.join(r.value for r in answer.reasons)}]" if answer.reasons else ""


def _check(
    config: GroundworkConfig,
    ledgers: AgentLedgers,
    who: Caller,
    found: SearchResponse,
    conversation: str,
    key: str,
) -> ActionCheckResponse:
    body = ActionCheckRequest(
        request_ids=[uuid.UUID(found.request_id)],
        action=ACTION,
        idempotency_key=key,
        conversation_id=conversation,
    )
    return check_action(config, ledgers, who, body)


def _event(
    retriever: Retriever,
    ledgers: AgentLedgers,
    who: Caller,
    conversation: str,
    kind: EventKind,
    *,
    action: str | None = None,
    key: str | None = None,
    detail: str | None = None,
) -> None:
    body = EventRequest(
        conversation_id=conversation,
        kind=kind,
        action=action,
        idempotency_key=key,
        latency_ms=0.0,
        detail=detail,
    )
    record_event(retriever, ledgers, who, body)
