"""Is this question one we already know the answer to? Matching by meaning, cheaply.

Questions are normalised (lower case, contractions expanded, punctuation dropped, a few
synonyms folded: pc/laptop/machine -> computer, stopwords removed, plurals and -ing folded)
and compared with a blend of word overlap (Dice) and character-trigram overlap of the
normalised text. Two questions at or over :data:`THRESHOLD` are the same question. A device
fact (``default_printer``) answers a question that mentions every word of its key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

THRESHOLD = 0.6

_CONTRACTIONS = {"what's": "what is", "where's": "where is", "who's": "who is", "it's": "it is",
                 "don't": "do not", "doesn't": "does not", "can't": "can not", "isn't": "is not",
                 "you're": "you are", "i'm": "i am", "won't": "will not", "didn't": "did not"}
_SYNONYMS = {"pc": "computer", "laptop": "computer", "machine": "computer", "desktop": "computer",
             "device": "computer", "workstation": "computer", "mac": "computer",
             "username": "user name", "login": "user name", "e-mail": "email", "mail": "email",
             "wifi": "wireless", "wi-fi": "wireless", "wlan": "wireless",
             "called": "name", "named": "name", "hostname": "computer name",
             "restarted": "restart", "rebooted": "restart", "reboot": "restart",
             "began": "start", "begin": "start", "started": "start", "starting": "start",
             "since": "start", "when": "start",
             "error": "message", "popup": "message", "pop-up": "message",
             "printer's": "printer", "computer's": "computer", "switch": "turn", "power": "turn",
             "say": "see", "show": "see", "display": "see", "read": "see", "happen": "start"}
_STOP_WORDS = (
    "a an the is are was were be been do does did to of in on at for with your you yours my i me we us our it its "
    "this that these those and or please could would can will tell know what which how there any some have has "
    "had just currently right now kindly still problem issue")
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def normalise(text: str) -> list[str]:
    """The content words of ``text``, in order, folded as described above."""
    words: list[str] = []
    for raw in _WORD.findall(text.lower()):
        expanded = _CONTRACTIONS.get(raw, raw)
        for word in expanded.split():
            word = _SYNONYMS.get(word) or _SYNONYMS.get(_stem(word)) or word
            for folded in word.split():
                if folded not in _STOP:
                    folded = _stem(folded.strip("'-"))
                    words.append(_SYNONYMS.get(folded, folded))
    return [w for w in words if w]


def _trigrams(text: str) -> set[str]:
    padded = f"  {text} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def similarity(a: str, b: str) -> float:
    """0..1: how likely ``a`` and ``b`` ask the same thing."""
    wa, wb = normalise(a), normalise(b)
    if not wa or not wb:
        return 0.0
    sa, sb = set(wa), set(wb)
    dice = 2 * len(sa & sb) / (len(sa) + len(sb))
    ta, tb = _trigrams(" ".join(sorted(sa))), _trigrams(" ".join(sorted(sb)))
    tri = 2 * len(ta & tb) / (len(ta) + len(tb))
    return 0.7 * dice + 0.3 * tri


def best_match(question: str, known: Iterable[tuple[str, str]]) -> tuple[str, str, float] | None:
    """The known (question, answer) most like ``question``, if it reaches :data:`THRESHOLD`."""
    best: tuple[str, str, float] | None = None
    for text, answer in known:
        score = similarity(question, text)
        if score >= THRESHOLD and (best is None or score > best[2]):
            best = (text, answer, score)
    return best


def fact_for(question: str, facts: Mapping[str, str]) -> tuple[str, str] | None:
    """A device fact whose key words all occur in the question (``default_printer`` for "which printer is
    your default?"), the one with the most key words winning."""
    words = set(normalise(question))
    best: tuple[str, str] | None = None
    best_len = 0
    for key, value in facts.items():
        key_words = set(normalise(key.replace("_", " ")))
        if key_words and key_words <= words and len(key_words) > best_len:
            best, best_len = (key, value), len(key_words)
    return best
