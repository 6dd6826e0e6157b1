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

    def top_two(self, total: int, upper: int, floor: int) -> tuple[int, int, int, int]:
        """Best and second-best (value, index) among fields of at least ``floor``; ``upper`` bounds them.

        Field i of ``total + 2**11 - v`` (in every field at once) has its top bit set exactly
        when field i of ``total`` is at least ``v``. The largest such ``v`` is built bit by bit,
        from the highest bit ``upper`` needs: one subtraction and one ``and`` over the packed
        integer per bit, the same work for 16 playbooks or 10,000. Ties go to the lower index.
        """
        found: list[tuple[int, int]] = []
        bits = min(upper, (1 << (BITS - 1)) - 1).bit_length()
        at_floor = self.biased - self.steps[0] * floor
        for _ in range(2):
            shifted = total + at_floor
            if not shifted & self.tops:
                break
            value = floor
            for bit in range(bits - 1, -1, -1):
                trial = shifted - self.steps[bit]
                if trial & self.tops:
                    shifted, value = trial, value + (1 << bit)
            hits = shifted & self.tops
            index = ((hits & -hits).bit_length() - 1) // BITS
            found.append((value, index))
            total -= value << (BITS * index)
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
    vetoes: dict[str, str] = field(default_factory=dict)
    veto_phrases: dict[str, list[tuple[tuple[str, ...], str, str]]] = field(default_factory=dict)
    packed: dict[tuple[int, float], int] = field(default_factory=dict)
    masks: dict[int, int] = field(default_factory=dict)
    top_weight: dict[int, float] = field(default_factory=dict)
    sets: dict[int, frozenset[int]] = field(default_factory=dict)


def _build(books: Sequence[Playbook]) -> _Index:
    index = _Index(list(books))
    for i, book in enumerate(books):
        trig = book.triggers
        for keyword in trig.keywords:
            key = stem(keyword.lower().replace("'", ""))
            posting = index.keywords.setdefault(key, {})
            if i not in posting:
                posting[i] = trig.weights.get(keyword, 1.0)
                index.keyword_names[(i, key)] = f"'{keyword}'"
        for phrase in trig.phrases:
            seq = tuple(stems(phrase))
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
    for key in index.keywords:
        if len(key) >= 4:
            index.fuzzy.setdefault(key, set()).add(key)
            for variant in _deletions(key):
                index.fuzzy.setdefault(variant, set()).add(key)
    for os_name in ("linux", "macos", "windows"):
        index.os_excluded[os_name] = [i for i, b in enumerate(books) if os_name not in b.os]
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
    """An index over a list of playbooks; :meth:`match` is cheap however many there are.

    Scores are kept in one big integer of 16-bit fixed-point fields, one per playbook. A trigger
    found in many playbooks (``printer`` in 600 client variants of the printer playbook) is
    added as one precomputed integer holding its weight for every playbook at once, negatives
    are masks, and the best two are found by a binary search over the packed integer; so the
    cost of a match grows with the words of the ticket, hardly with the number of playbooks.
    """

    def __init__(self, books: Sequence[Playbook], threshold: float = THRESHOLD) -> None:
        self.books = list(books)
        self.threshold = threshold
        self._index = _build(self.books)
        self._fields = _Fields(len(self.books))
        self._typos: dict[str, str | None] = {}

    def _near(self, token: str) -> str | None:
        """The trigger a word not in the index is a typo of, if any (cached: ticket words repeat)."""
        cached = self._typos.get(token, "")
        if cached != "":
            return cached
        near = self._fuzzy(token) if len(token) >= 5 else self._swapped(token)
        if len(self._typos) < 100_000:
            self._typos[token] = near
        return near

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

    def _veto(self, tokens: list[str]) -> Match | None:
        index = self._index
        for pos, token in enumerate(tokens):
            reason = index.vetoes.get(token)
            if reason is not None:
                return Match(None, 0.0, f"looks like {reason} ('{token}'): a technician handles it, no playbook")
            for seq, why, term in index.veto_phrases.get(token, ()):
                if tuple(tokens[pos:pos + len(seq)]) == seq:
                    return Match(None, 0.0, f"looks like {why} ('{term}'): a technician handles it, no playbook")
        return None

    def _hits(self, tokens: list[str], subject_len: int
              ) -> tuple[dict[tuple[str, str], float], list[list[int]], list[str]]:
        """Triggers found: (kind, key) -> factor (subject boost, typo), books ruled out, their reasons."""
        index = self._index
        in_subject = set(tokens[:subject_len])
        found: dict[tuple[str, str], float] = {}
        ruled: list[list[int]] = []
        ruled_by: list[str] = []
        for pos, token in enumerate(tokens):
            if token == _BREAK:
                continue
            negative = index.negatives.get(token)
            if negative:
                ruled.append(negative)
                ruled_by.append(token)
            for seq, books in index.negative_phrases.get(token, {}).items():
                if tuple(tokens[pos:pos + len(seq)]) == seq:
                    ruled.append(books)
                    ruled_by.append(" ".join(seq))
            if token in index.keywords:
                factor = SUBJECT_BOOST if token in in_subject else 1.0
                key = ("k", token)
                if found.get(key, 0.0) < factor:
                    found[key] = factor
            elif len(token) >= 3 and not token.isdigit():
                near = self._near(token)
                if near is not None:
                    factor = FUZZY_FACTOR * (SUBJECT_BOOST if token in in_subject else 1.0)
                    key = ("k", near)
                    if found.get(key, 0.0) < factor:
                        found[key] = factor
                        found[("typo", f"{token}\t{near}")] = factor
            for seq in index.phrases.get(token, {}):
                if tuple(tokens[pos:pos + len(seq)]) == seq:
                    factor = SUBJECT_BOOST if pos < subject_len else 1.0
                    key = ("p", "\t".join(seq))
                    if found.get(key, 0.0) < factor:
                        found[key] = factor
        return found, ruled, ruled_by

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
        rare: list[tuple[Posting, float]] = []
        for (kind, key), factor in found.items():
            if kind == "typo":
                continue
            posting = self._posting(kind, key)
            top = index.top_weight.get(id(posting))
            if top is None:
                top = index.top_weight[id(posting)] = max(posting.values())
            upper += round(top * factor * SCALE)
            if len(posting) >= HOT:
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
        if sparse and ruled:
            out = [self._as_set(books) for books in ruled]
            sparse = {book: points for book, points in sparse.items() if not any(book in o for o in out)}
        for books in ruled:
            if total:
                mask = index.masks.get(id(books))
                if mask is None:
                    mask = index.masks[id(books)] = ~_mask(books)
                total &= mask
        return total, upper, sparse

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

    def match(self, subject: str, body: str, os: str | None) -> Match:
        subject_tokens = stems(subject)
        tokens = [*subject_tokens, _BREAK, *stems(body)]
        vetoed = self._veto(tokens)
        if vetoed is not None:
            return vetoed
        found, ruled, ruled_by = self._hits(tokens, len(subject_tokens))
        if os is not None and self._index.os_excluded.get(os):
            ruled.append(self._index.os_excluded[os])
        try:
            total, upper, sparse = self._scores(found, ruled)
            # first among the playbooks at the threshold or above (a runner-up too); below it, only
            # to name the best in the explanation
            best, winner, second, runner_at = self._fields.top_two(total, upper, round(self.threshold * SCALE))
            if not best:
                best, winner, second, runner_at = self._fields.top_two(total, upper, SCALE)
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
            best, second = round(best_points * SCALE), round(second_points * SCALE)
        if best_points < self.threshold:
            top = f" (best: {self.books[winner].id} at {best_points:g})" if best else ""
            extra = f"; ruled out by {', '.join(repr(t) for t in dict.fromkeys(ruled_by))}" if ruled_by else ""
            return Match(None, round(best_points, 2), f"no playbook scored {self.threshold:g} or more{top}{extra}")
        runner = self.books[runner_at].id if second else None
        chosen = self.books[winner]
        value = best_points
        tail = f"; next best: {runner} at {second_points:g}" if runner else ""
        return Match(chosen, round(value, 2),
                     f"{chosen.id} scored {value:g}: " + ", ".join(self._explain(winner, found)) + tail,
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


def match(books: Sequence[Playbook], subject: str, body: str, os: str | None) -> Match:
    """The best playbook for a ticket on a device with ``os``, or ``Match(None, ...)`` with the reason."""
    return matcher_for(books).match(subject, body, os)
