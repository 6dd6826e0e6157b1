"""What the server says of the playbooks that do not verify (``MSPCLAW_PLAYBOOK_TRUST``).

Each one is said once, however often the set is reloaded: one line in the server's log and one
``playbook_untrusted`` event in the audit trail, until its file, content or verdict changes. The
current list is what ``/readyz``, the console's playbook page and ``GET /api/playbooks`` show.
"""

from __future__ import annotations

import logging

from mspclaw.playbooks.verified import Refused, TrustMode, Verified
from mspclaw.store.audit import AuditLog

log = logging.getLogger(__name__)
MAX_REMEMBERED = 10_000
"""Refusals already reported (file, content, verdict) kept to report each once."""


class PlaybookRefusals:
    def __init__(self) -> None:
        self.current: list[Refused] = []
        """The refusals of the set in service now."""
        self.mode: TrustMode = "off"
        self._reported: set[tuple[str, str, str]] = set()
        self._unaudited: list[Refused] = []

    @property
    def left_out(self) -> bool:
        """Whether the playbooks of :attr:`current` are out of service (``enforce``) rather than loaded anyway."""
        return self.mode == "enforce"

    def by_file(self) -> dict[str, Refused]:
        return {str(r.path): r for r in self.current}

    def note(self, verified: Verified) -> None:
        """The set going into service: log each refusal not reported before (the audit waits for :meth:`flush`)."""
        self.current, self.mode = list(verified.refused), verified.mode
        if len(self._reported) > MAX_REMEMBERED:
            self._reported.clear()
        for refused in verified.refused:
            seen = (str(refused.path), refused.sha256, refused.status)
            if seen in self._reported:
                continue
            self._reported.add(seen)
            self._unaudited.append(refused)
            if self.left_out:
                log.error("playbook refused (not loaded): %s", refused.line())
            else:
                log.warning("playbook not trusted (MSPCLAW_PLAYBOOK_TRUST=warn loads it anyway): %s", refused.line())

    async def flush(self, audit: AuditLog) -> None:
        """Record the refusals logged since the last flush in the audit trail."""
        pending, self._unaudited = self._unaudited, []
        for refused in pending:
            await audit.record("playbook_untrusted", data={
                "playbook": refused.book_id, "version": refused.version, "file": str(refused.path),
                "sha256": refused.sha256, "status": refused.status, "why": refused.detail[:500],
                "refused": self.left_out})
