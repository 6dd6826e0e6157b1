"""Which language a ticket is written in, and word stems in that language.

Detection counts a short list of function words per language (``the``/``der``/``le``/``el``/``het``
...): a ticket of three words may come out as "unknown", which is fine, since the matcher then
tries every language. Stems come from the Snowball stemmers (``snowballstemmer``, pure Python), on
accent-folded words, so ``Drucker``/``druckt``/``drucken`` and ``imprimante``/``imprimantes``
meet, and a user who types ``Stoerung`` or ``Storung`` for ``Störung`` is still understood.
"""

from __future__ import annotations

import threading
import unicodedata

import snowballstemmer  # type: ignore[import-untyped]

LANGUAGES = ("en", "de", "fr", "es", "nl")
"""English first: it is also the fallback for a ticket with too few words to tell."""

_SNOWBALL = {"de": "german", "fr": "french", "es": "spanish", "nl": "dutch"}

_FUNCTION_WORDS = {
    "en": ("the and is are my it not to of with for this that on have has was can cant dont doesnt wont "
                    "please i me we our you your from since when what"),
    "de": ("der die das und ist nicht ich mein meine mir mich wir bitte kann geht ein eine einen mit "
                    "auf bei seit funktioniert keine kein auch noch habe hat wird sich"),
    "fr": ("le la les et est ne pas je mon ma mes nous vous une un des du avec pour sur dans depuis "
                    "plus fonctionne marche merci bonjour"),
    "es": ("el la los las y es no mi mis yo nos una un del con por para que funciona puedo desde "
                    "hola gracias esta tengo"),
    "nl": ("de het een en is niet ik mijn wij we kan met voor op sinds werkt geen ook nog heb "
                    "bij graag alvast"),
}
STOPWORDS: dict[str, frozenset[str]] = {lang: frozenset(text.split()) for lang, text in _FUNCTION_WORDS.items()}
"""Function words; a word in several lists (``de``, ``la``) counts for each."""
_STOPWORD_LANGUAGES: dict[str, tuple[str, ...]] = {
    word: tuple(lang for lang, words in STOPWORDS.items() if word in words)
    for words in STOPWORDS.values() for word in words}
"""Function word -> the languages whose list holds it: one look-up per word of a ticket."""

_MORE_FUNCTION_WORDS = {
    "en": "but also very all some other after before about",
    "de": "aber oder wenn dann weil schon nur sehr wieder immer jetzt hier dort etwas alles diese dieser dieses "
          "andere nach uber unter ohne",
    "fr": "mais quand tres tout toute aussi encore toujours parce comme sans avant apres ceci cela cette autre entre",
    "es": "pero como sin mas muy todo toda cuando donde porque hay ya solo tambien bien algo nada esto eso este "
          "otra otro sobre entre hasta antes despues siempre ahora aqui",
    "nl": "maar omdat wel heel zeer alles deze dit andere over onder zonder voor na toen waar hier daar iets",
}
FUNCTION_WORDS: frozenset[str] = frozenset(
    word for text in (*_FUNCTION_WORDS.values(), *_MORE_FUNCTION_WORDS.values()) for word in text.split())
"""Every language's function words: never read as another language's inflection of a trigger (Spanish
``pero`` is no French ``père``, French ``aussi`` no German ``ausser``)."""

_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d"})
_STEMMERS = threading.local()
"""Each thread's own Snowball stemmers by language: a stemmer keeps the word it works on in its own state, so
one shared by the matcher's threads (the server matches off the event loop) mixes words up or fails."""
_CACHE: dict[tuple[str, str], str] = {}
_CACHE_SIZE = 100_000
_FEW_MARKS = 8
"""Distinct combining marks :func:`fold` removes one by one; a text with more takes one pass over every character."""


def fold(text: str) -> str:
    """Lower-cased, accents dropped (``Störung`` -> ``storung``, ``écran`` -> ``ecran``)."""
    lowered = text.lower()
    if lowered.isascii():  # nothing to fold (every key of _FOLD is a non-ASCII letter)
        return lowered
    lowered = lowered.translate(_FOLD)
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    marks = [c for c in set(decomposed) if not c.isascii() and unicodedata.combining(c)]
    if len(marks) > _FEW_MARKS:  # linear whatever arrives: one pass, not one per mark
        return "".join(c for c in decomposed if not unicodedata.combining(c))
    for mark in marks:  # a text has a few distinct accents: one C-speed removal each
        decomposed = decomposed.replace(mark, "")
    return decomposed


def detect(tokens: list[str], limit: int = 200) -> str | None:
    """The language whose function words are most frequent in the first ``limit`` words, or None.

    None when no language has two function words more than the next: too little text to say.
    """
    counts = dict.fromkeys(LANGUAGES, 0)
    for token in tokens[:limit]:
        for lang in _STOPWORD_LANGUAGES.get(token, ()):
            counts[lang] += 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    (best, first), (_, second) = ranked[0], ranked[1]
    if first == 0 or (first - second < 2 and first < 2 * second + 1):
        return None
    return best


def snowball(lang: str, word: str) -> str:
    """The Snowball stem of an accent-folded word in ``lang`` (one of de, fr, es, nl)."""
    key = (lang, word)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    stemmers: dict[str, object] | None = getattr(_STEMMERS, "by_lang", None)
    if stemmers is None:
        stemmers = _STEMMERS.by_lang = {}
    stemmer = stemmers.get(lang)
    if stemmer is None:
        stemmer = stemmers[lang] = snowballstemmer.stemmer(_SNOWBALL[lang])
    result = str(stemmer.stemWord(word))  # type: ignore[attr-defined]
    if len(_CACHE) < _CACHE_SIZE:
        _CACHE[key] = result
    return result


def stemmed_languages() -> tuple[str, ...]:
    """The languages with a Snowball stemmer here (English uses the matcher's own light stemmer)."""
    return tuple(_SNOWBALL)
