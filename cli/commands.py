"""The ``groundwork`` commands: each composes the layers below for one job and prints the result."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from cli.output import ingest_exit_code, print_ingest, print_outcome, terminal_safe
from groundwork.enums import AuthMethod
from groundwork.errors import ConfigError, GroundworkError
from groundwork.settings import GroundworkConfig, load_config, resolve_config_path


def load(args: argparse.Namespace) -> tuple[Path, GroundworkConfig]:
    """The config file named by ``--config`` (or ``$GROUNDWORK_CONFIG``) and its contents."""
    path = resolve_config_path(args.config)
    return path, load_config(path)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Create or update every region's schema, roles, grants and policies, as the owner."""
    from orchestration.services import Services

    _, config = load(args)
    with Services(config) as services:
        builds = services.migrate(repair=True)
    for region, build in sorted(builds.items()):
        state = f"building a new index version in {build}" if build else "up to date"
        print(f"region {region}: schema {services.targets[region].schema} {state}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run the Dagster ingest job once and print what it did."""
    from orchestration.runner import run_ingest

    path, config = load(args)
    summary = run_ingest(path, config)
    print_ingest(summary)
    return ingest_exit_code(summary)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run the backfill job for each source (or the named ones): shards in parallel processes."""
    from orchestration.runner import run_backfill

    path, config = load(args)
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


def cmd_failures(args: argparse.Namespace) -> int:
    """List documents recorded as failed, with their ids and reasons."""
    from groundwork.ids import document_id
    from orchestration.services import Services

    _, config = load(args)
    with Services(config) as services:
        rows = [(r, f) for r in config.regions for f in services.index(r).failures.all()]
    if not rows:
        print("no failed documents")
    for region, f in rows:
        # The document id is how the ingest's log lines name a failed document.
        doc = document_id(str(f["source"]), str(f["source_id"]))
        line = f"{f['source']}/{f['source_id']} (document {doc}): {f['stage']}:{f['reason']} - {f['message']}"
        print(f"  [{region}] {terminal_safe(line)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the steward's report (``index.html`` and ``report.json``), for every source or one customer's."""
    from stewardship.report import build_report, write_report

    _, config = load(args)
    out = Path(args.out).resolve() if args.out else config.state_dir / "report"
    page = write_report(build_report(config, customer=args.customer), out)
    print(page)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a document everywhere, leaving only a tombstone; it will not be ingested again.

    Holds the ingest run lock (a run planned before the tombstone could write the document back),
    and removes the last ingest plan a step-isolated run left in the Dagster instance's storage: it
    holds document references, and is needed only between the steps of one run.
    """
    import shutil

    from indexes.erasure import forget
    from orchestration.runner import dagster_home
    from orchestration.services import Services

    _, config = load(args)
    with Services(config) as services:
        services.migrate()  # the tombstone's digest column and the audit's scrub function
        with services.catalog.run_lock():
            report = forget(
                services.catalog,
                by=args.by,
                document_id=args.document,
                source_uri=args.uri,
                connectors=services.connectors,
            )
            stored_plan = dagster_home(config) / "storage" / "source_documents"
            removed = stored_plan.exists()
            if stored_plan.is_dir():
                shutil.rmtree(stored_plan)
            elif removed:
                stored_plan.unlink()
    if removed:
        print(f"removed the last ingest plan stored by Dagster ({stored_plan}): it names documents")
    for doc_id in report.documents:
        stored = sorted(r for r, ids in report.erased.items() if doc_id in ids)
        failed = sorted(r for r, ids in report.failures_cleared.items() if doc_id in ids)
        parts = [f"document and chunks deleted in {', '.join(stored)}" if stored else "no stored copy"]
        parts += [f"failure record deleted in {', '.join(failed)}"] if failed else []
        parts += ["same content as the document named"] if doc_id in report.same_content else []
        digest = "content digest recorded" if report.digests[doc_id] else "content digest UNKNOWN"
        print(
            f"forgot {doc_id}: {'; '.join(parts)}; tombstone recorded ({digest}; by {terminal_safe(args.by)})"
        )
    scrubbed = ", ".join(f"{n} in {r}" for r, n in sorted(report.audit_scrubbed.items())) or "none"
    print(f"retrieval audit rows scrubbed (chunk ids and query text removed): {scrubbed}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Clear recorded failures so the next ingest tries those documents again, then ingest."""
    from orchestration.runner import run_ingest
    from orchestration.services import Services

    path, config = load(args)
    with Services(config) as services:
        cleared = 0
        for region in config.regions:
            index = services.index(region)
            for failure in index.failures.all():
                index.failures.clear(str(failure["source"]), str(failure["source_id"]))
                cleared += 1
    print(f"cleared {cleared} failure record(s); ingesting")
    summary = run_ingest(path, config)
    print_ingest(summary)
    return ingest_exit_code(summary)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate retrieval and handoff on a BEIR-format data set through the real pipeline and API."""
    import tempfile

    from cli.evaluate import format_results, run_eval

    if args.fit_calibration and args.rerank_depth != 0:
        raise GroundworkError(
            "--fit-calibration fits the confidence used without the reranker: add --rerank-depth 0"
            " (a reranker's calibration is in its folder's meta.json, see scripts/reranker)"
        )
    with tempfile.TemporaryDirectory(prefix="groundwork-eval-") as tmp:
        retrieval: dict[str, object] = {}
        if args.rerank_depth is not None:
            retrieval["rerank_depth"] = args.rerank_depth
        if args.reranker_weights:
            retrieval["reranker_weights"] = str(Path(args.reranker_weights).resolve())
        report = run_eval(
            Path(args.dataset).resolve(), Path(tmp), modes=tuple(args.modes), retrieval=retrieval
        )
    print(format_results(report.metrics, report.baseline))
    if args.fit_calibration:
        from indexes.confidence import CALIBRATION_DIR

        for mode, calibration in sorted(report.calibrations.items()):
            calibration.save(CALIBRATION_DIR / f"{mode}.json")
            print(f"calibration for {mode} written to {CALIBRATION_DIR / f'{mode}.json'}")
    if args.json:
        Path(args.json).write_text(json.dumps(report.metrics | {"naive_baseline": report.baseline}, indent=2))
    if args.dump:
        Path(args.dump).write_text("".join(json.dumps(r) + "\n" for r in report.queries))
        print(f"{len(report.queries)} query records written to {args.dump}")
    return 0


def cmd_eval_pii(args: argparse.Namespace) -> int:
    """Measure redaction as a detector on labelled sets and PII-free prose (see :mod:`cli.evaluate_pii`)."""
    from cli.evaluate_pii import format_pii_results, run_pii_eval
    from groundwork.settings import EmbeddingConfig, RedactionConfig

    config = load(args)[1] if args.config else None
    redaction = config.redaction if config else RedactionConfig()
    embedding = config.embedding if config else EmbeddingConfig()
    results = run_pii_eval(
        [Path(p) for p in args.sets], redaction, embedding, Path(args.dump) if args.dump else None
    )
    print(format_pii_results(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Search as a configured principal, through the same retriever the API uses."""
    from serving.retrieval import build_retriever
    from serving.searching import SearchResult

    _, config = load(args)
    principal = config.principal(args.as_principal)
    k = args.k or config.retrieval.default_k
    if not 1 <= k <= config.retrieval.max_k:
        raise GroundworkError(f"--k must be between 1 and {config.retrieval.max_k}")
    with build_retriever(config, verify=True) as retriever:
        outcome = retriever.search(principal, args.query, k, auth_method=AuthMethod.CLI)
    if not args.json:
        print_outcome(principal.name, args.query, outcome)
        return 0
    results = [SearchResult.model_validate(h, from_attributes=True).model_dump() for h in outcome.results]
    print(
        json.dumps(
            {
                "results": results,
                "confidence": outcome.confidence,
                "decision": outcome.decision.value,
                "reasons": [r.value for r in outcome.reasons],
                "regions_searched": outcome.regions_searched,
                "context_tokens": outcome.context_tokens,
            },
            indent=2,
        )
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the retrieval API with uvicorn, as the reader role, after checking every region."""
    import uvicorn

    from serving.api import create_app
    from serving.mcp import MCP_PATH, mount_mcp
    from serving.retrieval import build_retriever, quiet_idle_threads

    quiet_idle_threads()  # before the models load

    path, config = load(args)
    retriever = build_retriever(config, verify=True)  # refuses to start on a bad schema or role
    retriever.warm_up()
    app = create_app(config, retriever, config_path=path)
    host = args.host or config.api.host
    port = args.port or config.api.port
    mount_mcp(app, config, retriever, host=host)
    print(f"Groundwork retrieval API on http://{host}:{port} (docs at /docs, MCP at {MCP_PATH})")
    try:
        # No access log: it would write each request's path and query string, which a caller can
        # fill with personal data; /metrics counts requests by route template instead.
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        retriever.close()
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools over stdio for an agent host, as the principal whose key is in the environment."""
    from serving.auth import Authenticator
    from serving.limits import RateLimiter
    from serving.mcp import McpTools, create_mcp_server, stdio_key_from_env
    from serving.retrieval import build_retriever, quiet_idle_threads
    from telemetry import Telemetry

    quiet_idle_threads()  # before the models load
    path, config = load(args)
    key = stdio_key_from_env()
    auth = Authenticator(config, path)
    who = auth.authenticate(key)  # a bad key refuses to start, before anything is loaded
    limiter = RateLimiter(config.api.rate_limit_per_minute, config.api.rate_limit_burst)
    telemetry = Telemetry(config.telemetry)  # no-op unless telemetry.enabled
    try:
        with build_retriever(config, verify=True) as retriever:
            tools = McpTools(
                config, retriever, auth, limiter, stdio_key=key, tracer=telemetry.tracer("serving.mcp")
            )
            server = create_mcp_server(tools)
            # stdout carries the protocol: everything for people goes to stderr.
            print(f"Groundwork MCP server on stdio, acting for {who.principal.name}", file=sys.stderr)
            server.run("stdio")
    finally:
        telemetry.shutdown()  # exports what was decided
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Start, stop or report on the embedded server, or print the DSN of the index server."""
    from indexes.embedded import EmbeddedServer
    from indexes.regions import embedded_data_dir, resolve_targets, uses_embedded

    _, config = load(args)
    if not uses_embedded(config):
        if args.action == "url":
            targets = resolve_targets(config)
            region = args.region or config.regions[0]
            if region not in targets:
                raise GroundworkError(f"no region {region!r}; configured: {sorted(targets)}")
            print(targets[region].owner_dsn)
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
    from orchestration.runner import run_ingest
    from serving.retrieval import build_retriever

    path, config = load(args)
    print(f"== Ingest ({path}) ==")
    summary = run_ingest(path, config)
    print_ingest(summary)
    if not summary.success:
        return 1
    print("\n== Failed documents (recorded, not indexed) ==")
    cmd_failures(args)
    with build_retriever(config, verify=True) as retriever:
        print("\n== Searches ==")
        for who, query in DEMO_QUERIES:
            if who not in {p.name for p in config.principals}:
                continue
            principal = config.principal(who)
            print(f"\n-- as {who}: groups {list(principal.groups)}, regions {list(principal.regions)}")
            print_outcome(who, query, retriever.search(principal, query, 3, auth_method=AuthMethod.CLI))
        if "alice" in {p.name for p in config.principals}:
            from cli.agent_demo import run_support_flow

            print("\n== Support agent: retrieve, draft, create a ticket (through the action gate) ==")
            run_support_flow(config, retriever)
    from stewardship.report import build_report, write_report

    print("\n== Steward's report (counts, contracts, records of processing; no personal values) ==")
    print(write_report(build_report(config), config.state_dir / "report"))
    print(
        "\nNext: `groundwork serve --config ...` for the API, `groundwork ui --config ...` for Dagster,"
        " `groundwork lineage CHUNK_ID --config ...` for where a chunk came from."
    )
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the Dagster UI on 127.0.0.1 with the project's code location loaded."""
    from orchestration.runner import PROJECT_ROOT, prepare_dagster_home

    path, config = load(args)
    home = prepare_dagster_home(config)
    env = {**os.environ, "DAGSTER_HOME": str(home), "GROUNDWORK_CONFIG": str(path)}
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"Dagster UI on http://127.0.0.1:{args.port} (DAGSTER_HOME={home})")
    return subprocess.call(cmd, env=env, cwd=PROJECT_ROOT)
