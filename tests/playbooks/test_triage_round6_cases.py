"""Round 6 of triage: invented tickets for each rule added, and the ordinary tickets each must leave alone.

The rules, not sentences: network equipment that cannot reach the internet itself ("the router is unable
to connect to the internet") is the site's line or the equipment's; its admin page, and a guest network's
sign-in page to be removed, are its configuration. A program's client ("a VPN client on the laptop") is no
customer whose device it is. Trouble getting a thing to work ("having issues getting my VPN to connect")
names a fault in a body too. A web form's "Website Address:" label is no word of the user's, nor is a
signature's title above a bare phone number. People named by the version they run ("Windows 10 users are
getting an error") are a kind of user, not a group the fault stops. Curiosity ("just curious", "out of
curiosity", "aus Neugier") asks for an answer, not a fix. Every ticket here is written for this file; none
is copied from any corpus.
"""

from __future__ import annotations

import pytest
from tests.playbooks.triage_expect import expect_nothing, expect_playbook, expect_triaged

from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_dir())


MUST_NOT = [
    # (reason the triage layer gives, subject, body)
    ("a server or network outage", "router", "Our wireless router is unable to connect to the internet, the wifi"
                                             " itself works fine"),
    ("a server or network outage", "modem", "The modem has no internet since 8am, lights are orange"),
    ("a server or network outage", "Router", "Der WLAN-Router verbindet sich nicht mit dem Internet, das WLAN"
                                             " selbst geht"),
    ("network equipment or virtual machine configuration", "router page",
     "I am unable to log into the router interface to change the wifi name"),
    # a guest network's sign-in page removed for everyone is the network's configuration
    ("network equipment or virtual machine configuration", "guest wifi",
     "Can you remove the sign-in portal on the guest wifi and just let it connect"),
    ("network equipment or virtual machine configuration", "WLAN",
     "Bitte das Anmeldeportal im Gäste-WLAN entfernen, die Besucher beschweren sich"),
    # a customer's device is still someone else's
    ("a report about someone else's device", "VPN", "my client's laptop cannot connect to the VPN"),
]


@pytest.mark.parametrize(("reason", "subject", "body"), MUST_NOT, ids=[c[1] + "-" + c[2][:12] for c in MUST_NOT])
def test_must_not_automate(matcher: Matcher, reason: str, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body, reason)


FAULTS = [
    # a program's client is no customer
    ("vpn", "need vpn", "need a vpn client on laptop"),
    ("vpn", "VPN client", "The VPN client on the laptop says the connection failed since this morning"),
    ("email", "mail", "The email client on my laptop keeps asking for my password"),
    # people named by the version they run are a kind of user, the writer among them
    ("printer", "printer error", "Windows 10 users are getting an error when printing PDF files, I am one of them,"
                                 " it happens on my laptop"),
    # the router said beside the PC's own connection: the PC's wifi, not the equipment
    ("wifi", "wifi", "Laptop shows connected to the router but no internet on the wifi, my phone works"),
    ("wifi", "wifi", "I cannot connect to the router from my laptop, the wifi keeps dropping"),
    # trouble getting a thing to work names its fault, in a body too
    ("vpn", "remote", "Hello, I'm working remotely next week and having trouble getting the VPN to connect from the"
                      " hotel, thanks for any help with that"),
    ("vpn", "travel", "Hi, I will be at the other office tomorrow and I have had issues trying to get the vpn going"
                      " on my laptop before"),
    # a web form's field label is the form's word, not the user's: the fault said above it decides
    ("email", "Outlook", "Outlook will not open since this morning.\nWebsite Address: none\nInternet Browser: Edge"),
    # a signature's title over a bare phone number is the sender's, not a purchase asked for
    ("printer", "printer", "My printer does not print, it says offline.\n\nJane Doe\nPurchasing Agent\n"
                           "Parks Department\n(217) 555-0134"),
    ("printer", "printer", "My printer does not print, it says offline.\n\nJane Doe | Purchasing Agent | Parks"
                           " Department | 217-555-0134"),
    # a VPN client's gateway is the VPN's, not network equipment at the site
    ("vpn", "VPN", "GlobalProtect says the gateway cannot connect, I am working from home today"),
    # a sign-in page that does not show on the user's own laptop is the wifi playbook's
    ("wifi", "wifi", "The wifi sign-in portal does not show up on my laptop so I cannot get online"),
    # curiosity beside a real fault is still the fault
    ("slow_computer", "slow", "Just curious why my computer is so slow since yesterday, it takes minutes to open"
                              " Excel"),
]


@pytest.mark.parametrize(("label", "subject", "body"), FAULTS, ids=[c[1] + "-" + c[2][:12] for c in FAULTS])
def test_faults_still_matched(matcher: Matcher, label: str, subject: str, body: str) -> None:
    expect_playbook(matcher, label, subject, body)


def test_a_form_field_label_is_no_website(matcher: Matcher) -> None:
    """A page of the client's own application that does not load is for a person; the form's "Website Address"
    label is no word of the user's that makes it the browser's."""
    decision = matcher.match("status page", "The inspection status page is not loading.\nWebsite Address:"
                             " https://apps.example.org/inspections/status\nInternet Browser: Chrome", "windows")
    assert decision.category is None, decision.explanation


GROUPS = [
    # a group with its fault stays a group: the version rule does not cancel these
    ("printing", "Users are getting an error when printing from the 2nd floor copier"),
    ("Outlook", "Five users cannot open Outlook since this morning"),
]


@pytest.mark.parametrize(("subject", "body"), GROUPS, ids=[c[0] for c in GROUPS])
def test_groups_still_triaged(matcher: Matcher, subject: str, body: str) -> None:
    expect_triaged(matcher, subject, body)


CURIOUS = [
    ("storage", "Out of curiosity, why does Outlook keep a copy of attachments in a temp folder"),
    ("Speicher", "Aus Neugier: warum behält Outlook immer eine Kopie der Anhänge im Temp-Ordner?"),
]


@pytest.mark.parametrize(("subject", "body"), CURIOUS, ids=[c[0] for c in CURIOUS])
def test_curiosity_is_a_question(matcher: Matcher, subject: str, body: str) -> None:
    expect_nothing(matcher, subject, body)


def test_an_address_line_is_no_signature(matcher: Matcher) -> None:
    """An IP address on a line of its own is the user's, not a phone number ending the ticket: what follows is read."""
    decision = matcher.match("printer", "The printer at\n10.20.30.40\nsays offline and will not print from my PC",
                             "windows")
    assert decision.category == "printer", decision.explanation
