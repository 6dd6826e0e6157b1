"""The internal note for the technician's trail and the plain-words reply for the end user.

The note is readable text in five sections: what was reported, what was checked (each check with
what it found), what was done (each change with who approved it), the result, and the next steps.
Tool outputs are summarised per tool into one line each (:mod:`mspclaw.pipeline.tool_summaries`),
never pasted as JSON; text from the ticket or a tool is quoted on single inert lines. The connector
renders the note as its PSA shows notes (:mod:`mspclaw.connectors.note_format`).

The reply greets the user by the PSA contact's first name when the PSA gives a name, and with a
neutral "Hello," otherwise: never a name guessed from a mailbox such as ``front.desk@``.

A reply the model wrote reaches the user only when :class:`ReplyCheck` finds nothing in it: no
address outside the allow-list (the server's own public URL and the hosts the MSP configured),
no credential, no request for a secret. Otherwise the playbook's own reply is sent instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from mspclaw.connectors.base import PSANote
from mspclaw.engine.content import asks_for_secret, foreign_links, host_of
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.pipeline.tool_summaries import SUMMARIES, changes, clean, summarise
from mspclaw.store.redact import redact_text
from mspclaw.tools import CATALOGUE

__all__ = ["SUMMARIES", "ReplyCheck", "first_name", "internal_note", "reply_after", "summarise", "user_reply"]


# A note is plain text laid out for :mod:`mspclaw.connectors.note_format`: a title line, then sections
# (a flush-left heading, indented lines; "- " starts an item). The connector renders it per PSA.
REPORTED, CHECKED, DONE, RESULT, NEXT = "What was reported", "What was checked", "What was done", "Result", "Next steps"
BODY_CHARS = 300
"""How much of the ticket's text the note quotes (one line): the ticket itself holds the rest."""


def section(heading: str, lines: Iterable[str]) -> str:
    """A heading and its indented lines (items start with ``- ``); empty when there are no lines."""
    body = [f"  {line}" for line in lines if line]
    return "\n".join([heading, *body]) if body else ""


def compose(title: str, *sections: str) -> str:
    """The note: its title line and its non-empty sections, a blank line apart; secrets redacted."""
    return redact_text("\n\n".join([clean(title, 200), *[s for s in sections if s]]))


def reported(*, subject: str, body: str, requester: str, device: str) -> list[str]:
    """What the ticket says, quoted on single inert lines."""
    lines = [f"Subject: {clean(subject, 200) or '(none)'}", f"From: {clean(requester, 200) or 'unknown'}"]
    if body.strip():
        lines.append(f"Text: {clean(body, BODY_CHARS)}")
    lines.append(f"Device: {clean(device, 200)}")
    return lines


def check_label(title: str, tool: str | None) -> str:
    """What a step checked or did: its title (or the tool's description when the title is only the call)."""
    name = clean(tool or "?", 60)
    text = clean(title, 120)
    if not text or text == f"call {tool}":
        spec = CATALOGUE.get(tool or "")
        text = clean(spec.description.split(". ")[0].rstrip("."), 120) if spec else name
    return f"{text} ({name})"


def finding(title: str, tool: str | None, result: str, approval: str = "") -> str:
    """One item: the check and its evidence (and, for a change, who approved it)."""
    return f"- {check_label(title, tool)}: {result}" + (f"; {approval}" if approval else "")


Step = tuple[str, str | None, str, bool]
"""A step as a note tells it: its title, its tool, its result line, whether it changed something."""


def findings(steps: Sequence[Step], approvals: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(checked, done)`` items from ``(title, tool, result, changed)`` steps; each approval is told with
    the change it allowed, and any other decision (a denial) after the changes."""
    left = [clean(a, 300) for a in approvals]
    checked: list[str] = []
    done: list[str] = []
    for title, tool, result, changed in steps:
        if not changed:
            checked.append(finding(title, tool, result))
            continue
        allowed = next((a for a in left if tool and a.startswith(f"{tool} approved by ")), None)
        if allowed is not None:
            left.remove(allowed)
        done.append(finding(title, tool, result, allowed.removeprefix(f"{tool} ") if allowed else ""))
    done += [f"- Approval: {a}" for a in left]
    return checked, done


def step_title(step: StepRecord) -> str:
    """A playbook step's title; none for a model's call, whose title is only its thinking aloud (the
    tool's description then says what was checked)."""
    return "" if step.thought else step.title


def step_findings(steps: Sequence[StepRecord], approvals: Sequence[str]) -> tuple[list[str], list[str]]:
    return findings([(step_title(s), s.tool, summarise(s), changes(s)) for s in steps], approvals)


def internal_note(*, playbook: str | None, device: str, result: RunResult | None, reason: str,
                  approvals: list[str], subject: str = "", body: str = "", requester: str = "") -> str:
    """The technician's note: what was reported, checked and done, the result and what comes next."""
    outcome = result.outcome if result else "escalated"
    steps = result.steps if result else []
    checked, done = step_findings(steps, approvals)
    if outcome == "resolved":
        next_steps = ["- Nothing more to do unless the user says the problem is back."]
    else:
        repeat = [check_label(step_title(s), s.tool) for s in steps if s.ok and not s.skipped]
        next_steps = ["- A technician takes this ticket over from here."]
        if repeat:
            next_steps.append(f"- Already done, no need to repeat: {'; '.join(repeat)}.")
    return compose(
        f"MSPclaw: {outcome.upper()}" + (f" by playbook {playbook}" if playbook else ""),
        section(REPORTED, reported(subject=subject, body=body, requester=requester, device=device)),
        section(CHECKED, checked or ["Nothing was checked on a device or in a directory."]),
        section(DONE, done or ["Nothing was changed."]),
        section(RESULT, [f"{outcome.capitalize()}: {clean(reason, 500)}"]),
        section(NEXT, next_steps))


_REQUEST = re.compile(r"(?i)\?|\b(?:send|tell|reply|give|share|enter|type|provide|confirm|let us know|schick|sende|"
                      r"nenne|geben|teilen|envoy|donne|indique|saisi|env[ií]a|d[ií]ga|dime|escrib|indique|stuur|"
                      r"geef|vul|typ|antwort|schreib|mitteil|repond|respond|antwoord)")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?\n]?")


class ReplyCheck:
    """What the model's reply to the end user must not carry."""

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed_hosts = sorted({h for h in (host_of(x) for x in allowed_hosts) if h})

    def problems(self, text: str) -> list[str]:
        """Why ``text`` may not be sent to the end user (empty: it may)."""
        found = [f"a link to {address} (not on the allow-list {', '.join(self.allowed_hosts) or '(empty)'})"
                 for address in foreign_links(text, self.allowed_hosts)]
        if redact_text(text) != text:
            found.append("a credential")
        for sentence in _SENTENCE.findall(text[:20_000]):
            secret = asks_for_secret(sentence)
            if secret is not None and _REQUEST.search(sentence):
                found.append(f"a request for {secret}")
                break
        return found


_TITLES = frozenset({"mr", "mrs", "ms", "mx", "dr", "prof", "sir", "herr", "frau", "mme", "mlle", "m"})
_ROLE_WORDS = """
    front desk frontdesk reception office admin administrator administration info it support helpdesk help
    service services team sales accounts accounting billing finance hr operations ops noreply no-reply
    general user users unknown shared mailbox contact guest printer scanner system test security
    marketing postmaster webmaster hello mail
    """
_NOT_A_PERSON = frozenset(_ROLE_WORDS.split())
"""First words of contact names that belong to a role or a shared mailbox, not a person."""
_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’.-]*(?:['’-][^\W\d_]+)*\.?")


def first_name(contact: str | None) -> str | None:
    """The name to greet a PSA contact by (``"Maria Lopez"`` → ``Maria``, ``"Lopez, Maria"`` → ``Maria``,
    ``"Dr Chen"`` → ``Dr Chen``), or ``None`` when there is none to trust: no name, an address, a
    role or shared mailbox (``Front Desk``, ``IT Support``), anything that is not a word."""
    if not contact or "@" in contact:
        return None
    text = clean(contact, 100)
    if "," in text:
        last, _, first = text.partition(",")
        text = first.strip() or last.strip()
    words = text.split()
    if not words:
        return None
    if words[0].rstrip(".").lower() in _TITLES:
        if len(words) == 2 and _NAME_WORD.fullmatch(words[1]):
            return f"{words[0].rstrip('.').capitalize()} {_cased(words[1])}"
        words = words[1:]
    if not words or not _NAME_WORD.fullmatch(words[0]) or len(words[0]) > 40:
        return None
    if words[0].rstrip(".").lower() in _NOT_A_PERSON:
        return None
    return _cased(words[0].rstrip("."))


def _cased(word: str) -> str:
    return word.capitalize() if word.islower() or word.isupper() else word


def greeting(contact: str | None) -> str:
    """``Hi Maria,`` for a named contact, else the neutral ``Hello,``."""
    name = first_name(contact)
    return f"Hi {name}," if name else "Hello,"


def user_reply(result: RunResult | None, contact: str | None, *, template: str = "", refused: bool = False) -> str:
    """The reply, greeting the PSA contact by name (``contact``: their name as the PSA holds it, never an
    address): the run's own, or ``template`` (the playbook's) when the run's was ``refused``."""
    text = template if refused else (result.reply if result else "")
    if text:
        return f"{greeting(contact)} {text}"
    return (f"{greeting(contact)} thanks for your request. We could not fix this automatically, so one of our "
            "technicians is taking it over and will get back to you soon.")


def reply_after(notes: Sequence[PSANote], posted: str, accept: Callable[[str], bool]) -> str | None:
    """The user's reply on a PSA ticket: the first public note after the last one we posted with text
    ``posted`` that ``accept`` takes; ``None`` when our note is not there or nothing below it is taken.

    PSAs do not reliably say who wrote a note, so a technician's public note below ours would be taken
    too; callers record the PSA reply as the source.
    """
    ours = max((i for i, n in enumerate(notes) if n.text == posted), default=None)
    if ours is None:
        return None
    return next((n.text for n in notes[ours + 1:] if n.public and accept(n.text)), None)
