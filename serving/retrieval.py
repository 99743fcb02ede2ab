"""The retriever a serving process uses: reader-role indexes, the embedding model, query redaction."""

from __future__ import annotations

from groundwork.enums import Role
from groundwork.settings import GroundworkConfig
from indexes.catalog import IndexCatalog
from indexes.results import QueryEncoder
from indexes.search import Retriever
from pipelines.embedding import Embedder
from pipelines.redact import Redactor, redact_identifiers


def build_retriever(
    config: GroundworkConfig,
    *,
    embedder: Embedder | None = None,
    redactor: Redactor | None = None,
    verify: bool = False,
) -> Retriever:
    """A retriever over ``config``'s indexes as the reader role.

    With ``verify`` every region is checked first (:meth:`IndexCatalog.verify_reader`): a server
    refuses to start on a missing or outdated schema, or a role that could bypass row-level security.
    Models already loaded (a test session, a benchmark) may be passed in.
    """
    catalog = IndexCatalog(config, role=Role.READER)
    if verify:
        try:
            catalog.verify_reader()
        except Exception:
            catalog.close()
            raise
    redactor = redactor or Redactor(config.redaction)

    def encoder_for(model: str, dimensions: int) -> QueryEncoder:
        # The model, its size and its backend as the index version recorded them.
        return Embedder(config.embedding.for_recorded_model(model, dimensions))

    return Retriever(
        catalog,
        encoder=embedder or Embedder(config.embedding),
        encoder_for=encoder_for,
        # The audit keeps no identifier-shaped value at all, even one a detector deems a test value.
        redact_query=lambda query: redact_identifiers(redactor.redact(query)[0]),
    )
