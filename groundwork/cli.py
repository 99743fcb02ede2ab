"""The ``groundwork`` command line: ingest, serve, search, db, demo and ui."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

from groundwork.config import GroundworkConfig, load_config, resolve_config_path
from groundwork.errors import GroundworkError

logger = logging.getLogger("groundwork")


def _load(args: argparse.Namespace) -> tuple[Path, GroundworkConfig]:
    path = resolve_config_path(args.config)
    return path, load_config(path)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run the Dagster ingest job once and print what it did."""
    from groundwork.ingest import run_ingest

    path, config = _load(args)
    summary = run_ingest(path, config)
    _print_ingest(summary)
    return 0 if summary.success else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run the backfill job for each source (or the named ones): shards in parallel processes."""
    from groundwork.errors import ConfigError
    from groundwork.ingest import run_backfill

    path, config = _load(args)
    names = [s.name for s in config.sources]
    unknown = sorted(set(args.source or []) - set(names))
    if unknown:
        raise ConfigError(f"no source named {', '.join(unknown)}; configured: {', '.join(names)}")
    ok = True
    for summary in run_backfill(path, config, args.source or names):
        print(f"Dagster run {summary.run_id}: {'succeeded' if summary.success else 'FAILED'}")
        for source, totals in sorted(summary.assets.items()):
            print(
                f"  source {source}: {totals.get('shards', 0)} shards, {totals.get('to_process', 0)} to process, "
                f"{totals.get('embeddings_computed', 0)} embeddings, {totals.get('documents_written', 0)} written, "
                f"{totals.get('deleted_or_purged', 0)} deleted, {totals.get('failures', 0)} failed"
            )
        ok = ok and summary.success
    return 0 if ok else 1


def _print_ingest(summary: object) -> None:
    from groundwork.ingest import IngestSummary

    assert isinstance(summary, IngestSummary)
    plan = summary.assets.get("source_documents", {})
    print(f"Dagster run {summary.run_id}: {'succeeded' if summary.success else 'FAILED'}")
    print(
        "  listed: "
        + " ".join(
            f"{k}={plan.get(k, 0)}"
            for k in (
                "new",
                "changed",
                "unchanged",
                "retag",
                "move",
                "rename",
                "deleted",
                "failed_before",
                "refused",
                "forgotten",
                "expired",
            )
        )
    )
    red = summary.assets.get("redacted_documents", {})
    if red.get("redactions_by_type"):
        print(f"  redactions: {red['redactions_by_type']}")
    emb = summary.assets.get("embeddings", {})
    print(f"  embeddings computed: {emb.get('embeddings_computed', 0)}")
    for key, meta in sorted(summary.assets.items()):
        if key.startswith("index/"):
            print(
                f"  {key}: wrote {meta.get('documents_written', 0)} documents / "
                f"{meta.get('chunks_written', 0)} chunks, re-tagged {meta.get('retagged_without_reembedding', 0)}, "
                f"moved in {meta.get('moved_in_without_reembedding', 0)}, "
                f"renamed {meta.get('renamed_without_reembedding', 0)}, deleted {meta.get('deleted_or_purged', 0)}; holds {meta.get('index_documents', 0)} documents, "
                f"{meta.get('index_chunks', 0)} chunks, {meta.get('index_failures', 0)} failed"
            )
    for check, passed in sorted(summary.checks.items()):
        print(f"  check {check}: {'passed' if passed else 'FAILED'}")


def cmd_failures(args: argparse.Namespace) -> int:
    """List documents recorded as failed, with their reasons."""
    from groundwork.services import Services

    _, config = _load(args)
    with Services(config) as services:
        rows = [(r, f) for r in config.regions for f in services.index(r).failures()]
    if not rows:
        print("no failed documents")
    for region, f in rows:
        print(f"  [{region}] {f['source']}/{f['source_id']}: {f['stage']}:{f['reason']} - {f['message']}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a document everywhere, leaving only a tombstone; it will not be ingested again."""
    from groundwork.services import Services
    from pipelines.erasure import forget

    _, config = _load(args)
    with Services(config) as services:
        report = forget(services, by=args.by, document_id=args.document, source_uri=args.uri)
    for region, ids in sorted(report.erased.items()):
        for doc_id in ids:
            print(f"forgot {doc_id} in {region} (tombstone recorded; by {args.by})")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Clear recorded failures so the next ingest tries those documents again, then ingest."""
    from groundwork.ingest import run_ingest
    from groundwork.services import Services

    path, config = _load(args)
    with Services(config) as services:
        cleared = 0
        for region in config.regions:
            index = services.index(region)
            for failure in index.failures():
                index.clear_failure(str(failure["source"]), str(failure["source_id"]))
                cleared += 1
    print(f"cleared {cleared} failure record(s); ingesting")
    summary = run_ingest(path, config)
    _print_ingest(summary)
    return 0 if summary.success else 1


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate retrieval and handoff on a BEIR-format data set through the real pipeline and API."""
    import tempfile

    from groundwork.evaluate import format_results, run_eval

    with tempfile.TemporaryDirectory(prefix="groundwork-eval-") as tmp:
        report = run_eval(Path(args.dataset).resolve(), Path(tmp))
    print(format_results(report.metrics))
    if args.fit_calibration:
        from indexes.confidence import CALIBRATION_DIR

        for mode, calibration in sorted(report.calibrations.items()):
            calibration.save(CALIBRATION_DIR / f"{mode}.json")
            print(f"calibration for {mode} written to {CALIBRATION_DIR / f'{mode}.json'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.metrics, indent=2))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Search as a configured principal, through the same retriever the API uses."""
    from groundwork.services import Services
    from indexes.search import Retriever

    _, config = _load(args)
    principal = config.principal(args.as_principal)
    k = args.k or config.retrieval.default_k
    if not 1 <= k <= config.retrieval.max_k:
        raise GroundworkError(f"--k must be between 1 and {config.retrieval.max_k}")
    with Services(config, role="reader") as services:
        outcome = Retriever(services).search(principal, args.query, k, auth_method="cli")
    if args.json:
        from indexes.api import SearchResult

        print(
            json.dumps(
                {
                    "results": [
                        SearchResult.model_validate(h, from_attributes=True).model_dump()
                        for h in outcome.results
                    ],
                    "confidence": outcome.confidence,
                    "decision": outcome.decision.value,
                    "reasons": [r.value for r in outcome.reasons],
                    "regions_searched": outcome.regions_searched,
                    "context_tokens": outcome.context_tokens,
                },
                indent=2,
            )
        )
    else:
        _print_outcome(principal.name, args.query, outcome)
    return 0


def _print_outcome(who: str, query: str, outcome: object) -> None:
    from indexes.search import SearchOutcome

    assert isinstance(outcome, SearchOutcome)
    reasons = ", ".join(r.value for r in outcome.reasons) or "-"
    print(f"\n[{who}] {query}")
    print(
        f"  decision: {outcome.decision.value}   confidence: {outcome.confidence:.2f}   reasons: {reasons}   "
        f"regions searched: {', '.join(outcome.regions_searched) or '-'}"
    )
    if not outcome.results:
        print("  (no results the caller may read)")
    for i, hit in enumerate(outcome.results, 1):
        snippet = textwrap.shorten(hit.text, width=110, placeholder=" ...")
        name = hit.source_uri.rsplit("/", 1)[-1]
        print(f"  {i}. score {hit.score:.3f}  [{hit.residency}] {hit.source}:{name}")
        print(f"     {snippet}")


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the retrieval API with uvicorn."""
    import uvicorn

    from groundwork.services import Services
    from indexes.api import create_app
    from indexes.search import Retriever

    path, config = _load(args)
    services = Services(config, role="reader")
    services.embedder.embed(["warm up"])  # load the models before the first request
    services.redactor.redact("warm up")
    app = create_app(config, Retriever(services), config_path=path)
    host = args.host or config.api.host
    port = args.port or config.api.port
    print(f"Groundwork retrieval API on http://{host}:{port} (docs at /docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        services.close()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Start, stop or report on the embedded server, or print the DSN of the index server."""
    from indexes.embedded import EmbeddedServer
    from indexes.regions import embedded_data_dir, resolve_targets, uses_embedded

    _, config = _load(args)
    if not uses_embedded(config):
        if args.action == "url":
            targets = resolve_targets(config)
            region = args.region or config.regions[0]
            if region not in targets:
                raise GroundworkError(f"no region {region!r}; configured: {sorted(targets)}")
            print(targets[region].dsn)
            return 0
        raise GroundworkError("a database URL is configured: the embedded server is not used")
    server = EmbeddedServer(embedded_data_dir(config))
    if args.action == "start":
        server.start()
        resolve_targets(config)  # create the region databases
        print(f"embedded PostgreSQL running: {server.dsn()}")
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    elif args.action == "status":
        st = server.status()
        print(f"running (pid {st.pid}): {st.dsn}" if st.running else f"stopped (data in {st.data_dir})")
        return 0 if st.running else 3
    else:  # url
        server.start()
        database = f"groundwork_{args.region}" if args.region else "postgres"
        if args.region:
            resolve_targets(config)
        print(server.dsn(database))
    return 0


DEMO_QUERIES: list[tuple[str, str]] = [
    ("alice", "What are the salary bands for a senior engineer?"),
    ("bob", "What are the salary bands for a senior engineer?"),
    ("alice", "How many days of annual leave do I get?"),
    ("bob", "How many days of annual leave do I get?"),
    ("bob", "What is the best recipe for banana bread?"),
]


def cmd_demo(args: argparse.Namespace) -> int:
    """Ingest the sample corpus through Dagster, then search as different principals."""
    from groundwork.ingest import run_ingest
    from groundwork.services import Services
    from indexes.search import Retriever

    path, config = _load(args)
    print(f"== Ingest ({path}) ==")
    summary = run_ingest(path, config)
    _print_ingest(summary)
    if not summary.success:
        return 1
    print("\n== Failed documents (recorded, not indexed) ==")
    cmd_failures(args)
    with Services(config, role="reader") as services:
        retriever = Retriever(services)
        print("\n== Searches ==")
        for who, query in DEMO_QUERIES:
            if who not in {p.name for p in config.principals}:
                continue
            principal = config.principal(who)
            print(f"\n-- as {who}: groups {list(principal.groups)}, regions {list(principal.regions)}")
            _print_outcome(who, query, retriever.search(principal, query, 3, auth_method="cli"))
    print("\nNext: `groundwork serve --config ...` for the API, `groundwork ui --config ...` for Dagster.")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the Dagster UI on 127.0.0.1 with the project's code location loaded."""
    from groundwork.ingest import PROJECT_ROOT, dagster_home

    path, config = _load(args)
    home = dagster_home(config)
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "GROUNDWORK_CONFIG": str(path)}
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={home})")
    return subprocess.call(cmd, env=env, cwd=PROJECT_ROOT)


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

    add("ingest", cmd_ingest, "run the ingest job once (a Dagster run)")
    p = add("backfill", cmd_backfill, "index sources in parallel shards (one Dagster run per source)")
    p.add_argument("--source", action="append", help="only this source (repeatable)")
    add("failures", cmd_failures, "list documents that failed to ingest, with reasons")
    add("retry", cmd_retry, "clear recorded failures and ingest again (for files fixed or after an outage)")
    p = add("forget", cmd_forget, "erase a document everywhere, leaving a tombstone (right to be forgotten)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--document", help="document id")
    target.add_argument("--uri", help="source URI, e.g. file:///share/hr/case-0142.eml")
    p.add_argument("--by", default=os.environ.get("USER", "operator"), help="who asked (recorded)")
    p = add("serve", cmd_serve, "serve the retrieval API")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
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
        "--fit-calibration",
        action="store_true",
        help="write the fitted confidence calibrations into indexes/calibration/ (shipped with the index code)",
    )
    p.set_defaults(func=cmd_eval)
    p = add("ui", cmd_ui, "open the Dagster UI on 127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``groundwork`` command."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("groundwork", "connectors", "pipelines", "indexes"):
        logging.getLogger(ours).setLevel(level)
    # Presidio warns about every recognizer for languages we do not load; pypdf about every repair.
    for chatty in ("presidio-analyzer", "pypdf"):
        logging.getLogger(chatty).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from groundwork.services import configure_offline

    configure_offline()
    try:
        return int(args.func(args))
    except GroundworkError as exc:
        print(f"groundwork: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
