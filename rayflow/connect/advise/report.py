"""The advisor's report on a terminal: a table of the queries with their verdicts, the
recommended indexes with their DDL and verification, the unused and duplicate indexes.

Owns the layout only (rich tables, as ``rayflow.cli.render`` draws the other commands');
every figure comes from ``results``. Text from a database or a query is printed as it
is, never read as rich markup.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rayflow.connect.advise.results import Report, Verification
from rayflow.connect.advise.sqltext import shorten

STATUS_STYLE = {"ok": "green", "advice": "yellow", "skipped": "dim", "error": "red"}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if value < 10 else f"{value:,.1f} ms"


def _cost(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def verification_text(v: Verification | None) -> str:
    if v is None:
        return "not verified"
    if v.note and v.note.startswith("not verified"):
        return v.note
    parts = []
    if v.cost_before is not None or v.cost_after is not None:
        parts.append(f"cost {_cost(v.cost_before)} -> {_cost(v.cost_after)}")
    if v.time_before_ms is not None or v.time_after_ms is not None:
        parts.append(f"time {_ms(v.time_before_ms)} -> {_ms(v.time_after_ms)}")
    if v.speedup is not None:
        parts.append(f"{v.speedup:,.1f}x faster")
    elif v.cost_ratio is not None:
        parts.append(f"{v.cost_ratio:,.1f}x cheaper (estimated)")
    parts.append(f"[{v.method}]")
    if not v.uses_index:
        parts.append("the planner does not use it")
    elif not v.helps:
        parts.append("no gain")
    return ", ".join(parts)


def queries_table(report: Report) -> Table:
    table = Table(title="Queries", box=box.SIMPLE_HEAD, show_lines=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("source", overflow="fold")
    table.add_column("query", overflow="fold", ratio=3)
    table.add_column("verdict", overflow="fold", ratio=2)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for n, q in enumerate(report.queries, 1):
        table.add_row(str(n), Text(q.source), Text(shorten(q.query, 90)),
                      Text(q.verdict, style=STATUS_STYLE.get(q.status, "")), _cost(q.cost), _ms(q.time_ms))
    return table


def recommendations_table(report: Report) -> Table | None:
    rows = [(n, q, r) for n, q in enumerate(report.queries, 1) for r in q.recommendations]
    if not rows:
        return None
    table = Table(title="Recommended indexes", box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("why", no_wrap=True)
    table.add_column("DDL", overflow="fold", ratio=3)
    table.add_column("verification", overflow="fold", ratio=2)
    for n, _, r in rows:
        good = r.verification is not None and r.verification.helps
        table.add_row(str(n), f"{r.reason} ({', '.join(r.columns)})", Text(r.ddl + ";"),
                      Text(verification_text(r.verification), style="green" if good else ""))
    return table


def indexes_table(report: Report) -> Table | None:
    rows = []
    for db in report.databases:
        for i in db.unused:
            size = "" if i.size_bytes is None else f", {i.size_bytes / 2**20:,.1f} MiB"
            rows.append((db.database, "unused", f"{i.table}.{i.name}",
                         f"({', '.join(i.columns)}): no scan counted{size}"))
        for d in db.duplicates:
            how = "same columns as" if d.identical else "a prefix of"
            rows.append((db.database, "duplicate", f"{d.table}.{d.index}",
                         f"({', '.join(d.columns)}): {how} {d.covered_by} ({', '.join(d.covering_columns)})"))
    if not rows:
        return None
    one = len({r[0] for r in rows}) == 1
    title = "Existing indexes to review" + (f" ({rows[0][0]})" if one else "")
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("flag", "index", "why") if one else ("database", "flag", "index", "why"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(Text(c) for c in (row[1:] if one else row)))
    return table


def print_report(out: Console, report: Report) -> None:
    out.print(queries_table(report))
    for q_n, q in enumerate(report.queries, 1):
        for note in q.notes:
            out.print(Text(f"  #{q_n}: {note}", style="dim"))
    for table in (recommendations_table(report), indexes_table(report)):
        if table is not None:
            out.print(table)
    for db in report.databases:
        st = db.statements
        if st:
            if st.get("available"):
                out.print(Text(f"{db.database}: top statements by total time (pg_stat_statements)"))
                for s in st.get("top", [])[:5]:
                    out.print(Text(f"  {s['total_ms']:>12,.1f} ms  {s['calls']:>8} calls  {shorten(s['query'], 90)}"))
            else:
                out.print(Text(f"{db.database}: {st.get('note')}", style="dim"))
        for note in db.notes:
            out.print(Text(f"{db.database}: {note}", style="dim"))
    for note in report.notes:
        out.print(Text(note, style="dim"))
    summary = report.to_dict()["summary"]
    out.print(Text(f"{summary['queries']} queries, {summary['recommendations']} recommended indexes, "
                   f"{summary['unused']} unused and {summary['duplicates']} duplicate indexes"))
