"""Inline SVG for the steward's report: bar charts, failures over days, and the data-flow map.

Plain SVG strings, no script; every label goes through :func:`html.escape`.
"""

from __future__ import annotations

from html import escape
from typing import Any

#: Colours of the failure reasons' bars, in turn.
PALETTE = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00"]
RED = "#c62828"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def bar_chart(counts: dict[str, int], *, label: str, colour: str = "#3366cc") -> str:
    """Horizontal bars, one per key, longest first; an empty mapping says there is nothing to draw."""
    if not counts:
        return '<p class="empty">Nothing recorded.</p>'
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = max(v for _, v in items) or 1
    row, left, width = 26, 190, 420
    height = row * len(items) + 10
    parts = [
        f'<svg class="chart" role="img" aria-label="{_e(label)}" width="{left + width + 60}" '
        f'height="{height}" viewBox="0 0 {left + width + 60} {height}">'
    ]
    for i, (key, value) in enumerate(items):
        y = 5 + i * row
        w = max(2, round(width * value / top))
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{_e(key)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w}" height="{row - 8}" fill="{colour}"/>'
            f'<text x="{left + w + 6}" y="{y + 16}">{_e(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def failures_over_days(rows: list[dict[str, Any]]) -> str:
    """Stacked columns: failures first seen each day (UTC), by reason, with a legend."""
    if not rows:
        return '<p class="empty">No failures recorded.</p>'
    days = sorted({r["day"] for r in rows})
    reasons = sorted({r["reason"] for r in rows})
    colour = {reason: PALETTE[i % len(PALETTE)] for i, reason in enumerate(reasons)}
    totals = {d: sum(r["failures"] for r in rows if r["day"] == d) for d in days}
    top = max(totals.values()) or 1
    col, gap, base, plot = 48, 22, 200, 160
    width = max(360, 60 + len(days) * (col + gap))
    legend_y = base + 44
    height = legend_y + 20 * len(reasons) + 6
    parts = [
        f'<svg class="chart" role="img" aria-label="failures over runs" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<line x1="40" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#888"/>',
    ]
    for i, day in enumerate(days):
        x, y = 50 + i * (col + gap), base
        for reason in reasons:
            n = sum(r["failures"] for r in rows if r["day"] == day and r["reason"] == reason)
            if not n:
                continue
            h = round(plot * n / top)
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y}" width="{col}" height="{h}" fill="{colour[reason]}">'
                f"<title>{_e(day)} {_e(reason)}: {n}</title></rect>"
            )
        parts.append(f'<text x="{x + col / 2}" y="{y - 4}" text-anchor="middle">{totals[day]}</text>')
        parts.append(
            f'<text x="{x + col / 2}" y="{base + 16}" text-anchor="middle" class="small">{_e(day)}</text>'
        )
    for j, reason in enumerate(reasons):
        y = legend_y + 20 * j
        parts.append(
            f'<rect x="50" y="{y - 11}" width="12" height="12" fill="{colour[reason]}"/>'
            f'<text x="68" y="{y}">{_e(reason)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_COLUMNS = ("source", "region", "index", "principal")
_TITLES = {"source": "Sources", "region": "Regions", "index": "Indexes", "principal": "Principals"}
_FILL = {"source": "#e8f0fe", "region": "#e6f4ea", "index": "#fef7e0", "principal": "#f3e8fd"}


def flow_map(flow: dict[str, Any]) -> str:
    """The data-flow map: boxes in four columns (sources, regions, indexes, principals) and arrows."""
    nodes = flow["nodes"]
    box_w, box_h, step, col_w, top = 200, 46, 62, 290, 44
    pos: dict[str, tuple[int, int]] = {}
    for c, kind in enumerate(_COLUMNS):
        for i, node in enumerate(n for n in nodes if n["kind"] == kind):
            pos[node["id"]] = (20 + c * col_w, top + i * step)
    rows = max([sum(1 for n in nodes if n["kind"] == k) for k in _COLUMNS] + [1])
    width, height = 20 + 3 * col_w + box_w + 20, top + rows * step + 10
    parts = [
        f'<svg class="flow" role="img" aria-label="data flow map" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#555"/></marker></defs>'
    ]
    for c, kind in enumerate(_COLUMNS):
        parts.append(f'<text x="{20 + c * col_w}" y="24" class="coltitle">{_TITLES[kind]}</text>')
    for edge in flow["edges"]:
        if edge["from"] not in pos or edge["to"] not in pos:
            continue
        (left, top1), (x2, top2) = pos[edge["from"]], pos[edge["to"]]
        x1, y1, y2 = left + box_w, top1 + box_h // 2, top2 + box_h // 2
        mid = (x1 + x2) // 2
        parts.append(
            f'<path d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}" fill="none" stroke="#555" '
            'stroke-width="1.4" marker-end="url(#arrow)"/>'
        )
    for node in nodes:
        x, y = pos[node["id"]]
        status = node.get("status")
        stroke, dash, fill = "#777", "", _FILL[node["kind"]]
        if status in ("none", "missing"):
            stroke, fill = RED, "#fdecea"
            dash = ' stroke-dasharray="5 3"' if status == "missing" else ""
        parts.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="1.5"{dash}/>'
            f'<text x="{x + 10}" y="{y + 19}" class="boxtitle">{_e(node["label"])}</text>'
        )
        if node.get("detail"):
            cls = "boxdetail red" if status in ("none", "missing") else "boxdetail"
            parts.append(f'<text x="{x + 10}" y="{y + 36}" class="{cls}">{_e(node["detail"])}</text>')
    parts.append("</svg>")
    return "".join(parts)
