"""Keep secrets out of the audit trail and the logs.

:func:`redact` returns a copy of JSON-like data (dicts, lists, tuples, scalars) in which

1. **the value under a secret-looking key is replaced by** ``"[redacted]"``, whatever its type
   (a string, a number, a whole nested object); ``None`` stays ``None`` since it hides nothing.
   A key is secret-looking when, after normalising it (camelCase split, lower-cased, ``-``,
   ``.`` and spaces turned into ``_``, so ``X-Api-Key``, ``apiKey`` and ``api.key`` all become
   ``api_key``):

   * it contains one of :data:`SECRET_STEMS` anywhere (``new_password``, ``client_secret``,
     ``Authorization``, ``set_cookie``, ``x_api_key``, ``private_key_pem``, ``signing_key``...);
   * or one of its ``_``-separated words contains ``token`` (``access_token``, ``refreshToken``,
     ``apitoken``), except a last word of exactly ``tokens``: ``input_tokens``, ``max_tokens``
     are the token counts every LLM provider reports, not credentials;
   * or the whole key is one of :data:`SECRET_KEYS` (``code``, ``enrollment_code``, ``pin``,
     ``otp``, ``pwd``, ``auth``), words too short or too common to match inside other keys.

2. **secrets inside strings are scrubbed** wherever they occur, under any key:
   ``Bearer <token>`` becomes ``Bearer [redacted]``; an ``Authorization: <scheme> <value>``
   header line keeps only its scheme; the password of a URL (``scheme://user:pw@host``) is
   replaced; ``password=...``, ``token: ...``, ``api_key=...`` style pairs (query strings,
   command lines, log text) keep the name and lose the value.

The rule errs on the side of hiding: a value wrongly redacted costs a little detail in the
audit trail, a secret wrongly kept cannot be taken back. Keys themselves are never changed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

SECRET_STEMS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "credential",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
    "privatekey",
    "signing_key",
    "server_key",
    "session_key",
    "access_key",
    "bearer",
)
"""Substrings that make a normalised key secret wherever they appear in it."""

SECRET_KEYS: frozenset[str] = frozenset({"code", "enrollment_code", "pin", "otp", "pwd", "auth"})
"""Normalised keys that are secret only as a whole."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s\-.]+")

_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*")
_AUTH_HEADER = re.compile(r"(?im)\b((?:proxy-)?authorization\s*[:=]\s*)(?:([A-Za-z][\w-]*)\s+)?[^\s,;'\"]+")
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+(@)")
_SECRET_PAIR = re.compile(
    r"(?i)(?<![a-z])((?:password|passwd|passphrase|pwd|secret|client[_-]?secret|token|access[_-]?token"
    r"|refresh[_-]?token|api[_-]?key|apikey)\s*[:=]\s*)(?!\[redacted\])[\"']?[^\s\"'&,;]+[\"']?"
)


_MAY_HOLD_SECRET = re.compile(r"(?i)bearer|authorization|://|pass|pwd|secret|token|api[_-]?key")
"""Text without any of these holds nothing the four patterns above would scrub."""


def normalise_key(key: object) -> str:
    """``"X-Api-Key"`` → ``"x_api_key"``, ``"refreshToken"`` → ``"refresh_token"``."""
    text = _CAMEL.sub("_", str(key))
    return _SEPARATORS.sub("_", text).lower()


def is_secret_key(key: object) -> bool:
    """Whether values under ``key`` are replaced by :data:`REDACTED` (rule 1 above)."""
    return _is_secret_name(key) if isinstance(key, str) else _is_secret(key)


@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    """:func:`_is_secret` once per key name: the same few keys come back in every event."""
    return _is_secret(key)


def _is_secret(key: object) -> bool:
    norm = normalise_key(key)
    if norm in SECRET_KEYS:
        return True
    if any(stem in norm for stem in SECRET_STEMS):
        return True
    words = [w for w in norm.split("_") if w]
    return any("token" in word and not (word == "tokens" and i == len(words) - 1) for i, word in enumerate(words))


def redact_text(text: str) -> str:
    """Scrub bearer tokens, authorization headers, URL passwords and ``name=value`` secrets."""
    if not _MAY_HOLD_SECRET.search(text):
        return text  # one scan instead of four for the usual text (each pattern needs one of these words)
    text = _AUTH_HEADER.sub(_auth_header_repl, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
    return _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def _auth_header_repl(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return f"{match.group(1)}{scheme} {REDACTED}" if scheme else f"{match.group(1)}{REDACTED}"


def redact(data: Any) -> Any:
    """A copy of ``data`` with secrets replaced (see the module docstring for the rule).

    Dicts keep their keys, lists and tuples become lists, strings are scrubbed, other values
    are returned as they are. The input is never modified.
    """
    if isinstance(data, Mapping):
        return {
            key: (REDACTED if value is not None and is_secret_key(key) else redact(value))
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(item) for item in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


class _NotPlain(Exception):
    """Raised inside :func:`redact_plain` on a value that is not one of JSON's own types."""


def redact_plain(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`redact` for data made only of JSON's own types, in one pass: the copy it returns holds
    nothing but ``dict`` (string keys), ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None``
    (tuples become lists), so it needs no JSON round trip to be what a reader will parse back.

    ``None`` when ``data`` holds anything else (other keys, other types, subclasses such as enums):
    the caller then takes the general path, :func:`redact` and a conversion of its own.
    """
    try:
        return _plain_dict(data) if type(data) is dict else None
    except _NotPlain:
        return None


def _plain_dict(data: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if type(key) is not str:
            raise _NotPlain
        out[key] = REDACTED if value is not None and _is_secret_name(key) else _plain_value(value)
    return out


def _plain_value(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if kind is dict:
        return _plain_dict(value)
    if kind is list or kind is tuple:
        return [_plain_value(item) for item in value]
    raise _NotPlain
