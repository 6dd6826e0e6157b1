"""Pick the playbook for a ticket, or none: scored triggers over subject and body, by device OS.

How a ticket is scored against each playbook:

* the text is lower-cased and split into words; ``can't`` becomes ``cant``, ``wi-fi`` and
  ``e-mail`` become ``wifi`` and ``email``; every word is reduced to a light stem (``printing``,
  ``printed`` and ``prints`` are all ``print``), and so is every trigger; in a ticket of another
  language a word is read as the trigger it inflects (German ``Druckers`` as ``drucker``), and the
  words of phrases, negatives and triage and intent terms are read by that same path per language,
  so adding a phrase never changes how its words read anywhere else (:class:`_Reading`);
* each keyword found adds its weight (default 1), once; each phrase found (its words in a row)
  adds twice its weight; a hit in the subject counts half as much again, since the subject
  usually names the main problem;
* a word of five letters or more that is no trigger but one typing slip away from one (a letter
  missing, added, swapped or wrong: ``pasword``, ``outlok``, ``priner``) counts 0.85 of the trigger
  (a terse "Druker geht nicht" still reaches the threshold on its one misspelt trigger); a letter left
  out is the likeliest slip (``printr`` reads as ``printer``, not ``print``); a phrase is read with the
  misspelt word as the trigger it misspells, at the same discount ("printr is offline"); a word of
  five letters with two neighbouring letters swapped (``emial``), and a shorter one only so (``vnp``);
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

import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from mspclaw.playbooks.cleaning import (
    clean_body,
    clean_subject,
    drop_greeting,
    first_sentence,
    mark_drives,
    mark_hosts,
    split_heading,
)
from mspclaw.playbooks.intent import FAULTS, REQUESTS, Intent
from mspclaw.playbooks.language import FUNCTION_WORDS, LANGUAGES, detect, snowball, stemmed_languages
from mspclaw.playbooks.schema import Playbook
from mspclaw.playbooks.tokens import stem, stems, words
from mspclaw.playbooks.triage import BREAK, Terms, Triage, Verdict, breaks, together

__all__ = ["Match", "MatchResult", "Matcher", "match", "matcher_for", "stem", "stems", "words"]

THRESHOLD = 2.5
SUBJECT_BOOST = 1.5
FUZZY_FACTOR = 0.85
PHRASE_FACTOR = 2.0
MIN_CONFIDENCE = 0.4
"""Below this calibrated confidence the ticket gets no playbook (a model or a technician takes it). A
policy: a chosen playbook diagnoses first and asks before it changes anything (``docs/playbooks.md``)."""

MAX_TOKENS = 600
"""Words of a ticket read (subject first); with :mod:`cleaning`'s character bounds, the work per ticket
is bounded whatever arrives."""
FUZZY_MIN, FUZZY_MAX = 5, 20
"""Typo tolerance for words of this many letters: at most ``FUZZY_MAX`` look-ups per word."""
ALIAS_MIN = 4
"""Shorter words (``de``, ``an``, ``pc``) are matched as written, never as another language's inflection."""
UNSURE_WORDS = 40
"""A ticket whose language is unknown is read in every language only up to this many words."""
COMPOUND_MIN, COMPOUND_MAX = 8, 30
"""German and Dutch compounds of this many letters are read by their parts (``Netzwerkdrucker``)."""
KEY_CACHE = 100_000
"""Words whose key (:meth:`Matcher._key`) is remembered, over every language: ticket words repeat."""

PREFERRED: dict[frozenset[str], str] = {
    frozenset({"password_reset", "account_locked"}): "account_locked",
    frozenset({"email", "app_crash"}): "email",
    frozenset({"app_crash", "slow_computer"}): "slow_computer",
    frozenset({"disk_full", "software_install"}): "disk_full",
    frozenset({"mfa_reset", "vpn"}): "mfa_reset",
    frozenset({"app_crash", "software_install"}): "app_crash",
}
"""Close calls between two categories go to the one whose first steps diagnose both: the account
lookup reads both the lock and the password's expiry; the mail-client check sees a hung Outlook
and a mail server that does not answer; the performance check sees a whole PC that hangs and the
one program that takes it down; the disk check sees the lack of space that stops an install; the MFA
check sees the lost or expired token that a VPN sign-in then fails on; the crash reports and pending updates
show a program that freezes and whether an update or a reinstall is what it needs (the install playbook
finds it installed and stops)."""
TRIED = {"password_reset": "account_locked"}
"""A sign-in that failed again and again (:data:`TRIES`) is as likely a lock as a wrong password: a ticket this
playbook wins that says so goes to the pair's :data:`PREFERRED` one, whose first step, the account lookup, reads the
lock and the password's expiry both, however far the scores are apart."""
TRIES = (
    "multiple attempts", "several attempts", "many attempts", "repeated attempts", "a few attempts", "multiple tries",
    "several tries", "many tries", "a few tries", "too many tries", "several times", "multiple times", "many times",
    "a few times", "repeatedly", "tried again and again",
    "mehreren versuchen", "mehrere versuche", "einigen versuchen", "ein paar versuchen", "mehrmals", "mehrfach",
    "wiederholt", "plusieurs tentatives", "plusieurs essais", "plusieurs fois", "a plusieurs reprises",
    "varios intentos", "muchos intentos", "algunos intentos", "varias veces", "muchas veces", "repetidas veces",
    "meerdere pogingen", "een paar pogingen", "meerdere keren", "een paar keer", "meerdere malen",
    "verschillende keren", "herhaaldelijk")
"""Tries said again and again, in en/de/fr/es/nl (accent-folded), read per language as a ticket's words are."""
CONTEXT_ONLY_WORDS = 16
"""A ticket of more words than this whose best playbook scored only on context triggers (``firefox``,
``outlook``) gets no playbook: it had room to name a symptom the playbook treats and named none. A
shorter one ("IE not working") is read as a problem with what it names."""
NEAR_FAULT = 3
"""A fault word this close to a context trigger makes it evidence."""
PLACE_WORDS, PLACE_PHRASES = 3, 2
"""Where the thing is may stand between it and its fault ("the printer in room 214 on the 2nd floor is not
printing", "l'imprimante au 2e étage ne fonctionne plus"): up to this many place phrases right after the context
trigger, each a preposition and at most :data:`PLACE_WORDS` words that are no trigger and no clause word."""
PLACE_PREPOSITIONS = frozenset((
    "at", "in", "on", "near", "im", "am", "an", "auf", "bei", "beim", "vom", "au", "aux", "dans", "chez", "a", "de",
    "du", "des", "en", "del", "al", "op", "bij", "aan", "van", "of"))
"""Prepositions that open a place phrase (accent-folded: French "à" is "a"), in en/de/fr/es/nl; one that is also an
article (Dutch "de", French "des") may be the phrase's first word ("op de tweede verdieping")."""
PLACE_STOPS = frozenset((
    "and", "or", "but", "so", "because", "when", "since", "while", "if", "then", "also", "i", "we", "it", "they",
    "he", "she", "is", "are", "was", "were", "und", "oder", "aber", "weil", "wenn", "dann", "ich", "es", "er", "sie",
    "wir", "ist", "sind", "war", "et", "ou", "mais", "car", "quand", "je", "il", "elle", "nous", "est", "sont", "y",
    "o", "pero", "porque", "cuando", "yo", "esta", "estan", "maar", "omdat", "wanneer", "ik", "wij", "zij", "hij"))
"""Words that end a place phrase: the next clause starts (Dutch "en", "and", is one in a Dutch ticket)."""
_PLACE_STOPS_NL = PLACE_STOPS | {"en"}
JOINED_NAMES = ("wifi", "wlan", "vpn")
"""Triggers users glue to a network's or a client's name in one lower-case word (``guestwifi``, ``officevpn``,
``vpnclient``): such an unknown word is read as the trigger. A longer trigger is no such name: "language" is no "age",
"webmail" no "mail" (a word written with capitals is read by its parts, :data:`_CAMEL`)."""
JOINED_REST = 2
"""Letters the rest of such a word has at least (``mywifi``)."""
_CAMEL = re.compile(r"\b[A-Za-z][a-z]{1,20}[A-Z][A-Za-z]{1,20}\b")
"""A word with a capital inside it (``CompanyWiFi``, ``GuestWLAN``, ``OfficeVPN``, ``MyWifi``); bounded repeats, one
pass. Split at its first inner capital when the part after it is a trigger and the whole word is none (``OpenVPN``,
``AdBlock``, ``SharePoint`` stay as written; so do ``AppData`` and ``HostOutOfDiskSpace``: a trigger that starts a
name, or ends a name of several words, is no name of the thing)."""
REPEAT_SLACK = 16
"""A body's first line this many characters longer than the subject may still repeat it (spaces, quotes): only such a
line is compared with it, so a one-line body of thousands of characters is not read twice."""
CLOSE_CALL = 0.75
"""The runner-up is a close call when it scores at least this share of the best."""

_BREAK = BREAK
"""Between subject and body, so a phrase never spans the two."""


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


@dataclass(frozen=True)
class Match:
    playbook: Playbook | None
    score: float
    explanation: str
    category: str | None = None
    runner_up: str | None = None
    runner_up_score: float = 0.0
    confidence: float = 0.0
    """How likely the chosen playbook is the right one (0..1), calibrated on labelled tickets;
    0 when no playbook is chosen for a must-not-automate reason."""
    language: str | None = None
    triage_reason: str | None = None
    """Set when the must-not-automate layer stopped the ticket (``"a hardware failure"``): no model
    may give it a playbook either."""


MatchResult = Match


Posting = dict[int, float]
"""Book index -> weight of one trigger (keyword stem or phrase) in that book."""

SCALE = 8
"""Scores are added as fixed-point integers (1/8 point) in 12-bit fields of one big integer."""
BITS = 12
CEILING = 250
"""A ticket whose triggers could add up to this many points is scored exactly, book by book (the
packed search keeps each field's top bit free: 250 * 8 < 2 ** 11)."""
HOT = 48
"""A trigger in at least this many playbooks is added as one packed big integer, not book by book."""


def _packed(fields: dict[int, int]) -> int:
    """``{book: value}`` as one integer with ``value`` in the 12-bit field ``book`` (3 hex digits each)."""
    top = max(fields, default=-1)
    digits = "".join(f"{fields.get(book, 0):03x}" for book in range(top, -1, -1))
    return int(digits, 16) if digits else 0


def _pack(posting: Posting, factor: float) -> int:
    return _packed({book: round(weight * factor * SCALE) for book, weight in posting.items()})


def _mask(books: Sequence[int]) -> int:
    """All ones in the field of each book: ``total & ~mask`` zeroes their scores."""
    return _packed(dict.fromkeys(books, 0xFFF))


class _Fields:
    """Constants for searching the 12-bit fields of a big integer without unpacking it."""

    def __init__(self, count: int) -> None:
        self.count = count
        ones = int("001" * count, 16) if count else 0
        self.tops = ones << (BITS - 1)
        self.biased = ones * (1 << (BITS - 1))
        self.steps = [ones << bit for bit in range(BITS - 1)]
        self._at_floor: dict[int, int] = {}
        """Floor -> ``biased`` less the floor in every field (the matcher uses two floors)."""

    def top_two(self, total: int, upper: int, floor: int) -> tuple[int, int, int, int]:
        """Best and second-best (value, index) among fields of at least ``floor``; ``upper`` bounds them.

        Field i of ``total + 2**11 - v`` (in every field at once) has its top bit set exactly
        when field i of ``total`` is at least ``v``. The largest such ``v`` is built bit by bit,
        from the highest bit ``upper`` needs: one subtraction and one ``and`` over the packed
        integer per bit, the same work for 16 playbooks or 10,000. Ties go to the lower index.
        """
        found: list[tuple[int, int]] = []
        if upper < floor:  # no field reaches the floor
            return 0, 0, 0, 0
        at_floor = self._at_floor.get(floor)
        if at_floor is None:
            at_floor = self._at_floor[floor] = self.biased - self.steps[0] * floor
        tops, steps = self.tops, self.steps
        start = total + at_floor
        # the best is at most upper: the search spans floor .. upper, not floor .. floor + upper
        bits = (min(upper, (1 << (BITS - 1)) - 1) - floor).bit_length()
        for _ in range(2):
            if not start & tops:
                break
            shifted, value = start, floor
            for bit in range(bits - 1, -1, -1):
                trial = shifted - steps[bit]
                if trial & tops:
                    shifted, value = trial, value + (1 << bit)
            hits = shifted & tops
            index = ((hits & -hits).bit_length() - 1) // BITS
            found.append((value, index))
            start -= value << (BITS * index)  # the best's field as if it scored 0, for the runner-up
            bits = (value - floor).bit_length()
        found += [(0, 0)] * (2 - len(found))
        return found[0][0], found[0][1], found[1][0], found[1][1]


@dataclass
class _Index:
    books: list[Playbook]
    keywords: dict[str, Posting] = field(default_factory=dict)
    keyword_names: dict[tuple[int, str], str] = field(default_factory=dict)
    phrases: dict[str, dict[tuple[str, ...], Posting]] = field(default_factory=dict)
    phrase_names: dict[tuple[int, tuple[str, ...]], str] = field(default_factory=dict)
    negatives: dict[str, list[int]] = field(default_factory=dict)
    negative_phrases: dict[str, dict[tuple[str, ...], list[int]]] = field(default_factory=dict)
    fuzzy: dict[str, set[str]] = field(default_factory=dict)
    os_excluded: dict[str, list[int]] = field(default_factory=dict)
    packed: dict[tuple[int, float], int] = field(default_factory=dict)
    masks: dict[int, int] = field(default_factory=dict)
    top_weight: dict[int, float] = field(default_factory=dict)
    sets: dict[int, frozenset[int]] = field(default_factory=dict)
    context: set[tuple[int, str]] = field(default_factory=set)
    """(book, keyword stem or tab-joined phrase stems) of the book's context triggers."""
    context_heads: dict[int, set[str]] = field(default_factory=dict)
    """Book -> the first stem of each of its context triggers."""
    phrase_words: dict[tuple[str, ...], set[tuple[str, ...]]] = field(default_factory=dict)
    """A phrase's English stems (its identity in postings and names) -> its words as written: the
    matcher reads those words per language exactly as it reads a ticket's (:class:`_Reading`)."""
    negative_words: dict[tuple[str, ...], set[tuple[str, ...]]] = field(default_factory=dict)


@dataclass
class _Reading:
    """Multi-word terms as a ticket in one language reads them (None: a ticket of unknown language).

    Every word of a phrase, a negative phrase, a triage term or an intent term goes through
    :meth:`Matcher._key` with the ticket's language, the one path a ticket's words take: adding the
    phrase "neu installiert" leaves German "installiert" read as the trigger it inflects (``install``),
    in the phrase and in a ticket alike.
    """

    phrases: dict[str, dict[tuple[str, ...], list[tuple[str, ...]]]]
    """First key -> the phrase's keys -> the phrases' English stems (their identity in postings)."""
    negative_phrases: dict[str, dict[tuple[str, ...], list[tuple[tuple[str, ...], list[int]]]]]
    triage: Triage
    intent: Intent
    phrase_terms: Terms[tuple[tuple[str, ...], list[tuple[str, ...]]]] = field(init=False)
    """:attr:`phrases` by their first two keys: (the phrase's keys, its English stems) per phrase."""
    negative_terms: Terms[list[tuple[tuple[str, ...], list[int]]]] = field(init=False)
    """:attr:`negative_phrases` by their first two keys."""

    def __post_init__(self) -> None:
        self.phrase_terms = Terms((seq, (seq, canons)) for first in self.phrases.values()
                                  for seq, canons in first.items())
        self.negative_terms = Terms((seq, entries) for first in self.negative_phrases.values()
                                    for seq, entries in first.items())


def _build(books: Sequence[Playbook]) -> _Index:
    index = _Index(list(books))
    for i, book in enumerate(books):
        trig = book.triggers
        for word in trig.context:
            key = "\t".join(stems(word))
            index.context.add((i, key))
            index.context_heads.setdefault(i, set()).add(key.split("\t")[0])
        for keyword in trig.keywords:
            key = stem(keyword.lower().replace("'", ""))
            posting = index.keywords.setdefault(key, {})
            if i not in posting:
                posting[i] = trig.weights.get(keyword, 1.0)
                index.keyword_names[(i, key)] = f"'{keyword}'"
        for phrase in trig.phrases:
            seq = tuple(stems(phrase))
            if len(seq) > 1:
                index.phrase_words.setdefault(seq, set()).add(tuple(words(phrase)))
            if len(seq) == 1:
                posting = index.keywords.setdefault(seq[0], {})
                if i not in posting:
                    posting[i] = PHRASE_FACTOR * trig.weights.get(phrase, 1.0)
                    index.keyword_names[(i, seq[0])] = f'"{phrase}"'
            elif seq:
                posting = index.phrases.setdefault(seq[0], {}).setdefault(seq, {})
                if i not in posting:
                    posting[i] = PHRASE_FACTOR * trig.weights.get(phrase, 1.0)
                    index.phrase_names[(i, seq)] = f'"{phrase}"'
        for negative in trig.negative:
            seq = tuple(stems(negative))
            if len(seq) == 1:
                index.negatives.setdefault(seq[0], []).append(i)
            elif seq:
                index.negative_phrases.setdefault(seq[0], {}).setdefault(seq, []).append(i)
                index.negative_words.setdefault(seq, set()).add(tuple(words(negative)))
    for key in index.keywords:
        if len(key) >= 4:
            index.fuzzy.setdefault(key, set()).add(key)
            for variant in _deletions(key):
                index.fuzzy.setdefault(variant, set()).add(key)
    for os_name in ("linux", "macos", "windows"):
        index.os_excluded[os_name] = [i for i, b in enumerate(books) if os_name not in b.os]
    return index


def _swap(a: str, b: str) -> bool:
    """True when ``b`` is ``a`` with two neighbouring letters swapped (``emial``, ``email``)."""
    diff = [i for i in range(min(len(a), len(b))) if a[i] != b[i]]
    return (len(a) == len(b) and len(diff) == 2 and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])


_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keys_near() -> dict[str, frozenset[str]]:
    near: dict[str, set[str]] = {}
    for r, row in enumerate(_ROWS):
        for c, key in enumerate(row):
            # each row starts half a key further right: above are c and c + 1, below c - 1 and c
            spots = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
            near[key] = {_ROWS[r2][c2] for r2, c2 in spots if 0 <= r2 < len(_ROWS) and 0 <= c2 < len(_ROWS[r2])}
    near["y"].add("z")
    near["z"].add("y")
    return {key: frozenset(keys) for key, keys in near.items()}


_KEYS_NEAR = _keys_near()
"""Keys next to each key on a QWERTY keyboard (and ``y``/``z``, swapped on a German one)."""
SLIP_MIN = 7
"""Letters a word has at least before it is read as a slip of a must-not rule's word (:func:`_slip`): shorter ones
are as often other words ("thing" is no "hinge", "front" no "fonts", German "sollen" no "swollen")."""


def _slip(word: str, term: str) -> bool:
    """True when ``word`` is ``term`` typed with one likely slip: a key next to the right one, two neighbouring
    letters swapped, a letter left out or one added (doubled, or next to its neighbour's key), never at the first or
    the last letter, where a word that differs is another word or another inflection ("hacer"/"hacker",
    "suggest"/"suggestie")."""
    if len(word) < SLIP_MIN or word[0] != term[0] or word[-1] != term[-1] or not _close(word, term):
        return False
    if len(word) == len(term):
        diff = [i for i in range(len(word)) if word[i] != term[i]]
        return len(diff) != 1 or term[diff[0]] in _KEYS_NEAR.get(word[diff[0]], frozenset())
    if len(word) > len(term):  # a letter added: the one at ``at`` is the extra
        at = next((i for i in range(len(term)) if word[i] != term[i]), len(term))
        added = word[at]
        return any(added == other or added in _KEYS_NEAR.get(other, frozenset())
                   for other in (word[at - 1:at], word[at + 1:at + 2]) if other)
    return True  # a letter left out inside the word


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


class _Lexicon(NamedTuple):
    """What :class:`Matcher` derives from its playbooks' trigger texts and the default triage and intent lists
    (most of a build): read-only once built, so matchers of the same texts share one."""

    triage: Triage
    intent: Intent
    heads: set[str]
    spans: dict[str, dict[str, int]]
    anchors: set[str]
    vocab: set[str]
    aliases: dict[str, dict[str, str]]
    written: dict[str, dict[str, str]]
    readings: dict[str | None, _Reading]
    longest: int


LexiconKey = tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...]
"""Each playbook's keywords, phrases and negatives, in order: all of a lexicon that depends on the playbooks
(their weights, context triggers and the rest are read by :func:`_build`, per matcher)."""
LEXICONS = 4
"""Lexicons kept per process (the library, and a few drafts or test libraries beside it)."""
_LEXICONS: dict[LexiconKey, _Lexicon] = {}
_LEXICONS_LOCK = threading.Lock()


def _lexicon_key(books: Sequence[Playbook]) -> LexiconKey:
    return tuple((tuple(b.triggers.keywords), tuple(b.triggers.phrases), tuple(b.triggers.negative))
                 for b in books)


def _lexicon_cached(key: LexiconKey | None) -> _Lexicon | None:
    if key is None:
        return None
    with _LEXICONS_LOCK:
        found = _LEXICONS.pop(key, None)
        if found is not None:
            _LEXICONS[key] = found  # most recently used last
        return found


def _lexicon_keep(key: LexiconKey, lexicon: _Lexicon) -> None:
    with _LEXICONS_LOCK:
        _LEXICONS[key] = lexicon
        while len(_LEXICONS) > LEXICONS:
            del _LEXICONS[next(iter(_LEXICONS))]


class Matcher:
    """An index over a list of playbooks; :meth:`match` is cheap however many there are.

    Scores are kept in one big integer of 16-bit fixed-point fields, one per playbook. A trigger
    found in many playbooks (``printer`` in 600 client variants of the printer playbook) is
    added as one precomputed integer holding its weight for every playbook at once, negatives
    are masks, and the best two are found by a binary search over the packed integer; so the
    cost of a match grows with the words of the ticket, hardly with the number of playbooks.
    """

    def __init__(self, books: Sequence[Playbook], threshold: float = THRESHOLD,
                 min_confidence: float = MIN_CONFIDENCE, triage: Triage | None = None,
                 intent: Intent | None = None) -> None:
        self.books = list(books)
        self.threshold = threshold
        self.min_confidence = min_confidence
        self._index = _build(self.books)
        self._fields = _Fields(len(self.books))
        self._typos: dict[str, str | None] = {}
        self._respelt: dict[tuple[str | None, bool], tuple[dict[str, set[tuple[str, str]]], dict[str, str | None]]] = {}
        """Per language and reading (the must-not rules' words, or the one-word fault and request terms), the words by
        their one-letter deletions, and the misspellings read so far (:meth:`_misspelt`)."""
        self._keys: dict[str | None, dict[str, str]] = {lang: {} for lang in (None, *LANGUAGES)}
        """Per language, a word -> its key (:meth:`_key`), up to :data:`KEY_CACHE` words in all."""
        self._cached_keys = 0
        self._tries: dict[str | None, Terms[bool]] = {}
        self._by_category: dict[str, list[int]] = {}
        for at, book in enumerate(self.books):
            self._by_category.setdefault(book.category, []).append(at)
        # the default triage and intent lists read against the same trigger texts give the same lexicon: built
        # once per process (every server start and registry reload builds a matcher for the same library)
        shared_key = _lexicon_key(self.books) if triage is None and intent is None else None
        shared = _lexicon_cached(shared_key)
        if shared is not None:
            (self.triage, self.intent, self._heads, self._spans, self._anchors, self._vocab, self._aliases,
             self._written, self._readings, self._longest) = shared
            return
        self.triage = triage or Triage()
        self.intent = intent or Intent()
        self._heads = {key for key in self._index.keywords if len(key) >= 5}
        self._spans = {}
        """Per language, Snowball stem -> letters of the longest written word with that stem."""
        self._anchors, self._vocab, self._aliases, self._written = self._vocabulary()
        term_words: dict[str, list[str]] = {}
        self._readings = {lang: self._reading(lang, term_words) for lang in (None, *LANGUAGES)}
        self._longest = max((len(seq) for reading in self._readings.values() for first in reading.phrases.values()
                             for seq in first), default=1)
        """Words of the longest phrase: how far back from a typo a phrase that holds it may start."""
        if shared_key is not None:
            _lexicon_keep(shared_key, _Lexicon(self.triage, self.intent, self._heads, self._spans, self._anchors,
                                               self._vocab, self._aliases, self._written, self._readings,
                                               self._longest))

    def _vocabulary(self) -> tuple[set[str], set[str], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """The anchors (stems of one-word triggers, negatives and triage and intent terms: a ticket's
        word with such a stem is read as written), every written word's stem, per other language a
        Snowball stem -> the key a word with that stem is read as, and per other language the stem of
        each other written word -> its key (that word as written: the anchor it inflects, else itself).

        A German ticket's ``Druckers`` has the Snowball stem ``druck``, which is also the stem of
        the trigger ``drucker``: the ticket's word is read as that trigger, whatever its ending. A
        word that is only part of a longer term (``installiert`` in "neu installiert") is no anchor:
        it is read as the trigger it inflects, like the same word in a ticket, so adding a phrase
        never changes how its words are read elsewhere.
        """
        texts: dict[str, None] = {}
        for book in self.books:
            trig = book.triggers
            texts.update(dict.fromkeys((*trig.keywords, *trig.phrases, *trig.negative)))
        terms = (*self.triage.terms(), *self.intent.terms())
        texts.update(dict.fromkeys(terms))
        raw = dict.fromkeys(w for text in texts for w in words(text))
        vocab = {stem(w) for w in raw}
        anchors = set(self._index.keywords) | set(self._index.negatives)
        anchors.update(seq[0] for term in terms for seq in (stems(term),) if len(seq) == 1)
        aliases: dict[str, dict[str, str]] = {}
        written: dict[str, dict[str, str]] = {}
        for lang in stemmed_languages():
            table = aliases[lang] = {}
            spans = self._spans[lang] = {}
            for word in raw:
                if len(word) >= ALIAS_MIN and word.isalpha() and stem(word) in anchors:
                    snow = snowball(lang, word)
                    table.setdefault(snow, stem(word))
                    spans[snow] = max(spans.get(snow, 0), len(word))
            # the other written words, read against the anchors as a ticket's word would be; a
            # ticket's word with the same stem reads as they do, one with only the same Snowball
            # stem as the first of them
            known = written[lang] = {}
            rest: dict[str, tuple[str, int]] = {}
            for word in raw:
                own = stem(word)
                if own not in anchors and own not in known:
                    known[own] = self._inflected(word, lang, aliases) or own
                    if len(word) >= ALIAS_MIN and word.isalpha():
                        rest.setdefault(snowball(lang, word), (known[own], len(word)))
            for snow, (value, span) in rest.items():
                table.setdefault(snow, value)
                spans[snow] = max(spans.get(snow, 0), span)
        vocab.update(value for table in aliases.values() for value in table.values())
        return anchors, vocab, aliases, written

    def _inflected(self, word: str, lang: str | None, aliases: dict[str, dict[str, str]]) -> str | None:
        """The key ``word`` inflects in ``lang`` (every language when None), or the head or first part of
        a compound; None when it is neither."""
        # German "Ton" is no inflection of "toner": short words are read as written
        langs: tuple[str, ...] = () if len(word) < ALIAS_MIN or word in FUNCTION_WORDS else (
            (lang,) if lang is not None else tuple(stemmed_languages()))
        for each in langs:
            snow = snowball(each, word)
            alias = aliases.get(each, {}).get(snow)
            # a whole word Snowball leaves as it is, and a written word two or more letters longer with
            # the same stem, are two words (German "mehr" and "mehrere", Dutch "naam" and "namens", "meer"
            # and "meerdere"), not one word's inflections ("installiere" and "installieren")
            if alias is not None and not (snow == word and self._spans[each].get(snow, 0) >= len(word) + 2):
                return alias
        if COMPOUND_MIN <= len(word) <= COMPOUND_MAX and lang in (None, "de", "nl"):
            return self._compound(word)
        return None

    def _key(self, word: str, lang: str | None) -> str:
        """The vocabulary stem a word stands for, in a ticket or in a multi-word term alike: its own
        English stem when that is an anchor (or the ticket is English), else the trigger it inflects in
        the ticket's language (every language when unknown), else the head or the first part of a
        compound, else its English stem."""
        keys = self._keys.get(lang)
        if keys is not None:
            cached = keys.get(word)
            if cached is not None:
                return cached
        own = stem(word)
        if lang == "en" or own in self._anchors:
            found = own
        else:
            found = self._written_as(own, lang) or self._inflected(word, lang, self._aliases) or own
        if found == own and own not in self._vocab and word.isalpha():
            found = self._joined(word) or own
        if keys is not None and self._cached_keys < KEY_CACHE:
            keys[word] = found
            self._cached_keys += 1
        return found

    def _written_as(self, own: str, lang: str | None) -> str | None:
        """The key of a written word with this English stem, in ``lang`` (unknown: the first language
        that reads it as another word, else itself)."""
        if lang is not None:
            return self._written[lang].get(own) if lang in self._written else None
        first = None
        for each in stemmed_languages():
            key = self._written[each].get(own)
            if key is None:
                return None
            if key != own:
                return key
            first = key
        return first

    def _reader(self, lang: str | None, term_words: dict[str, list[str]]) -> Callable[[str], list[str]]:
        """A term's keys in ``lang``; ``term_words`` keeps each term's words for the other languages' readings."""
        if lang == "en":
            return stems

        def read(text: str) -> list[str]:
            split = term_words.get(text)
            if split is None:
                split = term_words[text] = words(text)
            return [self._key(word, lang) for word in split]
        return read

    def _reading(self, lang: str | None, term_words: dict[str, list[str]]) -> _Reading:
        """The multi-word terms keyed as a ticket in ``lang`` reads their words."""
        read = self._reader(lang, term_words)
        phrases: dict[str, dict[tuple[str, ...], list[tuple[str, ...]]]] = {}
        for canon, spelt in self._index.phrase_words.items():
            for written in spelt:
                seq = tuple(self._key(word, lang) for word in written) if lang != "en" else canon
                found = phrases.setdefault(seq[0], {}).setdefault(seq, [])
                if canon not in found:
                    found.append(canon)
        negative: dict[str, dict[tuple[str, ...], list[tuple[tuple[str, ...], list[int]]]]] = {}
        for canon, spelt in self._index.negative_words.items():
            books = self._index.negative_phrases[canon[0]][canon]
            for written in spelt:
                seq = tuple(self._key(word, lang) for word in written) if lang != "en" else canon
                entries = negative.setdefault(seq[0], {}).setdefault(seq, [])
                if all(c != canon for c, _ in entries):
                    entries.append((canon, books))
        if lang == "en":
            return _Reading(phrases, negative, self.triage, self.intent)
        return _Reading(phrases, negative, self.triage.reading(read), self.intent.reading(read))

    def warm(self) -> None:
        """Build now what is otherwise built at the first ticket of each language: the indexes of misspelt rule and
        intent words (about 0.1 s each, a cost of the rules, not of any ticket)."""
        for lang in (None, "en", *stemmed_languages()):
            for rules in (True, False):
                self._misspelt([], lang, rules)

    def triage_for(self, lang: str | None) -> Triage:
        """The must-not-automate rules as a ticket in ``lang`` (from :meth:`tokens`) is read."""
        return self._readings[lang if lang in self._readings else None].triage

    def intent_for(self, lang: str | None) -> Intent:
        """The fault/request/question lists as a ticket in ``lang`` (from :meth:`tokens`) is read."""
        return self._readings[lang if lang in self._readings else None].intent

    def _compound(self, word: str) -> str | None:
        """``netzwerkdrucker`` -> ``drucker``, ``passwortanderung`` -> ``passwort``: longest known part."""
        for cut in range(1, len(word) - 4):
            if word[cut:] in self._heads:
                return word[cut:]
        for cut in range(len(word) - 1, 4, -1):
            if word[:cut] in self._heads:
                return word[:cut]
        return None

    def tokens(self, subject: str, body: str) -> tuple[list[str], int, str | None]:
        """The ticket's stemmed words (subject, a break, body; at most :data:`MAX_TOKENS`), how many
        are the subject's, and the language detected."""
        subject_words = words(mark_drives(mark_hosts(self._unjoin(clean_subject(subject)))))[:MAX_TOKENS // 4]
        cleaned = drop_greeting(clean_body(body))
        head, _, tail = cleaned.lstrip().partition("\n")
        if (subject_words and tail.strip() and len(head.strip()) <= len(subject) + REPEAT_SLACK
                and words(mark_drives(mark_hosts(self._unjoin(head))))[:MAX_TOKENS // 4] == subject_words):
            # the subject again above the user's text (a forwarded mail's "Subject:" line): read once; a body that
            # is only the subject again is left as it was
            cleaned = tail
        title, rest = split_heading(self._unjoin(drop_greeting(cleaned)))
        rest = drop_greeting(rest) if title else rest  # a greeting under a title line ("Outlook" / "Hi all, ...")
        title_words = words(mark_drives(mark_hosts(title)))[:MAX_TOKENS // 4] if title else []
        if not subject_words and not title_words:  # no subject and no title line: the first sentence is one
            title, rest = first_sentence(rest)
            title_words = words(mark_drives(mark_hosts(title)))[:MAX_TOKENS // 4] if title else []
        if not subject_words:  # a ticket without a subject: its body's title line is one
            subject_words, title_words = title_words, []
        body_words = words(mark_drives(mark_hosts(rest)))[:MAX_TOKENS - len(subject_words) - len(title_words)]
        lang = detect(subject_words + title_words + body_words)
        if lang is None and len(subject_words) + len(title_words) + len(body_words) > UNSURE_WORDS:
            lang = "en"  # many words and no function words of any language: a list of names, a log, noise
        known = self._keys.get(lang, {})
        subject_keys = [known.get(w) or self._key(w, lang) for w in subject_words]
        # the body's title is a segment of its own: no phrase or near pair joins its last word to the next line's
        title_keys = [*[known.get(w) or self._key(w, lang) for w in title_words], _BREAK] if title_words else []
        return ([*subject_keys, _BREAK, *title_keys, *[known.get(w) or self._key(w, lang) for w in body_words]],
                len(subject_keys), lang)

    def _unjoin(self, text: str) -> str:
        """``CompanyWiFi`` -> ``Company WiFi``, ``OfficeVPN`` -> ``Office VPN``: a word with a capital inside it is
        two where a trigger starts or ends at that capital, unless the whole word is in the vocabulary."""
        return _CAMEL.sub(self._camel, text) if _CAMEL.search(text) else text

    def _camel(self, found: re.Match[str]) -> str:
        written = found.group(0)
        lower = written.lower()
        if stem(lower) in self._vocab:
            return written
        # the name's own word first, then the trigger: no capital inside the head but its first letter
        cut = next(at for at in range(1, len(written)) if written[at].isupper())
        if len(written) - cut >= 3 and stem(lower[cut:]) in self._index.keywords:
            return f"{written[:cut]} {written[cut:]}"
        return written

    @staticmethod
    def _joined(word: str) -> str | None:
        """The network trigger an unknown lower-case word ends or starts with (``guestwlan`` -> ``wlan``)."""
        for name in JOINED_NAMES:
            if len(word) >= len(name) + JOINED_REST and (word.endswith(name) or word.startswith(name)):
                return name
        return None

    def _misspelt(self, tokens: list[str], lang: str | None, rules: bool) -> list[str]:
        """The ticket's words with each misspelt term word read as that word: with ``rules``, a must-not rule's
        words (``phising`` -> ``phishing``, ``malwware`` -> ``malware``) and triggers' (``intrenet`` -> ``internet``,
        as scoring reads them); else the one-word fault and request terms (``impossble`` -> ``impossible``,
        ``Bifte`` -> ``bitte``). Without a dictionary a word one letter from a term is as often another word
        ("today", Spanish "toda"): the rules' reading only adds a veto to the ticket as written
        (:meth:`_triaged`), the intent's only reads a ticket that says no fault or request as written. A word of
        :data:`FUZZY_MIN` letters or more, in no trigger's or term's vocabulary, one edit from a term word of as
        many letters or more."""
        entry = self._respelt.get((lang, rules))
        if entry is None:
            texts = ((w for rule in self.triage.rules for term in (*rule.terms, *rule.near, *rule.then)
                      for w in words(term)) if rules else
                     (term for term in (*FAULTS, *REQUESTS) if " " not in term))
            index: dict[str, set[tuple[str, str]]] = {}
            for term in texts:
                if len(term) >= FUZZY_MIN and term.isalpha():
                    key = self._key(term, lang)
                    for form in {term, stem(term)}:  # a ticket's word is its stem: "impossble" is "impossbl"
                        for variant in (form, *_deletions(form)):
                            index.setdefault(variant, set()).add((form, key))
            entry = self._respelt[(lang, rules)] = (index, {})
        index, seen = entry
        out: list[str] | None = None
        vocab, keywords = self._vocab, self._index.keywords
        for pos, token in enumerate(tokens):
            if len(token) < FUZZY_MIN or len(token) > FUZZY_MAX or token in vocab or token in keywords:
                continue
            near = seen.get(token, "")
            if near == "":
                near = None
                if token.isalpha():
                    typo = self._near(token)
                    if typo is not None:  # a trigger's typo: scoring reads it so, and so do the rules
                        near = typo if rules else None
                    else:
                        candidates = set(index.get(token, ()))
                        for variant in _deletions(token):
                            candidates |= index.get(variant, set())
                        fits = _slip if rules else _close
                        close = sorted((term, key) for term, key in candidates if fits(token, term))
                        near = close[0][1] if close else None
                if len(seen) < KEY_CACHE:
                    seen[token] = near
            if near is not None:
                if out is None:
                    out = list(tokens)
                out[pos] = near
        return out if out is not None else tokens

    def _triaged(self, tokens: list[str], lang: str | None) -> Verdict | None:
        """The must-not rule the ticket meets as written, else as read with its misspelt words (:meth:`_misspelt`):
        a typo in "phishing" or "outage" says what the word says; the second reading only ever adds a veto."""
        triage = self.triage_for(lang)
        verdict = triage.check(tokens)
        if verdict is None:
            spelled = self._misspelt(tokens, lang, rules=True)
            if spelled is not tokens:
                verdict = triage.check(spelled)
        return verdict

    def _near(self, token: str) -> str | None:
        """The trigger a word not in the index is a typo of, if any (cached: ticket words repeat)."""
        cached = self._typos.get(token, "")
        if cached != "":
            return cached
        if len(token) > FUZZY_MAX:
            return None
        near = self._fuzzy(token) if len(token) >= FUZZY_MIN else self._swapped(token)
        if len(self._typos) < 100_000:
            self._typos[token] = near
        return near

    def _fuzzy(self, token: str) -> str | None:
        fuzzy = self._index.fuzzy
        candidates = set(fuzzy.get(token, ()))
        for variant in _deletions(token):
            candidates |= fuzzy.get(variant, set())
        # a letter left out is the commonest slip: "printr" is "printer" before it is "print"
        best = sorted((c for c in candidates if _close(token, c) and (len(c) >= 6 or len(token) >= 6 or
                                                                      len(c) != len(token) or _swap(token, c))),
                      key=lambda c: (len(c) <= len(token), len(c) < len(token), c))
        return best[0] if best else None

    def _swapped(self, token: str) -> str | None:
        """Short words tolerate only two neighbouring letters swapped (``vnp`` -> ``vpn``)."""
        for i in range(len(token) - 1):
            candidate = token[:i] + token[i + 1] + token[i] + token[i + 2:]
            if candidate != token and candidate in self._index.keywords:
                return candidate
        return None

    def _hits(self, tokens: list[str], subject_len: int, lang: str | None = None
              ) -> tuple[dict[tuple[str, str], float], list[list[int]], list[str]]:
        """Triggers found: (kind, key) -> factor (subject boost, typo), books ruled out, their reasons."""
        index = self._index
        reading = self._readings[lang if lang in self._readings else None]
        in_subject = set(tokens[:subject_len])
        found: dict[tuple[str, str], float] = {}
        ruled: list[list[int]] = []
        ruled_by: list[str] = []
        # the ticket's words with each typo read as the trigger it misspells: phrases are matched on these
        # ("printr offline" is the phrase "printer offline", at the typo's discount)
        read = list(tokens)
        typos: set[int] = set()
        phrase_terms, negative_terms = reading.phrase_terms, reading.negative_terms
        phrase_starts, negative_starts = phrase_terms.starts, negative_terms.starts
        negatives, keywords, vocab, near_cache = index.negatives, index.keywords, self._vocab, self._typos
        for pos, token in enumerate(tokens):
            if token == _BREAK:
                continue
            negative = negatives.get(token)
            if negative:
                ruled.append(negative)
                ruled_by.append(token)
            if token in negative_starts:
                for entries in negative_terms.at(tokens, pos):
                    for canon, books in entries:
                        ruled.append(books)
                        ruled_by.append(" ".join(canon))
            if token in keywords:
                factor = SUBJECT_BOOST if token in in_subject else 1.0
                key = ("k", token)
                if found.get(key, 0.0) < factor:
                    found[key] = factor
            elif len(token) >= 3 and token not in vocab and not token.isdigit():
                # a word of the vocabulary (German ``startet``) is no typo of another (``starter``)
                near = near_cache.get(token, "")
                if near == "":
                    near = self._near(token)
                if near is not None:
                    read[pos] = near
                    typos.add(pos)
                    factor = FUZZY_FACTOR * (SUBJECT_BOOST if token in in_subject else 1.0)
                    key = ("k", near)
                    if found.get(key, 0.0) < factor:
                        found[key] = factor
                        found[("typo", f"{token}\t{near}")] = factor
            if token not in phrase_starts:
                continue
            for _seq, canons in phrase_terms.at(tokens, pos):
                factor = SUBJECT_BOOST if pos < subject_len else 1.0
                for canon in canons:
                    key = ("p", "\t".join(canon))
                    if found.get(key, 0.0) < factor:
                        found[key] = factor
        if typos:
            starts = sorted({start for at in typos for start in range(max(0, at - self._longest + 1), at + 1)})
            for pos in starts:
                self._phrases_at(pos, read, reading, subject_len, found, typos)
        return found, ruled, ruled_by

    @staticmethod
    def _phrases_at(pos: int, read: list[str], reading: _Reading, subject_len: int,
                    found: dict[tuple[str, str], float], typos: set[int]) -> None:
        """The phrases starting at ``pos`` that hold a misspelt word (``typos``), at the typo's discount; the
        others were read with the ticket's words."""
        for seq, canons in reading.phrase_terms.at(read, pos):
            if typos.intersection(range(pos, pos + len(seq))):
                factor = FUZZY_FACTOR * (SUBJECT_BOOST if pos < subject_len else 1.0)
                for canon in canons:
                    key = ("p", "\t".join(canon))
                    if found.get(key, 0.0) < factor:
                        found[key] = factor

    def _posting(self, kind: str, key: str) -> Posting:
        if kind == "k":
            return self._index.keywords[key]
        seq = tuple(key.split("\t"))
        return self._index.phrases[seq[0]][seq]

    def _scores(self, found: dict[tuple[str, str], float], ruled: list[list[int]]
                ) -> tuple[int, int, dict[int, int]]:
        """Scores from common triggers packed in one integer, a bound on them, and the few other points.

        A trigger of fewer than :data:`HOT` playbooks is not packed: its points go to a small
        ``{book: points}`` that :meth:`match` adds to the packed scores of just those books.
        """
        index = self._index
        total = 0
        upper = 0
        packed_upper = 0
        rare: list[tuple[Posting, float]] = []
        for (kind, key), factor in found.items():
            if kind == "typo":
                continue
            posting = self._posting(kind, key)
            top = index.top_weight.get(id(posting))
            if top is None:
                top = index.top_weight[id(posting)] = max(posting.values())
            points = round(top * factor * SCALE)
            upper += points
            if len(posting) >= HOT:
                packed_upper += points
                cache_key = (id(posting), factor)
                packed = index.packed.get(cache_key)
                if packed is None:
                    packed = index.packed[cache_key] = _pack(posting, factor)
                total += packed
            else:
                rare.append((posting, factor))
        if upper >= CEILING * SCALE:
            raise OverflowError("more points than a packed field holds")
        sparse: dict[int, int] = {}
        for posting, factor in rare:
            for book, weight in posting.items():
                sparse[book] = sparse.get(book, 0) + round(weight * factor * SCALE)
        if sparse:
            for books in ruled:
                out = self._as_set(books)
                sparse = {book: points for book, points in sparse.items() if book not in out}
        for books in ruled:
            if total:
                mask = index.masks.get(id(books))
                if mask is None:
                    mask = index.masks[id(books)] = ~_mask(books)
                total &= mask
        return total, packed_upper, sparse

    def _with_sparse(self, total: int, sparse: dict[int, int], best: int, winner: int, second: int,
                     runner_at: int) -> tuple[int, int, int, int]:
        """The best two once the unpacked points are added: only the packed best two and the books
        with unpacked points can be first or second."""
        packed: dict[int, int] = {}
        if best:
            packed[winner] = best
        if second:
            packed[runner_at] = second
        raw = b""
        for book in sparse:
            if book not in packed:
                if not raw:
                    raw = total.to_bytes((BITS * self._fields.count + 7) // 8 + 2, "little")
                at = BITS * book
                packed[book] = (int.from_bytes(raw[at // 8:at // 8 + 2], "little") >> (at % 8)) & 0xFFF
        ranked = sorted((-(packed.get(b, 0) + sparse.get(b, 0)), b) for b in packed.keys() | sparse.keys())
        ranked = [r for r in ranked if -r[0] >= SCALE][:2] + [(0, 0)] * 2
        return -ranked[0][0], ranked[0][1], -ranked[1][0], ranked[1][1]

    def _as_set(self, books: list[int]) -> frozenset[int]:
        found = self._index.sets.get(id(books))
        if found is None:
            found = self._index.sets[id(books)] = frozenset(books)
        return found

    def _exact(self, found: dict[tuple[str, str], float], ruled: list[list[int]]) -> dict[int, float]:
        """Scores in points, book by book: for the rare ticket whose total could overflow a field."""
        totals: dict[int, float] = {}
        for (kind, key), factor in found.items():
            if kind != "typo":
                for book, weight in self._posting(kind, key).items():
                    totals[book] = totals.get(book, 0.0) + weight * factor
        for books in ruled:
            for book in books:
                totals.pop(book, None)
        return totals

    def _points(self, book: int, found: dict[tuple[str, str], float]) -> float:
        return sum(posting[book] * factor for (kind, key), factor in found.items() if kind != "typo"
                   for posting in (self._posting(kind, key),) if book in posting)

    def _names_symptom(self, book: int, found: dict[tuple[str, str], float]) -> bool:
        """True when one of the book's triggers found is not a context trigger: it names a symptom or a need."""
        context = self._index.context
        return any(kind != "typo" and book in self._posting(kind, key) and (book, key) not in context
                   for (kind, key) in found)

    def _evidence(self, book: int, found: dict[tuple[str, str], float], tokens: list[str],
                  lang: str | None = None) -> bool:
        """True when one of the book's triggers found is not a context trigger (it names a symptom or a need),
        or a fault word follows one within :data:`NEAR_FAULT` words ("the VPN doesn't connect"), or the subject's
        own trouble comes as close before one ("having issues with the VPN"): in a body it is as often a
        question's opening ("I'm having trouble with my accounts ... how do I filter"), unless it is trouble
        getting the thing to work ("having issues getting my VPN connection to work")."""
        if self._names_symptom(book, found):
            return True
        heads = self._index.context_heads.get(book)
        if not heads:
            return False
        faults = self.intent_for(lang).faults_at(tokens)
        cuts = breaks(tokens)
        split = cuts[0] if cuts else len(tokens)
        # the few words before each fault word, not every pair of words
        if any(tokens[pos] in heads and together(pos, at, cuts)
               for at in faults for pos in range(max(0, at - NEAR_FAULT), at)):
            return True
        if faults and self._placed_fault(heads, faults, tokens, cuts, lang):
            return True
        troubles = self.intent_for(lang).troubles_at(tokens, split)
        return any(tokens[pos] in heads and together(at, pos, cuts) for at in troubles
                   for pos in range(at + 1, min(len(tokens), at + 1 + NEAR_FAULT)))

    def _placed_fault(self, heads: set[str], faults: list[int], tokens: list[str], cuts: tuple[int, ...],
                      lang: str | None) -> bool:
        """True when a fault word follows a context trigger within :data:`NEAR_FAULT` words of the place phrases
        right after it ("Bishop printer at St Elmo is not working"), with no other trigger in between. One pass
        over the ticket, a bounded walk per context trigger."""
        keywords = self._index.keywords
        stops = _PLACE_STOPS_NL if lang == "nl" else PLACE_STOPS
        at_fault = set(faults)
        length = len(tokens)
        for pos, token in enumerate(tokens):
            if token not in heads:
                continue
            end, step = pos, pos + 1
            for _ in range(PLACE_PHRASES):
                if step >= length or tokens[step] not in PLACE_PREPOSITIONS:
                    break
                step += 1
                taken = 0
                while (taken < PLACE_WORDS and step < length and step not in at_fault
                       and (word := tokens[step]) != _BREAK and not (taken and word in PLACE_PREPOSITIONS)
                       and word not in stops and word not in keywords):
                    step += 1
                    taken += 1
                if not taken:
                    break
                end = step - 1
            if end == pos:
                continue
            for at in faults:
                if (end < at <= end + NEAR_FAULT and together(pos, at, cuts)
                        and not any(word in keywords for word in tokens[end + 1:at])):
                    return True
        return False

    def _tries_for(self, lang: str | None) -> Terms[bool]:
        terms = self._tries.get(lang)
        if terms is None:
            terms = self._tries[lang] = Terms((tuple(self._key(word, lang) for word in words(text)), True)
                                              for text in TRIES)
        return terms

    def _after_tries(self, winner: int, tokens: list[str], lang: str | None, found: dict[tuple[str, str], float],
                     ruled: list[list[int]]) -> int | None:
        """The book of :data:`TRIED`'s other category that takes a ticket ``winner`` won and that tells of tries
        again and again; None when there is none, or the ticket says no such thing."""
        other = TRIED.get(self.books[winner].category)
        books = self._by_category.get(other) if other is not None else None
        if not books:
            return None
        tries = self._tries_for(lang)
        starts = tries.starts
        if not any(token in starts and tries.at(tokens, pos) for pos, token in enumerate(tokens)):
            return None
        out = [self._as_set(listed) for listed in ruled]
        open_books = [book for book in books if not any(book in each for each in out)]
        return max(open_books, key=lambda book: (self._points(book, found), -book)) if open_books else None

    def _explain(self, book: int, found: dict[tuple[str, str], float]) -> list[str]:
        index = self._index
        reasons = []
        typos = {near: token for (kind, key) in found if kind == "typo" for token, near in [key.split("\t")]}
        for (kind, key), factor in found.items():
            if kind == "typo":
                continue
            posting = self._posting(kind, key)
            if book in posting:
                if kind == "k":
                    label = index.keyword_names[(book, key)]
                    if key in typos and factor in (FUZZY_FACTOR, FUZZY_FACTOR * SUBJECT_BOOST):
                        label = f"~{typos[key]}≈{label}"
                else:
                    label = index.phrase_names[(book, tuple(key.split("\t")))]
                reasons.append(f"{label} +{round(posting[book] * factor, 2):g}")
        return reasons

    def match(self, subject: str, body: str, os: str | None = None) -> Match:
        """The playbook for a ticket on a device with ``os`` (None: any OS), or none and why."""
        tokens, subject_len, lang = self.tokens(subject, body)
        verdict = self._triaged(tokens, lang)
        if verdict is not None:
            return Match(None, 0.0, verdict.explain(), language=lang, triage_reason=verdict.reason)
        ask = self.intent_for(lang).read(tokens)
        if ask.kind == "nothing":  # no fault and no request said: perhaps misspelt ("impossble", "Bifte")
            spelled = self._misspelt(tokens, lang, rules=False)
            if spelled is not tokens:
                ask = self.intent_for(lang).read(spelled)
        if not ask.actionable:
            return Match(None, 0.0, ask.explain(), language=lang)
        found, ruled, ruled_by = self._hits(tokens, subject_len, lang)
        if os is not None and self._index.os_excluded.get(os):
            ruled.append(self._index.os_excluded[os])
        best_points, winner, second_points, runner_at = self._best_two(found, ruled)
        if best_points < self.threshold:
            top = f" (best: {self.books[winner].id} at {best_points:g})" if best_points else ""
            extra = f"; ruled out by {', '.join(repr(t) for t in dict.fromkeys(ruled_by))}" if ruled_by else ""
            return Match(None, round(best_points, 2), f"no playbook scored {self.threshold:g} or more{top}{extra}",
                         runner_up_score=round(second_points, 2), language=lang)
        chosen = self.books[winner]
        runner = self.books[runner_at] if second_points else None
        shared = second_points if runner is not None else 0.0
        note = ""
        if runner is not None and second_points >= CLOSE_CALL * best_points:
            preferred = PREFERRED.get(frozenset({chosen.category, runner.category}))
            if preferred is not None and preferred != chosen.category:
                note = f"; close call with {chosen.id}, {runner.id} checks both first"
                chosen, runner, winner = runner, chosen, runner_at
            if preferred is not None:
                shared = 0.0  # the chosen playbook's first steps diagnose both
        tried, scored = False, winner
        if not note:
            other = self._after_tries(winner, tokens, lang, found, ruled)
            if other is not None:
                note = f"; tried again and again: {self.books[other].id} checks the lock and the password first"
                chosen, runner, winner, tried, shared = self.books[other], chosen, other, True, 0.0
        if len(tokens) - tokens.count(_BREAK) > CONTEXT_ONLY_WORDS and not self._evidence(scored, found, tokens, lang):
            return Match(None, round(best_points, 2), f"{chosen.id} scored {best_points:g} only on words that "
                         f"name what it is about ({', '.join(self._explain(scored, found))}), not on anything "
                         "it treats: a person reads it, no playbook", language=lang)
        value = self._points(winner, found) if note and not tried else best_points
        sure = confidence(value, shared)
        tail = f"; next best: {runner.id} at {second_points if not note else best_points:g}" if runner else ""
        reasons = f"{chosen.id} scored {value:g}: " + ", ".join(self._explain(scored, found)) + tail + note
        if sure < self.min_confidence:
            return Match(None, round(value, 2), f"not confident enough ({sure:.2f} < {self.min_confidence:g}) "
                         f"to choose between playbooks: {reasons}", runner_up=runner.id if runner else None,
                         runner_up_score=round(shared, 2), confidence=round(sure, 3), language=lang)
        return Match(chosen, round(value, 2), reasons, category=chosen.category,
                     runner_up=runner.id if runner else None, runner_up_score=round(shared, 2),
                     confidence=round(sure, 3), language=lang)

    def _best_two(self, found: dict[tuple[str, str], float], ruled: list[list[int]]
                  ) -> tuple[float, int, float, int]:
        """Points of the best and second-best playbooks (0 when none) and their indexes."""
        try:
            total, upper, sparse = self._scores(found, ruled)
            # first among the playbooks at the threshold or above (a runner-up too); below it, only
            # to name the best in the explanation
            floor = round(self.threshold * SCALE)
            best, winner, second, runner_at = self._fields.top_two(total, upper, floor)
            if not best:  # every field is below the floor: a tighter bound, fewer bits to search
                best, winner, second, runner_at = self._fields.top_two(total, min(upper, floor - 1), SCALE)
            if sparse:
                best, winner, second, runner_at = self._with_sparse(total, sparse, best, winner, second, runner_at)
            # the packed sums are rounded to 1/8 point; say the exact figures
            best_points = self._points(winner, found) if best else 0.0
            second_points = self._points(runner_at, found) if second else 0.0
        except OverflowError:
            exact = self._exact(found, ruled)
            ranked = sorted(((v, -b) for b, v in exact.items()), reverse=True)[:2] + [(0.0, 0)] * 2
            (best_points, winner), (second_points, runner_at) = ranked[0], ranked[1]
            winner, runner_at = -winner, -runner_at
        return best_points, winner, second_points, runner_at


CALIBRATION = (-0.20, 1.34, -3.37)
"""Logistic fit of "the top playbook is right" on (bias, log points, runner-up's share of the best),
over the tickets written here and the tuning folds (0-2) of the real corpora in ``tests/data`` (1,995
tickets, refitted 2026-12-06 after the five-language vocabulary; was (-0.11, 1.20, -3.20))
(``mspclaw playbooks eval --calibrate`` refits it)."""


def confidence(best: float, second: float) -> float:
    """The calibrated probability that the best-scoring playbook is the right one."""
    if best <= 0:
        return 0.0
    bias, log_weight, share_weight = CALIBRATION
    z = bias + log_weight * math.log(best) + share_weight * (second / best)
    return 1.0 / (1.0 + math.exp(-z))


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


def match(books: Sequence[Playbook], subject: str, body: str, os: str | None = None) -> Match:
    """The best playbook for a ticket on a device with ``os``, or ``Match(None, ...)`` with the reason."""
    return matcher_for(books).match(subject, body, os)
