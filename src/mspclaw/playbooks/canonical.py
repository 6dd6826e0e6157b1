"""A playbook's canonical form: bounded YAML in, JCS-style canonical JSON bytes and a sha256 out.

The canonical form of a playbook is its parsed YAML (comments, key order, quoting and layout
dropped) written as canonical JSON the way RFC 8785 (JCS) writes it: object keys sorted by their
UTF-16 code units, no insignificant whitespace, strings with JSON's minimal escapes in UTF-8,
integers as digits and other numbers in ECMAScript's shortest round-trip form. Reformatting a
playbook or adding a comment leaves its hash and its signatures valid; changing a value does not.

Reading YAML is bounded before anything is built: a file larger than :data:`MAX_FILE_BYTES`,
any alias (``*name``: the "billion laughs" expansion), more than :data:`MAX_NODES` nodes or
nesting deeper than :data:`MAX_DEPTH` is refused from the parser's event stream, so a hostile
file costs at most one linear pass over a few hundred kilobytes.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

import yaml

MAX_FILE_BYTES = 256 * 1024
"""The largest playbook file read; the shipped ones are under 8 KiB."""
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
"""libyaml's parser under PyYAML's own safe constructor and resolver (the same values as ``SafeLoader``, several
times faster); PyYAML's pure-Python ``SafeLoader`` where PyYAML was built without libyaml. A document either
refuses is read again by ``SafeLoader``, so every error message is PyYAML's own."""
MAX_DEPTH = 32
MAX_NODES = 20_000


class CanonicalError(ValueError):
    """A YAML or JSON document that cannot be read safely or has no canonical form; says what and where."""


def _line(mark: Any) -> int:
    return int(mark.line) + 1 if mark is not None else 1


def check_yaml(text: str, where: str) -> None:
    """Refuse an oversized, aliased, too deep or too large YAML document before it is composed."""
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_BYTES:
        raise CanonicalError(f"{where}: {size} bytes is over the {MAX_FILE_BYTES}-byte limit for a playbook; "
                             "split it or remove what it does not need")
    if FAST_LOADER is not yaml.SafeLoader:
        try:
            _check_events(text, where, FAST_LOADER)
            return
        except yaml.YAMLError:
            pass  # read again below, for PyYAML's own message
    _check_events(text, where, yaml.SafeLoader)


@dataclass(frozen=True)
class YamlBreach:
    """The first thing in a YAML text that would cost more than one linear pass to read: an ``alias``
    (``anchor`` names it), more ``nodes`` than allowed, or nesting ``depth`` past the limit; ``line`` is 1-based."""

    kind: Literal["alias", "nodes", "depth"]
    line: int
    anchor: str = ""


def first_breach(text: str, *, max_nodes: int, max_depth: int, loader: Any = None) -> YamlBreach | None:
    """One pass over the parser's events (nothing composed): the first alias, the node past ``max_nodes`` or
    the nesting past ``max_depth``, or None. Text that is not YAML raises PyYAML's ``YAMLError``."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=loader or FAST_LOADER):
        if isinstance(event, yaml.AliasEvent):
            return YamlBreach("alias", _line(event.start_mark), (event.anchor or "")[:40])
        if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            nodes += 1
            if nodes > max_nodes:
                return YamlBreach("nodes", _line(event.start_mark))
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > max_depth:
                return YamlBreach("depth", _line(event.start_mark))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def _check_events(text: str, where: str, loader: Any) -> None:
    try:
        breach = first_breach(text, max_nodes=MAX_NODES, max_depth=MAX_DEPTH, loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CanonicalError(f"{where}{f':{mark.line + 1}' if mark else ''}: not valid YAML: "
                             f"{getattr(exc, 'problem', None) or exc}") from exc
    if breach is None:
        return
    if breach.kind == "alias":
        raise CanonicalError(f"{where}:{breach.line}: YAML aliases (*{breach.anchor}) are not allowed in a "
                             "playbook; write the value out")
    if breach.kind == "nodes":
        raise CanonicalError(f"{where}: more than {MAX_NODES} YAML nodes; a playbook is far smaller")
    raise CanonicalError(f"{where}:{breach.line}: nested more than {MAX_DEPTH} levels deep")


def load_yaml(text: str, where: str) -> Any:
    """Parse bounded YAML (:func:`check_yaml`) with the safe loader."""
    check_yaml(text, where)
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        raise CanonicalError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through :data:`FAST_LOADER`; a document it refuses raises PyYAML's own error."""
    try:
        return yaml.load(text, Loader=FAST_LOADER)  # noqa: S506 - a safe loader (SafeConstructor)
    except yaml.YAMLError:
        if FAST_LOADER is yaml.SafeLoader:
            raise
    return yaml.safe_load(text)


def _number(value: float) -> str:
    """ECMAScript's Number.prototype.toString for a finite double (what JCS prescribes)."""
    if not math.isfinite(value):
        raise CanonicalError("NaN and infinity have no canonical JSON form")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits_tuple = decimal.Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = int(digits_tuple.exponent)
    k, n = len(digits), len(digits) + exponent  # value = 0.digits * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def _write(value: Any, path: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, f"{path}[{i}]", out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalError(f"{path or '(top)'}: key {key!r} is not a string; quote it")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], f"{path}.{key}" if path else key, out)
        out.append("}")
    else:
        raise CanonicalError(f"{path or '(top)'}: a {type(value).__name__} has no JSON form (YAML reads an unquoted "
                             "date or timestamp as one); quote the value")


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON of ``value`` as UTF-8 bytes."""
    out: list[str] = []
    _write(value, "", out)
    return "".join(out).encode("utf-8")


def content_hash(value: Any) -> str:
    """``sha256:<hex>`` of the canonical form."""
    return "sha256:" + hashlib.sha256(canonical_bytes(value)).hexdigest()
