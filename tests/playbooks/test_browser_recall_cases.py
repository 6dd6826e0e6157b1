"""Browser and mail recall on the way end users phrase browser faults, in five languages.

The rules, not sentences: a page or site that does not load, shows a blank or white page, or a video that does
not play is the browser playbook's (its first steps measure and empty the browser's caches, flush the DNS cache and
test a connection to a website); so is a site that works in another browser ("works in Edge", "ça marche avec
Chrome"), a website that keeps signing the user out, a certificate warning, pop-ups that come unasked and a browser
said by name to be slow. A blank page is a fault in itself ("page blanche", "página en blanco", "leere Seite", "lege
pagina"). "All sites" or "several sites" beside a browser are the websites it opens, not the client's places: no
outage. Mail that cannot be sent, received or deleted, a mail server's sign-in that fails, is the mail playbook's.
Every ticket here is written for this file; none is copied from any corpus. Each in ``FOUND`` and ``NOT_AN_OUTAGE``
got no playbook or the wrong one before this change; ``LEFT_ALONE`` are ordinary tickets next to each change that
must keep their playbook, ``NOT_BROWSER`` the near misses the new triggers must not reach, and ``STILL_TRIAGED`` the
outages and questions that must still get none.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_nothing, expect_playbook, expect_triaged

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


FOUND = [
    # (playbook, subject, body)
    # pages and sites that do not load, blank pages
    ("browser", "Website not loading", ""),
    ("browser", "Page blanche", "Firefox affiche une page blanche quand j'ouvre l'intranet"),
    ("browser", "Leere Seite", "Firefox zeigt nur eine leere Seite beim Kundenportal"),
    ("browser", "Lege pagina", "Chrome geeft een lege pagina bij het openen van de website van de leverancier"),
    ("browser", "No carga", "Firefox no carga las páginas desde esta mañana, lo demás funciona"),
    ("browser", "Webseiten", "Im Edge werden die Seiten nicht geladen, nur ein Kreis dreht sich"),
    # a site that works in another browser, in a ticket long enough to need a symptom
    ("browser", "Booking site", "Since the weekend I have to book all my trips from home because at the office I use "
     "Chrome and the booking site works in Edge but in Chrome the confirm button greys out"),
    ("browser", "Portail fournisseur", "Depuis lundi je dois passer par un collègue pour saisir mes commandes, dans "
     "Firefox le bouton valider du portail ne répond pas, ça fonctionne avec Chrome"),
    ("browser", "Formulier",
     "Het formulier op de website van de gemeente gaat niet weg in Firefox, werkt wel in Chrome"),
    # video, certificates, pop-ups, a slow browser
    ("browser", "Training videos", "Videos won't play in Firefox, just a black box with a spinner"),
    ("browser", "Videos laufen nicht", "Im Firefox spielt die Schulungsseite keine Videos mehr ab"),
    ("browser", "Certificate", "When I open the HR site from the intranet links in Firefox I now get Warning: "
     "Potential Security Risk Ahead and it will not let me continue to the page"),
    ("browser", "Conexión", "Chrome dice conexión no segura en la web del banco"),
    ("browser", "Pop-ups", "I get pop-ups on every website I open in Chrome"),
    ("browser", "Firefox", "Firefox is slow since yesterday"),
    # a mail server's sign-in that fails, replies that cannot be sent
    ("email", "Thunderbird", "Since this morning Thunderbird shows login to server failed whenever it checks my mail, "
     "I did not change my password or anything"),
    ("email", "Mails", "Sinds vanmorgen kan ik niet beantwoorden op de mails van klanten, ik krijg een melding en het "
     "bericht blijft in het concept staan"),
]


@pytest.mark.parametrize(("label", "subject", "body"), FOUND, ids=[c[1] + "-" + c[2][:16] for c in FOUND])
def test_found(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


NOT_AN_OUTAGE = [
    # "all sites" and "several sites" with a browser named are websites
    ("browser", "Page blanche", "Firefox affiche une page blanche sur tous les sites"),
    ("browser", "Pages", "Chrome: de pagina's laden niet op meerdere sites, andere programma's werken"),
]


@pytest.mark.parametrize(("label", "subject", "body"), NOT_AN_OUTAGE,
                         ids=[c[1] + "-" + c[2][:16] for c in NOT_AN_OUTAGE])
def test_not_an_outage(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


STILL_TRIAGED = [
    # the client's sites, no browser named: still an outage
    ("Branches", "All sites have no internet since 9am"),
    ("Network", "Several sites cannot reach the file server this morning"),
    ("Sites", "Tous les sites sont en panne depuis ce matin"),
]


@pytest.mark.parametrize(("subject", "body"), STILL_TRIAGED, ids=[c[0] + "-" + c[1][:16] for c in STILL_TRIAGED])
def test_still_triaged(matcher: Matcher, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, "an outage")


QUESTIONS = [
    # how-to questions stay with a person
    ("How do I allow pop-ups for the supplier portal in Edge?", ""),
    ("How can I make Firefox open two pages at start?", "I would like the intranet and our news site to open together"),
]


@pytest.mark.parametrize(("subject", "body"), QUESTIONS, ids=[c[0][:24] for c in QUESTIONS])
def test_questions(matcher: Matcher, subject: str, body: str) -> None:
    expect_nothing(matcher, subject, body)


LEFT_ALONE = [
    ("browser", "Blank page", "Edge only shows a blank page on the intranet"),
    ("browser", "Chrome", "This site can't be reached when I open our supplier portal, Teams works"),
    ("browser", "Homepage changed", "My homepage and search engine changed to some weird site"),
    ("browser", "Supplier portal", "The portal page doesn't load in Chrome since Monday, spinner forever"),
    ("browser", "Reservas", "La web de reservas se queda colgada en Edge, funciona en Chrome sin problema"),
    ("browser", "Logged out", "Our travel booking website keeps logging me out every few minutes in Chrome"),
    ("email", "Mail", "cannot send email from my laptop since lunch"),
    ("email", "Outlook not loading", "Outlook not loading since the update"),
    ("email", "Outlook keeps crashing", "Outlook keeps crashing when I open it"),
    ("app_crash", "Excel", "Excel keeps crashing when I open the budget file"),
    ("no_internet", "No internet", "no internet on my desktop since this morning"),
    ("wifi", "wifi", "the laptop says connected to wifi but no websites load"),
    ("printer", "Blank pages", "The printer prints blank pages"),
    ("slow_computer", "Slow PC", "My computer is very slow since this morning"),
    ("software_install", "Install Chrome", "Please install Chrome on my new laptop"),
]


@pytest.mark.parametrize(("label", "subject", "body"), LEFT_ALONE, ids=[c[1] + "-" + c[2][:16] for c in LEFT_ALONE])
def test_left_alone(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


NOT_BROWSER = [
    # (playbook it must not get, subject, body)
    ("browser", "Teams", "Teams keeps logging me out"),
    ("browser", "Laptop battery", "La batterie du portable ne se charge pas"),
    ("browser", "Import bookmarks", "How do I import my bookmarks from another browser?"),
    ("browser", "Video call", "My camera shows a black screen in the Teams video call"),
    ("browser", "Outlook", "Outlook is slow since the update"),
]


@pytest.mark.parametrize(("label", "subject", "body"), NOT_BROWSER, ids=[c[1] + "-" + c[2][:16] for c in NOT_BROWSER])
def test_not_browser(matcher: Matcher, label: str, subject: str, body: str) -> None:
    decision = matcher.match(subject, body, "windows")
    assert decision.category != label, decision.explanation
