"""Pick up installed, updated and removed playbooks while the server runs.

Every ``interval_s`` the watcher takes a fingerprint of the playbook directories (name, size and
modification time of every ``*.yaml``, ``signatures.json`` and ``revoked.json``). When it changed,
the whole set is loaded again the way the server loaded it at start (validation, trust mode); a set
that loads replaces the running one at once (the matcher is rebuilt for the new list), and a set
that does not is logged with every problem while the running set stays in service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from mspclaw.playbooks.loader import PlaybookError
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.signing import SigningError

log = logging.getLogger(__name__)
WATCHED = ("*.yaml", "signatures.json", "revoked.json")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directories: Sequence[Path]) -> Fingerprint:
    seen: list[tuple[str, int, int]] = []
    for directory in directories:
        for pattern in WATCHED:
            for path in directory.glob(pattern):
                try:
                    st = path.stat()
                except OSError:  # removed between the listing and the stat: the next look sees it
                    continue
                seen.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(seen))


class PlaybookReloader:
    def __init__(self, directories: Sequence[Path], load: Callable[[], list[Playbook]],
                 apply: Callable[[list[Playbook]], None], *, interval_s: float = 5.0) -> None:
        self.directories = list(directories)
        self._load, self._apply, self.interval_s = load, apply, interval_s
        self._seen = fingerprint(self.directories)
        self.problems: list[str] = []
        """What stopped the last reload, if it failed (the running set stayed)."""

    def check(self) -> bool:
        """Reload when a file changed; True when a new set went into service."""
        now = fingerprint(self.directories)
        if now == self._seen:
            return False
        self._seen = now
        try:
            books = self._load()
        except (PlaybookError, SigningError) as exc:
            self.problems = exc.problems if isinstance(exc, PlaybookError) else [str(exc)]
            log.error("playbooks changed but were not reloaded (the running set stays):\n  %s",
                      "\n  ".join(self.problems))
            return False
        self.problems = []
        self._apply(books)
        log.info("playbooks reloaded: %d in service", len(books))
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self.check)
