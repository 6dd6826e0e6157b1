"""The matcher runs on several threads at once (the server matches off the event loop), and a Snowball stemmer
keeps the word it works on in its own state: each thread must stem with its own, or words get each other's
stems, or the stemmer fails with an IndexError (seen as tickets escalated with "internal error")."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterator

import pytest
import snowballstemmer  # type: ignore[import-untyped]

from mspclaw.playbooks.language import snowball

STEMS = {"de": "german", "fr": "french", "es": "spanish", "nl": "dutch"}
ROOTS = ["drucker", "verbindung", "imprimante", "connexion", "impresora", "conexion", "printer", "verbinding"]
ENDINGS = ["ungen", "ement", "aciones", "heden", "lichkeit", "ations", "issement", "erend"]


@pytest.fixture
def tight_switching() -> Iterator[None]:
    """Threads switch every microsecond, so a race inside one word's stemming shows in a second, not by luck."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _words(thread: int) -> list[tuple[str, str]]:
    """Words no other test stemmed (so none comes from the cache), each thread its own."""
    pairs = enumerate(itertools.product(ROOTS, ENDINGS))
    made = (f"{root}{chr(97 + thread)}{chr(97 + n // 26)}{chr(97 + n % 26)}{ending}" for n, (root, ending) in pairs)
    return [(lang, word) for word in made for lang in STEMS]


@pytest.mark.usefixtures("tight_switching")
def test_threads_stemming_at_once_each_get_their_own_words_stem() -> None:
    threads = 8
    expected = {}
    for t in range(threads):
        for lang, word in _words(t):
            expected[lang, word] = str(snowballstemmer.stemmer(STEMS[lang]).stemWord(word))
    wrong: list[tuple[str, str, str]] = []
    failed: list[BaseException] = []
    start = threading.Barrier(threads)

    def stem(t: int) -> None:
        start.wait()
        try:
            for lang, word in _words(t):
                got = snowball(lang, word)
                if got != expected[lang, word]:
                    wrong.append((lang, word, got))
        except BaseException as exc:  # reported below
            failed.append(exc)

    workers = [threading.Thread(target=stem, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failed, failed[:3]
    assert not wrong, wrong[:5]
