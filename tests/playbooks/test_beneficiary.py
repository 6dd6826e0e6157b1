"""Whether a ticket asks for another person's account, in five languages (invented tickets written the way
managers, colleagues and service desks ask for someone else, and the way people ask for themselves)."""

from __future__ import annotations

import time

import pytest

from mspclaw.playbooks.beneficiary import MAX_CHARS, mentions

SOMEONE_ELSE = [
    ("password reset", "please reset password for user jdoe", "jdoe"),
    ("Account locked", "User mueller is locked out since 8am, please unlock asap", "mueller"),
    ("pw reset", "reset password for j.smith@acme.example", "j.smith@acme.example"),
    ("Locked out", "Could you unlock the account of user ID kl4471? thanks", "kl4471"),
    ("Password", "Can you reset her password? She is on holiday and forgot it", None),
    ("MFA", "his authenticator is on his old phone, please reset it", None),
    ("locked", "the account for my colleague got locked after the holidays", None),
    ("Please help", "Mark's password expired while he was travelling", "mark"),
    ("Passwort zurücksetzen", "Bitte das Passwort für den Benutzer Schmidt zurücksetzen", None),
    ("Konto gesperrt", "Das Konto von meinem Kollegen ist gesperrt", None),
    ("Kennwort", "Benutzer hmeier hat sein Kennwort vergessen", "hmeier"),
    ("Mot de passe", "Merci de réinitialiser le mot de passe de l'utilisateur dupont", None),
    ("compte bloqué", "Le compte de ma collègue est bloqué depuis ce matin", None),
    ("Contraseña", "Necesito restablecer la contraseña para el usuario jgarcia", None),
    ("cuenta bloqueada", "La cuenta de mi compañero está bloqueada", None),
    ("Wachtwoord", "Graag het wachtwoord resetten voor mijn collega Piet", None),
    ("account geblokkeerd", "Gebruiker jansen heeft zijn wachtwoord vergeten", "jansen"),
    ("request", "On behalf of our CFO: please reset the password", None),
]

OWN = [
    ("forgot my password", "Hi, I forgot my password over the weekend and can't log in. Can you reset it? Jenny"),
    ("password expired", "My password expired and I have a presentation for a client at 2pm"),
    ("locked out", "I locked myself out, I need the file for my colleague's handover"),
    ("Kennwort abgelaufen", "Mein Kennwort ist abgelaufen und ich kann mich nicht anmelden"),
    ("Ihr Passwort läuft ab", "Die Meldung sagt: Ihr Passwort läuft in 3 Tagen ab. Wie ändere ich es?"),
    ("mot de passe oublié", "J'ai oublié mon mot de passe, je ne peux pas ouvrir ma session"),
    ("contraseña caducada", "Mi contraseña ha caducado y no puedo iniciar sesión, su ayuda por favor"),
    ("wachtwoord vergeten", "Ik ben mijn wachtwoord vergeten en kan niet inloggen"),
    ("Dear Mr. Smith", "Dear Mr. Smith, my account is locked again"),
    ("MFA", "New phone, the authenticator app is gone, I cannot sign in"),
    ("cant login", "users must change their password every 90 days, I changed mine and now I can't log in"),
    ("password", "I need my password reset for the user portal"),
    ("locked out", "my user id kl4471 is locked since this morning"),
    ("Konto gesperrt", "Mein Benutzer hmeier ist gesperrt"),
]


@pytest.mark.parametrize(("subject", "body", "name"), SOMEONE_ELSE)
def test_someone_elses_account_is_found(subject: str, body: str, name: str | None) -> None:
    found = mentions(subject, body)
    assert found, body
    if name is not None:
        assert name in {m.name for m in found}


@pytest.mark.parametrize(("subject", "body"), OWN)
def test_the_writers_own_account_is_not_someone_elses(subject: str, body: str) -> None:
    assert mentions(subject, body) == [], body


def test_a_long_or_hostile_ticket_costs_little() -> None:
    texts = ["for user " * 20_000, "password " * 20_000 + "for my colleague " * 5_000, "a" * 100_000,
             "user " + "x." * 50_000 + " is", "'s " * 40_000]
    started = time.process_time()
    for text in texts:
        mentions(text, text)
    assert time.process_time() - started < 1.0  # linear and bounded: MAX_CHARS of each
    assert len(mentions("", "please reset password for user jdoe " * 1_000)) <= 8
    assert MAX_CHARS <= 10_000
