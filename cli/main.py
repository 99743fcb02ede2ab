"""The ``groundwork`` command line: migrate, ingest, serve, mcp, search, lineage, db, report, demo, eval and ui."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from cli.commands import (
    cmd_backfill,
    cmd_db,
    cmd_demo,
    cmd_eval,
    cmd_eval_pii,
    cmd_failures,
    cmd_forget,
    cmd_ingest,
    cmd_mcp,
    cmd_migrate,
    cmd_report,
    cmd_retry,
    cmd_search,
    cmd_serve,
    cmd_ui,
)
from cli.lineage import cmd_lineage
from groundwork.enums import RetrievalMode
from groundwork.errors import GroundworkError
from groundwork.offline import configure_offline

logger = logging.getLogger("groundwork")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every command takes ``--config``."""
    parser = argparse.ArgumentParser(prog="groundwork", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: object, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", help="config file (default: $GROUNDWORK_CONFIG)")
        p.set_defaults(func=func)
        return p

    add("migrate", cmd_migrate, "create or update every region's schema, roles and policies (as the owner)")
    add("ingest", cmd_ingest, "run the ingest job once (a Dagster run; migrates first)")
    p = add("backfill", cmd_backfill, "index sources in parallel shards (one Dagster run per source)")
    p.add_argument("--source", action="append", help="only this source (repeatable)")
    add("failures", cmd_failures, "list documents that failed to ingest, with reasons")
    add("retry", cmd_retry, "clear recorded failures and ingest again (for files fixed or after an outage)")
    p = add("report", cmd_report, "write the steward's report: a static HTML page and the same data as JSON")
    p.add_argument("--out", default=None, help="folder to write into (default: <state_dir>/report)")
    p.add_argument("--customer", default=None, help="only the sources whose contract names this customer")
    p = add("forget", cmd_forget, "erase a document everywhere, leaving a tombstone (right to be forgotten)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--document", help="document id")
    target.add_argument("--uri", help="source URI, e.g. file:///share/hr/case-0142.eml")
    p.add_argument("--by", default=os.environ.get("USER", "operator"), help="who asked (recorded)")
    p = add("lineage", cmd_lineage, "where a chunk came from: document, ingest run, redaction, index, policy")
    p.add_argument("chunk_id", help="a chunk id, as search results give it")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("serve", cmd_serve, "serve the retrieval API")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    add(
        "mcp", cmd_mcp, "serve the MCP tools over stdio, as the principal whose key is in $GROUNDWORK_API_KEY"
    )
    p = add("search", cmd_search, "search as a configured principal")
    p.add_argument("--as", dest="as_principal", required=True, metavar="PRINCIPAL")
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the API's JSON response shape")
    p.add_argument("query")
    p = add("db", cmd_db, "manage the embedded PostgreSQL server")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.add_argument("--region", default=None, help="with url: the DSN of this region's database")
    add("demo", cmd_demo, "ingest the configured corpus and run sample searches")
    p = sub.add_parser("eval", help="evaluate retrieval on a BEIR-format data set (dense, lexical, hybrid)")
    p.add_argument("--dataset", required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/test.tsv")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument(
        "--dump",
        default=None,
        help="write one JSON line per mode and query: ranks, features, confidence, decision",
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=[m.value for m in RetrievalMode],
        default=[m.value for m in RetrievalMode],
    )
    p.add_argument("--rerank-depth", type=int, default=None, help="override retrieval.rerank_depth (0: off)")
    p.add_argument(
        "--reranker-weights", default=None, help="the reranker folder to use (see scripts/reranker)"
    )
    p.add_argument(
        "--fit-calibration",
        action="store_true",
        help="write the fitted confidence calibrations into indexes/calibration/ (shipped with the index code)",
    )
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser(
        "eval-pii",
        help="measure redaction on labelled sets (InputSample .json, folder + gold.jsonl) and PII-free text",
    )
    p.add_argument("sets", nargs="+", help="InputSample .json files and folders; each is reported on its own")
    p.add_argument("--config", default=None, help="take the redaction settings from this config file")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--dump", default=None, help="write every miss and false hit to this JSONL file")
    p.set_defaults(func=cmd_eval_pii)
    p = add("ui", cmd_ui, "open the Dagster UI on 127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``groundwork`` command."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("groundwork", "connectors", "pipelines", "indexes", "orchestration", "serving", "cli"):
        logging.getLogger(ours).setLevel(level)
    # Presidio warns about every recognizer for languages we do not load; pypdf about every repair.
    for chatty in ("presidio-analyzer", "pypdf"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    configure_offline()
    try:
        return int(args.func(args))
    except GroundworkError as exc:
        print(f"groundwork: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
