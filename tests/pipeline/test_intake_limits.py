"""A PSA ticket over the field limits is worked on, clipped with a visible mark, and the cut is said.

PSA intake cannot refuse a ticket an end user already sent (by e-mail, say): it keeps the head of
each long field within the limits REST and the session socket enforce, and says so in the audit
trail and in a private note on the PSA ticket.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.pipeline.test_intake import psa_and_server, wait_for

from mspclaw.protocol.limits import BODY_MAX, SUBJECT_MAX, clip

pytestmark = pytest.mark.anyio


def test_clip_keeps_short_text_and_marks_a_cut_within_the_limit() -> None:
    assert clip("printer offline", SUBJECT_MAX).text == "printer offline"
    long_body = "My laptop cannot print. " + "quoted reply " * 20_000
    clipped = clip(long_body, BODY_MAX)
    assert clipped.cut and clipped.original_length == len(long_body)
    assert len(clipped.text) <= BODY_MAX
    assert clipped.text.startswith("My laptop cannot print.")
    assert f"of {len(long_body):,} characters are shown" in clipped.text
    subject = clip("s" * 5000, SUBJECT_MAX)
    assert len(subject.text) <= SUBJECT_MAX and subject.text.endswith("[truncated]")


async def test_an_oversized_psa_ticket_is_clipped_marked_audited_and_noted(tmp_path: Path) -> None:
    async with psa_and_server(tmp_path, workers=1) as (psa, live):
        company = await psa.connector.create_company("Acme Dental")
        r = await live.http.post("/api/clients", json={"name": "Acme Dental", "psa_refs": {"local": company}})
        assert r.status_code == 201, r.text
        subject = "Outlook keeps crashing " + "x" * 900_000  # what froze the server over the socket
        body = "Outlook crashes at start. " + "a" * 250_000
        ticket = psa.store.create_ticket(company, requester="maria@acme.example", subject=subject, body=body)
        live.services.intake.enqueue("local", ticket.id, source="test")

        async def done() -> bool:
            return any(j.status == "done" for j in live.services.jobs.list())

        await wait_for(done, 60)
        [stored] = live.services.store.tickets()
        assert len(stored.subject) <= SUBJECT_MAX and stored.subject.startswith("Outlook keeps crashing")
        assert stored.subject.endswith("[truncated]")
        assert len(stored.body) <= BODY_MAX and stored.body.startswith("Outlook crashes at start.")
        assert f"of {len(body):,} characters are shown" in stored.body
        [event] = live.services.audit.query(kind="ticket_truncated")
        assert event.data["fields"]["body"] == {"length": len(body), "limit": BODY_MAX, "kept": len(stored.body)}
        assert event.data["fields"]["subject"]["length"] == len(subject)
        assert "requester" not in event.data["fields"]
        notes = [n.text for n in psa.store.notes(ticket.id) if not n.public]
        assert any("longer than MSPclaw reads" in n and f"{len(body):,}" in n for n in notes), notes
