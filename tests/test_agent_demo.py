"""The demo's support-agent flow: a strong answer creates one ticket, a weak one is handed off."""

from __future__ import annotations

from indexes.search import Retriever


def test_the_support_flow_creates_one_ticket_and_hands_off_the_weak_answer(
    demo_reader: Retriever, capsys
) -> None:
    from cli.agent_demo import run_support_flow

    assert "create_ticket" in demo_reader.config.agents.actions  # the demo config's rule
    kinds = run_support_flow(demo_reader.config, demo_reader)
    assert kinds == [
        "search",
        "draft",
        "action_check",
        "action_executed",
        "search",
        "draft",
        "action_check",
        "handed_off",
    ]
    out = capsys.readouterr().out
    assert "check create_ticket -> proceed" in out
    assert "retry with the same idempotency key -> already_executed" in out
    assert "check create_ticket -> handoff [low_confidence, decision]" in out
