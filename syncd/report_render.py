"""The funnel report as a terminal table, JSON, CSV and one self-contained HTML page.

The HTML page draws its charts itself (inline SVG, inline CSS): no network, no JavaScript.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from syncd.distribution import Distribution
from syncd.report import DEFINITIONS, Report

__all__ = ["csv_text", "html_page", "json_text", "print_table"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _header(meta: dict[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in meta.items())


def print_table(console: Console, reports: list[Report], meta: dict[str, str]) -> None:
    """Rich tables, one set per group, then the definitions used."""
    console.print(f"syncd report -- {_header(meta)}", highlight=False, markup=False)
    # Numbers are never squeezed into ellipses: tables get 140 columns even on a narrow or
    # non-terminal output (a pipe, a file).
    wide = Console(file=console.file, width=max(console.width, 140), no_color=console.no_color)
    if reports and not any(s.any_order for s in reports[0].stages):
        console.print(
            "no status transitions in this scope: the ledger (status_history) fills as "
            "cycles see and make status changes; try a wider --since",
            highlight=False,
            markup=False,
        )
    for report in reports:
        table = Table(title=f"funnel ({report.group})", title_justify="left")
        for col in (
            "stage",
            "any-order",
            "next",
            "cumul.",
            "in-order",
            "next",
            "cumul.",
            "drop-off",
            "p50 d",
            "p75 d",
            "p90 d",
            "n",
            "stale",
        ):
            table.add_column(col, justify="left" if col == "stage" else "right")
        for row in report.stages:
            table.add_row(
                row.stage,
                str(row.any_order),
                _pct(row.next_step_any),
                _pct(row.cumulative_any),
                str(row.in_order),
                _pct(row.next_step_in_order),
                _pct(row.cumulative_in_order),
                _pct(row.drop_off),
                _num(row.p50_days),
                _num(row.p75_days),
                _num(row.p90_days),
                str(row.n_durations),
                str(row.stale),
            )
        wide.print(table)
        flag = "  BELOW TARGET" if report.acceptance_below_target else ""
        lines = [
            f"skipped stages: {report.skipped}   regressions: {report.regressions}",
            f"acceptance rate ({report.acceptance}): {_pct(report.acceptance_rate)} "
            f"({report.acceptance_numerator}/{report.acceptance_denominator}), "
            f"target {_pct(report.acceptance_target)}{flag}",
            f"SAL follow-up: {report.sal_entries} SAL entries, {report.sla_breaches} breaches "
            f"of {report.sla_decided} decided ({_pct(report.sla_breach_rate)}), first touch "
            f"p50 {_num(report.first_touch_p50_hours, ' business h')}",
            f"SAL to close: p50 {_num(report.sal_to_close_p50_days, ' d')}, "
            f"p90 {_num(report.sal_to_close_p90_days, ' d')} (n={report.sal_to_close_n})",
        ]
        for line in lines:
            console.print(line, highlight=False, markup=False)
        if report.open_breaches:
            shown = len(report.open_breaches)
            more = report.open_breach_count - shown
            title = f"open SLA breaches ({report.group})" + (
                f", the oldest {shown} of {report.open_breach_count}" if more > 0 else ""
            )
            breaches = Table(title=title, title_justify="left")
            for col in ("crm", "lead", "owner", "SAL since", "age (business h)"):
                breaches.add_column(col)
            for b in report.open_breaches:
                breaches.add_row(
                    b.crm,
                    b.lead_id,
                    b.owner or "-",
                    f"{b.since:%Y-%m-%d %H:%M}",
                    f"{b.age_business_hours:g}",
                )
            wide.print(breaches)
    console.print("definitions:", highlight=False, markup=False)
    for key, text in DEFINITIONS.items():
        console.print(f"  {key}: {text}", highlight=False, markup=False)


def _as_dict(report: Report) -> dict[str, Any]:
    data = asdict(replace(report, durations_days={}))
    for b in data["open_breaches"]:
        b["since"] = b["since"].isoformat()
    # The distributions as their percentiles (the values themselves may be millions).
    data["durations_days"] = {
        stage: dict(zip(("n", "p10", "p25", "p50", "p75", "p90", "max"), _summary(d), strict=True))
        for stage, d in report.durations_days.items()
        if len(d)
    }
    return data


def _summary(d: Distribution) -> list[float | int | None]:
    p = [None if v is None else round(v, 3) for v in d.percentiles((10, 25, 50, 75, 90))]
    top = d.max
    return [len(d), *p, None if top is None else round(top, 3)]


def json_text(reports: list[Report], meta: dict[str, str]) -> str:
    return json.dumps(
        {"meta": meta, "definitions": DEFINITIONS, "groups": [_as_dict(r) for r in reports]},
        indent=2,
    )


CSV_COLUMNS = (
    "group",
    "stage",
    "any_order",
    "next_step_any",
    "cumulative_any",
    "in_order",
    "next_step_in_order",
    "cumulative_in_order",
    "drop_off",
    "p50_days",
    "p75_days",
    "p90_days",
    "n_durations",
    "stale",
    "acceptance_rate",
    "sla_breaches",
    "sla_breach_rate",
)


def csv_text(reports: list[Report]) -> str:
    """One line per group and stage; the group's acceptance and SLA numbers on each line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in reports:
        for s in r.stages:
            writer.writerow(
                [
                    r.group,
                    s.stage,
                    s.any_order,
                    s.next_step_any,
                    s.cumulative_any,
                    s.in_order,
                    s.next_step_in_order,
                    s.cumulative_in_order,
                    s.drop_off,
                    s.p50_days,
                    s.p75_days,
                    s.p90_days,
                    s.n_durations,
                    s.stale,
                    r.acceptance_rate,
                    r.sla_breaches,
                    r.sla_breach_rate,
                ]
            )
    return buffer.getvalue()


# -- HTML ----------------------------------------------------------------------------------

_COLORS = ("#1f6feb", "#2da44e", "#bf8700", "#cf222e", "#8250df", "#0a7d8c", "#e16f24")
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:4px 8px}
th{background:#f6f8fa}td.n{text-align:right}.bad{color:#cf222e;font-weight:bold}
dl dt{font-weight:bold}dl dd{margin:0 0 6px 16px}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _funnel_svg(report: Report) -> str:
    width, bar_h, gap, label_w = 700, 26, 8, 110
    top = max([s.any_order for s in report.stages] + [1])
    height = len(report.stages) * (2 * bar_h + gap) + 10
    parts = [f'<svg class="chart funnel" width="{width}" height="{height}" role="img">']
    for k, s in enumerate(report.stages):
        y = k * (2 * bar_h + gap)
        for j, (value, color) in enumerate(((s.any_order, _COLORS[0]), (s.in_order, _COLORS[1]))):
            w = int((width - label_w - 60) * value / top)
            yy = y + j * bar_h
            parts.append(
                f'<rect class="bar" x="{label_w}" y="{yy}" width="{max(w, 1)}" '
                f'height="{bar_h - 2}" fill="{color}"/>'
                f'<text x="{label_w + w + 4}" y="{yy + bar_h - 9}" font-size="12">{value}</text>'
            )
        parts.append(f'<text x="0" y="{y + bar_h + 4}" font-size="13">{_e(s.stage)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _durations_svg(report: Report) -> str:
    """A box from p25 to p75 and whiskers p10..p90 per stage, on a shared day axis."""
    width, row_h, label_w = 700, 30, 110
    series = [(s, v) for s, v in report.durations_days.items() if len(v)]
    top = max([v.max or 0.0 for _, v in series] + [1.0])
    height = max(len(series), 1) * row_h + 24
    scale = (width - label_w - 20) / top
    parts = [f'<svg class="chart durations" width="{width}" height="{height}" role="img">']
    for k, (stage, values) in enumerate(series):
        y = k * row_h + 4
        p10, p25, p50, p75, p90 = (v or 0.0 for v in values.percentiles((10, 25, 50, 75, 90)))

        def x(v: float) -> float:
            return label_w + v * scale

        color = _COLORS[(k + 2) % len(_COLORS)]
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="13">{_e(stage)} (n={len(values)})</text>'
            f'<line x1="{x(p10):.1f}" x2="{x(p90):.1f}" y1="{y + 11}" y2="{y + 11}" '
            f'stroke="#57606a"/>'
            f'<rect class="box" x="{x(p25):.1f}" y="{y}" width="{max(x(p75) - x(p25), 2):.1f}" '
            f'height="22" fill="{color}"/>'
            f'<line x1="{x(p50):.1f}" x2="{x(p50):.1f}" y1="{y}" y2="{y + 22}" '
            f'stroke="#000" stroke-width="2"/>'
        )
    parts.append(
        f'<text x="{label_w}" y="{height - 4}" font-size="11">0 d</text>'
        f'<text x="{width - 60}" y="{height - 4}" font-size="11">{top:.1f} d</text></svg>'
    )
    return "".join(parts)


def _breaches_svg(report: Report) -> str:
    width, height, pad = 700, 160, 30
    days = list(report.breaches_by_day.items())
    top = max([n for _, n in days] + [1])
    parts = [f'<svg class="chart breaches" width="{width}" height="{height}" role="img">']
    parts.append(
        f'<line x1="{pad}" y1="{height - pad}" x2="{width}" y2="{height - pad}" stroke="#57606a"/>'
    )
    step = (width - pad) / max(len(days), 1)
    for i, (day, n) in enumerate(days):
        h = (height - 2 * pad) * n / top
        x = pad + i * step
        parts.append(
            f'<rect class="bar" x="{x + 2:.1f}" y="{height - pad - h:.1f}" '
            f'width="{max(step - 4, 2):.1f}" height="{h:.1f}" fill="{_COLORS[3]}">'
            f"<title>{_e(day)}: {n}</title></rect>"
        )
    if days:
        parts.append(
            f'<text x="{pad}" y="{height - 8}" font-size="11">{_e(days[0][0])}</text>'
            f'<text x="{width - 80}" y="{height - 8}" font-size="11">{_e(days[-1][0])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def html_page(reports: list[Report], meta: dict[str, str]) -> str:
    """One self-contained page: inline CSS and SVG, no scripts, no external resources."""
    body: list[str] = [f"<h1>syncd funnel report</h1><p>{_e(_header(meta))}</p>"]
    for r in reports:
        body.append(f"<h2>{_e(r.group)}</h2>")
        body.append(
            '<p><span style="color:#1f6feb">&#9632;</span> any-order '
            '<span style="color:#2da44e">&#9632;</span> in-order</p>'
        )
        body.append(_funnel_svg(r))
        rows = "".join(
            f"<tr><td>{_e(s.stage)}</td><td class=n>{s.any_order}</td>"
            f"<td class=n>{_pct(s.next_step_any)}</td><td class=n>{s.in_order}</td>"
            f"<td class=n>{_pct(s.next_step_in_order)}</td><td class=n>{_pct(s.drop_off)}</td>"
            f"<td class=n>{_num(s.p50_days)}</td><td class=n>{_num(s.p75_days)}</td>"
            f"<td class=n>{_num(s.p90_days)}</td><td class=n>{s.n_durations}</td>"
            f"<td class=n>{s.stale}</td></tr>"
            for s in r.stages
        )
        body.append(
            "<table><tr><th>stage</th><th>any-order</th><th>next</th><th>in-order</th>"
            "<th>next</th><th>drop-off</th><th>p50 d</th><th>p75 d</th><th>p90 d</th>"
            f"<th>n</th><th>stale</th></tr>{rows}</table>"
        )
        cls = ' class="bad"' if r.acceptance_below_target else ""
        body.append(
            f"<p{cls}>acceptance rate ({_e(r.acceptance)}): {_pct(r.acceptance_rate)} "
            f"({r.acceptance_numerator}/{r.acceptance_denominator}), target "
            f"{_pct(r.acceptance_target)}</p>"
            f"<p>SLA breaches: {r.sla_breaches} of {r.sla_decided} ({_pct(r.sla_breach_rate)}),"
            f" open: {r.open_breach_count}; skipped stages {r.skipped}, regressions "
            f"{r.regressions}</p>"
        )
        body.append("<h3>time in stage (days: p10-p90 line, p25-p75 box, p50 mark)</h3>")
        body.append(_durations_svg(r))
        body.append("<h3>SLA breaches by day of SAL</h3>")
        body.append(_breaches_svg(r))
    body.append("<h2>definitions</h2><dl>")
    body.extend(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in DEFINITIONS.items())
    body.append("</dl>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>syncd funnel report</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
