"""Keep secrets out of everything MSPclaw stores, logs or sends to a model provider.

:func:`redact` returns a copy of JSON-like data (dicts, lists, tuples, scalars) in which

1. **the value under a secret-looking key is replaced by** ``"[redacted]"``, whatever its type
   (a string, a number, a whole nested object); ``None`` stays ``None`` since it hides nothing.
   A key is secret-looking when, after normalising it (camelCase split, lower-cased, ``-``,
   ``.`` and spaces turned into ``_``, so ``X-Api-Key``, ``apiKey`` and ``api.key`` all become
   ``api_key``):

   * it contains one of :data:`SECRET_STEMS` anywhere (``new_password``, ``client_secret``,
     ``Authorization``, ``set_cookie``, ``x_api_key``, ``private_key_pem``, ``signing_key``...);
   * or one of its ``_``-separated words contains ``token`` (``access_token``, ``refreshToken``,
     ``apitoken``), except a last word of exactly ``tokens``: ``input_tokens``, ``max_tokens``
     are the token counts every LLM provider reports, not credentials;
   * or the whole key is one of :data:`SECRET_KEYS` (``code``, ``enrollment_code``, ``pin``,
     ``otp``, ``pwd``, ``auth``), words too short or too common to match inside other keys.

2. **secrets inside strings are scrubbed** wherever they occur, under any key (:func:`redact_text`):

   * *by shape*, whatever the text around them: PEM private key blocks (also JSON-escaped, as in
     a GCP service-account file), AWS access key ids and 40-character secret keys, Azure storage
     account keys, GitHub (``ghp_``, ``github_pat_``), Slack (``xox?-``, webhook URLs), OpenAI,
     Anthropic, Stripe and Google API keys, JWTs, and MSPclaw's own credentials (``mck_<id>_<secret>``
     keeps its id, ``msp_``/``enr_``/``whsec_``/``test_``/``demo_`` tokens, login links);
   * *by label*: ``Bearer <token>``, an ``Authorization:`` header (its scheme is kept), the
     password of a URL, and ``<label> [:=] <value>`` pairs whose label names a secret in English,
     German, French, Spanish, Dutch, Portuguese, Polish or Finnish (``password``, ``pw``, ``pass``,
     ``passwort``, ``mot de passe``, ``contraseña``, ``wachtwoord``, ``secret``, ``token``,
     ``api key``, ``AccountKey``, ``SharedAccessSignature``, ``sig``, recovery/verification
     codes...): the label stays, the value (quoted values whole, spaces and all) goes;
   * *in prose*: ``my password is <value>``, ``mein Passwort ist <value>``, ``the password for
     the VPN is <value>``, ``PIN 4821``. A value in prose is taken only if it looks like a secret
     (quoted, or holding a digit, a symbol or a capital letter) and is not an ordinary word
     (:data:`_ORDINARY`), so "my password is not working" stays as it is.

The patterns follow ``detect-secrets``' plugin list (AWS, Azure, GitHub, Slack, JWT, private
keys, Stripe, basic auth, keywords) with MSPclaw's own token formats and the prose rules added;
every one runs in time linear in the text (a bare token's pattern cannot start again inside a run
of its own characters, every repetition after a label is bounded or single-character), which
``tests/store/test_redact.py`` holds to a time budget on 1 MB adversarial inputs.

The rule errs on the side of hiding: a value wrongly redacted costs a little detail, a secret
wrongly kept cannot be taken back. Keys themselves are never changed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

SECRET_STEMS: tuple[str, ...] = (
    "password",
    "passwd",
    "passwort",
    "kennwort",
    "wachtwoord",
    "contrasena",
    "contraseña",
    "passphrase",
    "secret",
    "credential",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
    "privatekey",
    "signing_key",
    "server_key",
    "session_key",
    "access_key",
    "account_key",
    "accountkey",
    "shared_access",
    "connection_string",
    "recovery_key",
    "bearer",
)
"""Substrings that make a normalised key secret wherever they appear in it."""

SECRET_KEYS: frozenset[str] = frozenset({"code", "enrollment_code", "pin", "pin_code", "otp", "pwd", "pw", "auth",
                                         "sig", "mdp"})
"""Normalised keys that are secret only as a whole."""

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s\-.]+")

# --- by label --------------------------------------------------------------------------------------
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?!\[redacted\])[A-Za-z0-9\-._~+/]+=*")
_AUTH_HEADER = re.compile(r"(?im)\b((?:proxy-)?authorization\s*[:=]\s*)(?!(?:[A-Za-z][\w-]*\s+)?\[redacted\])"
                          r"(?:([A-Za-z][\w-]*)\s+)?[^\s,;'\"]+")
_URL_PASSWORD = re.compile(r"((?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^/\s:@]*:)(?!\[redacted\]@)[^/\s@]+(@)")

_SEP = r"[ _.\-]?"
_LONG_LABELS = (  # no boundary before them: ``db_password``, ``newPassword``, ``client_secret``, ``x-access-token``
    r"pass(?:wor[dt]|wd|phrase|code)s?|kennwort|wachtwoord|contrase(?:ñ|n)a|senha|salasana|has(?:ł|l)o|lozinka"
    r"|mot[ ]de[ ]passe|secret|token|api" + _SEP + "key|access" + _SEP + r"key(?:" + _SEP + "id)?|account" + _SEP
    + "key|shared" + _SEP + "access" + _SEP + r"(?:key|signature)|private" + _SEP + r"key(?:" + _SEP + r"id)?"
    r"|connection" + _SEP + r"string"
    r"|(?:enrol?ment|recovery|backup|verification|security|mfa|2fa|one[ -]time|unlock|activation|auth)"
    + _SEP + r"(?:code|key|pin)"
)
_SHORT_LABELS = r"pw|pwd|pass|mdp|pin|otp|sig"  # whole words only: not ``bypass``, ``spin``, ``design``
_VALUE = (  # one value: quoted (spaces and all, up to 256 characters), or a run of value characters
    r"(?:\"[^\"\n]{1,256}\"|'[^'\n]{1,256}'|“[^”\n]{1,256}”|(?:[^\s\"'&;,<>]"
    r"|[&;,](?![A-Za-z_][\w.\-]{0,40}=|\s|$)){1,512})"
)
_LABELLED = re.compile(  # run on the lower-cased text: no (?i), which makes every position cost twice
    r"(?P<label>(?:" + _LONG_LABELS + r")|(?<![a-z0-9])(?:" + _SHORT_LABELS + r"))"
    r"(?:(?P<pair>[\"']?\s{0,5}(?:[:=]|=>)\s{0,5})"
    r"|(?P<prose>(?:\s{1,3}(?:for|für|pour|para|voor|of|von|de)\s{1,3}[^\s:=]{1,40}(?:\s{1,3}[^\s:=]{1,40}){0,2}?)?"
    r"\s{1,3}(?:is\s{1,3}now|ist\s{1,3}jetzt|is\s{1,3}still|(?:was\s{1,3})?(?:set|changed|reset)\s{1,3}to"
    r"|geändert\s{1,3}auf|is|ist|est|es|era|was|war|are|sind|lautet)\s{0,3}:?\s{1,3}))"
    r"(?!\[redacted\])(?P<value>" + _VALUE + ")"
)
"""``<label>: <value>``, ``<label>=<value>``, ``<label> is <value>``: one scan for the pairs and the prose."""
_LABELLED_ANY_CASE = re.compile(_LABELLED.pattern, re.IGNORECASE)
"""For the rare text whose lower-case form has another length (``İ``): positions would not match."""
_PIN_DIGITS = re.compile(r"(?i)((?<![a-z0-9])pin(?:[ _-]?(?:code|number|nummer|-nr\.?))?[\"']?\s{1,3})(\d{4,12})(?!\d)")

_ORDINARY_WORDS = """
a an the my your his her our their this that it its is was are be been being not no none nicht kein keine pas
expired abgelaufen expiré expirado verlopen wrong incorrect invalid falsch faux incorrecte incorrecto fout locked
gesperrt bloqué bloqueado geblokkeerd reset zurückgesetzt required missing empty blank unknown forgotten vergessen
oublié olvidado vergeten same changed geändert please help problem issue issues change update updated ok okay fine
working correct right still also too and or for to in on at with of by from n/a na none null nil yes true false set
unset hidden secret sensitive below above attached here there correctly anymore again now being needed new old
doesn't don't can't cannot won't isn't wasn't didn't does do did will would should could might must has have had
rejected blocked disabled enabled accepted case-sensitive
"""
_ORDINARY = frozenset(_ORDINARY_WORDS.split())
"""Words that follow ``password is`` / ``password:`` in ordinary tickets: never taken as the secret."""

# --- by shape --------------------------------------------------------------------------------------
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_PEM_BODY_TAIL = re.compile(r"[A-Za-z0-9+/=\s\\:,-]*")
"""With no END line: the base64 lines (and ``\\n`` escapes, header fields) after BEGIN go."""

_TOKEN_SHAPES = re.compile(  # each branch starts with its literal prefix, which re finds fast
    r"(?P<aws_id>(?:AKIA|ASIA|ABIA|ACCA)(?<![A-Z0-9].{4})[A-Z0-9]{16})(?![A-Z0-9])"
    r"|(?P<github>gh[pousr]_(?<![A-Za-z0-9_].{4})[A-Za-z0-9]{36,251}"
    r"|github_pat_(?<![A-Za-z0-9_].{11})[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])"
    r"|(?P<slack>xox[abposr]-(?<![A-Za-z0-9-].{5})[A-Za-z0-9-]{10,250})"
    r"|(?P<slack_hook>hooks\.slack\.com/services/)[A-Za-z0-9/_-]{10,200}"
    r"|(?P<jwt>eyJ(?<![A-Za-z0-9_-].{3})[A-Za-z0-9_-]{5,8192}\.eyJ[A-Za-z0-9_-]{5,16384}\.[A-Za-z0-9_-]{0,8192})"
    r"|(?P<sk>sk-(?<![A-Za-z0-9_-].{3})(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,300})"
    r"|(?P<stripe>[rs]k_(?:live|test)_(?<![A-Za-z0-9_].{8})[A-Za-z0-9]{16,247})(?![A-Za-z0-9_])"
    r"|(?P<google>AIza(?<![A-Za-z0-9_-].{4})[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])"
    r"|(?P<mck>mck_(?<![A-Za-z0-9_-].{4})[0-9a-f]{12}_)[A-Za-z0-9_-]{16,200}"
    r"|(?P<ours>(?:msp|enr|whsec|test|demo)_(?<![A-Za-z0-9_-]msp_)(?<![A-Za-z0-9_-]enr_)(?<![A-Za-z0-9_-]whsec_)"
    r"(?<![A-Za-z0-9_-]test_)(?<![A-Za-z0-9_-]demo_)[A-Za-z0-9_-]{16,200})(?![A-Za-z0-9_-])"
    r"|(?P<link>/auth/link/)[A-Za-z0-9_.~-]{16,512}"
)
_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9/+=_-])(?:[A-Za-z0-9/+]{40}|[A-Za-z0-9/+]{86}==)(?![A-Za-z0-9/+=_-])")
"""AWS secret access keys (40 characters) and Azure storage keys (88, ending ``==``), by shape."""
_KEEP_PREFIX = frozenset({"slack_hook", "mck", "link"})
"""Shapes whose first group is a prefix worth keeping (``mck_<id>_`` names the key, not its secret)."""

_MAY_HOLD_SECRET = re.compile(
    r"bearer|authori[sz]ation|://|pass|pw|pwd|secret|token|key|code|pin|otp|sig|mdp|senha|kennwort|wachtwoord"
    r"|contrase|has[lł]o|lozinka|salasana|private|akia|asia|abia|acca|gh[pousr]_|github_pat_|xox|eyj|sk-|[rs]k_"
    r"|aiza|mck_|msp_|enr_|whsec_|test_|demo_|/auth/link/|[a-z0-9/+]{40}"
)
"""Run on the lower-cased text: text with none of these holds nothing the patterns above would scrub."""

# --- what each pass needs, for longer ASCII texts (see :func:`_redact_ascii`) ------------------------
_SHAPE_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox",
                   "hooks.slack.com/services/", "eyJ", "sk-", "k_live_", "k_test_", "AIza", "mck_", "msp_", "enr_",
                   "whsec_", "test_", "demo_", "/auth/link/")
"""The literal each branch of :data:`_TOKEN_SHAPES` starts with (or holds): a text with none has no match."""
_RUN_CHARS = bytes(ord("a") if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "/+") else ord(" ")
                   for i in range(256))
"""``bytes.translate`` table: the characters of :data:`_KEY_SHAPE`'s runs become ``a``, any other ``' '``."""
_KEY_RUN = b"a" * 40
_FOLLOWS = r"[\"'\s:=]"
"""What comes right after a label in every :data:`_LABELLED` match: a quote, a space, ``:`` or ``=``."""
_LABEL_GATES: tuple[tuple[str, re.Pattern[str] | None], ...] = tuple(
    (word, None if gate is None else re.compile(gate)) for word, gate in (
        ("pass", r"pass(?:[wpc]|e?" + _FOLLOWS + ")"),  # password, passwort, passwd, passphrase, passcode, pass, passe
        ("key", r"key(?:[ _.\-]?id)?" + _FOLLOWS),  # api key, access key (id), account key, private key (id)...
        ("code", "code" + _FOLLOWS), ("pin", "pin" + _FOLLOWS), ("token", "token" + _FOLLOWS),
        ("secret", "secret" + _FOLLOWS), ("sig", "sig(?:nature)?" + _FOLLOWS), ("pw", "pwd?" + _FOLLOWS),
        ("otp", "otp" + _FOLLOWS), ("mdp", "mdp" + _FOLLOWS), ("connection", r"connection[ _.\-]?string"),
        ("kennwort", None), ("wachtwoord", None), ("contrasena", None), ("senha", None), ("salasana", None),
        ("haslo", None), ("lozinka", None),
    ))
"""Every label of :data:`_LABELLED` (in ASCII) holds one of these words and is followed by :data:`_FOLLOWS`: the
word, then (when given) the pattern, found in the lower-cased text, or the labelled pass finds nothing."""
_GATED_FROM = 128
"""Texts this long or longer are checked pass by pass (:func:`_redact_ascii`); shorter ones by one search of
:data:`_MAY_HOLD_SECRET`, which costs less for them."""


def normalise_key(key: object) -> str:
    """``"X-Api-Key"`` → ``"x_api_key"``, ``"refreshToken"`` → ``"refresh_token"``."""
    text = _CAMEL.sub("_", str(key))
    return _SEPARATORS.sub("_", text).lower()


def is_secret_key(key: object) -> bool:
    """Whether values under ``key`` are replaced by :data:`REDACTED` (rule 1 above)."""
    return _is_secret_name(key) if isinstance(key, str) else _is_secret(key)


@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    """:func:`_is_secret` once per key name: the same few keys come back in every event."""
    return _is_secret(key)


def _is_secret(key: object) -> bool:
    norm = normalise_key(key)
    if norm in SECRET_KEYS:
        return True
    if any(stem in norm for stem in SECRET_STEMS):
        return True
    words = [w for w in norm.split("_") if w]
    return any("token" in word and not (word == "tokens" and i == len(words) - 1) for i, word in enumerate(words))


_CLEAN_TEXTS = 256
"""Texts of :data:`_CLEAN_TEXT_CHARS` or fewer that :func:`redact_text` returned last, remembered: a ticket's
note is redacted where it is written, then again by the store and the audit log, and it comes back clean.
Bounded in count and size whatever arrives."""
_CLEAN_TEXT_CHARS = 16_384
_clean: dict[str, None] = {}


def redact_text(text: str) -> str:
    """``text`` with every secret the rules of the module docstring find replaced by :data:`REDACTED`."""
    if text in _clean:
        return text
    if len(text) >= _GATED_FROM and text.isascii():
        redacted = _redact_ascii(text)
    elif _MAY_HOLD_SECRET.search(text.lower()):
        redacted = _redact_text(text)
    else:
        return text
    if len(redacted) <= _CLEAN_TEXT_CHARS:
        # a redacted text holds nothing more to redact: the rules replace a secret by REDACTED, which no
        # rule matches again (tests/store/test_redact.py checks redact_text(redact_text(x)) == redact_text(x))
        if len(_clean) >= _CLEAN_TEXTS:
            try:
                _clean.pop(next(iter(_clean)), None)
            except (RuntimeError, StopIteration):  # another thread changed it meanwhile: start afresh
                _clean.clear()
        _clean[redacted] = None
    return redacted


def _redact_text(text: str) -> str:
    if "PRIVATE KEY" in text:
        text = _redact_pem(text)
    text = _TOKEN_SHAPES.sub(_shape_repl, text)
    text = _KEY_SHAPE.sub(_key_shape_repl, text)
    text = _AUTH_HEADER.sub(_auth_header_repl, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
    text = _PIN_DIGITS.sub(_keep_label, text)
    return _redact_labelled(text)


def _redact_ascii(text: str) -> str:
    """:func:`_redact_text` for an ASCII text, each pass run only when the text holds what it needs to match
    (a literal of each branch, a run of 40 key characters, a label followed by ``:``, ``=``, a quote or a
    space): the same result, found with a few substring searches in the usual text that holds no secret.
    In ASCII, ``text.lower()`` keeps every position and is what the case-blind patterns match."""
    if "PRIVATE KEY" in text:
        text = _redact_pem(text)
    if any(prefix in text for prefix in _SHAPE_PREFIXES):
        text = _TOKEN_SHAPES.sub(_shape_repl, text)
    if _KEY_RUN in text.encode("ascii").translate(_RUN_CHARS):
        text = _KEY_SHAPE.sub(_key_shape_repl, text)
    low = text.lower()
    if "authorization" in low:
        text = _AUTH_HEADER.sub(_auth_header_repl, text)
        low = text.lower()
    if "bearer" in low:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        low = text.lower()
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
        low = text.lower()
    if "pin" in low:
        text = _PIN_DIGITS.sub(_keep_label, text)
        low = text.lower()
    for word, gate in _LABEL_GATES:
        if word in low and (gate is None or gate.search(low)):
            return _redact_labelled(text)
    return text


def _redact_labelled(text: str) -> str:
    """The values of :data:`_LABELLED` matches, found in the lower-cased text, cut from ``text`` itself."""
    low = text.lower()
    matches = _LABELLED.finditer(low) if len(low) == len(text) else _LABELLED_ANY_CASE.finditer(text)
    out: list[str] = []
    pos = 0
    for match in matches:
        start, end = match.span("value")
        if _takes(match, text[start:end]):
            out.append(text[pos:start])
            out.append(REDACTED)
            pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _takes(match: re.Match[str], value: str) -> bool:
    """Whether the value after a label is a secret (see :data:`_ORDINARY` and the prose rule)."""
    if value[0] in "\"'“":
        return True
    if _value_word(value) in _ORDINARY:
        return False
    if match.group("pair") is not None:
        return True
    if match.group("label") in ("pw", "pwd", "pass", "mdp", "otp", "sig"):
        return False  # "pass is ..." is English, not a credential
    word = value.rstrip(".,!?)")
    return len(word) >= 4 and not (word.isalpha() and word.islower())


def _redact_pem(text: str) -> str:
    """Each PEM private key block, BEGIN to END line (or to the end of its base64 without one)."""
    out: list[str] = []
    pos = 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        out.append(text[pos:begin.start()])
        end = _PEM_END.search(text, begin.end())
        stop = end.end() if end is not None else _match_end(_PEM_BODY_TAIL, text, begin.end())
        out.append(REDACTED)
        pos = stop
    out.append(text[pos:])
    return "".join(out)


def _match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    match = pattern.match(text, pos)
    return match.end() if match is not None else pos


def _shape_repl(match: re.Match[str]) -> str:
    kind = match.lastgroup or ""
    if kind in _KEEP_PREFIX:
        return f"{match.group(kind)}{REDACTED}"
    token = match.group(0)
    if kind == "ours" and not _looks_random(token.partition("_")[2], slashes=0):
        return token
    return REDACTED


def _key_shape_repl(match: re.Match[str]) -> str:
    token = match.group(0)  # 88 characters ending "==" is no path: any number of slashes
    return REDACTED if _looks_random(token, slashes=88 if token.endswith("==") else 2) else token


def _looks_random(token: str, *, slashes: int) -> bool:
    """Upper and lower case letters and a digit (a key, not a word, path or hex hash)."""
    if (slashes < 88 and token.startswith("/")) or token.count("/") > slashes:
        return False
    return (any(c.isupper() for c in token) and any(c.islower() for c in token)
            and any(c.isdigit() for c in token))


def _auth_header_repl(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return f"{match.group(1)}{scheme} {REDACTED}" if scheme else f"{match.group(1)}{REDACTED}"


def _keep_label(match: re.Match[str]) -> str:
    return f"{match.group(1)}{REDACTED}"


def _value_word(value: str) -> str:
    return value.strip("\"'“”").rstrip(".,!?)").lower()


def redact(data: Any) -> Any:
    """A copy of ``data`` with secrets replaced (see the module docstring for the rule).

    Dicts keep their keys, lists and tuples become lists, strings are scrubbed, other values
    are returned as they are. The input is never modified.
    """
    if isinstance(data, Mapping):
        return {
            key: (REDACTED if value is not None and is_secret_key(key) else redact(value))
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact(item) for item in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


def redact_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`redact` of a JSON object, as a ``dict``: :func:`redact_plain` when it can, else :func:`redact`."""
    plain = redact_plain(data)
    return plain if plain is not None else dict(redact(data))


def redact_optional(text: str | None) -> str | None:
    """:func:`redact_text`, with ``None`` passed through (nullable columns)."""
    return None if text is None else redact_text(text)

class _NotPlain(Exception):
    """Raised inside :func:`redact_plain` on a value that is not one of JSON's own types."""


def redact_plain(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`redact` for data made only of JSON's own types, in one pass: the copy it returns holds
    nothing but ``dict`` (string keys), ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None``
    (tuples become lists), so it needs no JSON round trip to be what a reader will parse back.

    ``None`` when ``data`` holds anything else (other keys, other types, subclasses such as enums):
    the caller then takes the general path, :func:`redact` and a conversion of its own.
    """
    try:
        return _plain_dict(data) if type(data) is dict else None
    except _NotPlain:
        return None


def _plain_dict(data: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if type(key) is not str:
            raise _NotPlain
        out[key] = REDACTED if value is not None and _is_secret_name(key) else _plain_value(value)
    return out


def _plain_value(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if kind is dict:
        return _plain_dict(value)
    if kind is list or kind is tuple:
        return [_plain_value(item) for item in value]
    raise _NotPlain
