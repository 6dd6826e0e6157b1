"""Playbook recall on the way end users phrase printer, install, disk and sign-in tickets.

The rules, not sentences: a printer's driver, named by the printer's make, is the printer playbook's; an
install that fails, an update asked for and an Office activation or licence error are the install playbook's;
a full laptop, a storage warning or no room left is the disk playbook's, in each language. A wired connection
that fails is the internet playbook's even when the writer names Wi-Fi as the workaround or as the other thing
that fails. Access to what is not a file share (a SharePoint site, a shared mailbox, a business application) is
no file-share work. A sign-in that the writer says locked the account is a lockout. An Outlook that hangs is the
mail playbook's (the mail-client check sees a hung Outlook and a mail server that does not answer). Every
ticket here is written for this file; none is copied from any corpus. Each in ``FOUND`` and ``NO_PLAYBOOK`` got
no playbook or the wrong one before its triggers were added; ``LEFT_ALONE`` are the ordinary tickets next to
each change that must keep their playbook, and ``NOT_THIS`` the near misses the new triggers must not reach.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_playbook

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


FOUND = [
    # (playbook, subject, body)
    # a sign-in that locked the account
    ("account_locked", "Can't sign in", "She tried the forgot password link twice and it locked her account"),
    ("account_locked", "login", "I typed the old password a few times, now the account got locked"),
    # a wired connection that fails, Wi-Fi named as the workaround or as the other failure
    ("no_internet", "No connection at my desk",
     "The internet does not work at my desk, I had to use the guest wifi to send this"),
    ("no_internet", "internet", "My PC can't get on the internet through ethernet or wifi since this morning"),
    # an Outlook that hangs
    ("email", "Outlook", "Outlook won't respond, spinning wheel for minutes"),
    # a printer's driver, named by the printer's make
    ("printer", "Canon driver", "Canon driver missing on my laptop"),
    ("printer", "Ricoh", "Please install the Ricoh driver on my new PC"),
    ("printer", "Treiber", "Treiber für den Kyocera fehlt"),
    ("printer", "pilote", "Il manque le pilote du Ricoh"),
    ("printer", "Driver", "de driver van de Canon ontbreekt"),
    # Office activation and licence errors, failed installs, upgrades and reinstalls
    ("software_install", "Word", "PRODUCT NOTICE Most features of Word have been disabled"),
    ("software_install", "Excel licence", "Excel says my license couldn't be verified"),
    ("software_install", "Office", "Office keeps asking me to sign in to activate"),
    ("software_install", "Office 365", "Office won't activate on my new laptop"),
    ("software_install", "Can't install", "I cannot install the new version of the VPN client, it rolls back"),
    ("software_install", "Office upgrade", "Need Office upgraded from 2016 to the current version"),
    ("software_install", "SPSS", "since the reimage my SPSS is missing, can you reinstall it"),
    ("software_install", "Office", "Aktivierungsfehler bei Office seit heute"),
    ("software_install", "Office", "Erreur d'activation d'Office sur mon poste"),
    ("software_install", "Activación", "Error de activación de Office"),
    ("software_install", "Office", "Activeringsfout bij Office sinds vanochtend"),
    ("software_install", "Chrome", "Chrome muss aktualisiert werden, ich habe keine Rechte dafür"),
    # a full laptop, a storage warning, no room left
    ("disk_full", "Laptop", "my laptop is full, can you clean it up"),
    ("disk_full", "Storage warning", "I get a storage warning every morning"),
    ("disk_full", "PC", "I have no more space on my computer, cannot save files"),
    ("disk_full", "Festplatte", "Kein Platz mehr auf der Festplatte"),
    ("disk_full", "Portable", "stockage saturé sur mon portable"),
]


@pytest.mark.parametrize(("label", "subject", "body"), FOUND, ids=[c[1] + "-" + c[2][:16] for c in FOUND])
def test_found(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


NO_PLAYBOOK = [
    # access to what is not a file share
    ("Marketing SharePoint", "Please give Tom edit permission on the Marketing SharePoint site"),
    ("Shared mailbox", "Our new assistant needs access to the info shared mailbox"),
    ("Access request", "Requesting access to Timesheet Pro for the audit project"),
    ("Outlook folders", "He needs access to our two shared Outlook folders for the front desk"),
]


@pytest.mark.parametrize(("subject", "body"), NO_PLAYBOOK, ids=[c[0] + "-" + c[1][:16] for c in NO_PLAYBOOK])
def test_no_playbook(matcher: Matcher, subject: str, body: str) -> None:
    decision = matcher.match(subject, body, "windows")
    assert decision.category is None, decision.explanation


LEFT_ALONE = [
    ("wifi", "Wi-Fi drops", "wifi keeps dropping in the meeting room, the cable at my desk works fine"),
    ("wifi", "wifi", "the laptop says connected to wifi but no websites load"),
    ("wifi", "Wifi", "no internet on my wifi since this morning"),
    ("wifi", "home wifi", "Can't connect to the internet on my home wifi, other devices work"),
    ("no_internet", "No internet", "no internet on my desktop since this morning"),
    ("shared_drive_access", "HR folder", "Please give me access to the HR folder on the S drive"),
    ("shared_drive_access", "Mapped drive", "My mapped drive is missing after the restart"),
    ("shared_drive_access", "Access denied", "I need access to the Projects share, it says access denied"),
    ("email", "Shared mailbox gone", "The shared mailbox vanished from my Outlook folder list"),
    ("email", "Outlook keeps crashing", "Outlook keeps crashing when I open it"),
    ("password_reset", "Password expired", "my password expired, please reset it"),
    ("account_locked", "Locked out", "I'm locked out of my account after too many attempts"),
    ("printer", "Printer offline", "The printer in reception shows offline"),
    ("software_install", "Install Zoom", "Please install Zoom on my laptop"),
    ("disk_full", "C drive full", "My C drive is full and I can't save anything"),
]


@pytest.mark.parametrize(("label", "subject", "body"), LEFT_ALONE, ids=[c[1] + "-" + c[2][:16] for c in LEFT_ALONE])
def test_left_alone(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


NOT_THIS = [
    # (playbook it must not get, subject, body)
    ("printer", "Strange characters", "some web pages show strange characters instead of accents"),
    ("printer", "Scan to email", "The copier's scan to email stopped sending to my mailbox"),
    ("software_install", "Extension", "I can't install the password manager extension in my browser"),
    ("software_install", "Firefox", "Firefox freezes since I upgraded to the latest version"),
    ("disk_full", "Word spacing", "Word puts no space after a full stop anymore"),
    ("disk_full", "OneDrive", "my OneDrive is full, I can't sync"),
    ("email", "Mailbox permission", "Please grant access to the payroll shared mailbox for Anna"),
    ("wifi", "Ethernet", "ethernet port at my desk not working, I'm on wifi for now"),
]


@pytest.mark.parametrize(("label", "subject", "body"), NOT_THIS, ids=[c[1] + "-" + c[2][:16] for c in NOT_THIS])
def test_not_this(matcher: Matcher, label: str, subject: str, body: str) -> None:
    decision = matcher.match(subject, body, "windows")
    assert decision.category != label, decision.explanation
