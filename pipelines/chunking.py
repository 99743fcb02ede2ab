"""Chunking by title/section with unstructured's ``chunk_by_title``, on redacted elements only."""

from __future__ import annotations

from groundwork.ids import chunk_id
from groundwork.records import Chunk, ChunkedDocument, RedactedDocument
from groundwork.settings import ChunkingConfig
from pipelines.spans import placeholder_counts


def chunk_document(document: RedactedDocument, config: ChunkingConfig) -> ChunkedDocument:
    """Cut a redacted document into section-aware chunks with deterministic ids.

    The unstructured elements are rebuilt from the redacted text alone, so no metadata captured at
    partitioning (email headers, HTML of tables, link texts) can carry PII into a chunk.
    """
    from unstructured.chunking.title import chunk_by_title
    from unstructured.documents.elements import TYPE_TO_TEXT_ELEMENT_MAP, ElementMetadata, Text

    elements = []
    for el in document.elements:
        cls = TYPE_TO_TEXT_ELEMENT_MAP.get(el.category, Text)
        elements.append(cls(text=el.text, metadata=ElementMetadata(page_number=el.page_number)))
    pieces = chunk_by_title(
        elements,
        max_characters=config.max_characters,
        new_after_n_chars=config.new_after_n_chars,
        combine_text_under_n_chars=config.combine_text_under_n_chars,
        multipage_sections=True,
    )
    doc_id = document.task.document_id
    chunks = [
        Chunk(
            chunk_id=chunk_id(doc_id, seq),
            seq=seq,
            text=piece.text,
            page_number=piece.metadata.page_number,
            redactions=dict(sorted(placeholder_counts(piece.text).items())),
        )
        for seq, piece in enumerate(p for p in pieces if p.text.strip())
    ]
    return ChunkedDocument(document=document, chunks=chunks)
