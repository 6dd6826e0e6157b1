"""How every command prints: the consoles, tables of data, JSON, and the ``--json`` option.

Data is always text, never Rich markup: a client named ``[red]x`` or an audit value ``[redacted]``
shows as written.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console()
"""Standard output: results (tables, records)."""
err = Console(stderr=True)
"""Standard error: progress, hints and errors, so standard output stays the result alone."""

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table of data. Every cell and the title are text, never Rich markup (``rich.markup.escape``)."""
    shown = Table(title=escape(title), title_justify="left")
    for col in columns:
        shown.add_column(escape(col), overflow="fold")
    for row in rows:
        shown.add_row(*[escape(cell(v)) for v in row])
    out.print(shown)


def cell(value: Any) -> str:
    """A value as a table shows it: nothing for ``None``, yes/no, ``key=value, ...`` for a mapping,
    ``a, b`` for a list; never a Python repr."""
    match value:
        case None:
            return ""
        case bool():
            return "yes" if value else "no"
        case dict():
            return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
        case list() | tuple() | set() | frozenset():
            return ", ".join(cell(v) for v in value)
        case _:
            return str(value)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (times and other values as their text)."""
    print(json.dumps(data, indent=2, default=str))
