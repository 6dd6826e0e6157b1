"""Round 14 of triage, from a third fresh sample of real requests from IT trackers other than the one tuned on.

The changes, not sentences: a technician's own task title ("Check the printer in room 12", "Troubleshoot the
printer in ...", "Drucker ... prüfen") asks for work on what it names, as "install" and "set up" did; a prompt
that comes back ("Outlook repeatedly asking for password", "repeated prompts") says something is wrong; a new phone
bought ("i buy new phone") beside a lost authenticator is the factor to reset, not a purchase; the writer's own
device named besides a relative's ("this is also on my wife's phone") is still the writer's; the company VPN to
connect to ("cant connect to my company VPN") is the VPN playbook's; the internet to set up in French ("configurer
l'internet ... ça ne marche pas") is no internet; a login ID to create for someone is an account for a new person.
Must not automate: software asked for on a shared server or a cluster ("Install htop on the headnode"); the
wireless network itself improved or its equipment replaced ("Improve the quality of wifi on the 2nd floor",
"Replace the access point"); a server crashed or to be repaired, named right after ("Repair the backup srv"). Every
ticket here is written for this file; none is copied from any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_not_triaged, expect_playbook, expect_triaged

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


PLAYBOOK = [
    # (category, subject, body)
    # a technician's task title
    ("printer", "Check the printer in room 12 for Ivanova", ""),
    ("printer", "Troubleshoot the printer in the accounting office for Petrova", ""),
    ("printer", "Drucker im Werkraum von Frau Weber im Erdgeschoss prüfen", ""),
    # a prompt that keeps coming back
    ("email", "Outlook repeatedly asking for password",
     "What is the next step? Outlook on my Mac keeps showing repeated prompts for my mail password."),
    # a new phone already bought, the authenticator lost with the old one
    ("mfa_reset", "Authenticator gone",
     "My phone broke so i buy new phone with the same number, now the authenticator codes are gone and I cannot "
     "sign in to my work account."),
    # the writer's own device too
    ("email", "Outlook asks for my password",
     "Outlook keeps asking for my password on my laptop, this is also on my wife's laptop."),
    # the company VPN
    ("vpn", "Company VPN", "I cant connect to my company VPN. The client says to contact your IT administrator."),
    # the internet to set up, in French
    ("no_internet", "Chambre 12",
     "J'ai suivi les instructions pour configurer l'internet sur mon portable, mais ça ne marche pas."),
    # a login ID for a new person
    ("onboarding", "Creating login ID for Mr. Rao", "Kindly proceed with creating login ID for Mr. Rao."),
]

LEFT_ALONE = [
    # ordinary tickets each change must leave to their own playbooks
    ("software_install", "Install Visio for John", "Please install Visio on John's laptop."),
    ("software_install", "Install software",
     "Please install the drawing software on my laptop, the installer is on the server share."),
    ("wifi", "Wifi keeps dropping", "My laptop's wifi keeps dropping in the meeting room."),
    ("printer", "Printer not printing", "My documents stay in the queue and nothing comes out of the printer."),
    ("vpn", "VPN not connecting", "The VPN wont connect from home since this morning."),
    ("no_internet", "Pas d'internet", "Je n'ai plus d'internet sur mon poste depuis ce matin."),
    ("vpn", "VPN ne fonctionne pas", "Depuis ce matin la connexion VPN ne fonctionne pas sur mon portable."),
]

TRIAGED = [
    # (subject, body, reason): software on a shared server or a cluster
    ("Install htop on the headnode", "Please install htop on the headnode, we need it for the pipeline.",
     "software on a server or a cluster"),
    ("R 4.3 on the cluster", "Could you install R 4.3 on the cluster? The old version lacks a package.",
     "software on a server or a cluster"),
    ("Neue Version", "Bitte die neue Version auf dem Server installieren.", "software on a server or a cluster"),
    # the wireless network itself improved, or its equipment replaced
    ("Improve the quality of wifi on the 2nd floor", "", "network equipment"),
    ("Replace the access point in the warehouse", "It is old and drops the connection.", "network equipment"),
    # a server crashed or to be repaired
    ("Repair the backup srv", "It crashed overnight, please bring it back.", "a server or network outage"),
]

STILL_TRIAGED = [
    # (subject, body, reason): a purchase stays one
    ("Buy a new laptop", "We need to buy a new laptop for the new designer.", "a purchase"),
    ("Security keys", "We want to buy two YubiKeys for MFA.", "a purchase"),
]

NOT_TRIAGED = [
    # (subject, body): the user's own PC, or a relative's device named beside the writer's own
    ("Install software", "Please install the drawing software on my laptop, the installer is on the server share."),
    ("Authenticator", "I buy new phone and now Google Authenticator shows no codes."),
    ("Mail prompts", "Outlook keeps asking for my password on my laptop, this is also on my wife's laptop."),
]


@pytest.mark.parametrize(("category", "subject", "body"), PLAYBOOK + LEFT_ALONE)
def test_playbook(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


@pytest.mark.parametrize(("subject", "body", "reason"), TRIAGED + STILL_TRIAGED)
def test_triaged(matcher: Matcher, subject: str, body: str, reason: str) -> None:
    expect_triaged(matcher, subject, body, reason)


@pytest.mark.parametrize(("subject", "body"), NOT_TRIAGED)
def test_not_triaged(matcher: Matcher, subject: str, body: str) -> None:
    expect_not_triaged(matcher, subject, body)
