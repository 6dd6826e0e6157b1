"""View-once links for temporary passwords: shown once, expire, hold nothing on disk, survive a
link scanner (GET reveals nothing), and answer a used or unknown link plainly."""

from __future__ import annotations

import pytest

from mspclaw.errors import NotFound
from mspclaw.pipeline.handover import ViewOnceLinks
from mspclaw.protocol.frames import Secret

SECRET = Secret(type="temporary_password", account="tom@acme.example", value="Vb8#nQ2x-Lp5!wZd")


def test_a_link_reveals_once_then_says_it_was_used() -> None:
    links = ViewOnceLinks()
    token, _ = links.create(SECRET)
    assert links.peek(token) == SECRET  # the page with the button: nothing used up
    assert links.reveal(token) == SECRET
    with pytest.raises(NotFound, match="expired or was already used"):
        links.reveal(token)
    assert len(links) == 0


def test_a_link_expires() -> None:
    now = [1000.0]
    links = ViewOnceLinks(ttl_s=600, clock=lambda: now[0])
    token, expires = links.create(SECRET)
    assert expires == 1600.0
    now[0] = 1601.0
    with pytest.raises(NotFound):
        links.peek(token)
    with pytest.raises(NotFound):
        links.reveal(token)


def test_an_unknown_token_reveals_nothing() -> None:
    links = ViewOnceLinks()
    links.create(SECRET)
    with pytest.raises(NotFound):
        links.reveal("not-a-token-at-all-0000000")
