"""Four kinds of recall gaps seen on real service-desk tickets (issue 14); every ticket here is written for this file.

* Where the thing is, said between it and its fault ("Bishop printer at St Elmo is not working", "the printer in
  room 214 on the 2nd floor is not printing"): up to two place phrases (a preposition and at most three words that
  are no trigger and no clause word) may stand between a context trigger and the fault word, in five languages; a
  clause word ("and", "was", "und") or another trigger in between still keeps them apart.
* A network's or client's name glued to its trigger (``MyWifi``, ``CompanyWiFi``, ``GuestWLAN``, ``OfficeVPN``,
  ``officevpn``): a word with a capital inside it is read by its parts when the part after its first inner capital
  is a trigger; an unknown lower-case word ending or starting with wifi, wlan or vpn reads as that trigger.
* A web form's field labels (``Extension: 4412``, ``Internet Browser: Google Chrome Version 119 (64-bit)``) are the
  form's words, not the user's: they neither score nor rule a playbook out.
* A wrong password after tries again and again ("even after multiple attempts", "nach mehreren Versuchen") is as
  likely a lock: it goes to the account-lock playbook, whose first step reads the lock and the password's expiry.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_nothing, expect_playbook

from mspclaw.playbooks import cleaning
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


PLACED = [
    # (category, subject, body): more than sixteen words, the device named and its fault after where it is
    ("printer", "Bishop printer at St Elmo is not working",
     "Bishop printer at St Elmo is not working since this morning, can someone please have a look."),
    ("printer", "Printer at reception",
     "The printer at the front desk of reception is not working since this morning, can someone please look."),
    ("printer", "Drucker im Sekretariat",
     "Der Drucker im Raum 214 im 2. Stock funktioniert nicht mehr, bitte schaut es euch heute noch an, danke euch."),
    ("printer", "Imprimante du deuxième étage",
     "L'imprimante au 2e étage de la salle 12 ne fonctionne plus depuis ce matin, merci de regarder."),
    ("printer", "Impresora de la sala 3",
     "La impresora en la sala 3 del segundo piso no funciona desde ayer por la mañana, gracias por revisar."),
    ("printer", "Printer op kantoor",
     "De printer op de tweede verdieping in kamer 12 werkt niet meer sinds gisteren, kunnen jullie kijken."),
]

JOINED = [
    ("wifi", "MyWifi keeps dropping", "My laptop keeps losing the MyWifi network every few minutes."),
    ("wifi", "CompanyWiFi not available", "I can't connect to CompanyWiFi since this morning."),
    ("wifi", "GuestWLAN", "Das GuestWLAN verbindet nicht mehr seit heute Morgen."),
    ("vpn", "OfficeVPN not connecting", "The OfficeVPN won't connect from home since yesterday."),
    ("vpn", "officevpn kaputt", "officevpn verbindet nicht seit gestern."),
    ("wifi", "guestwifi ne marche pas", "Le guestwifi ne marche plus depuis ce matin."),
    ("wifi", "El companywifi no funciona", "No puedo conectarme al companywifi desde esta mañana."),
    ("vpn", "BedrijfsVPN", "De BedrijfsVPN maakt geen verbinding meer sinds gisteren."),
]

FORMS = [
    ("no_internet", "Laptop will not connect to the internet",
     "Website Address: all\nInternet Browser: Google Chrome Version 119.0.6045.160 (Official Build) (64-bit)\n"
     "My laptop will not connect to the internet since this morning."),
    ("no_internet", "No internet", "Website Address: all\nBrowser: Chrome, Edge\n"
     "Laptop will not connect to the internet since this morning."),
    ("no_internet", "No internet on my laptop",
     "Name: Jane Doe\nExtension: 4412\nDescription: No internet on my laptop since this morning, nothing loads."),
    ("no_internet", "Kein Internet",
     "Name: Jana Müller\nVPN-Benutzer: jmueller\nBeschreibung: Kein Internet am Laptop seit heute Morgen."),
    ("no_internet", "Pas d'internet",
     "Nom: Jeanne Dupont\nExtension: 4412\nDescription: Pas d'internet sur mon portable depuis ce matin."),
    ("no_internet", "Sin internet",
     "Nombre: Juana Pérez\nExtension: 4412\nDescripción: No tengo internet en el portátil desde esta mañana."),
    ("no_internet", "Geen internet",
     "Naam: Jan de Vries\nExtension: 4412\nOmschrijving: Geen internet op mijn laptop sinds vanochtend."),
]

TRIES = [
    ("account_locked", "Can't log in", "Wrong password even after multiple attempts, I typed it carefully."),
    ("account_locked", "Cannot sign in", "It keeps saying wrong password even after several tries."),
    ("account_locked", "Passwort falsch",
     "Passwort falsch, auch nach mehreren Versuchen kann ich mich nicht anmelden."),
    ("account_locked", "Mot de passe incorrect",
     "Mot de passe incorrect même après plusieurs tentatives, je ne peux pas me connecter à ma session."),
    ("account_locked", "Contraseña incorrecta",
     "Contraseña incorrecta después de varios intentos, no puedo iniciar sesión."),
    ("account_locked", "Wachtwoord onjuist", "Wachtwoord onjuist, ook na meerdere pogingen kan niet inloggen."),
]

LEFT_ALONE = [
    # tickets each change must leave where they were
    ("account_locked", "Login", "After several tries it says my account is locked."),
    ("password_reset", "Forgot my password", "I forgot my password, can you reset it please?"),
    ("password_reset", "Password expired", "My password expired this morning and I cannot log in."),
    ("vpn", "OpenVPN not connecting", "OpenVPN will not connect since this morning."),
    ("vpn", "VPN at home office",
     "The VPN at my home office is not connecting since this morning, can someone please have a look."),
    ("printer", "Printer not printing",
     "Name: Jane Doe\nLocation: Room 12\nDescription: The printer is not printing since this morning."),
    ("no_internet", "Kein Internet",
     "Name: Jana Müller\nVerbindung über WLAN: nein\nBeschreibung: Kein Internet am Laptop seit heute Morgen."),
]

APART = [
    # a clause word or another thing between the device and the fault keeps them apart: no playbook
    ("Old printer", "The printer in the office and the old scanner are not needed anymore, please collect them next "
     "week when you come by."),
    ("Printer at St Elmo", "The printer at St Elmo was moved to the hall last week, the desk phone is not working "
     "since then, who can help us."),
    ("Drucker", "Der Drucker im Raum 214 wurde gestern abgeholt und das Telefon funktioniert nicht mehr, wer kann uns "
     "da bitte helfen."),
]


@pytest.mark.parametrize(("category", "subject", "body"), PLACED + JOINED + FORMS + TRIES + LEFT_ALONE)
def test_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


@pytest.mark.parametrize(("subject", "body"), APART)
def test_far_words_do_not_join(matcher: Matcher, subject: str, body: str) -> None:
    expect_nothing(matcher, subject, body)


def test_tries_say_why_the_lock_playbook_was_chosen(matcher: Matcher) -> None:
    decision = matcher.match("Can't log in", "Wrong password even after multiple attempts.", "windows")
    assert decision.category == "account_locked", decision.explanation
    assert "tried again and again" in decision.explanation
    assert decision.runner_up == "password_reset"
    assert decision.confidence >= matcher.min_confidence


@pytest.mark.parametrize(("written", "trigger"), [
    ("CompanyWiFi down", "wifi"), ("GuestWLAN", "wlan"), ("OfficeVPN", "vpn"), ("MyWifi", "wifi"),
    ("guestwlan", "wlan"), ("vpnclient", "vpn")])
def test_a_name_glued_to_its_trigger_is_read_as_the_trigger(matcher: Matcher, written: str, trigger: str) -> None:
    assert trigger in matcher.tokens(written, "")[0]


@pytest.mark.parametrize("written", [
    # a whole word of the vocabulary, a trigger that starts the name, a name of several words, a longer trigger
    # inside an ordinary lower-case word: one word, as written
    "OpenVPN", "AdBlock", "SharePoint", "AppData", "HostOutOfDiskSpace", "iPhone", "language", "screenshot",
    "webmail"])
def test_other_joined_words_stay_one_word(matcher: Matcher, written: str) -> None:
    tokens, subject_words, _ = matcher.tokens(written, "")
    assert tokens[:subject_words] == [matcher._key(written.lower(), "en")], tokens


def test_a_forms_labels_are_dropped_its_values_kept() -> None:
    assert cleaning.clean_body("Name: Jane Doe\nExtension: 4412\nDescription: No internet since 9:30.") == (
        " Jane Doe\n 4412\n No internet since 9:30.")


def test_a_single_labelled_line_an_address_and_a_time_stay() -> None:
    # one labelled line is the user's as often as a form's, and stays
    assert cleaning.clean_body("Error: printer offline") == "Error: printer offline"
    # an address or a time is no label
    text = "See https://intranet/page and at 10:30: nothing.\nStill broken."
    assert cleaning.clean_body(text) == text


def test_a_long_browser_field_is_dropped_a_sentence_is_not() -> None:
    assert cleaning.clean_body("No internet.\nInternet Browser: Google Chrome Version 119.0.6045.160 (Official Build) "
                               "(64-bit)") == "No internet."
    text = "Browser: it closes every time I open a PDF and the whole screen goes white for a while"
    assert cleaning.clean_body(text) == text
