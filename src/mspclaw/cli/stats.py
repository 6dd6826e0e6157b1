"""``mspclaw stats``: outcomes per playbook, client or model, and a chart of the resolution rate."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from mspclaw.cli.client import CLIError, api
from mspclaw.cli.output import JsonOpt, err, print_json, table


def _ttr(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def render_chart(daily: list[dict[str, Any]], path: Path, title: str) -> None:
    """A PNG of the resolution rate per day (resolved and confirmed) over the ticket count."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CLIError("--chart needs matplotlib: pip install 'mspclaw[charts]'") from exc
    if not daily:
        raise CLIError("no tickets in this period: nothing to chart")
    from matplotlib.dates import AutoDateLocator, DateFormatter, date2num

    days = date2num([datetime.fromisoformat(d["day"]) for d in daily])  # type: ignore[no-untyped-call]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    try:
        counts = ax.twinx()
        counts.bar(days, [d["tickets"] for d in daily], color="#d0d7de", width=0.8, label="tickets", zorder=0)
        counts.set_ylabel("tickets per day")
        ax.set_zorder(counts.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(days, [100 * d["resolved_rate"] for d in daily], marker="o", color="#1f6feb",
                label="resolved (any answer but 'no')")
        ax.plot(days, [100 * d["confirmed_rate"] for d in daily], marker="s", color="#2da44e",
                label="confirmed by the user")
        ax.xaxis.set_major_locator(AutoDateLocator(maxticks=12))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
        ax.set_ylim(0, 105)
        ax.set_ylabel("% of tickets")
        ax.set_title(title)
        ax.legend(loc="lower left")
        fig.autofmt_xdate()
        fig.tight_layout()
        try:
            fig.savefig(path, format="png")
        except OSError as exc:
            raise CLIError(f"cannot write the chart to {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)


def stats(
    by: Annotated[str, typer.Option(help="Group by playbook, client or model.")] = "playbook",
    since: Annotated[str | None, typer.Option(help="ISO time or age (7d, 12h); default: everything.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also write a PNG of the resolution rate "
                                                               "over time to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Outcomes per playbook, client or model: confirmed, partial, failed, unconfirmed, escalated,
    median time to resolution, tokens and cost."""
    if by not in ("playbook", "client", "model"):
        raise CLIError(f"--by {by!r}: use playbook, client or model")
    data = api().get("/api/stats", by=by, since=since)
    if as_json:
        print_json(data)
    else:
        cols = [by, "tickets", "confirmed", "partial", "failed", "unconfirmed", "escalated", "resolution rate",
                "median TTR", "tokens", "cost"]
        rows = []
        for r in [*data["rows"], data["total"]]:
            rows.append([r["key"], r["tickets"], r["confirmed"], r["partial"], r["failed"], r["unconfirmed"],
                         r["escalated"], _rate(r["confirmed"], r["tickets"]), _ttr(r["median_ttr_s"]),
                         r["tokens"], f"${r['cost_usd']:.2f}"])
        table(f"Outcomes by {by}" + (f" since {since}" if since else ""), cols, rows)
        err.print("resolution rate = confirmed by the user / tickets; 'unconfirmed' is never counted as success")
    if chart is not None:
        render_chart(data["daily"], chart, "MSPclaw resolution rate" + (f" since {since}" if since else ""))
        err.print(f"chart written to {chart}", markup=False)
