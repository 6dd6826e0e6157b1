"""Content checks: a request for a secret in five languages and its disguises; links against an allow-list."""

from __future__ import annotations

import time

import pytest

from mspclaw.engine.content import asks_for_secret, foreign_links, host_of, links

ASKS_FOR_A_SECRET = [
    "What is your Windows password?", "Wie lautet Ihr Passwort?", "Bitte nennen Sie Ihr Kennwort.",
    "Quel est votre mot de passe ?", "¿Cuál es su contraseña?", "Wat is je wachtwoord?",
    "Please read me the 6-digit code we sent to your phone", "Type the code from your authenticator app",
    "Bitte nennen Sie den Bestätigungscode", "Donnez-moi le code de vérification", "Geef de verificatiecode",
    "Dígame el código de verificación", "Enter your PIN", "What is your BitLocker recovery key?",
    "Tell me your credit card number", "Wat is uw creditcardnummer?", "Numéro de carte bancaire ?",
    "What is your p a s s w 0 r d", "passw0rd please", "Type your P@SSWORD", "Your one-time code?",
    "What is the passcode of your phone?", "Send me your login credentials", "Ihre Zugangsdaten bitte",
    "Vos identifiants, s'il vous plaît", "Sus credenciales, por favor", "Uw inloggegevens graag",
    "What is your \u0440\u0430ssword?", "pass\u200bword?", "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",
    "Ваш пароль?", "Qual é a sua senha?", "Bitte nennen Sie den Code aus der SMS", "What code did we text you?",
]
ORDINARY = [
    "What error code do you see?", "Which printer is your default?", "When did the problem start?",
    "Is the disk full?", "Did restarting the computer help?", "Welche Fehlermeldung sehen Sie?",
    "Quel message d'erreur voyez-vous ?", "¿Desde cuándo pasa?", "Sinds wanneer is het traag?",
]


@pytest.mark.parametrize("text", ASKS_FOR_A_SECRET)
def test_a_request_for_a_secret_is_recognised(text: str) -> None:
    assert asks_for_secret(text) is not None, text


@pytest.mark.parametrize("text", ORDINARY)
def test_an_ordinary_question_passes(text: str) -> None:
    assert asks_for_secret(text) is None, asks_for_secret(text)


def test_links_of_every_form_are_found_and_held_against_the_allow_list() -> None:
    text = ("see https://evil.example/login, www.bad.com, mail x@evil.example, mailto:y@evil.example, "
            "help.msp.example/x and https://status.msp.example/ok; run setup.exe")
    assert [host for _, host in links(text)] == ["evil.example", "www.bad.com", "evil.example", "evil.example",
                                                 "help.msp.example", "status.msp.example"]
    assert foreign_links(text, ["msp.example"]) == ["https://evil.example/login", "www.bad.com", "x@evil.example",
                                                    "mailto:y@evil.example"]
    assert foreign_links("https://msp.example.evil.example/", ["msp.example"]), "a suffix is not a subdomain"
    assert host_of("https://Help.MSP.example:8443/x") == "help.msp.example" and host_of("") == ""


def test_the_checks_are_linear_and_bounded() -> None:
    started = time.perf_counter()
    for text in ("a" * 200_000, "pass " * 40_000, "x." * 100_000, "code " * 40_000):
        asks_for_secret(text)
        links(text[:20_000])
    assert time.perf_counter() - started < 2.0
    assert asks_for_secret("a" * 20_001) is not None, "what is not checked is not passed"
