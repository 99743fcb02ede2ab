"""``groundwork lineage CHUNK_ID``: a chunk's lineage, read on the ingest host (every chunk, as the writer)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.commands import load
from cli.output import terminal_safe


def cmd_lineage(args: argparse.Namespace) -> int:
    """Print where a chunk came from: document, ingest run, redaction, index version, governance."""
    from indexes.lineage import chunk_lineage
    from orchestration.services import Services

    _, config = load(args)
    with Services(config) as services:
        try:
            found = chunk_lineage(services.catalog, args.chunk_id)
        except ValueError as exc:
            print(f"groundwork: {exc}")
            return 2
    if found is None:
        print("groundwork: no stored chunk has this id (it may have been replaced, purged or forgotten)")
        return 1
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
    else:
        print(terminal_safe_lines(found))
    return 0


def terminal_safe_lines(found: dict[str, Any]) -> str:
    """The lineage as an indented tree, one step per line, control characters escaped."""
    c, d, run, red, idx, gov = (
        found[k] for k in ("chunk", "document", "ingest_run", "redaction", "index", "governance")
    )
    page = f", page {c['page_number']}" if c["page_number"] is not None else ""
    lines = [
        f"chunk {c['chunk_id']} (#{c['seq']}{page}); placeholders {c['redactions'] or 'none'}",
        f"  document {d['document_id']}: source {d['source']}, {d['source_uri']}",
        f"    version {d['version']}, fingerprint {d['fingerprint'] or '-'}, {d['content_type']},"
        f" {d['elements']} elements, {d['chunks']} chunks",
        f"  ingest run {run['run_id'] or '(not recorded)'} ({run['orchestrator'] or '-'}), written {run['written_at']}",
        f"  redaction policy {red['policy_version']}: {red['counts'] or 'nothing redacted'}",
        f"  index {idx['region']} version {idx['version']}: {idx['embedding_model']} ({idx['dimensions']} dims),"
        f" chunking {idx['chunking']}",
        f"  residency {gov['residency']}, access {', '.join(gov['access'])}"
        + (
            f"; the source's own: {', '.join(gov['source_access'])}"
            if gov["source_access"] is not None
            else ""
        ),
        f"    decided by {gov['decided_by'] or '(not recorded: written before lineage was kept)'}",
    ]
    return "\n".join(terminal_safe(line) for line in lines)
