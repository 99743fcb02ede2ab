"""Chunking: section-aware, size-limited, deterministic ids, built from redacted text only."""

from __future__ import annotations

from groundwork.ids import chunk_id, document_id
from groundwork.records import DocumentRef, ParsedElement, RedactedDocument
from groundwork.settings import ChunkingConfig
from pipelines.chunking import chunk_document
from pipelines.policy import make_task


def _doc(elements: list[ParsedElement]) -> RedactedDocument:
    from groundwork.enums import ChangeKind
    from groundwork.settings import SourceConfig

    src = SourceConfig(name="s", connector="filesystem", path="/tmp", residency="uk", access=["group:hr"])
    ref = DocumentRef(source="s", source_id="a/b.md", uri="file:///a/b.md", version="v1", size_bytes=1)
    return RedactedDocument(make_task(src, ref, ChangeKind.NEW), elements, "text/markdown", {})


def test_sections_start_new_chunks_and_size_is_bounded() -> None:
    elements = [
        ParsedElement("Title", "Holidays"),
        ParsedElement("NarrativeText", "Leave is 25 days. " * 10),
        ParsedElement("Title", "Expenses"),
        ParsedElement("NarrativeText", "Claims within 30 days. " * 80),
    ]
    config = ChunkingConfig(max_characters=500, new_after_n_chars=400, combine_text_under_n_chars=0)
    chunked = chunk_document(_doc(elements), config)
    assert chunked.chunks[0].text.startswith("Holidays")
    assert not any("Holidays" in c.text and "Expenses" in c.text for c in chunked.chunks)
    assert all(len(c.text) <= 500 for c in chunked.chunks)
    assert len(chunked.chunks) >= 4


def test_chunk_ids_are_deterministic_and_distinct() -> None:
    elements = [ParsedElement("NarrativeText", "Some text. " * 300)]
    a = chunk_document(_doc(elements), ChunkingConfig())
    b = chunk_document(_doc(elements), ChunkingConfig())
    assert [c.chunk_id for c in a.chunks] == [c.chunk_id for c in b.chunks]
    assert len({c.chunk_id for c in a.chunks}) == len(a.chunks)
    doc_id = document_id("s", "a/b.md")
    assert a.chunks[1].chunk_id == chunk_id(doc_id, 1)
    assert document_id("s", "a/b.md") != document_id("t", "a/b.md")
