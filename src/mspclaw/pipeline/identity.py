"""Whether two pieces of text name the same person: addresses and display names, compared normalised.

Requesters, ticket openers, approvers and a device's primary user reach MSPclaw as free text in
many forms: a bare address, ``Name <addr>``, ``"Scully, Dana" <DANA@MSP.example>``, an RFC 2047
encoded display name, a PSA contact's name alone, an API caller's name. :func:`identity_keys` turns
one such text into the set of keys it could stand for; two texts name the same person when their
sets meet (:func:`same_person`). The keys are

* ``addr:<address>``: each e-mail address in the text (parsed with :func:`email.utils.getaddresses`,
  and any other ``x@y`` token, so a malformed header still yields its address), NFKC-normalised and
  case-folded; and the same address without a ``+tag`` in its local part, because many mail systems
  deliver ``dana+x@msp.example`` to ``dana@msp.example``;
* ``name:<words>``: the display name's words, case-folded and sorted, so ``Scully, Dana`` and
  ``Dana Scully`` meet. A text with no address is a name as a whole.

The keys lean towards "the same person": they exist to refuse self-approval, where a false match
costs a second technician's click and a missed one lets a person approve their own change.
:func:`address` is the strict form for matching an owner (one address, exact after case-folding).
Work is linear and bounded: only the first :data:`MAX_CHARS` characters are read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from email.header import decode_header, make_header
from email.utils import getaddresses, parseaddr

MAX_CHARS = 1000
"""Identity texts are short (a requester field is at most 255 characters); the rest is ignored."""
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")
_WORD = re.compile(r"\w+")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def _decoded(name: str) -> str:
    """An RFC 2047 encoded display name (``=?utf-8?q?...?=``) decoded; anything else as it is."""
    if "=?" not in name:
        return name
    try:
        return str(make_header(decode_header(name)))
    except (ValueError, LookupError, UnicodeError):
        return name


def _name_key(name: str) -> str | None:
    words = sorted(_WORD.findall(_fold(_decoded(name))))
    return "name:" + " ".join(words) if words else None


def _address_keys(addr: str) -> set[str]:
    addr = _fold(addr).strip(".")
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return set()
    keys = {f"addr:{addr}"}
    base = local.split("+", 1)[0]
    if base and base != local:
        keys.add(f"addr:{base}@{domain}")
    return keys


def identity_keys(text: str | None) -> frozenset[str]:
    """Every key ``text`` could name a person by (see the module docstring); empty for blank text."""
    text = (text or "")[:MAX_CHARS].strip()
    if not text:
        return frozenset()
    if "@" not in text:
        key = _name_key(text)
        return frozenset([key] if key else [])
    keys: set[str] = set()
    for name, addr in getaddresses([text]):
        keys |= _address_keys(addr)
        if name and (key := _name_key(name)):
            keys.add(key)
    for found in _ADDRESS.findall(text):
        keys |= _address_keys(found)
    return frozenset(keys)


def keys_of(texts: Iterable[str | None]) -> frozenset[str]:
    """The union of :func:`identity_keys` over ``texts`` (a technician's e-mail, name and aliases)."""
    keys: set[str] = set()
    for text in texts:
        keys |= identity_keys(text)
    return frozenset(keys)


def same_person(a: str | None, b: str | None) -> bool:
    """Whether ``a`` and ``b`` plausibly name the same person (their keys meet)."""
    return bool(identity_keys(a) & identity_keys(b))


def address(text: str | None) -> str:
    """The one e-mail address in ``text`` (``Name <addr>`` or bare), case-folded; else the text case-folded.

    Strict on purpose: routing uses it to decide whether a device's primary user is the requester.
    """
    text = (text or "")[:MAX_CHARS]
    _, addr = parseaddr(text)
    return _fold(addr) if "@" in addr else _fold(text)
