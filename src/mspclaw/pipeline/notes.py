"""The internal note for the technician's trail and the plain-words reply for the end user.

Tool outputs are summarised per tool into one line each, so the note stays readable in a
PSA; nothing from the outputs is copied that could carry a secret.

A reply the model wrote reaches the user only when :class:`ReplyCheck` finds nothing in it: no
address outside the allow-list (the server's own public URL and the hosts the MSP configured),
no credential, no request for a secret. Otherwise the playbook's own reply is sent instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mspclaw.connectors.base import PSANote
from mspclaw.engine.content import asks_for_secret, foreign_links, host_of
from mspclaw.engine.plan import RunResult, StepRecord
from mspclaw.store.redact import redact_text


def _size(n: Any) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _disk(out: dict[str, Any]) -> str:
    parts = [f"{fs.get('mount_point', '?')} {fs.get('percent_used', 0):.0f}% used, {_size(fs.get('free_bytes'))} free"
             for fs in out.get("filesystems", [])[:4]]
    return "; ".join(parts) or "no filesystems reported"


def _temp(out: dict[str, Any]) -> str:
    if out.get("dry_run", True):
        return f"would delete {out.get('files', 0)} old temp files ({_size(out.get('bytes'))})"
    return f"deleted {out.get('deleted', 0)} old temp files, freed {_size(out.get('freed_bytes'))}"


def _connectivity(out: dict[str, Any]) -> str:
    dns, tcp = out.get("dns", {}), out.get("tcp", {})
    if not dns.get("ok"):
        return f"DNS lookup of {out.get('host')} failed: {dns.get('error')}"
    if not tcp.get("ok"):
        return f"{out.get('host')} resolves but TCP port {out.get('port')} is unreachable: {tcp.get('error')}"
    return f"{out.get('host')}:{out.get('port')} reachable (DNS {dns.get('ms')} ms, connect {tcp.get('ms')} ms)"


def _network(out: dict[str, Any]) -> str:
    route = out.get("default_route") or {}
    gateway = route.get("gateway") or "none"
    dns = ", ".join((out.get("dns") or {}).get("servers", [])) or "none"
    up = [i.get("name") for i in out.get("interfaces", []) if i.get("state") == "up"]
    return f"default gateway {gateway}; DNS servers {dns}; interfaces up: {', '.join(map(str, up)) or 'none'}"


def _processes(out: dict[str, Any]) -> str:
    procs = out.get("processes", [])[:3]
    return ", ".join(f"{p.get('name')} ({p.get('cpu_percent', 0):.0f}% CPU, {_size(p.get('rss_bytes'))})"
                     for p in procs) or "no processes reported"


def _system(out: dict[str, Any]) -> str:
    mem = out.get("memory", {})
    load = (out.get("load_average") or {}).get("1m")
    load = f"{load:.2f}" if isinstance(load, int | float) else "?"
    cpus = (out.get("cpu") or {}).get("count", "?")
    return (f"{(out.get('os') or {}).get('pretty_name', '?')}; {_size(mem.get('available_bytes'))} of "
            f"{_size(mem.get('total_bytes'))} memory free; load {load} on {cpus} CPUs")


SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "disk_usage": _disk,
    "clear_temp_files": _temp,
    "check_connectivity": _connectivity,
    "network_status": _network,
    "top_processes": _processes,
    "system_info": _system,
}


def summarise(step: StepRecord) -> str:
    if step.skipped:
        return "skipped (not needed)"
    if not step.ok:
        return f"failed: {step.error}"
    summary = SUMMARIES.get(step.tool or "")
    try:
        return summary(step.output or {}) if summary else "ok"
    except (TypeError, ValueError, AttributeError):
        return "ok (output not summarised)"


def internal_note(*, playbook: str | None, device: str, result: RunResult | None, reason: str,
                  approvals: list[str]) -> str:
    outcome = result.outcome if result else "escalated"
    lines = [f"MSPclaw: {outcome.upper()}" + (f" by playbook {playbook}" if playbook else ""),
             f"Device: {device}"]
    if result and result.steps:
        lines.append("Steps:")
        lines += [f"  {s.index}. {s.title} [{s.tool}]: {summarise(s)}" for s in result.steps]
    lines += [f"Approval: {a}" for a in approvals]
    lines.append(f"Outcome: {outcome}: {reason}")
    if outcome == "escalated":
        lines.append("Next: a technician should take this ticket over; the steps above are already done.")
    return "\n".join(lines)


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


def user_reply(result: RunResult | None, requester: str, *, template: str = "", refused: bool = False) -> str:
    """The reply: the run's own, or ``template`` (the playbook's) when the run's was ``refused``."""
    parts = [p for p in requester.split("@")[0].replace("_", ".").split(".") if p]
    if len(parts) > 1 and parts[0].lower() in ("dr", "mr", "mrs", "ms", "prof"):
        name = f"{parts[0].capitalize()} {parts[1].capitalize()}"
    else:
        name = parts[0].capitalize() if parts and parts[0].isalpha() else "there"
    text = template if refused else (result.reply if result else "")
    if text:
        return f"Hi {name}, {text}"
    return (f"Hi {name}, thanks for your request. We could not fix this automatically, so one of our "
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
