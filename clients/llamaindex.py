"""A LlamaIndex retriever over Groundwork's retrieval API (install the ``llamaindex`` extra).

    retriever = GroundworkRetriever(base_url="https://groundwork.internal", api_key=key, k=4)
    nodes = retriever.retrieve("How many days of annual leave do I get?")

Each :class:`~llama_index.core.schema.NodeWithScore` holds a ``TextNode`` with a chunk's (redacted)
text, its id and its document (the node's source), and the cosine score. The metadata is the same as
the LangChain retriever's; only ``source``, ``source_uri`` and ``page_number`` reach prompts and
embeddings. A ``handoff`` decision raises :class:`HandoffRequired` or returns no nodes, as
``on_handoff`` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
from pydantic import SecretStr

from clients._hits import CITATION_KEYS, OnHandoff, kept_results, metadata
from clients.errors import HandoffRequired
from clients.http import GroundworkClient, SearchFilters, SearchResponse

__all__ = ["GroundworkRetriever", "HandoffRequired"]


class GroundworkRetriever(BaseRetriever):
    """Nodes from Groundwork's ``POST /v1/search``, as the principal that ``api_key`` names.

    ``k`` (default: the server's ``retrieval.default_k``) and ``filters`` apply to every query;
    ``on_handoff`` (``"raise"`` or ``"empty"``) says what a ``handoff`` decision does;
    ``conversation_id`` counts every search against that conversation's token budget.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        k: int | None = None,
        filters: SearchFilters | Mapping[str, Any] | None = None,
        on_handoff: OnHandoff = "raise",
        conversation_id: str | None = None,
        timeout: float = 30.0,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if on_handoff not in ("raise", "empty"):
            raise ValueError('on_handoff: must be "raise" or "empty"')
        self._client = GroundworkClient(base_url, api_key, timeout=timeout)
        self._k = k
        self._filters = filters
        self._on_handoff: OnHandoff = on_handoff
        self._conversation_id = conversation_id
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def __repr__(self) -> str:
        return f"GroundworkRetriever(base_url={self._client.base_url!r}, k={self._k!r})"

    def close(self) -> None:
        """Close the pooled connections of sync retrieval."""
        self._client.close()

    def _nodes(self, response: SearchResponse) -> list[NodeWithScore]:
        nodes = []
        for rank, r in enumerate(kept_results(response, self._on_handoff), start=1):
            meta = metadata(response, r, rank)
            hidden = [key for key in meta if key not in CITATION_KEYS]
            node = TextNode(
                id_=r.chunk_id,
                text=r.text,
                metadata=meta,
                excluded_llm_metadata_keys=hidden,
                excluded_embed_metadata_keys=hidden,
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=r.document_id)},
            )
            nodes.append(NodeWithScore(node=node, score=r.score))
        return nodes

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = self._client.search(query_bundle.query_str, self._k, self._filters, self._conversation_id)
        return self._nodes(found)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = await self._client.asearch(
            query_bundle.query_str, self._k, self._filters, self._conversation_id
        )
        return self._nodes(found)
