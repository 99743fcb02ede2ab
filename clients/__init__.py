"""Clients of Groundwork's retrieval API, over HTTP: they import nothing of the server.

:mod:`clients.http` is the typed client; :mod:`clients.langchain` and :mod:`clients.llamaindex` are
retrievers for those frameworks (each needs its extra: ``groundwork[langchain]``,
``groundwork[llamaindex]``), imported by their own module so neither framework loads unless used.
"""

from clients.errors import (
    GroundworkAPIError,
    GroundworkClientError,
    GroundworkConnectionError,
    GroundworkResponseError,
    HandoffRequired,
)
from clients.http import GroundworkClient, SearchFilters, SearchResponse, SearchResult

__all__ = [
    "GroundworkAPIError",
    "GroundworkClient",
    "GroundworkClientError",
    "GroundworkConnectionError",
    "GroundworkResponseError",
    "HandoffRequired",
    "SearchFilters",
    "SearchResponse",
    "SearchResult",
]
