"""Words and light English stems: the vocabulary the matcher and the triage rules share.

The text is lower-cased and accent-folded (``Störung`` -> ``storung``); ``can't`` becomes ``cant``;
``wi-fi`` and ``e-mail`` become ``wifi`` and ``email``; every word is reduced to a light stem
(``printing``, ``printed`` and ``prints`` are all ``print``). A word longer than :data:`MAX_WORD`
letters is no word anyone types about a problem (a pasted hash, a base64 blob) and is dropped, so
no later step spends anything on it.
"""

from __future__ import annotations

import re

from mspclaw.playbooks.language import fold

MAX_WORD = 40
_WORD = re.compile(r"[a-z0-9]+")
_JOIN = {("wi", "fi"): "wifi", ("e", "mail"): "email", ("e", "mails"): "emails", ("log", "in"): "login",
         ("sign", "in"): "signin", ("lap", "top"): "laptop", ("pass", "word"): "password",
         ("out", "look"): "outlook", ("two", "factor"): "2fa", ("2", "fa"): "2fa", ("multi", "factor"): "mfa",
         ("2", "factor"): "2fa", ("web", "site"): "website", ("off", "line"): "offline", ("on", "line"): "online"}

_JOIN_FIRST = frozenset(first for first, _ in _JOIN)


_ELISION = re.compile(r"\b(l|d|j|n|s|m|t|c|qu|jusqu|lorsqu|puisqu)['\u2019](?=\w)", re.IGNORECASE)
"""French elisions (``l'imprimante``, ``d'attente``, ``n'imprime``) part the two words."""


def words(text: str) -> list[str]:
    """Lower-case, accent-folded words; apostrophes vanish (``can't`` -> ``cant``), split words join."""
    if "'" in text or "\u2019" in text:  # an elision needs an apostrophe: most texts skip the scan
        text = _ELISION.sub(r"\1 ", text).replace("'", "").replace("\u2019", "")
    raw = [w for w in _WORD.findall(fold(text)) if len(w) <= MAX_WORD]
    if _JOIN_FIRST.isdisjoint(raw):
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        joined = _JOIN.get((raw[i], raw[i + 1])) if i + 1 < len(raw) else None
        if joined is not None:
            out.append(joined)
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return out


_STEMS: dict[str, str] = {}
_AS_WRITTEN = frozenset({"quite", "namens"})
"""Common words whose stem would be another word of the vocabulary (``quite`` is no ``quit``, Dutch
``namens``, on behalf of, no German ``Namen``)."""


def stem(word: str) -> str:
    """A light, consistent suffix stripper: ``printing``/``printed``/``prints`` -> ``print``."""
    cached = _STEMS.get(word)
    if cached is not None:
        return cached
    w = word
    if w in _AS_WRITTEN:
        return w
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith(("ied", "ies")):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("ed", "ches", "shes", "sses", "xes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w != word and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]  # stopped -> stopp -> stop, quitting -> quitt -> quit
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(_STEMS) < 200_000:
        _STEMS[word] = w
    return w


def stems(text: str) -> list[str]:
    return [stem(w) for w in words(text)]
