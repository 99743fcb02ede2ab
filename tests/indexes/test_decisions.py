"""Decision reasons, per-principal and per-source thresholds, and the context budget."""

from __future__ import annotations

from groundwork.settings import PrincipalConfig, RetrievalConfig
from indexes.confidence import Decision, Reason, decide, redacted_share
from indexes.search import Retriever
from tests.conftest import make_reader


def test_mostly_redacted_evidence_hands_off() -> None:
    texts = ["<PERSON> <PERSON> called <PHONE_NUMBER> about <PERSON>", "Contact <EMAIL_ADDRESS> <PERSON>"]
    assert redacted_share(texts) > 0.5
    conf, decision, reasons = decide([0.9, 0.5], RetrievalConfig(), documents=["a", "b"], texts=texts)
    assert decision is Decision.HANDOFF
    assert reasons == [Reason.MOSTLY_REDACTED]
    assert conf == 1.0


def test_close_scores_from_different_documents_are_ambiguous() -> None:
    cfg = RetrievalConfig()
    _, decision, reasons = decide([0.70, 0.695], cfg, documents=["a", "b"], texts=["x", "y"])
    assert (decision, reasons) == (Decision.HANDOFF, [Reason.AMBIGUOUS])
    _, decision, _ = decide([0.70, 0.695], cfg, documents=["a", "a"], texts=["x", "y"])
    assert decision is Decision.ANSWER  # two chunks of one document agree


def _principal(name: str, threshold: float | None) -> PrincipalConfig:
    return PrincipalConfig(
        name=name, api_key_sha256="e" * 64, groups=["staff"], regions=["eu"], handoff_below=threshold
    )


def test_threshold_per_principal(demo_reader: Retriever) -> None:
    retriever = demo_reader
    default = retriever.search(_principal("default", None), "Can I work from home?", 3)
    assert default.decision is Decision.ANSWER
    strict = retriever.search(_principal("strict", 0.95), "Can I work from home?", 3)
    assert strict.decision is Decision.HANDOFF
    assert strict.reasons == [Reason.LOW_CONFIDENCE]
    lenient = retriever.search(_principal("lenient", 0.0), "What is the best recipe for banana bread?", 3)
    assert lenient.decision is Decision.ANSWER


def test_threshold_per_source(demo_reader: Retriever, redactor, embedder) -> None:
    config = demo_reader.config.model_copy(
        update={
            "sources": [
                s.model_copy(update={"handoff_below": 0.95}) if s.name == "handbook" else s
                for s in demo_reader.config.sources
            ]
        }
    )
    with make_reader(config, redactor, embedder) as reader:
        out = reader.search(_principal("bob2", None), "Can I work from home?", 3)
    assert out.results[0].source == "handbook"
    assert out.decision is Decision.HANDOFF


def test_context_budget_trims_results_and_counts_tokens(demo_reader: Retriever, redactor, embedder) -> None:
    full = demo_reader.search(demo_reader.config.principal("alice"), "leave and expenses", 10)
    assert full.results
    assert all(h.tokens > 0 for h in full.results)
    assert full.context_tokens == sum(h.tokens for h in full.results)
    budget = full.results[0].tokens + full.results[1].tokens
    config = demo_reader.config.model_copy(
        update={"retrieval": demo_reader.config.retrieval.model_copy(update={"max_context_tokens": budget})}
    )
    with make_reader(config, redactor, embedder) as reader:
        trimmed = reader.search(config.principal("alice"), "leave and expenses", 10)
    assert len(trimmed.results) == 2
    assert trimmed.context_tokens <= budget
