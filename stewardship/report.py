"""The steward's report as data: the inventory, the data-flow map, records of processing, DPIA inputs
and security measures; written as ``index.html`` and, with the same data, ``report.json``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from groundwork.settings import GroundworkConfig
from stewardship.inventory import gather
from stewardship.records import HEADINGS, dpia_inputs, records_of_processing, security_measures
from stewardship.render import render_html

NO_CONTRACT_LABEL = "no contract (acknowledged)"
MISSING_LABEL = "no contract: refused at ingest"


def flow_graph(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Sources -> regions -> indexes -> principals, as nodes and edges, for the sources in the report."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for s in report["sources"]:
        detail = {"none": NO_CONTRACT_LABEL, "missing": MISSING_LABEL}.get(
            s["contract_status"], f"{s['documents']} documents"
        )
        nodes.append(
            {
                "id": f"source:{s['name']}",
                "kind": "source",
                "label": s["name"],
                "status": s["contract_status"],
                "detail": detail,
            }
        )
        edges += [{"from": f"source:{s['name']}", "to": f"region:{r}"} for r in s["regions"]]
    for r in report["regions"]:
        region = r["region"]
        nodes.append(
            {
                "id": f"region:{region}",
                "kind": "region",
                "label": region,
                "detail": f"{r.get('documents', 0)} documents",
            }
        )
        model = (r.get("index") or {}).get("model") or "not built"
        nodes.append(
            {
                "id": f"index:{region}",
                "kind": "index",
                "label": f"index/{region}",
                "detail": str(model).rsplit("/", 1)[-1],
            }
        )
        edges.append({"from": f"region:{region}", "to": f"index:{region}"})
    readers: dict[str, set[str]] = {}
    for s in report["sources"]:
        for rec in s["recipients"]:
            readers.setdefault(rec["principal"], set()).update(rec["reads_regions"])
    for p in report["principals"]:
        if p["name"] not in readers:
            continue
        nodes.append(
            {
                "id": f"principal:{p['name']}",
                "kind": "principal",
                "label": p["name"],
                "detail": "regions " + ", ".join(p["regions"]),
            }
        )
        edges += [{"from": f"index:{r}", "to": f"principal:{p['name']}"} for r in sorted(readers[p["name"]])]
    return {"nodes": nodes, "edges": edges}


def build_report(
    config: GroundworkConfig, *, customer: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data (see :func:`stewardship.inventory.gather`)."""
    report = gather(config, customer=customer, now=now)
    report["flow"] = flow_graph(report)
    report["record_headings"] = [{"key": k, "ico": ico, "cnil": cnil} for k, ico, cnil in HEADINGS]
    report["records"] = records_of_processing(report, config)
    report["dpia"] = dpia_inputs(report, config)
    report["security"] = security_measures(config, [s["name"] for s in report["sources"]])
    return report


def write_report(report: dict[str, Any], out: Path) -> Path:
    """Write ``index.html`` and ``report.json`` into ``out`` (created if needed); returns the page."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    page = out / "index.html"
    page.write_text(render_html(report), encoding="utf-8")
    return page
