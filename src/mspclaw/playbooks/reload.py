"""Pick up installed, updated and removed playbooks while the server runs.

Every ``interval_s`` the watcher takes a fingerprint of the playbook directories (name, size and
modification time of every ``*.yaml``, ``signatures.json`` and ``revoked.json``, and of the trust
file). When it changed, the whole set is loaded again the way the server loaded it at start
(validation, trust mode); a set that loads replaces the running one at once (the matcher is rebuilt
for the new list; a playbook that does not verify is left out and reported), and a set that does not
load is logged with every problem while the running set stays in service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from mspclaw.playbooks.loader import PlaybookError
from mspclaw.playbooks.signing import SigningError
from mspclaw.playbooks.verified import Verified

log = logging.getLogger(__name__)
WATCHED = ("*.yaml", "signatures.json", "revoked.json")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directories: Sequence[Path], files: Sequence[Path] = ()) -> Fingerprint:
    seen: list[tuple[str, int, int]] = []
    paths = [p for directory in directories for pattern in WATCHED for p in directory.glob(pattern)] + list(files)
    for path in paths:
        try:
            st = path.stat()
        except OSError:  # removed between the listing and the stat: the next look sees it
            continue
        seen.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(seen))


class PlaybookReloader:
    def __init__(self, directories: Sequence[Path], load: Callable[[], Verified],
                 apply: Callable[[Verified], Awaitable[None]], *, interval_s: float = 5.0,
                 files: Sequence[Path] = ()) -> None:
        self.directories, self.files = list(directories), list(files)
        """The playbook directories, and other files whose change reloads them (the trust file)."""
        self._load, self._apply, self.interval_s = load, apply, interval_s
        self._seen = fingerprint(self.directories, self.files)
        self.problems: list[str] = []
        """What stopped the last reload, if it failed (the running set stayed)."""

    def check(self) -> Verified | None:
        """Load the set again when a file changed (blocking: run it in a thread); ``None`` when nothing changed
        or the new set does not load."""
        now = fingerprint(self.directories, self.files)
        if now == self._seen:
            return None
        self._seen = now
        try:
            loaded = self._load()
        except (PlaybookError, SigningError) as exc:
            self.problems = exc.problems if isinstance(exc, PlaybookError) else [str(exc)]
            log.error("playbooks changed but were not reloaded (the running set stays):\n  %s",
                      "\n  ".join(self.problems))
            return None
        self.problems = []
        return loaded

    async def reload(self) -> bool:
        """One look: True when a new set went into service."""
        loaded = await asyncio.to_thread(self.check)
        if loaded is None:
            return False
        await self._apply(loaded)
        log.info("playbooks reloaded: %d in service", len(loaded.books))
        return True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.reload()
