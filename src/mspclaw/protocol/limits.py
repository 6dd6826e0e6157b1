"""The field limits of a ticket and of a technician's input, shared by every way in.

REST bodies (``api/schemas.py``) and session-socket frames (``protocol/frames.py``) refuse a value
over its limit, naming the field and the limit. PSA intake cannot refuse a ticket a user already
sent, so it keeps what fits with :func:`clip`, marks the cut in the text itself and audits it.

Every limit is in characters (what pydantic's ``max_length`` counts), so one ticket is the same
ticket whichever way it came in.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBJECT_MAX = 500
BODY_MAX = 100_000
REQUESTER_MAX = 320
"""An address (254) with a display name: ``Name <mail@domain>``."""
CLIENT_REF_MAX = 200
"""A client's id or exact name (names are at most this long)."""
DEVICE_MAX = 255
"""A device id or host name (a DNS name is at most 253)."""
APPROVER_MAX = 255
REASON_MAX = 2000
ANSWER_MAX = 2000
ID_MAX = 100
"""Ids the server issued (approvals, questions, sessions)."""
SEQ_MAX = 2**62
"""Sequence numbers and offsets in queries: above it the database's 64-bit integers overflow."""

TICKET_LIMITS: dict[str, int] = {"subject": SUBJECT_MAX, "body": BODY_MAX, "requester": REQUESTER_MAX,
                                 "device": DEVICE_MAX}
"""The ticket's text fields by name, as PSA intake clips them."""


@dataclass(frozen=True)
class Clipped:
    """A value cut to its limit: what is kept, and how long the original was."""

    text: str
    original_length: int

    @property
    def cut(self) -> bool:
        return self.original_length > len(self.text)


def marker(kept: int, original_length: int) -> str:
    """The mark at the end of a clipped text: how much of how much is shown, and where the rest is."""
    return (f"\n[MSPclaw: truncated; the first {kept:,} of {original_length:,} characters are shown. "
            "The whole text stays in the PSA ticket.]")


def clip(text: str, limit: int) -> Clipped:
    """``text`` if it fits, else its head with a visible :func:`marker`, all within ``limit`` characters.

    The head is kept because a ticket states its problem first; what is cut is mostly quoted mail
    and signatures. A short field (a subject) gets a short mark.
    """
    if len(text) <= limit:
        return Clipped(text, len(text))
    note = marker(limit, len(text))  # the longest it can be
    if len(note) * 10 > limit:
        note = " [truncated]" if limit > 40 else ""
    head = text[: limit - len(note)]
    if note.startswith("\n"):
        note = marker(len(head), len(text))  # the same or fewer digits: still within the limit
    return Clipped(head + note, len(text))
