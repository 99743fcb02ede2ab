"""The steward's report as one self-contained HTML page: inline CSS and SVG, no script.

Every value from the config or the database goes through :func:`html.escape`. The page shows
counts and settings only; :mod:`stewardship.inventory` never gathers text, ids, URIs or queries.
"""

from __future__ import annotations

from html import escape
from typing import Any

from stewardship.charts import bar_chart, failures_over_days, flow_map

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #202124; margin: 24px 32px; max-width: 1240px; }
h1 { font-size: 24px; margin-bottom: 2px; } h2 { font-size: 19px; margin-top: 34px;
  border-bottom: 2px solid #dadce0; padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 8px 0 14px; } th, td { border: 1px solid #dadce0;
  padding: 4px 8px; text-align: left; vertical-align: top; } th { background: #f1f3f4; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; } .tile { border: 1px solid #dadce0;
  border-radius: 8px; padding: 10px 16px; min-width: 120px; } .tile b { display: block; font-size: 22px; }
.red, tr.nocontract td { color: #c62828; } tr.nocontract td { background: #fdecea; }
.badge { border-radius: 4px; padding: 1px 6px; font-size: 12px; border: 1px solid; white-space: nowrap; }
.badge.ok { color: #137333; } .badge.bad { color: #c62828; background: #fdecea; }
.muted, .empty { color: #5f6368; } svg text { font: 12px system-ui, sans-serif; fill: #202124; }
svg text.small { font-size: 10px; } svg text.coltitle { font-weight: 600; font-size: 13px; }
svg text.boxtitle { font-weight: 600; } svg text.boxdetail { font-size: 11px; fill: #5f6368; }
svg text.red { fill: #c62828; } .charts { display: flex; gap: 40px; flex-wrap: wrap; }
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(headers: list[str], rows: list[list[Any]], *, numeric: set[int] | None = None) -> str:
    """A table; cells are escaped unless wrapped in :class:`Raw`."""
    if not rows:
        return '<p class="empty">None.</p>'
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cls = ""
        if isinstance(row, _Row):
            cls = f' class="{row.cls}"'
        cells = "".join(
            f"<td{' class=n' if i in numeric else ''}>{c.html if isinstance(c, Raw) else _e(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw:
    """Markup built here (already escaped), to put in a table cell as it is."""

    def __init__(self, html: str) -> None:
        self.html = html


class _Row(list[Any]):
    def __init__(self, cells: list[Any], cls: str) -> None:
        super().__init__(cells)
        self.cls = cls


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"


def contract_badge(status: str) -> Raw:
    """The contract's status as a badge: agreed, or in red when the source has none."""
    text = {"agreed": "contract agreed", "none": "no contract (acknowledged)"}.get(
        status, "no contract: refused at ingest"
    )
    return Raw(f'<span class="badge {"ok" if status == "agreed" else "bad"}">{_e(text)}</span>')


def _sources(report: dict[str, Any]) -> str:
    rows = []
    for s in report["sources"]:
        cells = [
            s["name"],
            s["customer"] or "-",
            contract_badge(s["contract_status"]),
            ", ".join(s["regions"]),
            s["documents"],
            s["chunks"],
            sum(s["failures"].values()),
            sum(s["redactions"].values()),
            ", ".join(s["access"]),
        ]
        rows.append(_Row(cells, "nocontract") if s["contract_status"] != "agreed" else cells)
    table = _table(
        [
            "Source",
            "Customer",
            "Contract",
            "Regions",
            "Documents",
            "Chunks",
            "Failed",
            "Redactions",
            "Access",
        ],
        rows,
        numeric={4, 5, 6, 7},
    )
    per_region = [
        [s["name"], region, c["documents"], c["chunks"]]
        for s in report["sources"]
        for region, c in sorted(s["by_region"].items())
    ]
    return (
        table
        + "<h3>Per source and region</h3>"
        + _table(["Source", "Region", "Documents", "Chunks"], per_region, numeric={2, 3})
    )


def _redactions(report: dict[str, Any]) -> str:
    rows = [[s["name"], _counts(s["redactions"])] for s in report["sources"]]
    return bar_chart(report["totals"]["redactions"], label="redactions by type") + _table(
        ["Source", "Values redacted, by type"], rows
    )


def _failures(report: dict[str, Any]) -> str:
    rows = [[s["name"], reason, n] for s in report["sources"] for reason, n in sorted(s["failures"].items())]
    return (
        '<div class="charts"><div><h3>By reason</h3>'
        + bar_chart(report["totals"]["failures"], label="failures by reason", colour="#dc3912")
        + "</div><div><h3>Failures over runs</h3>"
        + failures_over_days(report["failures_by_day"])
        + '<p class="muted">Documents by the day their failure was first recorded (UTC).</p></div></div>'
        + _table(["Source", "Reason", "Documents"], rows, numeric={2})
    )


def _access(report: dict[str, Any]) -> str:
    rows = []
    for s in report["sources"]:
        grants = _counts(s["grants"]) if s["grants"] else "-"
        readers = []
        for r in s["recipients"]:
            use = f"{r['searches']} searches ({r['answers']} answered, {r['handoffs']} handed off)"
            flag = " - reads from other regions too" if r["transfer"] else ""
            readers.append(f"{r['principal']} [{', '.join(r['regions'])}]: {use}{flag}")
        readers += [
            f"{o['principal']} (not configured): {o['searches']} searches" for o in s["other_readers"]
        ]
        rows.append(
            [s["name"], ", ".join(s["access"]), grants, Raw("<br>".join(_e(x) for x in readers) or "-")]
        )
    return _table(
        ["Source", "Grants in policy", "Documents per grant", "Recipients and their retrievals"], rows
    )


def _retention(report: dict[str, Any]) -> str:
    rows = []
    for s in report["sources"]:
        c = s["contract"]
        rows.append(
            [
                s["name"],
                c["retention"] if c else "-",
                f"{s['retention_days']} days" if s["retention_days"] else "not machine-enforced",
                s["next_purge"] or "-",
                s["due_at_next_purge"] if s["retention_days"] else "-",
                (s["oldest_modified"] or "-")[:10],
            ]
        )
    table = _table(
        ["Source", "Contract's retention", "Enforced", "Next purge (UTC)", "Due then", "Oldest document"],
        rows,
        numeric={4},
    )
    return table + _records_retention(report)


def _records_retention(report: dict[str, Any]) -> str:
    """Groundwork's own records per region: how long they are kept and what the next purge deletes."""
    names = {"audit": "Retrieval audit", "ledger": "Agents' ledger"}
    rows = []
    for r in report["regions"]:
        for kind, rec in r.get("records", {}).items():
            days = rec["retention_days"]
            rows.append(
                [
                    r["region"],
                    names.get(kind, kind),
                    f"{days} days" if days else "kept until deleted by hand",
                    rec["rows"],
                    rec["due_at_next_purge"] if days else "-",
                    (rec["oldest"] or "-")[:10],
                ]
            )
    if not rows:
        return ""
    return '<p class="muted">Groundwork\'s own records (erasure tombstones are kept for good):</p>' + _table(
        ["Region", "Record", "Kept", "Rows", "Due at next purge", "Oldest row"], rows, numeric={3, 4}
    )


def _indexes(report: dict[str, Any]) -> str:
    rows = []
    for r in report["regions"]:
        if not r["available"]:
            rows.append([r["region"], Raw(f'<span class="red">{_e(r["message"])}</span>'), "", "", "", ""])
            continue
        ix = r["index"]
        build = "-"
        if ix["building"]:
            build = f"building {ix['build'].get('model')} ({ix['build_documents']} documents so far)"
        rows.append(
            [
                r["region"],
                ix["model"],
                ix["dimensions"],
                ix["chunking"],
                (ix["redaction_policy"] or "unrecorded")[:16],
                build,
            ]
        )
    return _table(
        ["Region", "Embedding model", "Dimensions", "Chunking", "Redaction policy", "Next version"], rows
    )


def _records(report: dict[str, Any]) -> str:
    parts = []
    for rec in report["records"]:
        title = f"Source {rec['source']}"
        red = rec["contract_status"] != "agreed"
        parts.append(f"<h3{' class=red' if red else ''}>{_e(title)}</h3>")
        rows = [[h["ico"], h["cnil"], rec["fields"][h["key"]]] for h in report["record_headings"]]
        rows = [_Row(r, "nocontract") if red else r for r in rows]
        parts.append(_table(["UK GDPR Art. 30 (ICO)", "Registre CNIL", "Entry"], rows))
    return "".join(parts)


def _dpia(report: dict[str, Any]) -> str:
    parts = []
    for d in report["dpia"]:
        scale = d["scale"]
        parts.append(
            f"<h3>Source {_e(d['source'])}</h3><p class=muted>{scale['documents']} documents, "
            f"{scale['chunks']} chunks, {scale['recipients']} recipient(s)</p>"
        )
        rows = [[i["question"], "yes" if i["answer"] else "no", i["evidence"]] for i in d["indicators"]]
        parts.append(_table(["Question", "Answer", "Evidence"], rows))
    return "".join(parts)


def _usage(report: dict[str, Any]) -> str:
    rows = []
    for r in report["regions"]:
        for u in r.get("searches", []):
            ledger = r.get("ledger", {}).get(u["principal"], {})
            rows.append(
                [
                    r["region"],
                    u["principal"],
                    u["searches"],
                    u["answers"],
                    u["handoffs"],
                    (u["last_at"] or "-")[:19],
                    _counts(ledger),
                ]
            )
    erasures = [
        [r["region"], reason, e["count"], (e["last_at"] or "-")[:19]]
        for r in report["regions"]
        for reason, e in sorted(r.get("erasures", {}).items())
    ]
    return (
        _table(
            ["Region", "Principal", "Searches", "Answered", "Handed off", "Last", "Agents' ledger"],
            rows,
            numeric={2, 3, 4},
        )
        + "<h3>Erasures</h3>"
        + _table(["Region", "Reason", "Tombstones", "Last"], erasures, numeric={2})
    )


def render_html(report: dict[str, Any]) -> str:
    """The report page for :func:`stewardship.report.build_report`'s data."""
    t = report["totals"]
    scope = f"customer {report['customer']}" if report["customer"] else "all sources"
    tiles = "".join(
        f'<div class="tile"><b>{_e(v)}</b>{_e(k)}</div>'
        for k, v in [
            ("sources", t["sources"]),
            ("documents", t["documents"]),
            ("chunks", t["chunks"]),
            ("failed documents", sum(t["failures"].values())),
            ("values redacted", sum(t["redactions"].values())),
            ("regions", len(report["regions"])),
        ]
    )
    unsure = [s["name"] for s in report["sources"] if s["contract_status"] != "agreed"]
    warning = (
        f'<p class="red"><b>Sources without a contract: {_e(", ".join(unsure))}</b></p>' if unsure else ""
    )
    sections = [
        ("Sources", _sources(report)),
        (
            "Data flow",
            flow_map(report["flow"])
            + '<p class="muted">Sources to regions to indexes to principals that may read them.</p>',
        ),
        ("Redactions by type", _redactions(report)),
        ("Failures", _failures(report)),
        ("Access groups and recipients", _access(report)),
        ("Retention and purge", _retention(report)),
        ("Index versions", _indexes(report)),
        (
            "Records of processing",
            '<p class="muted">One record per source and purpose (UK GDPR Art. 30; CNIL register).</p>'
            + _records(report),
        ),
        ("DPIA inputs", _dpia(report)),
        (
            "Security measures",
            _table(["Measure", "Detail"], [[m["measure"], m["detail"]] for m in report["security"]]),
        ),
    ]
    if report["customer"] is None:
        sections.append(("Retrieval audit and erasures", _usage(report)))
    body = "".join(
        f'<section><h2 id="{_e(title.lower().replace(" ", "-"))}">{_e(title)}</h2>{html}</section>'
        for title, html in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Groundwork steward's report ({_e(scope)})</title><style>{CSS}</style></head><body>"
        f"<h1>Steward's report</h1><p class=muted>Scope: {_e(scope)}. Generated {_e(report['generated_at'])}. "
        "Counts and settings only: no document text, file names, queries or personal values.</p>"
        f'{warning}<div class="tiles">{tiles}</div>{body}</body></html>\n'
    )
