"""What text a model writes for the end user may carry: no request for a secret, no foreign link.

Pure functions over untrusted text, linear in its length. :func:`asks_for_secret` recognises a
request for a password, passcode, PIN, one-time or verification code, recovery key, card number
or other credential in English, German, French, Spanish and Dutch (and the word for password in a
few more), also when spelled with look-alike digits (``passw0rd``), look-alike Cyrillic or Greek
letters, invisible characters or spaces (``p a s s w o r d``). :func:`links` finds the
addresses in a text (URLs, ``www.`` hosts, bare domains, e-mail addresses) with their host, so a
caller can hold them against an allow-list with :func:`foreign_links`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

MAX_CHECKED = 20_000
"""Characters of one text that are checked; a longer text is refused by the callers' field limits
long before, and whatever lies beyond is treated as suspect by :func:`asks_for_secret`."""

# Words that name a secret on their own (any language; accents folded, look-alike digits folded).
_SECRET_TERMS = (
    # English
    "password", "passwd", "passcode", "passphrase", "pin", "pin code", "pincode", "one-time code",
    "one time code", "one-time password", "otp", "2fa", "mfa code", "verification code", "security code",
    "authentication code", "authenticator code", "sign-in code", "login code", "access code", "sms code",
    "recovery key", "recovery code", "backup code", "bitlocker", "secret", "credentials", "login details",
    "credit card", "card number", "cvv", "cvc", "security question", "maiden name", "private key",
    "seed phrase", "api key", "social security", "bank details", "iban",
    # German
    "passwort", "kennwort", "zugangsdaten", "anmeldedaten", "geheimzahl", "tan", "einmalcode",
    "bestatigungscode", "sicherheitscode", "wiederherstellungsschlussel", "kreditkarte", "kartennummer",
    "geheim", "geheimnis",
    # French
    "mot de passe", "mdp", "code pin", "code de verification", "code de securite", "code a usage unique",
    "identifiants", "cle de recuperation", "carte bancaire", "carte de credit", "numero de carte",
    # Spanish
    "contrasena", "clave", "codigo de verificacion", "codigo de seguridad", "credenciales",
    "clave de recuperacion", "tarjeta de credito", "numero de tarjeta", "secreto",
    # Dutch
    "wachtwoord", "toegangscode", "verificatiecode", "beveiligingscode", "inloggegevens", "herstelsleutel",
    "creditcard", "kaartnummer", "geheime",
    # a few more, folded to ASCII: Portuguese, Italian, Polish, Finnish, Croatian
    "senha", "codice di verifica", "haslo", "salasana", "lozinka",
)
_OTHER_SCRIPTS = ("пароль", "密码", "密碼", "パスワード", "暗証番号", "كلمة المرور", "סיסמה", "κωδικός")
_SECRET = re.compile(r"\b(?:" + "|".join(re.escape(t).replace(r"\ ", r"[\s_-]+").replace(r"\-", r"[\s_-]*")
                                          for t in sorted(_SECRET_TERMS, key=len, reverse=True)) + r")\b")
# "the code we sent you", "the 6-digit code", "den Code aus der App": a code that is a credential, not an error code
_CODE = re.compile(r"\b(?:\d[\s-]{0,3}(?:digit|stellig\w{0,3}|chiffres?|digitos?|cijfers?)[\s-]{1,3})code\b"
                   r"|\bcodes?\b[^.?!\n]{0,40}\b(?:sent|texted|text you|received|sms|text message|authenticator|"
                   r"app|phone|e-?mail|gesendet|geschickt|erhalten|envoye|recu|enviado|recibido|ontvangen|verstuurd)\b"
                   r"|\b(?:sms|app|authenticator|token|auth|login|signin|sign in|security|verification)[\s-]+codes?\b")
# spelled out or spaced: only long, distinctive words are searched for in the text with every non-letter dropped
_SQUASHED = ("password", "passwort", "kennwort", "motdepasse", "contrasena", "wachtwoord", "passcode",
             "recoverykey", "creditcard", "kreditkarte", "bitlocker", "onetimecode", "verificationcode")
_LOOKALIKE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                            "€": "e", "|": "i"})


# Cyrillic and Greek letters that look like Latin ones ("раssword" with a Cyrillic р and а)
_CONFUSABLE = str.maketrans("аеорсухіјѕԁӏвмнткАЕОРСУХІЈЅВМНТКαεοριυνκτχΑΕΟΡΙΥΝΚΤΧ",
                            "aeopcyxijsdlbmhtkAEOPCYXIJSBMHTKaeopiuvktxAEOPIYNKTX")


def _fold(text: str) -> str:
    """Lower case, look-alike letters made Latin, accents and invisible characters dropped."""
    plain = unicodedata.normalize("NFKD", text[:MAX_CHECKED].translate(_CONFUSABLE))
    return plain.encode("ascii", "ignore").decode("ascii").lower()


def asks_for_secret(text: str) -> str | None:
    """The secret ``text`` asks for or mentions (``"password"``), or ``None`` when it names none."""
    if len(text) > MAX_CHECKED:
        return "an unchecked remainder (the text is too long)"
    lowered = text.lower()
    other = next((term for term in _OTHER_SCRIPTS if term in lowered), None)
    if other is not None:
        return other
    folded = _fold(text)
    for candidate in (folded, folded.translate(_LOOKALIKE)):
        found = _SECRET.search(candidate) or _CODE.search(candidate)
        if found is not None:
            return " ".join(found.group(0).split())
    squashed = re.sub(r"[^a-z]", "", folded.translate(_LOOKALIKE))
    return next((word for word in _SQUASHED if word in squashed), None)


_TOKEN = re.compile(r"[^\s<>\"'`()\[\]{},;|\\]+")
_TOKEN_MAX = 512
"""A token longer than this that could hold an address is reported whole, unchecked (and so foreign)."""
_ADDRESS = re.compile(
    r"[a-z][a-z0-9+.-]{1,15}://\S+"  # scheme://...
    r"|mailto:\S+"
    r"|[a-z0-9._%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,24}"  # e-mail address
    r"|(?:[a-z0-9-]{1,63}\.)+[a-z]{2,24}(?::\d{1,5})?(?:/\S*)?")  # www.host, host.tld/path
_NOT_HOSTS = frozenset((
    "exe", "msi", "dll", "bat", "cmd", "ps1", "sh", "txt", "log", "csv", "pdf", "doc", "docx", "xls", "xlsx", "ppt",
    "pptx", "png", "jpg", "jpeg", "gif", "zip", "tmp", "ini", "cfg", "conf", "json", "yaml", "yml", "xml", "html",
    "htm", "dmg", "pkg", "app", "lnk", "sys", "dat", "bak", "old", "py", "js"))


def links(text: str) -> list[tuple[str, str]]:
    """Every address in ``text`` as ``(address, host)``; file names such as ``setup.exe`` are not addresses.

    The text is cut into tokens at spaces and brackets first, and each token of at most
    :data:`_TOKEN_MAX` characters is matched whole: linear in the text whatever it holds."""
    found: list[tuple[str, str]] = []
    for token in _TOKEN.findall(_fold(text)):
        address = token.strip(".,:!?'")
        if len(address) > _TOKEN_MAX:
            if any(mark in address for mark in (".", "@", "://")):
                found.append((address[:60] + "…", ""))
            continue
        if _ADDRESS.fullmatch(address) is None:
            continue
        if "://" in address:
            host = urlsplit(address).hostname or ""
        elif address.startswith("mailto:"):
            host = address.partition("@")[2].split("?")[0]
        elif "@" in address:
            host = address.partition("@")[2]
        else:
            host = address.split("/")[0].split(":")[0]
            if host.rsplit(".", 1)[-1] in _NOT_HOSTS:
                continue
        found.append((address, host.strip(".")))
    return found


def foreign_links(text: str, allowed_hosts: Iterable[str]) -> list[str]:
    """The addresses in ``text`` whose host is neither an allowed host nor a subdomain of one."""
    allowed = [h.lower().strip(".") for h in allowed_hosts if h]
    return [address for address, host in links(text)
            if not any(host == h or host.endswith("." + h) for h in allowed)]


def host_of(url: str) -> str:
    """The host of a configured URL or a bare host name (``https://help.msp.example/x`` -> ``help.msp.example``)."""
    host = urlsplit(url).hostname if "://" in url else url.split("/")[0].split(":")[0]
    return (host or "").lower()
