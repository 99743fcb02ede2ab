"""``GET /v1/lineage/{chunk_id}``: a chunk's lineage, for principals with the steward role.

A steward reads lineage through the same row-level security as a search: only chunks its grants and
regions allow exist for it. Lineage holds metadata (source, URI, run, policy versions, counts), never
chunk text.
"""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from groundwork.errors import GroundworkError
from indexes.lineage import chunk_lineage
from indexes.search import Retriever
from serving.actions import NotFound
from serving.auth import Caller


class Forbidden(GroundworkError):
    """The caller is authenticated but lacks the role this route needs."""


class LineageResponse(BaseModel):
    """Chunk -> document -> ingest run -> redaction -> index version -> governance."""

    chunk: dict[str, Any]
    document: dict[str, Any]
    ingest_run: dict[str, Any]
    redaction: dict[str, Any]
    index: dict[str, Any]
    governance: dict[str, Any]


def lineage_router(retriever: Retriever, caller: Any, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    """The lineage route, authenticated by the API's ``caller`` dependency."""
    router = APIRouter(tags=["stewardship"])

    @router.get("/v1/lineage/{chunk_id}", response_model=LineageResponse, responses=errors)
    def lineage(chunk_id: uuid.UUID, who: Annotated[Caller, Depends(caller)]) -> Any:
        """Where a chunk came from and what decided how it is stored (steward role only)."""
        principal = who.principal
        if not principal.is_steward:
            raise Forbidden("lineage is for principals with the steward role")
        found = chunk_lineage(
            retriever.catalog, str(chunk_id), regions=list(principal.regions), grants=principal.grants()
        )
        if found is None:
            raise NotFound("no chunk with this id that you may read")
        return found

    return router
