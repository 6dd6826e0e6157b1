"""What a notification says, independent of the channel that carries it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httpx

from mspclaw.errors import DeliveryError


@dataclass(frozen=True)
class Mention:
    name: str
    slack_id: str | None = None
    teams_id: str | None = None


@dataclass(frozen=True)
class Message:
    title: str
    summary: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    mention: Mention | None = None
    link: tuple[str, str] | None = None
    """(label, url) of the button that opens MSPclaw."""
    decision: str | None = None
    """An approval's opaque reference: a channel that can carry them shows Approve and Deny buttons posting it back."""
    outcome: str | None = None
    """What was decided (who, when), shown where the buttons were."""


class Sender(Protocol):
    kind: str

    def render(self, message: Message) -> dict[str, object]: ...

    async def post(self, http: httpx.AsyncClient, url: str, payload: dict[str, object]) -> None: ...


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def post_json(http: httpx.AsyncClient, url: str, payload: dict[str, object], *, ok: set[int],
                    channel: str) -> httpx.Response:
    """POST and classify the outcome: 429 and 5xx and network errors retry, other 4xx do not."""
    try:
        response = await http.post(url, json=payload)
    except httpx.TransportError as exc:
        raise DeliveryError(f"{channel}: cannot reach the webhook ({type(exc).__name__})", retryable=True) from exc
    if response.status_code in ok:
        return response
    body = response.text[:200]
    if response.status_code == 429:
        after = response.headers.get("retry-after")
        raise DeliveryError(f"{channel}: rate limited (429) {body}", retryable=True,
                            retry_after=float(after) if after and after.isdigit() else None)
    retryable = response.status_code >= 500
    raise DeliveryError(f"{channel}: webhook answered {response.status_code} {body}", retryable=retryable)
