"""One readable line per tool call: what was found (or changed), in the words a technician uses.

Every tool of the catalogue has its summary in :data:`SUMMARIES`; a tool without one is a defect
that ``tests/pipeline/test_notes_summaries.py`` catches, so no note ever falls back to raw JSON or to
a bare "ok". A summary reads only the fields it names from the output (through :class:`Output`,
which never raises on a missing or odd field), so nothing else in an output reaches a note. A
temporary password or access pass never is in an output (it travels beside it to the user alone);
its summary says where it went, and every line is passed through the redaction rules anyway.

Text taken from an output is flattened to one line, stripped of control characters, clipped, and
its Markdown link syntax broken (``[x](y)`` becomes ``[x] (y)``), so a tool's output cannot lay out
or link a note in a PSA that renders Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from mspclaw.engine.plan import StepRecord
from mspclaw.errors import MSPClawError
from mspclaw.store.redact import redact_text
from mspclaw.tools import CATALOGUE

SUMMARY_CHARS = 400
"""The longest summary line; the console and the approval view clip further."""
VALUE_CHARS = 120
"""The longest single value taken from an output (a host name, a printer, an error message)."""
LIST_ITEMS = 5
"""How many items of a list a summary names before it says "and N more"."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")
_MD_LINK = re.compile(r"\]\s*\(")
_MD_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):)", re.IGNORECASE)


def clean(value: object, limit: int = VALUE_CHARS) -> str:
    """Outside text as one inert line: no control characters, no Markdown link, at most ``limit`` characters."""
    text = str(value)[: limit * 4]
    if not text.isprintable():  # printable: none of _CONTROL's characters, and no space but " "
        text = _CONTROL.sub(" ", text)
        text = " ".join(text.split())
    elif "  " in text or text.startswith(" ") or text.endswith(" "):
        text = " ".join(text.split())
    if "]" in text:
        text = _MD_LINK.sub("] (", text)
    if "<" in text:
        text = _MD_AUTOLINK.sub(r"‹\1", text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _clean_in_full(value: object, limit: int = VALUE_CHARS) -> str:
    """:func:`clean` with every step run whatever the text holds (what the tests hold it to)."""
    text = _CONTROL.sub(" ", str(value)[: limit * 4])
    text = " ".join(text.split())
    text = _MD_AUTOLINK.sub(r"‹\1", _MD_LINK.sub("] (", text))
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class Output:
    """Typed, forgiving reads of one tool output: a missing or mistyped field is ``None`` or empty."""

    def __init__(self, data: object) -> None:
        self._data: dict[str, Any] = data if isinstance(data, dict) else {}

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def text(self, key: str, default: str = "?") -> str:
        value = self._data.get(key)
        if value is None or isinstance(value, dict | list) or value == "":
            return default
        return clean(value)

    def num(self, key: str) -> float | None:
        value = self._data.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def count(self, key: str, default: int = 0) -> int:
        value = self.num(key)
        return round(value) if value is not None else default

    def flag(self, key: str) -> bool | None:
        value = self._data.get(key)
        return value if isinstance(value, bool) else None

    def sub(self, key: str) -> Output:
        return Output(self._data.get(key))

    def items(self, key: str) -> list[Output]:
        value = self._data.get(key)
        return [Output(v) for v in value] if isinstance(value, list) else []

    def strings(self, key: str) -> list[str]:
        value = self._data.get(key)
        if not isinstance(value, list):
            return []
        return [clean(v) for v in value if isinstance(v, str | int | float) and not isinstance(v, bool)]


# --- shared wording -----------------------------------------------------------------------------


def size(n: float | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def named(names: list[str], empty: str = "none") -> str:
    """``a, b, c and 2 more``."""
    if not names:
        return empty
    shown = ", ".join(names[:LIST_ITEMS])
    return shown + (f" and {len(names) - LIST_ITEMS} more" if len(names) > LIST_ITEMS else "")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _yes(value: bool | None, yes: str, no: str, unknown: str = "") -> str:
    return yes if value is True else no if value is False else unknown


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


def _handed_over(out: Output, what: str) -> str:
    """Where a temporary password or pass went; the value itself is never in the output."""
    to = out.sub("handed_over")
    where = to.text("to", "")
    if where == "device":
        return f"{what} shown to the user only, on their device {to.text('device')}; not recorded anywhere"
    if where:
        return f"{what} sent to the user only, as a view-once link ({to.text('sent_by', 'PSA reply')}); not recorded"
    return f"{what} handed to the user only; not recorded anywhere"


# --- device tools --------------------------------------------------------------------------------


def _system(out: Output) -> str:
    mem = out.sub("memory")
    load = out.sub("load_average").num("1m")
    cpus = out.sub("cpu").text("count")
    busy = f"load {load:.2f} on {cpus} CPUs" if load is not None else \
        f"CPU {out.count('cpu_load_percent')}% busy on {cpus} CPUs"
    over = "; CPU overloaded" if out.flag("cpu_overloaded") else ""
    return (f"{out.sub('os').text('pretty_name')}; {size(mem.num('available_bytes'))} of "
            f"{size(mem.num('total_bytes'))} memory free; {busy}{over}; up {_duration(out.num('uptime_s'))}")


def _disk(out: Output) -> str:
    parts = [f"{fs.text('mount_point', fs.text('path'))} {fs.num('percent_used') or 0:.0f}% used, "
             f"{size(fs.num('free_bytes'))} free" for fs in out.items("filesystems")[:4]]
    errors = out.items("errors")
    unread = f"; {plural(len(errors), 'filesystem')} could not be read" if errors else ""
    return ("; ".join(parts) or "no filesystems reported") + unread


def _processes(out: Output) -> str:
    procs = out.items("processes")[:3]
    found = ", ".join(f"{p.text('name')} ({p.num('cpu_percent') or 0:.0f}% CPU, {size(p.num('rss_bytes'))})"
                      for p in procs) or "no processes reported"
    order = {"cpu": "by CPU", "memory": "by memory"}.get(out.text("sort_by", ""), "")
    return f"busiest {order}: {found}" if order else found


def _network(out: Output) -> str:
    route = out.sub("default_route")
    dns = named(out.sub("dns").strings("servers"))
    up = named([i.text("name") for i in out.items("interfaces") if i.text("state", "") == "up"])
    return f"default gateway {route.text('gateway', 'none')}; DNS servers {dns}; interfaces up: {up}"


def _connectivity(out: Output) -> str:
    dns, tcp = out.sub("dns"), out.sub("tcp")
    where = f"{out.text('host')}:{out.text('port')}"
    if dns.flag("ok") is not True:
        return f"DNS lookup of {out.text('host')} failed: {dns.text('error', 'no answer')}"
    if tcp.flag("ok") is not True:
        return f"{out.text('host')} resolves but TCP port {out.text('port')} is unreachable: {tcp.text('error')}"
    return f"{where} reachable (DNS {dns.text('ms')} ms, connect {tcp.text('ms')} ms)"


def _temp(out: Output) -> str:
    if out.flag("dry_run") is not False:
        return f"would delete {out.count('files')} old temp files ({size(out.num('bytes'))})"
    errors = out.items("errors")
    failed = f"; {plural(len(errors), 'file')} could not be deleted" if errors else ""
    return f"deleted {out.count('deleted')} old temp files, freed {size(out.num('freed_bytes'))}{failed}"


def _uptime(out: Output) -> str:
    return f"up {_duration(out.num('uptime_s'))} (booted {out.text('boot_time')})"


def _large_files(out: Output) -> str:
    files = [f"{f.text('path').replace(chr(92), '/').rsplit('/', 1)[-1]} ({size(f.num('size_bytes'))})"
             for f in out.items("files")]
    return (f"{plural(out.count('count'), 'file')} of at least {out.count('min_size_mb')} MB "
            f"({size(out.num('total_bytes'))} together); largest: {named(files)}")


def _end_process(out: Output) -> str:
    who = f"{out.text('name')} (pid {out.text('pid')})"
    if out.flag("already_gone"):
        return f"{who} had already ended; nothing to do"
    return f"ended {who}" + (" (it had to be forced)" if out.flag("forced") else "")


def _wifi_status(out: Output) -> str:
    if out.flag("present") is False:
        return "no Wi-Fi adapter found"
    iface = out.text("interface")
    if out.flag("powered") is False:
        return f"Wi-Fi is switched off ({iface})"
    if out.flag("connected") is not True:
        return f"Wi-Fi is on but not connected to any network ({iface})"
    signal = (f"{out.count('signal_percent')}% signal" if out.has("signal_percent") else
              f"{out.count('signal_dbm')} dBm" if out.has("signal_dbm") else "signal unknown")
    return f"connected to {out.text('ssid')} ({signal}, channel {out.text('channel')}) on {iface}"


def _wifi_networks(out: Output) -> str:
    preferred = out.strings("preferred")
    return f"{plural(len(preferred), 'remembered network')}: {named(preferred)}"


def _renew_dhcp(out: Output) -> str:
    done = "asked for a new address" if out.flag("renewed") is not False else "could not renew the address"
    return f"{done} on {out.text('interface', 'the default interface')}"


def _flush_dns(out: Output) -> str:
    if out.flag("flushed"):
        return f"flushed the DNS cache ({out.text('cache')})"
    return f"nothing to flush: {out.text('reason', 'no local DNS cache')}"


def _vpn_status(out: Output) -> str:
    names = [c.text("name") for c in out.items("connections")]
    if not names:
        return "no VPN connection is configured"
    return f"VPN connections: {named(names)}; connected: {named(out.strings('connected'))}"


def _restart_vpn(out: Output) -> str:
    return f"{'reconnected' if out.flag('restarted') else 'could not reconnect'} VPN connection {out.text('name')}"


def _printer_queues(out: Output) -> str:
    if out.flag("scheduler_running") is False:
        return f"the print service is stopped: {out.text('finding', 'no queue can be read')}"
    printers = out.items("printers")
    if not printers:
        return "no printers are set up"
    return (f"{plural(len(printers), 'printer')}, {plural(out.count('jobs'), 'job')} waiting; "
            f"needs attention: {named(out.strings('attention'))}; paused: {named(out.strings('paused'))}")


def _clear_print_queue(out: Output) -> str:
    return f"cancelled the jobs of {out.text('printer')}; {plural(out.count('jobs_left'), 'job')} left"


def _resume_printer(out: Output) -> str:
    if out.flag("resumed") is False:
        return f"{out.text('printer')} is still {out.text('state')}"
    return f"resumed {out.text('printer')} (now {out.text('state')})"


def _restart_spooler(out: Output) -> str:
    running = out.flag("scheduler_running") is True or out.flag("restarted") is True or \
        out.text("status", "") == "Running"
    return f"restarted the print service {out.text('service')}: {'running' if running else 'not running'}"


def _installed_software(out: Output) -> str:
    found = [f"{s.text('name')} {s.text('version', '')}".strip() for s in out.items("software")]
    return f"{plural(out.count('count'), 'matching package')} ({out.text('manager')}): {named(found)}"


def _install_package(out: Output) -> str:
    if out.flag("installed"):
        version = f" {out.text('version')}" if out.has("version") else ""
        return f"installed {out.text('package')}{version} with {out.text('manager')}"
    return f"{out.text('package')} is not installed after the attempt ({out.text('manager')})"


def _pending_updates(out: Output) -> str:
    restart = "; a restart is pending" if out.flag("restart_required") else ""
    return f"{plural(out.count('count'), 'update')} waiting ({out.count('security')} security){restart}"


def _browser_cache(out: Output) -> str:
    caches = out.items("caches")
    browsers = named(sorted({c.text("browser") for c in caches}))
    if out.flag("dry_run") is not False:
        return f"browser caches hold {size(out.num('bytes'))} in {plural(len(caches), 'folder')} ({browsers})"
    errors = out.strings("errors")
    failed = f"; {plural(len(errors), 'file')} could not be deleted" if errors else ""
    return f"emptied the browser caches ({browsers}), freed {size(out.num('freed_bytes'))}{failed}"


def _mail_clients(out: Output) -> str:
    return f"installed: {named(out.strings('installed'))}; running: {named(out.strings('running'))}"


def _restart_app(out: Output) -> str:
    started = "started it again" if out.flag("restarted") else "could not start it again"
    return f"quit {out.text('name')} ({plural(out.count('ended'), 'process')} ended) and {started}"


def _crash_reports(out: Output) -> str:
    reports = [f"{r.text('app')} ({r.text('time')}: {r.text('what', 'crashed')})" for r in out.items("reports")]
    return f"{plural(out.count('count'), 'crash report')} in the last {out.count('days')} days: {named(reports)}"


def _reboot(out: Output) -> str:
    if out.flag("scheduled") is False:
        return "the restart could not be scheduled"
    return f"restart scheduled in {plural(out.count('delay_minutes'), 'minute')} (the user was warned)"


# --- site tools: accounts ------------------------------------------------------------------------


def _account(out: Output) -> str:
    if out.flag("found") is False:
        return f"no account {out.text('username')} in the directory: {out.text('reason', 'not found')}"
    facts = [_yes(out.flag("enabled"), "enabled", "disabled"),
             _yes(out.flag("locked_out"), "locked out", "not locked out"),
             _yes(out.flag("password_expired"), "password expired", ""),
             _yes(out.flag("must_change_password"), "must change password", ""),
             _yes(out.flag("privileged"), "privileged (never changed by automation)", "")]
    where = out.sub("authority").text("password", "")
    mfa = out.strings("mfa_methods")
    extra = (f"; password held in {where.upper() if where == 'ad' else 'Entra ID'}" if where else "") + \
        (f"; MFA: {named(mfa)}" if out.has("mfa_methods") else "")
    return f"{out.text('username')}: {', '.join(f for f in facts if f)}{extra}"


def _verified(out: Output) -> str:
    how = out.sub("verification").strings("verified_by")
    return f" (requester verified by {named([h.replace('_', ' ') for h in how])})" if how else ""


def _unlock(out: Output) -> str:
    after = "; still locked out" if out.flag("locked_out") else ""
    return f"unlocked {out.text('username')} in Active Directory{after}{_verified(out)}"


def _reset_password(out: Output) -> str:
    where = "Entra ID" if out.text("directory", "") == "entra" else "Active Directory"
    revoked = "; sign-in sessions revoked" if out.flag("sessions_revoked") else ""
    return (f"set a temporary password on {out.text('username')} in {where} (must be changed at next sign-in)"
            f"{revoked}; {_handed_over(out, 'the password was')}{_verified(out)}")


def _reset_mfa(out: Output) -> str:
    methods = named(out.strings("removed_methods"), "no")
    return (f"removed {methods} MFA methods of {out.text('username')}, revoked sign-in sessions, issued a Temporary "
            f"Access Pass valid {out.count('access_pass_minutes')} minutes; {_handed_over(out, 'the pass was')}"
            f"{_verified(out)}")


def _revoke(out: Output) -> str:
    return f"signed {out.text('username')} out everywhere (Entra ID sessions revoked){_verified(out)}"


def _create_user(out: Output) -> str:
    where = "Entra ID" if out.text("directory", "") == "entra" else "Active Directory"
    state = _yes(out.flag("enabled"), "enabled", "disabled until day one", "")
    return (f"created {out.text('username')} in {where} with {plural(len(out.strings('groups')), 'group')} copied"
            f"{', ' + state if state else ''}; first password random and known to nobody{_verified(out)}")


def _disable_user(out: Output) -> str:
    return f"offboarded {out.text('username')}: {named(out.strings('changed'), 'no change')}; nothing deleted"


def _enable_user(out: Output) -> str:
    return f"enabled {out.text('username')} again ({_yes(out.flag('enabled'), 'now enabled', 'still disabled')})"


def _share_access(out: Output) -> str:
    if out.flag("known_share") is False:
        return f"no group is known to grant access to {out.text('share')}"
    if out.flag("has_access"):
        return f"{out.text('username')} has access to {out.text('share')} through {named(out.strings('through'))}"
    return f"{out.text('username')} has no access to {out.text('share')}; granted by {named(out.strings('groups'))}"


def _group(out: Output) -> str:
    if out.has("added"):
        done = "added to" if out.flag("added") else "already a member of"
    else:
        done = "removed from" if out.flag("removed") else "was not a member of"
    return f"{out.text('username')} {done} {out.text('group')}{_verified(out)}"


def _licence(out: Output) -> str:
    sku, user = out.text("sku"), out.text("username")
    if out.has("assigned"):
        return f"assigned licence {sku} to {user}" if out.flag("assigned") else f"{user} already had licence {sku}"
    return f"removed licence {sku} from {user}" if out.flag("removed") else f"{user} did not have licence {sku}"


# --- site tools: services ------------------------------------------------------------------------


def _mac_lookup(out: Output) -> str:
    macs = out.items("computers")
    if not macs:
        return "no Mac found in Jamf Pro"
    first = macs[0]
    more = f" (and {plural(len(macs) - 1, 'other')})" if len(macs) > 1 else ""
    managed = _yes(first.flag("managed"), "managed", "not managed")
    return (f"{first.text('name')} ({first.text('serial')}, {first.text('model')}, macOS {first.text('os_version')}): "
            f"{managed}, last check-in {first.text('last_check_in')}, user {first.text('user')}, "
            f"{first.text('disk_free_gb')} GB free{more}")


def _mdm_command(out: Output) -> str:
    what = {"RESTART_DEVICE": "a restart", "DEVICE_INFORMATION": "a fresh inventory report"}.get(
        out.text("command", ""), "an MDM command")
    queued = "queued" if out.flag("queued") is not False else "not queued"
    mac = f"{out.text('computer')} ({out.text('serial')})"
    return f"{what} {queued} in Jamf Pro for {mac}; it runs when the Mac is online"


def _redeploy(out: Output) -> str:
    queued = "queued" if out.flag("redeploy_queued") else "not queued"
    return f"Jamf management framework redeploy {queued} for {out.text('computer')} ({out.text('serial')})"


def _print_server(out: Output) -> str:
    queues = out.items("queues")
    return (f"{plural(len(queues), 'queue')} on {out.text('server')}, {plural(out.count('stuck_jobs'), 'stuck job')}; "
            f"needs attention: {named(out.strings('attention'))}")


def _print_server_clear(out: Output) -> str:
    state = "accepting jobs" if out.flag("accepting") else "not accepting jobs"
    return (f"cancelled {plural(out.count('cancelled_jobs'), 'job')} on {out.text('queue')}; "
            f"{plural(out.count('jobs_left'), 'job')} left; queue {out.text('state')}, {state}")


def _vpn_sessions(out: Output) -> str:
    sessions = out.items("sessions")
    if out.has("username"):
        if not sessions:
            return f"{out.text('username')} is not connected to the VPN"
        first = sessions[0]
        return (f"{out.text('username')} is connected to the VPN since {first.text('connected_since')} "
                f"from {first.text('from_address')}")
    users = named([s.text("username") for s in sessions])
    return f"{plural(out.count('count', len(sessions)), 'VPN session')}: {users}"


def _vpn_disconnect(out: Output) -> str:
    return f"ended {plural(out.count('sessions_ended'), 'VPN session')} of {out.text('username')}"


Summary = Callable[[Output], str]

SUMMARIES: dict[str, Summary] = {
    "system_info": _system, "disk_usage": _disk, "top_processes": _processes, "network_status": _network,
    "check_connectivity": _connectivity, "clear_temp_files": _temp, "uptime": _uptime, "large_files": _large_files,
    "end_process": _end_process, "wifi_status": _wifi_status, "wifi_networks": _wifi_networks,
    "renew_dhcp": _renew_dhcp, "flush_dns": _flush_dns, "vpn_status": _vpn_status, "restart_vpn": _restart_vpn,
    "printer_queues": _printer_queues, "clear_print_queue": _clear_print_queue, "resume_printer": _resume_printer,
    "restart_print_spooler": _restart_spooler, "installed_software": _installed_software,
    "install_package": _install_package, "pending_updates": _pending_updates,
    "clear_browser_cache": _browser_cache, "mail_client_status": _mail_clients, "restart_app": _restart_app,
    "crash_reports": _crash_reports, "reboot": _reboot,
    "directory_user": _account, "unlock_account": _unlock, "reset_password": _reset_password,
    "reset_mfa": _reset_mfa, "revoke_sessions": _revoke, "create_user": _create_user,
    "disable_user": _disable_user, "enable_user": _enable_user, "share_access": _share_access,
    "add_to_group": _group, "remove_from_group": _group, "assign_licence": _licence, "remove_licence": _licence,
    "mac_lookup": _mac_lookup, "mac_update_inventory": _mdm_command, "mac_restart": _mdm_command,
    "mac_redeploy_framework": _redeploy, "print_server_queues": _print_server,
    "print_server_clear_queue": _print_server_clear, "vpn_sessions": _vpn_sessions, "vpn_disconnect": _vpn_disconnect,
}
"""Each catalogue tool's one-line summary of its output."""

CHANGES_WITHOUT_APPROVAL = frozenset({"flush_dns", "resume_printer", "mac_update_inventory"})
"""Tools that change something although they need no approval: a note lists them under what was done."""


def changes(step: StepRecord) -> bool:
    """Whether the step changed something (a destructive call that was no preview), rather than looked."""
    spec = CATALOGUE.get(step.tool or "")
    if spec is None:
        return False
    if step.tool in CHANGES_WITHOUT_APPROVAL:
        return True
    if not spec.destructive:
        return False
    try:
        parsed: BaseModel = spec.validate(dict(step.args or {}))
    except MSPClawError:
        return True
    return not spec.is_preview(parsed)


def summarise(step: StepRecord) -> str:
    """The step's result in one line: what the tool found or changed, or why it did not run."""
    if step.skipped:
        return "skipped (not needed)"
    if not step.ok:
        return redact_text(f"failed: {clean(step.error or 'no reason given', 300)}")
    output = step.output or {}
    if output.get("trimmed") is True:
        return "the output was too long to summarise; see the ticket's steps in the console"
    summary = SUMMARIES.get(step.tool or "")
    if summary is None:
        return f"done ({plural(len(output), 'field')} returned; no summary is known for {clean(step.tool or '?')})"
    try:
        line = summary(Output(output))
    except (TypeError, ValueError, AttributeError, OverflowError):
        line = f"done, but its output did not have the expected shape ({clean(step.tool or '?')})"
    return redact_text(clean(line, SUMMARY_CHARS))
