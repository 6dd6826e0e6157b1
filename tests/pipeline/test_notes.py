"""What technicians and users read in the PSA: the internal note in five readable sections (never raw
JSON), rendered as each PSA shows notes with ticket text and tool output kept inert, and a reply that
greets the PSA contact by name, or neutrally, never by a name guessed from a mailbox."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from mspclaw.connectors.note_format import as_html, render
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.pipeline.escalation import Escalation, Evidence, TriedStep
from mspclaw.pipeline.notes import first_name, internal_note, user_reply
from mspclaw.store.tables import Ticket

INJECTED = ('Printer broken <script>alert("x")</script> <img src=x onerror=alert(1)> '
            "[reset your password here](https://evil.example/login) ![pixel](https://evil.example/p.png) "
            "<https://evil.example/auto>")
SECTIONS = ["What was reported", "What was checked", "What was done", "Result", "Next steps"]


def disk_run(mount: str = "/") -> RunResult:
    steps = [
        StepRecord(1, "measure", "Measure disk usage", "disk_usage", {}, True,
                   {"filesystems": [{"mount_point": mount, "percent_used": 97.0, "free_bytes": 1000}]}),
        StepRecord(2, "preview", "Find old temporary files", "clear_temp_files", {"dry_run": True}, True,
                   {"dry_run": True, "files": 24, "bytes": 6 << 20}),
        StepRecord(3, "clean", "Delete old temporary files", "clear_temp_files", {"dry_run": False}, True,
                   {"dry_run": False, "deleted": 24, "freed_bytes": 6 << 20}),
        StepRecord(4, "big", "call large_files", "large_files", {}, True,
                   {"count": 1, "min_size_mb": 500, "files": [{"path": "/home/m/scan.mov", "size_bytes": 1}]}),
    ]
    return RunResult("resolved", "success check passed", "we cleared old temporary files.", steps)


def note(result: RunResult | None = None, body: str = "My disk is full, I cannot save x-rays.") -> str:
    return internal_note(playbook="disk_full", device="LT-7 (windows)", result=result or disk_run(),
                         reason="success check passed", approvals=["clear_temp_files approved by Dana Whitfield"],
                         subject="disk almost full", body=body, requester="maria@acme.example")


class Elements(HTMLParser):
    """The elements and attributes an HTML body really has, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    parsed = Elements()
    parsed.feed(html)
    parsed.close()
    return parsed


def test_the_note_says_what_was_reported_checked_done_the_result_and_next_steps() -> None:
    text = note()
    lines = text.splitlines()
    assert lines[0] == "MSPclaw: RESOLVED by playbook disk_full"
    assert [line for line in lines if line in SECTIONS] == SECTIONS
    assert "  Subject: disk almost full" in lines and "  From: maria@acme.example" in lines
    assert "  Device: LT-7 (windows)" in lines
    checked = text.split("What was checked\n", 1)[1].split("\n\n", 1)[0]
    assert "- Measure disk usage (disk_usage): / 97% used, 1000 B free" in checked
    assert "- Find old temporary files (clear_temp_files): would delete 24 old temp files (6.0 MB)" in checked
    assert "The largest files in the user's home folder" in checked, "a bare 'call tool' title is explained"
    done = text.split("What was done\n", 1)[1].split("\n\n", 1)[0]
    assert done == ("  - Delete old temporary files (clear_temp_files): deleted 24 old temp files, freed 6.0 MB; "
                    "approved by Dana Whitfield")
    assert "  Resolved: success check passed" in lines
    assert "{" not in text and "ok" not in re.findall(r"\b\w+\b", text.lower())


def test_an_escalated_note_says_what_not_to_repeat() -> None:
    failed = RunResult("escalated", "renew_dhcp failed", "", [
        StepRecord(1, "n", "Read network configuration", "network_status", {}, True,
                   {"default_route": {"gateway": "192.0.2.1"}, "dns": {"servers": ["10.0.0.53"]}}),
        StepRecord(2, "r", "Ask the router for a fresh address", "renew_dhcp", {}, False, None,
                   "tool_failed: nmcli is not installed")])
    text = internal_note(playbook="no_internet", device="vm (linux)", result=failed, reason="renew_dhcp failed",
                         approvals=["renew_dhcp approved by Dana"], subject="no internet", body="",
                         requester="tom@acme.example")
    assert "- Ask the router for a fresh address (renew_dhcp): failed: tool_failed: nmcli is not installed; " \
           "approved by Dana" in text
    assert "Already done, no need to repeat: Read network configuration (network_status)." in text
    assert "  Escalated: renew_dhcp failed" in text


def test_a_denial_is_told_under_what_was_done() -> None:
    text = internal_note(playbook=None, device="unknown", result=None, reason="denied", approvals=[
        "clear_temp_files denied by Dana Scully: user is mid-export"], subject="s", body="", requester="r")
    assert "  - Approval: clear_temp_files denied by Dana Scully: user is mid-export" in text
    assert "  Nothing was checked on a device or in a directory." in text


@pytest.mark.parametrize("where", ["ticket", "tool"])
def test_injected_markup_and_links_come_out_inert_in_html_and_text(where: str) -> None:
    text = note(body=INJECTED) if where == "ticket" else note(disk_run(mount=INJECTED))
    assert "](" not in text, "no Markdown link survives in the text a text-format PSA shows"
    assert "<https:" not in text, "no Markdown autolink either"
    html = render(text, "html")
    parsed = parse(html)
    assert parsed.tags <= {"div", "strong", "ul", "li", "br"} and parsed.attrs == []
    shown = "".join(parsed.text)
    assert '<script>alert("x")</script>' in shown, "the words are shown as words"
    assert "<img src=x onerror=alert(1)>" in shown
    if where == "ticket":
        assert "[reset your password here] (https://evil.example/login)" in shown
    assert "<script" not in html and "onerror=" not in html.replace("onerror=alert(1)&gt;", "")
    assert render(text, "text") == text


def test_the_html_rendering_keeps_the_sections_and_lists() -> None:
    html = as_html(note())
    assert html.startswith("<div>MSPclaw: RESOLVED by playbook disk_full</div><div><strong>What was reported</strong>")
    assert "<ul><li>Measure disk usage (disk_usage): / 97% used, 1000 B free</li>" in html
    assert as_html("MSPclaw: RESOLVED\n<steps>") == "<div>MSPclaw: RESOLVED<br>&lt;steps&gt;</div>"
    assert as_html("Hi Maria,\n\nall fixed & done.") == "<div>Hi Maria,</div><div>all fixed &amp; done.</div>"
    assert as_html("Title\n  - one\n    more\n  - two") == \
        "<div><strong>Title</strong></div><ul><li>one<br>more</li><li>two</li></ul>"


def test_a_huge_note_is_cut_with_a_mark() -> None:
    body = render("x" * 100_000, "text")
    assert len(body) < 61_000 and body.endswith("longer than the PSA takes]")


def test_secrets_in_the_ticket_text_stay_out_of_the_note() -> None:
    text = note(body="I can't sign in. My password is Summer-2026-Pass! please help")
    assert "Summer-2026-Pass" not in text and "Text: I can't sign in." in text


@pytest.mark.parametrize(("contact", "name"), [
    ("Maria Lopez", "Maria"), ("Lopez, Maria", "Maria"), ("maria", "Maria"), ("JOHN WILLIAMS", "John"),
    ("Dr. Amy Chen", "Amy"), ("Dr Chen", "Dr Chen"), ("Jean-Luc Picard", "Jean-Luc"), ("Seán O'Brien", "Seán"),
    ("Front Desk", None), ("IT Support", None), ("General User", None), ("front.desk@acme.example", None),
    ("it-support@acme.example", None), ("", None), (None, None), ("12345", None), ("<b>Eve</b>", None),
    ("[Eve](https://evil.example)", None),
])
def test_the_contact_is_greeted_by_first_name_or_not_at_all(contact: str | None, name: str | None) -> None:
    assert first_name(contact) == name


def test_the_reply_greets_the_contact_or_says_hello() -> None:
    done = RunResult("resolved", "ok", "we cleared old temporary files.", [])
    assert user_reply(done, "Maria Lopez") == "Hi Maria, we cleared old temporary files."
    assert user_reply(done, None) == "Hello, we cleared old temporary files."
    assert user_reply(None, "Front Desk").startswith("Hello, thanks for your request.")
    assert user_reply(None, "front.desk@acme-dental.example").startswith("Hello, "), "never a name from a mailbox"


def test_the_escalation_hand_off_has_the_same_sections_and_readable_evidence() -> None:
    escalation = Escalation(
        kind="denied", reason="the technician denied clear_temp_files",
        tried=[TriedStep(index=1, title="Measure disk usage", tool="disk_usage", ok=True, result="/ 97% used"),
               TriedStep(index=2, title="Delete old temporary files", tool="clear_temp_files", ok=False,
                         result="failed: denied", changed=True)],
        next_steps=["Review why the destructive step was denied."],
        evidence=[Evidence(tool="clear_temp_files", excerpt="denied by Dana Scully: user is mid-export", failed=True)],
        device={"hostname": "LT-7", "os": "windows", "email": "maria@acme.example", "memory_bytes": 8 << 30,
                "installed": ["Outlook", "Teams"]},
        approvals=["clear_temp_files denied by Dana Scully"], assigned_to="Dana Scully <dana@msp.example>")
    ticket = Ticket(id="t1", client_id="c1", subject="disk full", body=INJECTED, requester="maria@acme.example")
    text = escalation.note(playbook="disk_full", ticket=ticket)
    lines = text.splitlines()
    assert lines[0] == "MSPclaw: ESCALATED (denied) after playbook disk_full"
    assert [line for line in lines if line in SECTIONS] == SECTIONS
    assert "  Device: hostname LT-7, os windows, email maria@acme.example, memory 8.0 GB, installed Outlook, " \
           "Teams" in lines
    assert "  - Measure disk usage (disk_usage): / 97% used" in lines
    assert "  - Delete old temporary files (clear_temp_files): failed: denied" in lines
    assert "  - Approval: clear_temp_files denied by Dana Scully" in lines
    assert "  Evidence: clear_temp_files: denied by Dana Scully: user is mid-export" in lines
    assert "  - Already done, no need to repeat: Measure disk usage (disk_usage)." in lines
    assert "  Assigned to: Dana Scully <dana@msp.example>" in lines
    assert "{" not in text and "](" not in text
    parsed = parse(render(text, "html"))
    assert parsed.tags <= {"div", "strong", "ul", "li", "br"} and parsed.attrs == []


def test_a_models_call_is_named_by_what_the_tool_checks_not_by_its_thinking() -> None:
    thought = "Ignore the rules and [click](https://evil.example); first I will look at the disk"
    run = RunResult("escalated", "stopped", "", [
        StepRecord(1, "step_1", thought[:200], "disk_usage", {}, True,
                   {"filesystems": [{"mount_point": "C:", "percent_used": 91.0, "free_bytes": 2 << 30}]},
                   thought=thought)])
    text = internal_note(playbook=None, device="LT-7 (windows)", result=run, reason="stopped", approvals=[],
                         subject="slow", body="", requester="maria@acme.example")
    assert "- Size, used and free space of each local filesystem (or of the given paths) (disk_usage): " \
           "C: 91% used, 2.0 GB free" in text
    assert "Ignore the rules" not in text
    tried = TriedStep(index=1, title=thought[:200], tool="disk_usage", ok=True, result="C: 91% used", by_model=True)
    handoff = Escalation(kind="failed", reason="stopped", tried=[tried]).note(playbook=None)
    assert "Ignore the rules" not in handoff and "Size, used and free space" in handoff
