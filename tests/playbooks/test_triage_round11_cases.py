"""Round 11 of triage: desktop applications that do not open, load, work or that freeze, and the ordinary tickets each
change must leave alone.

The changes, not sentences: Adobe, Zoom, OneDrive and ArcGIS are applications the crash playbook knows; Teams, Acrobat,
Adobe, Zoom and OneDrive "not working" or Teams "not loading" in five languages, and an application "not opening", are
the crash playbook's (an attachment or a link not opening is not); a close call between the crash and the install
playbooks goes to the crash playbook, whose crash reports and pending updates show a program that freezes and whether
an update is what it needs, unless it is the installer that crashes; a laptop that has frozen is the performance
check's; a question whether something is allowed asks for an answer; a complaint about what an update changed ("with
the new update", "bij update") is no install. Every ticket here is written for this file; none is copied from any
corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_nothing, expect_playbook

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


PLAYBOOK = [
    # (category, subject, body)
    # desktop applications that do not work, load or open, in five languages
    ("app_crash", "Adobe Acrobat is not working for me.", "> Describe the problem.\n\nAdobe Acrobat is not working."),
    ("app_crash", "Acrobat not working", "When I try to open a PDF nothing happens at all."),
    ("app_crash", "Teams not loading", "My Teams is not loading since this morning, someone already looked at it."),
    ("app_crash", "Zoom not working", "Zoom won't open on my laptop before the client call."),
    ("app_crash", "OneDrive not working", "The OneDrive client shows an error and stops."),
    ("app_crash", "ArcGIS Pro is not opening", "ArcGIS Pro is not opening even after I rebooted twice."),
    ("app_crash", "Teams funktioniert nicht", "Seit heute Morgen startet Teams nicht mehr."),
    ("app_crash", "Teams ne fonctionne pas", "Teams ne s'ouvre pas sur mon ordinateur depuis lundi."),
    ("app_crash", "Teams no funciona", "Teams no carga desde esta mañana en mi portátil."),
    ("app_crash", "Teams werkt niet", "Teams doet het niet meer sinds vanochtend."),
    # freezing, an update wondered about: the crash playbook's crash reports and pending updates see both
    ("app_crash", "My Adobe seems to be freezing when I sign a document",
     "I'm wondering if it needs to be updated or re-installed?"),
    # a whole laptop that has frozen is the performance check's
    ("slow_computer", "laptop has frozen three times today", "I have to restart it each time, more often lately."),
]

LEFT_ALONE = [
    # ordinary tickets each change must leave to their own playbooks
    ("software_install", "Please install Adobe Acrobat", "I need Adobe Acrobat installed on my laptop."),
    ("software_install", "Need Zoom installed", "Can you install Zoom on my computer for a meeting tomorrow?"),
    ("software_install", "Please update Adobe Reader", "Adobe Reader says it is out of date, could you update it?"),
    ("software_install", "Installer crashes", "The Visio installer crashes at 50%."),
    ("software_install", "The installer keeps crashing", "I am trying to install Visio and the setup keeps crashing."),
    ("email", "Outlook not working", "Outlook is not opening since this morning."),
    ("email", "Attachment not opening", "The attachment in the email is not opening."),
    ("browser", "Website not loading", "The intranet page is not loading in Chrome, other sites work."),
    ("app_crash", "Excel is frozen", "Excel is frozen when I open the budget workbook."),
    ("app_crash", "Excel keeps crashing", "Excel crashes when I open a large file."),
    ("slow_computer", "laptop very slow", "My laptop is very slow and takes ages to open files."),
]


@pytest.mark.parametrize(("category", "subject", "body"), PLAYBOOK + LEFT_ALONE)
def test_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


NOTHING = [
    # whether something is allowed asks for an answer
    ("Is it allowed to install Zoom?", "Is it allowed to install Zoom on my work laptop?"),
    ("Am I allowed to install Spotify?", ""),
    ("Dropbox", "Ist es erlaubt, Dropbox auf dem Firmenlaptop zu installieren?"),
    ("Dropbox", "Is het toegestaan om Dropbox op mijn werklaptop te installeren?"),
    # what an update changed, not an install
    ("Updaten", "Bij update veranderen ook de instellingen van de geschiedenis, dat is vervelend."),
]


@pytest.mark.parametrize(("subject", "body"), NOTHING)
def test_nothing(matcher: Matcher, subject: str, body: str) -> None:
    expect_nothing(matcher, subject, body)
