"""Round 10 of triage: invented tickets for each rule changed, and the ordinary tickets each must leave alone.

The rules, not sentences: a blue screen, or the whole PC crashing or restarting by itself, is the hardware's; a
peripheral or a hotspot asked for in more ways than "need a" ("could I get a headset", "would like to have a mifi",
"a hotspot is being requested") is handed out, not fixed; a sign-in to a named tracker or database, to an application a
form's application field names, or to something named with a capital that is not the directory's ("locked out of my
Arctos account") is that application's account; "is anyone else having this?" asks after a service's trouble. Cleaning
reads an issue form's quoted answers under its Markdown questions, and drops a picker's "Other / Not sure" and its
urgency answer ("Soon — Within a week"). Every ticket here is written for this file; none is copied from any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_not_triaged, expect_playbook, expect_triaged

from mspclaw.playbooks.cleaning import APP_MARK, clean_body, clean_subject
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


HARDWARE = "a hardware failure"
PURCHASE = "a purchase, licence or billing question"
BUSINESS_APP = "a business application problem, not the user's PC"
OUTAGE = "an outage affecting many users or a whole site"

TRIAGED = [
    # (reason, subject, body)
    # a blue screen, in five languages, and the whole PC crashing or restarting by itself
    (HARDWARE, "blue screen", "My PC showed a blue screen twice this morning while I was typing a memo"),
    (HARDWARE, "BSOD again", "Got another BSOD with stop code MEMORY_MANAGEMENT after lunch today"),
    (HARDWARE, "Bluescreen", "Mein Rechner zeigt seit gestern immer wieder einen Bluescreen beim Arbeiten"),
    (HARDWARE, "écran bleu", "Mon ordinateur affiche un écran bleu plusieurs fois par jour depuis lundi"),
    (HARDWARE, "pantalla azul", "Mi ordenador muestra una pantalla azul varias veces al día desde el lunes"),
    (HARDWARE, "blauw scherm", "Mijn computer geeft sinds maandag een paar keer per dag een blauw scherm"),
    (HARDWARE, "PC keeps restarting", "My computer keeps restarting by itself when I am on a video call"),
    (HARDWARE, "laptop crashed", "My laptop crashed twice this morning and came back to the login screen"),
    # a peripheral or a hotspot asked for
    (PURCHASE, "headset", "Could I get a headset for the new desk on the third floor please"),
    (PURCHASE, "hotspot for field work", "I would like to have a mifi to use in the trucks next month"),
    (PURCHASE, "field hotspot", "A mobile hotspot is being requested for the inspection team this week"),
    (PURCHASE, "Headset", "Ich möchte ein Headset für die Telefonkonferenzen im Homeoffice"),
    (PURCHASE, "Headset", "Für meinen Arbeitsplatz würde ich gerne ein Headset bekommen, danke"),
    (PURCHASE, "casque", "Je voudrais un casque pour les réunions Teams depuis mon bureau"),
    (PURCHASE, "auriculares", "Quisiera un headset para las reuniones de la semana que viene"),
    (PURCHASE, "headset", "Ik zou graag een headset willen voor de vergaderingen op afstand"),
    # a named tracker or database signed in to
    (BUSINESS_APP, "login", "I am unable to log in to the asset tracking since the weekend, it says denied"),
    # a form's application field naming an application, its sign-in failing
    (BUSINESS_APP, "I can't log in", "> What application are you using?\n\nPermitPro\n\n> Describe the problem.\n\n"
                                     "I can't log in since this morning"),
    (BUSINESS_APP, "login trouble", "### Application\n\n> FleetDesk\n\n### Describe the problem.\n\n"
                                    "> My password is rejected every time"),
    (BUSINESS_APP, "password", "Application: Roadworks Planner\nPlease reset my password, it expired"),
    # something named with a capital signed in to, not the directory's
    (BUSINESS_APP, "locked out", "I am locked out of my Specify account after too many attempts"),
    (BUSINESS_APP, "locked out of Specify", "I forgot my password and now I cannot get in at all"),
    (BUSINESS_APP, "cannot get in", "I cannot log into Cartegraph today, it says my details are wrong"),
    # asking whether others have it too
    (OUTAGE, "codes slow?", "Is anyone else getting their sign-in codes ten minutes late today?"),
    (OUTAGE, "portal", "Hat noch jemand Probleme mit dem Portal heute Morgen?"),
]


@pytest.mark.parametrize(("reason", "subject", "body"), TRIAGED)
def test_triaged(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason, exact=True)


LEFT_ALONE = [
    # (category, subject, body): ordinary tickets each rule must leave to the playbooks
    ("app_crash", "Excel crashes", "Excel crashes every time I open the budget workbook from the share"),
    ("app_crash", "Acrobat keeps crashing", "Adobe Acrobat keeps crashing when I sign a PDF"),
    ("slow_computer", "laptop very slow", "My laptop is very slow since the update and takes ages to open files"),
    ("password_reset", "password expired", "My Windows password expired, please reset it"),
    ("account_locked", "locked out", "I am locked out of my account after the holidays"),
    ("account_locked", "locked out of Windows", "I am locked out of Windows after too many attempts"),
    ("password_reset", "can't log in", "> What application are you using?\n\nOther / Not sure\n\n"
                                       "> Describe the problem.\n\nI can't log in to my computer, password expired"),
    ("printer", "printer offline", "### Application\n\n> Other / Not sure\n\n### Describe the problem.\n\n"
                                   "> The printer on the 2nd floor shows offline and nothing prints"),
    ("printer", "printer", "The printer says offline, I need it in order to print the agenda"),
    ("wifi", "wifi drops", "The wifi on my laptop keeps dropping every few minutes in the meeting room"),
]


@pytest.mark.parametrize(("category", "subject", "body"), LEFT_ALONE)
def test_left_to_the_playbooks(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


NOT_TRIAGED = [
    # a fault with a device named after "get a" is no purchase
    ("headset", "I can't get a headset to work with Teams on my laptop"),
    ("monitor", "How do I get a second monitor to show up, it stays black on the dock"),
    ("monitor", "I get an error on my monitor when I connect the dock"),
    # Outlook's sign-in is the directory's account
    ("Outlook password", "I cannot log in to Outlook, it keeps asking for my password"),
    # a form's application field naming Office, with a sign-in: the directory's account
    ("can't sign in", "> What application are you using?\n\nOffice 365 (Teams, Sharepoint, etc.)\n\n"
                      "> Describe the problem.\n\nI can't sign in, it says my password is wrong"),
    # a field naming an application, the fault no sign-in: a playbook may fit
    ("ArcGIS not opening", "> What application are you using?\n\nArcGIS\n\n> Describe the problem.\n\n"
                           "ArcGIS Pro is not opening after the update"),
]


@pytest.mark.parametrize(("subject", "body"), NOT_TRIAGED)
def test_not_triaged(matcher: Matcher, subject: str, body: str) -> None:
    expect_not_triaged(matcher, subject, body)


def test_issue_form_answers_are_read_and_its_furniture_dropped() -> None:
    body = ("### Application\n\n> Other / Not sure\n\n### Describe the problem.\n\n> The scanner jams on every page\n\n"
            "### How soon do you need this?\n\n> Soon — Within a week")
    cleaned = clean_body(body)
    assert "The scanner jams on every page" in cleaned
    assert "Not sure" not in cleaned and "Within a week" not in cleaned and "Describe" not in cleaned


def test_a_mail_quote_is_still_dropped() -> None:
    cleaned = clean_body("Printer still broken, see below\n\n> On Monday you wrote: please reboot it\n> thanks")
    assert "reboot" not in cleaned


def test_a_users_own_heading_is_kept() -> None:
    assert clean_body("# Outlook crash\n\nOutlook crashes on start.").startswith("# Outlook crash")


def test_application_field_and_named_sign_in_are_marked() -> None:
    assert clean_body("> What application are you using?\n\nPermitPro\n\nI can't log in").split() == [
        APP_MARK, "PermitPro", "I", "can't", "log", "in"]
    assert APP_MARK in clean_subject("I'm locked out of Specify")
    assert APP_MARK not in clean_subject("I'm locked out of Windows")
    assert APP_MARK not in clean_body("Application: Other\nI can't log in")
    assert APP_MARK not in clean_body("I could not log on Monday, my password had expired")
