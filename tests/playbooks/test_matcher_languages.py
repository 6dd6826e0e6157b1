"""Tickets in German, French, Spanish and Dutch, mail furniture around them, and the decision's confidence.

The sentences here are not in ``tests/data``: they check the mechanisms (language detection,
per-language stems, compounds, cleaning) on phrasing the triggers were not written from.
"""

from __future__ import annotations

import pytest

from mspclaw.playbooks.cleaning import clean_body, clean_subject
from mspclaw.playbooks.language import detect, fold
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher, confidence, match
from mspclaw.playbooks.tokens import words


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


@pytest.mark.parametrize(("text", "lang"), [
    ("mein Drucker druckt nicht und ich habe es schon neu gestartet", "de"),
    ("je ne peux pas imprimer depuis mon poste, merci de votre aide", "fr"),
    ("no puedo imprimir desde mi ordenador, gracias por la ayuda", "es"),
    ("ik kan niet printen vanaf mijn laptop, alvast bedankt", "nl"),
    ("I cannot print from my laptop since this morning, thanks for the help", "en"),
    ("printer", None),
])
def test_the_language_is_told_by_its_function_words(text: str, lang: str | None) -> None:
    assert detect(words(text)) == lang


@pytest.mark.parametrize(("subject", "body", "category"), [
    ("Druckerproblem", "Die Druckaufträge hängen, der Netzwerkdrucker druckt nichts mehr.", "printer"),
    ("Netzlaufwerk weg", "Seit heute Morgen sind meine Netzlaufwerke verschwunden.", "shared_drive_access"),
    ("Passwort", "Ich habe mein Kennwort vergessen, bitte zurücksetzen.", "password_reset"),
    ("Outlook", "Ich kann seit gestern keine E-Mails mehr empfangen.", "email"),
    ("impressions bloquées", "Mes impressions restent bloquées dans la file d'attente.", "printer"),
    ("ordinateur", "Mon ordinateur est devenu très lent, il rame énormément.", "slow_computer"),
    ("contraseña", "He olvidado mi contraseña y no puedo entrar.", "password_reset"),
    ("disco", "Mi disco duro está casi lleno, no puedo guardar nada.", "disk_full"),
    ("wachtwoord", "Mijn wachtwoord is verlopen, kunnen jullie het resetten?", "password_reset"),
    ("netwerkschijf", "Ik zie mijn netwerkschijven niet meer na de herstart.", "shared_drive_access"),
])
def test_tickets_in_other_languages_find_their_playbook(matcher: Matcher, subject: str, body: str,
                                                          category: str) -> None:
    found = matcher.match(subject, body, "windows")
    assert found.category == category, found.explanation


@pytest.mark.parametrize(("subject", "category"), [
    ("Druker geht nicht", "printer"),
    ("imprimate ne marche pas", "printer"),
    ("outlok not opening", "email"),
    ("Softwareinstallation", "software_install"),
])
def test_a_terse_ticket_with_one_misspelt_or_compound_trigger_finds_its_playbook(matcher: Matcher, subject: str,
                                                                                category: str) -> None:
    assert matcher.match(subject, "", "windows").category == category


def test_a_function_word_is_never_read_as_another_languages_trigger(matcher: Matcher) -> None:
    # Spanish "pero" (but) shares its Snowball stem with French "père" (father), a word of the
    # someone-else's-device rule; French "aussi" with German "außer" (except)
    tokens, _, _ = matcher.tokens("descargas lentas", "tengo 80 megas pero mi pc es lenta al descargar")
    assert "pere" not in tokens
    tokens, _, _ = matcher.tokens("imprimante", "l'imprimante ne marche pas chez moi aussi")
    assert "ausser" not in tokens


@pytest.mark.parametrize(("word", "lang", "key"), [
    ("installiert", "de", "install"), ("instalacion", "es", "instalar"), ("enviando", "es", "enviar"),
    ("letzten", "de", "letzter"), ("druckauftrage", "de", "druckauftrag"),
])
def test_an_inflection_reads_as_its_trigger(matcher: Matcher, word: str, lang: str, key: str) -> None:
    # a word added to a phrase, negative or rule becomes known as itself and stops reading as the
    # trigger it inflects; this guards the common ones
    assert matcher._key(word, lang) == key


def test_accents_fold_so_typed_and_untyped_umlauts_meet() -> None:
    assert fold("Störung überhitzt Écran") == "storung uberhitzt ecran"
    assert words("Grüße, Straße") == ["grusse", "strasse"]
    assert words("l'imprimante n'imprime pas, can't print") == ["l", "imprimante", "n", "imprime", "pas", "cant",
                                                                 "print"]


def test_mail_headers_quotes_and_signatures_are_dropped_before_scoring(matcher: Matcher) -> None:
    body = ("Hi,\nOutlook won't send anything, all stuck in the outbox.\n\nBest regards,\nSam\n"
            "Printer & Server Team | ACME\n\n-----Original Message-----\nFrom: IT\nSent: Monday\n"
            "Subject: printer jam\n> is the printer jammed?\n")
    cleaned = clean_body(body)
    assert "Printer" not in cleaned and "jam" not in cleaned and "outbox" in cleaned
    assert clean_subject("RE: AW: [EXTERNAL] Outlook") == "Outlook"
    assert matcher.match("RE: Outlook", body, "windows").category == "email"


def test_a_forwarded_message_with_nothing_above_it_is_the_ticket() -> None:
    body = "---------- Forwarded message ---------\nFrom: Jo\nSubject: printer\nThe printer is offline again."
    assert "printer is offline" in clean_body(body)


def test_confidence_is_a_probability_and_grows_with_the_score_and_the_margin() -> None:
    assert confidence(0.0, 0.0) == 0.0
    assert 0.0 < confidence(2.5, 2.5) < confidence(2.5, 0.0) < confidence(8.0, 0.0) < 1.0


def test_below_the_confidence_threshold_the_ticket_gets_no_playbook() -> None:
    books = load_dir()
    strict = Matcher(books, min_confidence=1.0)
    found = strict.match("printer not printing", "", "windows")
    assert found.playbook is None and found.explanation.startswith("not confident enough")
    assert 0.5 < found.confidence <= 1.0
    assert Matcher(books).match("printer not printing", "", "windows").confidence >= 0.5


def test_a_close_call_goes_to_the_playbook_whose_first_steps_diagnose_both(matcher: Matcher) -> None:
    # a hung Outlook is the mail playbook's, whose first step checks the mail client, never the crash playbook's
    found = matcher.match("Outlook freezes", "Outlook is not responding and crashes", "windows")
    assert found.category == "email"
    hangs = matcher.match("pc hangs", "pc hangs for a minute when I open anything, then it works", "windows")
    assert hangs.category == "slow_computer" and "checks both first" in hangs.explanation
    locked = matcher.match("password or locked?", "I think my password expired, or my account is locked", "windows")
    assert locked.category == "account_locked"


def test_no_device_means_any_os() -> None:
    books = load_dir()
    anywhere = [b for b in books if b.category == "disk_full"]
    assert match(anywhere, "disk full", "no space left on the device").category == "disk_full"
    assert match(anywhere, "disk full", "no space left on the device", "windows").category == (
        "disk_full" if "windows" in anywhere[0].os else None)
