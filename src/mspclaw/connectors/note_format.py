"""A note's text in the form its PSA shows: as written (``text``) or as HTML (``html``).

Notes are written as plain text with a light layout (:mod:`mspclaw.pipeline.notes`): blocks
separated by a blank line; a block whose first line is flush left and whose other lines are
indented is a section (its first line the heading); an indented line starting with ``- `` is a list
item, and a line indented deeper than the dash continues it. :func:`as_html` turns exactly that
into ``<div>``, ``<strong>``, ``<ul>``, ``<li>`` and ``<br>``, with every character of the text
escaped: whatever a ticket or a tool output put into a note stays text, never markup, and no
element carries an attribute. Plain text without that layout comes out as paragraphs with their
line breaks kept.
"""

from __future__ import annotations

import re
from html import escape

from mspclaw.connectors.base import NoteFormat

MAX_NOTE_CHARS = 60_000
"""A note longer than this is cut (with a visible mark) before it is rendered: PSAs refuse larger ones."""
_BLOCKS = re.compile(r"\n[ \t]*\n")


def _e(text: str) -> str:
    return escape(text, quote=True)


def _lines(lines: list[str]) -> str:
    """Indented lines as list items (``- x``, continued by deeper lines) and paragraphs."""
    out: list[str] = []
    items: list[list[str]] = []
    paragraph: list[str] = []
    dash = -1

    def flush_items() -> None:
        if items:
            out.append("<ul>" + "".join("<li>" + "<br>".join(item) + "</li>" for item in items) + "</ul>")
            items.clear()

    def flush_paragraph() -> None:
        if paragraph:
            out.append("<div>" + "<br>".join(paragraph) + "</div>")
            paragraph.clear()

    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if body.startswith("- "):
            flush_paragraph()
            items.append([_e(body[2:])])
            dash = indent
        elif items and indent > dash and body:
            items[-1].append(_e(body))
        elif body:
            flush_items()
            paragraph.append(_e(body))
    flush_items()
    flush_paragraph()
    return "".join(out)


def as_html(text: str) -> str:
    """``text`` (the layout above) as escaped HTML built from five attribute-free elements."""
    parts: list[str] = []
    for block in _BLOCKS.split(text.strip()):
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        head, rest = lines[0], lines[1:]
        if rest and not head.startswith((" ", "\t")) and all(line.startswith(("  ", "\t")) for line in rest):
            parts.append(f"<div><strong>{_e(head.strip())}</strong></div>" + _lines(rest))
        else:
            parts.append(_lines(lines))
    return "".join(parts)


def render(text: str, fmt: NoteFormat) -> str:
    """The body to post for a PSA whose notes are ``fmt``, at most :data:`MAX_NOTE_CHARS` of text."""
    if len(text) > MAX_NOTE_CHARS:
        text = text[:MAX_NOTE_CHARS] + "\n[… cut: the note was longer than the PSA takes]"
    return as_html(text) if fmt == "html" else text
