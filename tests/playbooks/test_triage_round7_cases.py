"""Round 7 of triage: invented tickets for each rule changed, and the ordinary tickets each must leave alone.

The rules, not sentences: a ticket that calls itself a feature request ("Feature request: ...", "could this be
added as a feature", "Funktionswunsch", "demande de fonctionnalité") asks for a product change, whatever error it
recalls in passing. A question about using an application's features (the new tab page's wallpaper, a toolbar,
importing old mail) stays a question when it names an installation only in passing: an extension or add-on the
answer might need, nothing to install, or an installation the writer has done; an installation asked for or
failing still makes it the install playbook's. Every ticket here is written for this file; none is copied from
any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_playbook, expect_triaged

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.tokens import stems
from mspclaw.playbooks.triage import Rule, Triage


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


FEATURE_REQUEST = "a feature request or a suggestion, not a fault"
FEATURE_USE = "a question about using an application's features, not a fault"

MUST_NOT = [
    # (reason the triage layer gives, subject, body)
    # a ticket that calls itself a feature request, an error recalled in passing
    (FEATURE_REQUEST, "Feature request: scheduled inbox repair",
     "I would love the mail client to repair my inbox folders on a schedule. Last year my emails got errors in the"
     " inbox and I had to repair them by hand"),
    (FEATURE_REQUEST, "Funktionswunsch: Posteingang",
     "Der Mail-Client soll den Posteingang automatisch aufräumen, früher gab es bei meinen E-Mails oft einen Fehler"),
    (FEATURE_REQUEST, "Automatic tab reload",
     "When the internet connection drops the browser shows an error page in every tab. Can the automatic reload of"
     " tabs be added as a feature in a later version?"),
    (FEATURE_REQUEST, "Solicitud de función: pestañas",
     "que el navegador guarde las pestañas abiertas del correo, a veces da error al cerrar el navegador"),
    (FEATURE_REQUEST, "Demande de fonctionnalité",
     "Le navigateur devrait recharger les onglets tout seul, parfois j'ai une erreur de connexion"),
    # a how-to about a feature that names an installation only in passing
    (FEATURE_USE, "new tab wallpaper",
     "I want to change the wallpaper of the browser's new tab page to my own picture. A video says I have to install"
     " an extension, I don't think that is needed. Is there any other way without installing anything?"),
    (FEATURE_USE, "toolbar", "The browser toolbar shows too many buttons, how do I get back to the old one? I don't"
                             " want to install an add-on for that"),
    (FEATURE_USE, "Import mail", "I have installed the mail client on my new PC and would like to import my old PST"
                                 " file with all my emails"),
]


@pytest.mark.parametrize(("reason", "subject", "body"), MUST_NOT, ids=[c[1] + "-" + c[2][:12] for c in MUST_NOT])
def test_must_not_automate(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason, exact=True)


LEFT_ALONE = [
    # a Windows feature update that fails is an install, not a feature asked for
    ("software_install", "update", "The Windows feature update fails to install with error 0x800f0922"),
    # a crash since a feature update is the crash
    ("email", "Outlook", "Since the new feature update Outlook crashes every time I open an email"),
    # an installation asked for beside a feature's name is still asked for
    ("software_install", "Add-in", "Please install the pivot table add-in for Excel on my laptop"),
    ("software_install", "signature add-in", "Can you install the mail signature add-in on my laptop"),
    ("software_install", "bookmarks", "Please install the bookmarks sync tool on my laptop, I need my bookmarks at"
                                      " work"),
]


@pytest.mark.parametrize(("category", "subject", "body"), LEFT_ALONE,
                         ids=[c[1] + "-" + c[2][:12] for c in LEFT_ALONE])
def test_left_alone(matcher: Matcher, category: str, subject: str, body: str) -> None:
    expect_playbook(matcher, category, subject, body)


def test_excused_unless_word_counts_only_outside_the_excused_term() -> None:
    rule = Rule("a question", ("wallpaper",), unless=("install",), excused=("install an extension", "i installed"))
    triage = Triage((rule,))
    assert triage.check(stems("change the wallpaper | a video says to install an extension")) is not None
    assert triage.check(stems("change the wallpaper | i installed the browser yesterday")) is not None
    # the same word outside the excused term still vetoes, even with an excused term elsewhere
    assert triage.check(stems("change the wallpaper | install an extension or please install the theme")) is None
    assert triage.check(stems("wallpaper app | please install it")) is None
