"""Governance tagging: which residency and access a document gets, from the operator's config."""

from __future__ import annotations

from connectors.base import DocumentRef
from groundwork.config import SourceConfig
from pipelines.ids import document_id
from pipelines.records import ChangeKind, DocumentTask, Governance


def governance_for(source: SourceConfig, ref: DocumentRef) -> Governance:
    """The tags a document of ``source`` carries: the source's residency and access grants."""
    del ref  # path-level rules come later; today a source's tags apply to all its documents
    return Governance(residency=source.residency, access=tuple(sorted(set(source.access))))


def make_task(source: SourceConfig, ref: DocumentRef, change: ChangeKind) -> DocumentTask:
    """A task for one listed document, with its deterministic id and tags."""
    return DocumentTask(
        ref=ref,
        document_id=document_id(ref.source, ref.source_id),
        governance=governance_for(source, ref),
        change=change,
    )
