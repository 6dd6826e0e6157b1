"""Load playbooks from YAML. Every problem names the file, the line and the field path.

Loading is all or nothing: :func:`load_dir` raises with every problem found, or returns
every playbook.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mspclaw.errors import ConditionError, ConfigError, ToolError
from mspclaw.playbooks.canonical import FAST_LOADER, MAX_FILE_BYTES, CanonicalError, check_yaml, safe_load
from mspclaw.playbooks.schema import Playbook

LIBRARY = Path(__file__).parent / "library"


class PlaybookError(ConfigError):
    """One or more playbooks are invalid; ``problems`` lists ``file:line: field: message``."""

    code = "bad_playbook"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid playbook:\n  " + "\n  ".join(problems))
        self.problems = problems


def _line_of(node: yaml.Node | None, loc: Iterable[int | str]) -> int:
    """Follow a pydantic error location through the YAML node tree to a 1-based line."""
    line = node.start_mark.line + 1 if node else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def load_file(path: Path) -> Playbook:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:  # not read at all
            raise PlaybookError([f"{path}: {path.stat().st_size} bytes is over the {MAX_FILE_BYTES}-byte limit "
                                 "for a playbook"])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        check_yaml(text, str(path))  # size, aliases, depth: refused before anything is built
    except CanonicalError as exc:
        raise PlaybookError([str(exc)]) from exc
    try:
        data: Any = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PlaybookError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if not isinstance(data, dict):
        raise PlaybookError([f"{path}:1: a playbook must be a YAML mapping"])
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        node = yaml.compose(text, Loader=FAST_LOADER)  # only now: the line of each problem
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not isinstance(p, str) or p != "_consistent"]
            field = ".".join(str(p) for p in loc) or "(playbook)"
            problems.append(f"{path}:{_line_of(node, loc)}: {field}: {err['msg']}")
        raise PlaybookError(problems) from exc
    except (ConditionError, ToolError) as exc:
        raise PlaybookError([f"{path}:1: {exc.message}"]) from exc


def load_dir(directory: Path = LIBRARY) -> list[Playbook]:
    problems: list[str] = []
    books: list[Playbook] = []
    ids: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            book = load_file(path)
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        if book.id in ids:
            problems.append(f"{path}:1: id: {book.id!r} is also used by {ids[book.id]}")
        ids[book.id] = path
        books.append(book)
    if problems:
        raise PlaybookError(problems)
    return books
