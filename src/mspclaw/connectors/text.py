"""Ticket text as PSAs store it: HTML reduced to plain text, and the form two notes must share to be
the same note (what every connector's idempotent ``add_note`` compares)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Final

from mspclaw.connectors.base import PSATicket
from mspclaw.errors import PSAError, PSANotFound

_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")
_BLOCKS: Final = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(self._skip - 1, 0)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def plain_text(content: str) -> str:
    """PSA rich text (HTML) as plain text; text without tags is returned as it is, trimmed."""
    if not _TAG.search(content):
        return content.strip()
    parser = _TextOf()
    parser.feed(content)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def normalised(content: str) -> str:
    """What two notes must share to count as the same note: their text, whitespace collapsed."""
    return " ".join(plain_text(content).split())


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_iso_time(value: object, *, vendor: str) -> datetime | None:
    """A PSA's ISO-8601 time (``Z`` or an offset; naive means UTC) in UTC; ``None`` for an empty value.
    Anything else is the PSA breaking its contract: :class:`PSAError` naming ``vendor``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError as exc:
        raise PSAError(f"{vendor} sent a time that is not ISO-8601: {value!r}") from exc


def changed_after(found: list[PSATicket], since: datetime | None) -> list[PSATicket]:
    """What ``list_tickets`` returns: the tickets changed after ``since`` (all of them when None), oldest
    change first. A PSA's own filter may be coarser than ours (dates only, or ``>=``), so it is applied here too."""
    if since is not None:
        after = utc(since)
        found = [t for t in found if t.updated_at is None or t.updated_at > after]
    return sorted(found, key=lambda t: t.updated_at or t.created_at or _EPOCH)


_EPOCH: Final = datetime.min.replace(tzinfo=UTC)


def numeric_id(ticket_id: str, *, vendor: str) -> str:
    """A ticket id for a PSA whose ids are numbers; anything else is not one of its tickets."""
    text = str(ticket_id).strip()
    if not text.isdigit():
        raise PSANotFound(f"{vendor} ticket ids are numbers, not {ticket_id!r}")
    return text
