"""Redaction's fast path for longer ASCII texts: the same result as every pass run in full, for less CPU.

:func:`mspclaw.store.redact._redact_ascii` skips a pass when the text cannot hold what the pass matches;
these tests hold it to :func:`mspclaw.store.redact._redact_text` (every pass, unconditionally) on the
secret corpus, on random text made of the patterns' own pieces, and on adversarial mixes.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.secret_corpus import ORDINARY, SECRETS, Secret

from mspclaw.store import redact as module
from mspclaw.store.redact import REDACTED, redact_text

PADDING = ("The user reports that the check passed yesterday but the disk_full playbook and the "
           "clear_temp_files step keep coming back on bench-pc-02; see /var/log for details. ")
"""Ordinary text (with near misses: ``passed``, ``disk_full``, ``/var``) that takes a text past the fast
path's threshold."""

LABELS = [
    "password", "Password", "PASSWORD", "passwort", "passwd", "passphrase", "passcode", "pass", "passe", "passed",
    "bypass", "mot de passe", "kennwort", "wachtwoord", "contrasena", "senha", "salasana", "haslo", "lozinka",
    "secret", "secrets", "token", "tokens", "Token", "api key", "api_key", "apiKey", "access key", "access_key_id",
    "account key", "AccountKey", "shared access signature", "SharedAccessSignature", "private key", "private_key_id",
    "connection string", "connection_string", "recovery code", "backup code", "one-time pin", "2fa code", "auth key",
    "key", "keyboard", "code", "encode", "pin", "PIN", "spin", "pin-code", "pin number", "pw", "pwd", "PWD", "mdp",
    "otp", "OTP", "sig", "design", "signature", "Bearer", "bearer", "Authorization", "authorization",
    "Proxy-Authorization",
]
"""Labels, the words inside them, and near misses."""
JOINERS = [":", "=", "=>", " ", "  ", "\t", "\n", "\x0b", "\x0c", "\x1c", "\x1f", '"', "'", ": ", " = ", " is ",
           " is now ", " ist ", " was set to ", " for the VPN is ", "\": ", "': ", " von ", ""]
"""What follows a label (or does not)."""
VALUES = ["hunter2", "S3cr3t!x", "Tr0ub4dor&3", "4821", "12345678", '"two words"', "'quoted'", "not working",
          "expired", "abc.def-ghi", "Basic dXNlcjpwYXNz"]
SHAPES = [
    "AKIA", "AKIAZ7QX4LMN2PRS5TUV", "ASIA", "ABIA", "ACCA", "ghp_", "ghp_" + "a1B2" * 9, "github_pat_" + "x_Y1" * 6,
    "xoxb-", "xoxb-1234567890-abc", "hooks.slack.com/services/T000/B000/XXXX", "eyJ", "eyJhbGciOi.eyJzdWIi.sig",
    "sk-", "sk-proj-" + "Ab1" * 8, "sk_live_", "sk_live_" + "a1B2" * 5, "rk_test_" + "a1B2" * 5, "AIza",
    "AIza" + "SyA1" * 9, "mck_", "mck_0123456789ab_" + "Zz9_" * 5, "msp_", "enr_", "whsec_", "test_", "demo_",
    "msp_" + "aB3" * 7, "enr_" + "aB3" * 7, "whsec_" + "aB3" * 7, "test_" + "aB3" * 7, "demo_" + "aB3" * 7,
    "/auth/link/", "/auth/link/abcdefghijklmnop", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
    "PRIVATE KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEK1", "A" * 39, "aB3/" * 10, "aB3+" * 22 + "==",
    "https://", "://", "ftp://user:", "@", "@host", "https://admin:S3cret@db.example/x",
]
"""Tokens by shape and by position, with their bare prefixes."""
GLUE = [REDACTED, "[", "]", "_", "-", ".", "/", "+", ",", ";", "&", "<", ">", "(", ")", "0", "9", "Z", "z", "\u00e9"]
FRAGMENTS = LABELS + JOINERS + VALUES + SHAPES + GLUE

NEUTRAL = [*PADDING.split(" "), " ", " ", "\n", ", ", ". "]
"""Words that trigger no pass: a text of a few fragments among them opens one gate at a time."""

labelled = st.tuples(st.sampled_from(LABELS), st.sampled_from(JOINERS), st.sampled_from(VALUES)).map("".join)
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), labelled, st.sampled_from(NEUTRAL), st.sampled_from(NEUTRAL)),
                 max_size=16).map("".join)


def full(text: str) -> str:
    """Every pass, whatever the text holds."""
    return module._redact_text(text)


def fast(text: str) -> str:
    return module._redact_ascii(text)


def leaked(secret: Secret, text: str) -> list[str]:
    return [value for value in secret.values if value in text]


@pytest.mark.parametrize("secret", SECRETS, ids=[s.name for s in SECRETS])
def test_every_secret_of_the_corpus_is_redacted_on_the_fast_path(secret: Secret) -> None:
    for text in (PADDING + secret.text, secret.text + " " + PADDING, PADDING + secret.text + " " + PADDING):
        module._clean.clear()
        out = redact_text(text)
        assert not leaked(secret, out), out
        assert REDACTED in out
        if text.isascii():
            assert len(text) >= module._GATED_FROM
            assert fast(text) == full(text) == out


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_untouched_on_the_fast_path(text: str) -> None:
    padded = PADDING + text + " " + PADDING
    assert fast(padded) == full(padded) == padded


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
@example("check passed; disk_full on bench-pc-02 " * 4)
@example("password" + "\x1c" + "hunter2 " * 20)
@example("the api key_id= S3cr3t!x " * 6)
def test_the_fast_path_equals_every_pass_run_in_full(text: str) -> None:
    padded = PADDING + text
    if padded.isascii():
        assert fast(padded) == full(padded)
        module._clean.clear()
        assert redact_text(padded) == full(padded)
    assert fast(text) == full(text) if text.isascii() else True


def test_the_fast_path_equals_every_pass_on_random_adversarial_mixes() -> None:
    """Texts of a few fragments among ordinary words (one gate open at a time, each gate's case tried), and
    long ones of many fragments glued without spaces (one pass's output feeds the next)."""
    rng = random.Random(19)
    ascii_fragments = [f for f in FRAGMENTS if f.isascii()]
    for _ in range(3000):
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(20, 60))]
        for _ in range(rng.randint(1, 3)):
            group = rng.choice([
                [rng.choice(LABELS), rng.choice(JOINERS), rng.choice(VALUES)],
                [rng.choice(SHAPES)],
                [rng.choice(LABELS), rng.choice(JOINERS), rng.choice(SHAPES)],
                [rng.choice(ascii_fragments) for _ in range(rng.randint(1, 3))],
            ])
            words.insert(rng.randrange(len(words) + 1), "".join(group))
        text = "".join(words)
        assert fast(text) == full(text), text
    for _ in range(300):
        text = "".join(rng.choice(ascii_fragments) for _ in range(rng.randint(20, 200)))
        assert fast(text) == full(text), text


def test_a_clean_long_text_is_remembered_and_a_short_one_takes_one_search() -> None:
    """The note and the reply of a ticket are redacted where written and again by each store: a clean text
    is returned from memory the second time."""
    module._clean.clear()
    text = PADDING * 2
    assert redact_text(text) == text
    assert text in module._clean
    assert redact_text("clear_temp_files") == "clear_temp_files"
    assert "clear_temp_files" not in module._clean
