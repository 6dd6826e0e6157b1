"""Pick the playbook for a ticket, or none: scored triggers over subject and body, by device OS.

How a ticket is scored against each playbook:

* the text is lower-cased and split into words; ``can't`` becomes ``cant``, ``wi-fi`` and
  ``e-mail`` become ``wifi`` and ``email``; every word is reduced to a light stem (``printing``,
  ``printed`` and ``prints`` are all ``print``), and so is every trigger;
* each keyword found adds its weight (default 1), once; each phrase found (its words in a row)
  adds twice its weight; a hit in the subject counts half as much again, since the subject
  usually names the main problem;
* a word of five letters or more that is no trigger but one typing slip away from one (a letter
  missing, added, swapped or wrong: ``pasword``, ``outlok``, ``priner``) counts 0.8 of the trigger;
  a shorter word only with two neighbouring letters swapped (``vnp``);
* a negative keyword or phrase rules the playbook out (``jam`` for the printer playbook);
* some tickets are for people whatever else they say: security reports (phishing, a hacked
  account, ransomware), hardware failures (a cracked screen, a spill, a jam) and billing questions.
  A hit on one of those :data:`VETOES` means no playbook at all;
* the best playbook for the device's OS wins if it scores at least :data:`THRESHOLD`; below it the
  ticket goes to a model without a playbook, or to a technician.

The index is built once per list of playbooks, so matching costs a few dictionary look-ups per
word of the ticket, whatever the number of playbooks (``bench/matcher.py``: 10,000 playbooks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mspclaw.playbooks.schema import Playbook

THRESHOLD = 2.5
SUBJECT_BOOST = 1.5
FUZZY_FACTOR = 0.8
PHRASE_FACTOR = 2.0

VETOES: dict[str, tuple[str, ...]] = {
    "a security report": (
        "phishing", "phish", "phishy", "scam", "scammer", "suspicious", "fraud", "fraudulent", "malware",
        "ransomware", "virus", "trojan", "hacked", "compromised", "breach", "spoofed", "spoofing",
        "gift cards", "clicked a link", "clicked the link", "fake email", "fake invoice", "someone logged into",
        "someone else logged", "unknown sign in", "encrypted my files", "bitcoin",
    ),
    "a hardware failure": (
        "cracked", "smashed", "spilled", "spill", "water damage", "smoke", "burning smell", "sparks",
        "wont turn on", "doesnt turn on", "does not turn on", "wont power on", "no power", "dead battery",
        "battery swollen", "swollen", "broken screen", "screen is broken", "screen broke", "dropped my laptop",
        "dropped it", "keyboard broken", "keys stopped working", "hinge", "clicking noise", "grinding noise",
        "beeping", "paper jam", "jammed", "toner", "dead pixel", "flickering", "no display", "black screen",
        "mouse", "headset", "webcam", "docking station", "speakers",
    ),
    "a billing question": (
        "billing question", "billing issue", "our billing", "the billing for", "we were billed", "billed for",
        "billed twice", "refund", "overcharged", "charged twice", "discuss pricing", "our pricing", "your invoice",
        "our invoice", "last invoice", "monthly invoice", "invoice from you", "invoice number", "a quote for",
        "price for",
        "contract renewal", "our contract", "how much does", "how much would", "credit card", "purchase order",
        "cancel our subscription", "hourly rate",
    ),
}
"""Words and phrases that send a ticket to a person whatever else it says."""

_WORD = re.compile(r"[a-z0-9]+")
_BREAK = "|"
"""Between subject and body, so a phrase never spans the two."""
_JOIN = {("wi", "fi"): "wifi", ("e", "mail"): "email", ("e", "mails"): "emails", ("log", "in"): "login",
         ("sign", "in"): "signin", ("lap", "top"): "laptop", ("pass", "word"): "password",
         ("out", "look"): "outlook", ("two", "factor"): "2fa", ("2", "fa"): "2fa", ("multi", "factor"): "mfa",
         ("2", "factor"): "2fa", ("web", "site"): "website", ("off", "line"): "offline", ("on", "line"): "online"}


def words(text: str) -> list[str]:
    """Lower-case words; apostrophes vanish (``can't`` -> ``cant``) and split words are joined."""
    raw = _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))
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


def stem(word: str) -> str:
    """A light, consistent suffix stripper: ``printing``/``printed``/``prints`` -> ``print``."""
    cached = _STEMS.get(word)
    if cached is not None:
        return cached
    w = word
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


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


@dataclass(frozen=True)
class Match:
    playbook: Playbook | None
    score: float
    explanation: str
    category: str | None = None
    runner_up: str | None = None


@dataclass
class _Index:
    books: list[Playbook]
    keywords: dict[str, list[tuple[int, float, str]]] = field(default_factory=dict)
    phrases: dict[str, list[tuple[int, tuple[str, ...], float, str]]] = field(default_factory=dict)
    negatives: dict[str, list[int]] = field(default_factory=dict)
    negative_phrases: dict[str, list[tuple[int, tuple[str, ...], str]]] = field(default_factory=dict)
    fuzzy: dict[str, set[str]] = field(default_factory=dict)
    by_os: dict[str, frozenset[int]] = field(default_factory=dict)
    vetoes: dict[str, str] = field(default_factory=dict)
    veto_phrases: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(default_factory=dict)


def _build(books: Sequence[Playbook]) -> _Index:
    index = _Index(list(books))
    for i, book in enumerate(books):
        trig = book.triggers
        for keyword in trig.keywords:
            key = stem(keyword.lower().replace("'", ""))
            if not any(b == i for b, _, _ in index.keywords.get(key, [])):
                index.keywords.setdefault(key, []).append((i, trig.weights.get(keyword, 1.0), keyword))
        for phrase in trig.phrases:
            seq = tuple(stems(phrase))
            if len(seq) == 1:
                index.keywords.setdefault(seq[0], []).append((i, PHRASE_FACTOR * trig.weights.get(phrase, 1.0), phrase))
            elif seq:
                index.phrases.setdefault(seq[0], []).append((i, seq, trig.weights.get(phrase, 1.0), phrase))
        for negative in trig.negative:
            seq = tuple(stems(negative))
            if len(seq) == 1:
                index.negatives.setdefault(seq[0], []).append(i)
            elif seq:
                index.negative_phrases.setdefault(seq[0], []).append((i, seq, negative))
    for key in index.keywords:
        if len(key) >= 4:
            index.fuzzy.setdefault(key, set()).add(key)
            for variant in _deletions(key):
                index.fuzzy.setdefault(variant, set()).add(key)
    for os_name in ("linux", "macos", "windows"):
        index.by_os[os_name] = frozenset(i for i, b in enumerate(books) if os_name in b.os)
    for reason, terms in VETOES.items():
        for term in terms:
            seq = tuple(stems(term))
            if len(seq) == 1:
                index.vetoes[seq[0]] = reason
            elif seq:
                index.veto_phrases.setdefault(seq[0], []).append((seq, reason, term))
    return index


def _close(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one edit (insert, delete, substitute or swap two neighbours)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


class Matcher:
    """An index over a list of playbooks; :meth:`match` is cheap however many there are."""

    def __init__(self, books: Sequence[Playbook], threshold: float = THRESHOLD) -> None:
        self.books = list(books)
        self.threshold = threshold
        self._index = _build(self.books)

    def _fuzzy(self, token: str) -> str | None:
        fuzzy = self._index.fuzzy
        candidates = set(fuzzy.get(token, ()))
        for variant in _deletions(token):
            candidates |= fuzzy.get(variant, set())
        best = sorted(c for c in candidates if _close(token, c) and (len(c) >= 6 or len(token) >= 6 or
                                                                     len(c) != len(token)))
        return best[0] if best else None

    def _swapped(self, token: str) -> str | None:
        """Short words tolerate only two neighbouring letters swapped (``vnp`` -> ``vpn``)."""
        for i in range(len(token) - 1):
            candidate = token[:i] + token[i + 1] + token[i] + token[i + 2:]
            if candidate != token and candidate in self._index.keywords:
                return candidate
        return None

    def match(self, subject: str, body: str, os: str | None) -> Match:
        index = self._index
        subject_tokens = stems(subject)
        tokens = [*subject_tokens, _BREAK, *stems(body)]
        in_subject = set(subject_tokens)
        for pos, token in enumerate(tokens):
            reason = index.vetoes.get(token)
            if reason is None:
                for seq, why, term in index.veto_phrases.get(token, ()):
                    if tuple(tokens[pos:pos + len(seq)]) == seq:
                        return Match(None, 0.0, f"looks like {why} ('{term}'): a technician handles it, no playbook")
                continue
            return Match(None, 0.0, f"looks like {reason} ('{token}'): a technician handles it, no playbook")

        scores: dict[int, float] = {}
        reasons: dict[int, list[str]] = {}
        ruled_out: dict[int, str] = {}
        seen_keys: set[tuple[int, str]] = set()

        def add(book: int, weight: float, label: str, key: str, subject_hit: bool) -> None:
            if (book, key) in seen_keys:
                return
            seen_keys.add((book, key))
            value = weight * (SUBJECT_BOOST if subject_hit else 1.0)
            scores[book] = scores.get(book, 0.0) + value
            reasons.setdefault(book, []).append(f"{label} +{value:g}")

        for pos, token in enumerate(tokens):
            if token == _BREAK:
                continue
            subject_hit = pos < len(subject_tokens)
            for book in index.negatives.get(token, ()):
                ruled_out.setdefault(book, token)
            for book, seq, term in index.negative_phrases.get(token, ()):
                if tuple(tokens[pos:pos + len(seq)]) == seq:
                    ruled_out.setdefault(book, term)
            postings = index.keywords.get(token)
            label_prefix = ""
            if postings is None and len(token) >= 3 and not token.isdigit():
                near = self._fuzzy(token) if len(token) >= 5 else self._swapped(token)
                if near is not None:
                    postings = [(b, w * FUZZY_FACTOR, k) for b, w, k in index.keywords[near]]
                    label_prefix = f"~{token}≈"
            if postings:
                for book, weight, keyword in postings:
                    add(book, weight, f"{label_prefix}'{keyword}'", keyword, subject_hit or token in in_subject)
            for book, seq, weight, phrase in index.phrases.get(token, ()):
                if tuple(tokens[pos:pos + len(seq)]) == seq:
                    add(book, PHRASE_FACTOR * weight, f'"{phrase}"', phrase, subject_hit)

        allowed = index.by_os.get(os) if os is not None else None
        ranked = sorted(((value, book) for book, value in scores.items()
                         if book not in ruled_out and (allowed is None or book in allowed)), reverse=True)
        if not ranked or ranked[0][0] < self.threshold:
            best = f" (best: {self.books[ranked[0][1]].id} at {ranked[0][0]:g})" if ranked else ""
            excluded = [f"{self.books[b].id} ruled out by '{t}'" for b, t in ruled_out.items() if b in scores]
            extra = f"; {', '.join(excluded[:3])}" if excluded else ""
            return Match(None, round(ranked[0][0], 2) if ranked else 0.0,
                         f"no playbook scored {self.threshold:g} or more{best}{extra}")
        value, book_index = ranked[0]
        chosen = self.books[book_index]
        runner = self.books[ranked[1][1]].id if len(ranked) > 1 else None
        tail = f"; next best: {runner} at {ranked[1][0]:g}" if runner and len(ranked) > 1 else ""
        return Match(chosen, round(value, 2),
                     f"{chosen.id} scored {value:g}: " + ", ".join(reasons[book_index]) + tail,
                     category=chosen.category, runner_up=runner)


_CACHE: dict[int, tuple[Sequence[Playbook], Matcher]] = {}


def matcher_for(books: Sequence[Playbook]) -> Matcher:
    """The index for this list of playbooks, built once per list object."""
    cached = _CACHE.get(id(books))
    if cached is not None and cached[0] is books:
        return cached[1]
    built = Matcher(books)
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[id(books)] = (books, built)
    return built


def score(book: Playbook, text: str) -> tuple[float, list[str]]:
    """One playbook's score for ``text`` (no OS filter, no vetoes), with the reasons."""
    found = Matcher([book], threshold=0.0).match(text, "", None)
    return found.score, ([found.explanation] if found.playbook else [])


def match(books: Sequence[Playbook], subject: str, body: str, os: str | None) -> Match:
    """The best playbook for a ticket on a device with ``os``, or ``Match(None, ...)`` with the reason."""
    return matcher_for(books).match(subject, body, os)
