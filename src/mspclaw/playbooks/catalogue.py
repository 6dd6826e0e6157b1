"""The playbooks a server runs: the shipped library plus an MSP's own directories, validated together.

Every problem in every file is reported as ``FILE:LINE: FIELD: MESSAGE`` before anything loads, and
an id used twice (in two directories, or an MSP playbook reusing a shipped id) is a problem too:
a playbook is never silently replaced. The matcher indexes the whole list at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mspclaw.playbooks.loader import LIBRARY, PlaybookError, load_dir
from mspclaw.playbooks.schema import Playbook


def load_catalogue(extra: Sequence[Path] = (), *, library: Path | None = LIBRARY) -> list[Playbook]:
    """The library (unless ``library`` is None) and every directory in ``extra``, in that order."""
    problems: list[str] = []
    books: list[Playbook] = []
    seen: dict[str, str] = {}
    directories = ([library] if library is not None else []) + list(extra)
    for directory in directories:
        if not directory.is_dir():
            problems.append(f"{directory}: no such directory of playbooks")
            continue
        if not any(directory.glob("*.yaml")):
            problems.append(f"{directory}: no *.yaml files in this directory")
            continue
        try:
            found = load_dir(directory)
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        for book in found:
            where = f"{directory / (book.id + '.yaml')}" if (directory / f"{book.id}.yaml").exists() else str(directory)
            if book.id in seen:
                problems.append(f"{where}:1: id: {book.id!r} is also used by {seen[book.id]}")
                continue
            seen[book.id] = where
            books.append(book)
    if problems:
        raise PlaybookError(problems)
    return books
