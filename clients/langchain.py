"""A LangChain retriever over Groundwork's retrieval API (install the ``langchain`` extra).

    retriever = GroundworkRetriever(base_url="https://groundwork.internal", api_key=key, k=4)
    docs = retriever.invoke("How many days of annual leave do I get?")

Each :class:`~langchain_core.documents.Document` holds a chunk's (redacted) text and, in its
metadata, the chunk's fields plus the search's ``confidence``, ``decision``, ``reasons`` and
``request_id``. When the API recommends a handoff the retriever raises :class:`HandoffRequired`
(``on_handoff="raise"``, the default) or returns no documents (``on_handoff="empty"``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, SecretStr

from clients._hits import OnHandoff, kept_results, metadata
from clients.errors import HandoffRequired
from clients.http import GroundworkClient, SearchFilters, SearchResponse

__all__ = ["GroundworkRetriever", "HandoffRequired"]


class GroundworkRetriever(BaseRetriever):
    """Documents from Groundwork's ``POST /v1/search``, as the principal that ``api_key`` names.

    ``k`` (default: the server's ``retrieval.default_k``) and ``filters`` apply to every query;
    ``on_handoff`` says what a ``handoff`` decision does. Sync calls share one pooled connection;
    async calls (``ainvoke``) use ``httpx.AsyncClient``.
    """

    base_url: str = Field(description="The API's root URL, e.g. https://groundwork.internal")
    api_key: SecretStr = Field(description="An API key or a JWT, sent as a bearer token.")
    k: int | None = Field(default=None, description="Results per query (server default when None).")
    filters: SearchFilters | dict[str, Any] | None = Field(
        default=None, description="sources, content_types, modified_after: narrow, never widen."
    )
    on_handoff: OnHandoff = Field(default="raise", description='"raise" HandoffRequired, or "empty".')
    conversation_id: str | None = Field(
        default=None, description="Count every search against this conversation's token budget."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for the API.")

    _client: GroundworkClient = PrivateAttr()

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | SecretStr,
        k: int | None = None,
        filters: SearchFilters | dict[str, Any] | None = None,
        on_handoff: OnHandoff = "raise",
        conversation_id: str | None = None,
        timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        # Spelled out so that type checkers accept a plain ``str`` key (pydantic makes it a SecretStr);
        # ``kwargs`` are BaseRetriever's own (tags, metadata).
        fields: dict[str, Any] = {
            "base_url": base_url,
            "api_key": api_key,
            "k": k,
            "filters": filters,
            "on_handoff": on_handoff,
            "conversation_id": conversation_id,
            "timeout": timeout,
        }
        super().__init__(**fields, **kwargs)

    def model_post_init(self, context: Any, /) -> None:
        """Build the HTTP client once the fields are validated."""
        super().model_post_init(context)
        self._client = GroundworkClient(self.base_url, self.api_key, timeout=self.timeout)

    def _documents(self, response: SearchResponse) -> list[Document]:
        return [
            Document(id=r.chunk_id, page_content=r.text, metadata=metadata(response, r, rank))
            for rank, r in enumerate(kept_results(response, self.on_handoff), start=1)
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._documents(self._client.search(query, self.k, self.filters, self.conversation_id))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        found = await self._client.asearch(query, self.k, self.filters, self.conversation_id)
        return self._documents(found)
