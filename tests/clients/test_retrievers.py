"""The HTTP client and the LangChain and LlamaIndex retrievers against a live API on 127.0.0.1.

A real uvicorn server in a thread serves ``create_app`` over the ingested demo index; the clients
reach it over TCP exactly as an agent would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from clients import (
    GroundworkAPIError,
    GroundworkClient,
    GroundworkConnectionError,
    HandoffRequired,
    SearchFilters,
)
from clients.langchain import GroundworkRetriever as LangChainRetriever
from clients.llamaindex import GroundworkRetriever as LlamaIndexRetriever
from indexes.search import Retriever
from serving.api import create_app
from tests.conftest import ALICE_KEY, BOB_KEY, free_port, serve

LEAVE = "How many days of annual leave do I get?"
OFF_TOPIC = "What is the best recipe for banana bread?"
GRIEVANCE = "grievance hearing arrangements"


def _app(reader: Retriever, *, per_minute: int = 120, burst: int = 10_000) -> FastAPI:
    api = reader.config.api.model_copy(
        update={"rate_limit_per_minute": per_minute, "rate_limit_burst": burst}
    )
    return create_app(reader.config.model_copy(update={"api": api}), reader)


@pytest.fixture(scope="module")
def base_url(demo_reader: Retriever) -> Iterator[str]:
    # These tests check the clients, not the rate limit (test_rate_limit_carries_retry_after does).
    with serve(_app(demo_reader)) as url:
        yield url


def test_client_search_returns_typed_results(base_url: str) -> None:
    with GroundworkClient(base_url, ALICE_KEY) as client:
        out = client.search(LEAVE, k=3)
    assert out.decision == "answer" and not out.handoff
    assert 0.0 <= out.confidence <= 1.0
    assert len(out.results) == 3
    assert "25 days" in out.results[0].text
    assert out.results[0].residency == "eu"
    assert out.request_id and out.regions_searched
    assert out.results[0].score >= out.results[-1].score


def test_langchain_documents_carry_text_and_metadata(base_url: str) -> None:
    docs = LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=3).invoke(LEAVE)
    assert len(docs) == 3
    top = docs[0]
    assert "25 days" in top.page_content
    meta = top.metadata
    assert meta["decision"] == "answer"
    assert 0.0 < meta["confidence"] <= 1.0
    assert meta["request_id"] and len({d.metadata["request_id"] for d in docs}) == 1
    assert meta["score"] >= docs[-1].metadata["score"]
    assert top.id == meta["chunk_id"]
    assert meta["source"] == "handbook" and meta["source_uri"].endswith(".md")
    assert meta["residency"] == "eu" and meta["rank"] == 1 and meta["reasons"] == []


def test_llamaindex_nodes_carry_text_score_and_metadata(base_url: str) -> None:
    nodes = LlamaIndexRetriever(base_url, ALICE_KEY, k=3).retrieve(LEAVE)
    assert len(nodes) == 3
    top = nodes[0]
    assert "25 days" in top.node.get_content()
    assert top.score == top.node.metadata["score"]
    assert top.node.node_id == top.node.metadata["chunk_id"]
    assert top.node.ref_doc_id == top.node.metadata["document_id"]
    assert top.node.metadata["decision"] == "answer"
    assert top.node.metadata["request_id"]
    # Only where the text came from reaches a prompt, not scores or audit ids.
    from llama_index.core.schema import MetadataMode

    prompt_text = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "source_uri" in prompt_text and "request_id" not in prompt_text


def test_langchain_handoff_raises_by_default(base_url: str) -> None:
    with pytest.raises(HandoffRequired) as caught:
        LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=3).invoke(OFF_TOPIC)
    err = caught.value
    assert "low_confidence" in err.reasons
    assert 0.0 <= err.confidence < 1.0
    assert err.request_id and err.request_id in str(err)
    assert OFF_TOPIC not in str(err) and "banana" not in str(err)


def test_handoff_returns_nothing_when_configured(base_url: str) -> None:
    lc = LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=3, on_handoff="empty")
    li = LlamaIndexRetriever(base_url, ALICE_KEY, k=3, on_handoff="empty")
    assert lc.invoke(OFF_TOPIC) == []
    assert li.retrieve(OFF_TOPIC) == []
    # The same settings still answer an answerable question.
    assert lc.invoke(LEAVE) and li.retrieve(LEAVE)


def test_llamaindex_handoff_raises_by_default(base_url: str) -> None:
    with pytest.raises(HandoffRequired) as caught:
        LlamaIndexRetriever(base_url, ALICE_KEY, k=3).retrieve(OFF_TOPIC)
    assert "low_confidence" in caught.value.reasons


def test_on_handoff_is_validated() -> None:
    with pytest.raises(ValueError, match="on_handoff"):
        LlamaIndexRetriever("http://127.0.0.1:1", ALICE_KEY, on_handoff="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_handoff"):
        LangChainRetriever(base_url="http://127.0.0.1:1", api_key=ALICE_KEY, on_handoff="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["wrong-key", ALICE_KEY + "x", "demo-key-carol"])
def test_bad_key_is_401_and_never_echoed(base_url: str, key: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[GroundworkAPIError] = []
    for call in (
        lambda: GroundworkClient(base_url, key).search(LEAVE),
        lambda: LangChainRetriever(base_url=base_url, api_key=key).invoke(LEAVE),
        lambda: LlamaIndexRetriever(base_url, key).retrieve(LEAVE),
    ):
        with pytest.raises(GroundworkAPIError) as caught:
            call()
        errors.append(caught.value)
    for err in errors:
        assert (err.status, err.code, err.retry_after) == (401, "unauthorized", None)
        for text in (str(err), repr(err), err.message):
            assert key not in text and LEAVE not in text
    assert key not in caplog.text and LEAVE not in caplog.text
    assert key not in repr(LangChainRetriever(base_url=base_url, api_key=key))


def test_key_that_cannot_be_a_header_is_refused_without_echo() -> None:
    for key in ("", "two words", "line\nbreak-secret", "nön-ascii"):
        with pytest.raises(ValueError, match="api_key") as caught:
            GroundworkClient("http://127.0.0.1:1", key)
        assert key not in str(caught.value) or key == ""


@pytest.mark.parametrize(("k", "fragment"), [(0, "k"), (51, "at most 50")])
def test_k_out_of_bounds_is_422(base_url: str, k: int, fragment: str) -> None:
    with pytest.raises(GroundworkAPIError) as caught:
        GroundworkClient(base_url, ALICE_KEY).search(LEAVE, k=k)
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    assert fragment in caught.value.message
    with pytest.raises(GroundworkAPIError) as again:
        LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=k).invoke(LEAVE)
    assert again.value.status == 422


def test_two_principals_see_different_results(base_url: str) -> None:
    # alice reads hr (uk) and the handbook (eu); bob only the handbook.
    alice = LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=10).invoke(LEAVE)
    bob = LangChainRetriever(base_url=base_url, api_key=BOB_KEY, k=10).invoke(LEAVE)
    assert any(d.metadata["residency"] == "uk" for d in alice)
    assert bob and all(d.metadata["residency"] == "eu" and d.metadata["source"] == "handbook" for d in bob)
    assert bob[0].metadata["regions_searched"] == ["eu"]
    assert {d.id for d in alice} != {d.id for d in bob}
    bob_nodes = LlamaIndexRetriever(base_url, BOB_KEY, k=10).retrieve(LEAVE)
    assert [n.node.node_id for n in bob_nodes] == [d.id for d in bob]


def test_filters_narrow_results(base_url: str) -> None:
    client = GroundworkClient(base_url, ALICE_KEY)
    wide = client.search(GRIEVANCE, k=10)
    assert {r.source for r in wide.results} == {"hr", "handbook"}
    narrow = client.search(GRIEVANCE, k=10, filters=SearchFilters(sources=("handbook",)))
    assert narrow.results and {r.source for r in narrow.results} == {"handbook"}
    docs = LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=10, filters={"sources": ["hr"]}).invoke(
        GRIEVANCE
    )
    assert docs and {d.metadata["source"] for d in docs} == {"hr"}


def test_async_paths_match_sync(base_url: str) -> None:
    lc = LangChainRetriever(base_url=base_url, api_key=ALICE_KEY, k=3)
    li = LlamaIndexRetriever(base_url, ALICE_KEY, k=3)

    async def both() -> tuple[list[str], list[str]]:
        docs, nodes = await asyncio.gather(lc.ainvoke(LEAVE), li.aretrieve(LEAVE))
        return [d.id or "" for d in docs], [n.node.node_id for n in nodes]

    lc_ids, li_ids = asyncio.run(both())
    assert lc_ids == [d.id for d in lc.invoke(LEAVE)]
    assert li_ids == lc_ids
    with pytest.raises(HandoffRequired):
        asyncio.run(lc.ainvoke(OFF_TOPIC))
    with pytest.raises(GroundworkAPIError) as caught:
        asyncio.run(GroundworkClient(base_url, "wrong-key").asearch(LEAVE))
    assert caught.value.status == 401


def test_rate_limit_carries_retry_after(demo_reader: Retriever) -> None:
    with serve(_app(demo_reader, per_minute=1, burst=1)) as url:
        client = GroundworkClient(url, BOB_KEY)
        client.search(LEAVE, k=1)
        with pytest.raises(GroundworkAPIError) as caught:
            client.search(LEAVE, k=1)
    err = caught.value
    assert (err.status, err.code) == (429, "rate_limited")
    assert err.retry_after is not None and err.retry_after >= 1


def test_unreachable_server_is_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    with pytest.raises(GroundworkConnectionError) as caught:
        GroundworkClient(url, ALICE_KEY, timeout=5).search(LEAVE)
    assert ALICE_KEY not in str(caught.value) and LEAVE not in str(caught.value)


def test_a_conversation_id_spends_the_conversations_budget(demo_reader: Retriever) -> None:
    import uuid

    config = demo_reader.config
    small = config.model_copy(
        update={
            "api": config.api.model_copy(update={"rate_limit_burst": 10_000}),
            "agents": config.agents.model_copy(update={"conversation_token_budget": 150}),
        }
    )
    with serve(create_app(small, demo_reader)) as url:
        conversation = uuid.uuid4().hex
        langchain = LangChainRetriever(base_url=url, api_key=ALICE_KEY, k=3, conversation_id=conversation)
        llama = LlamaIndexRetriever(url, ALICE_KEY, k=3, conversation_id=conversation, on_handoff="empty")
        spent = sum(d.metadata["tokens"] for d in langchain.invoke(LEAVE))
        assert 0 < spent <= 150
        for _ in range(6):  # the rest of the budget goes, then nothing more comes back
            nodes = llama.retrieve(LEAVE)
        assert nodes == []
        with pytest.raises(HandoffRequired) as raised:
            langchain.invoke(LEAVE)
        assert tuple(raised.value.reasons) == ("conversation_budget",)
        other = LangChainRetriever(base_url=url, api_key=ALICE_KEY, k=3, conversation_id=uuid.uuid4().hex)
        assert other.invoke(LEAVE)  # another conversation has its own budget
