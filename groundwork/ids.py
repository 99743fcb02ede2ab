"""Deterministic ids: the same document and chunk get the same ids on every run."""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f1d3c1e-2b7a-4d0e-9a57-6b1c2f4e8d90")


def document_id(source: str, source_id: str) -> str:
    """The id of a document, from its source name and source id."""
    return str(uuid.uuid5(_NAMESPACE, f"doc\x00{source}\x00{source_id}"))


def chunk_id(document_id: str, seq: int) -> str:
    """The id of the ``seq``-th chunk of a document."""
    return str(uuid.uuid5(_NAMESPACE, f"chunk\x00{document_id}\x00{seq}"))


def content_digest(data: bytes) -> str:
    """A digest of a document's fetched bytes (``sha256:<hex>``), the same whatever its path or source."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def shard_of(document_id: str, shards: int) -> int:
    """Which of ``shards`` shards a document belongs to: stable, and about even across shards."""
    return uuid.UUID(document_id).int % shards
