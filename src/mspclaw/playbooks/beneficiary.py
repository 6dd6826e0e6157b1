"""Whether a ticket asks for something on another person's account ("reset the password for user jdoe").

The account playbooks (password reset, lockout, MFA) act on the ticket's verified requester and on
no one else (``pipeline/requester.py``). A ticket in which a manager, a colleague or a service desk
asks for someone else's password would otherwise reset the *requester's* own password: the wrong
account, and a reply that makes no sense to them. :func:`mentions` finds the wording that says the
account is someone else's, in English, German, French, Spanish and Dutch:

* a role or a person after "for" (``for user jdoe``, ``for my colleague``, ``für den Mitarbeiter``,
  ``pour l'utilisateur``, ``para el usuario``, ``voor gebruiker``, ``on behalf of``);
* a third person's account (``his password``, ``her account``, ``sein Kennwort``, ``zijn wachtwoord``,
  ``Dana's account``, ``the user's password``);
* a named user and what happened to them (``user jdoe is locked out``, ``Benutzer mueller hat``).

Each :class:`Mention` keeps the words that said it and, where the text names the person, the name:
the caller drops a mention whose name is the requester's own (``pipeline/run.py`` compares it with
:func:`mspclaw.pipeline.identity.identity_keys`), so "the error says: wrong password for user
dana.scully" from Dana herself is still her own ticket.

Ambiguous words are left out on purpose: German ``ihr``/``Ihr`` and Spanish ``su`` mean "your"
(formal) as often as "her"/"his". A missed mention costs what it cost before this check (the
technician sees the requester as the target in the approval and refuses); a false one sends the
ticket to a technician.

Work is linear and bounded: only the first :data:`MAX_CHARS` characters of the subject and the body
are read, and every pattern has bounded repeats.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from mspclaw.playbooks.language import fold

MAX_CHARS = 4000
"""Characters read from the subject and from the body (what asks for the account comes first)."""
MAX_MENTIONS = 8

_NAME = r"([a-z0-9][a-z0-9._'@-]{0,63})"
"""A user name, an address or a first name, folded (group 1 of each pattern that names someone)."""

_ROLES_EN = (r"user|employee|staff member|colleague|co-?worker|team member|member of staff|new starter|new hire|"
             r"new joiner|intern|assistant|contractor|temp")
_ROLES_DE = (r"benutzer|benutzerin|user|mitarbeiter|mitarbeiterin|kollegen|kollegin|nutzer|nutzerin|anwender|"
             r"anwenderin|herrn|frau|hr\.|fr\.|praktikanten|praktikantin|azubi")
_ROLES_FR = (r"utilisateur|utilisatrice|collegue|collaborateur|collaboratrice|employe|employee|salarie|salariee|"
             r"stagiaire|m\.|mme|monsieur|madame")
_ROLES_ES = (r"usuario|usuaria|companero|companera|empleado|empleada|colaborador|colaboradora|becario|becaria|"
             r"sr\.|sra\.|senor|senora")
_ROLES_NL = r"gebruiker|gebruikster|medewerker|medewerkster|collega|stagiair|dhr\.|mevr\.|meneer|mevrouw"

_ACCOUNT_EN = r"password|passcode|pw|pwd|account|login|log-?in|sign-?in|mfa|2fa|authenticator|pin|user ?id|username"
_ACCOUNT_DE = r"passwort|kennwort|konto|account|zugang|login|anmeldung|benutzerkonto|pin"
_ACCOUNT_FR = r"mot de passe|mdp|compte|identifiant|session"
_ACCOUNT_ES = r"contrasena|clave|cuenta|sesion"
_ACCOUNT_NL = r"wachtwoord|account|login|inlog|gebruikersaccount"
_VERBS = (r"reset|resets|unlock|unlocked|locked|lock ?out|locked ?out|re-?enable|zurucksetzen|entsperren|gesperrt|"
          r"reinitialiser|reinitialisation|debloquer|bloque|restablecer|desbloquear|bloqueada|bloqueado|resetten|"
          r"ontgrendelen|deblokkeren|geblokkeerd")

_STATE_EN = (r"is|was|has|had|got|gets|cannot|can't|cant|can not|could not|couldn't|forgot|needs|is unable|"
             r"is not able|isn't able|locked|does not|doesn't")
_STATE_DE = r"ist|war|hat|hatte|kann|konnte|braucht|benotigt|wurde"
_STATE_FR = r"est|a|n'arrive|ne peut|ne parvient|n'a|doit"
_STATE_ES = r"esta|tiene|no puede|no consigue|olvido|necesita|ha"
_STATE_NL = r"is|heeft|kan|kon|was|moet"

_ACTION = re.compile(rf"\b(?:{_ACCOUNT_EN}|{_ACCOUNT_DE}|{_ACCOUNT_FR}|{_ACCOUNT_ES}|{_ACCOUNT_NL}|{_VERBS})\b")
"""What the account playbooks do, in five languages: a role phrase counts only this close to one."""
NEAR = 60
"""Characters between a role phrase ("for my colleague") and the account word or verb it is about."""

_FOR_ROLE = re.compile("|".join([
    rf"\b(?:for|of)\s+(?:the\s+|a\s+|an\s+|my\s+|our\s+|one of (?:my|our)\s+)?(?:new\s+)?(?:{_ROLES_EN})\b",
    rf"\bfur\s+(?:den\s+|die\s+|einen\s+|eine\s+|meinen\s+|meine\s+|unseren\s+|unsere\s+)?(?:neuen\s+|neue\s+)?"
    rf"(?:{_ROLES_DE})\b",
    rf"\b(?:von|des|der)\s+(?:dem\s+|der\s+|meinem\s+|meiner\s+|unserem\s+|unserer\s+)?(?:{_ROLES_DE})s?\b",
    rf"\bpour\s+(?:l'|le\s+|la\s+|mon\s+|ma\s+|notre\s+|un\s+|une\s+)?(?:nouvel\s+|nouveau\s+|nouvelle\s+)?"
    rf"(?:{_ROLES_FR})\b",
    rf"\b(?:de\s+l'|du\s+|de la\s+|de\s+(?:mon|ma|notre)\s+)(?:{_ROLES_FR})\b",
    rf"\bpara\s+(?:el\s+|la\s+|mi\s+|nuestro\s+|nuestra\s+|un\s+|una\s+)?(?:nuevo\s+|nueva\s+)?(?:{_ROLES_ES})\b",
    rf"\b(?:del|de la|de mi|de nuestro|de nuestra)\s+(?:{_ROLES_ES})\b",
    rf"\bvoor\s+(?:de\s+|het\s+|mijn\s+|onze\s+|ons\s+|een\s+)?(?:nieuwe\s+)?(?:{_ROLES_NL})\b",
    rf"\bvan\s+(?:de\s+|mijn\s+|onze\s+|een\s+)?(?:{_ROLES_NL})\b",
    r"\bon behalf of\b|\bim (?:auftrag|namen) (?:von|des|der)\b|\bau nom de\b|\ben nombre de\b",
]))
"""Someone else named by role ("for my colleague", "für den Mitarbeiter"): counted near an account word."""

_THIRD_PERSON = re.compile("|".join([
    rf"\b(?:his|her)\s+(?:own\s+)?(?:ms\s+|microsoft\s+|windows\s+|domain\s+|network\s+|email\s+|e-mail\s+)?"
    rf"(?:{_ACCOUNT_EN})s?\b",
    rf"\b(?:sein|seine|seinen|seinem|seines)\s+(?:{_ACCOUNT_DE})\b",
    rf"\b(?:son|sa)\s+(?:{_ACCOUNT_FR})\b",
    rf"\b(?:zijn|haar)\s+(?:{_ACCOUNT_NL})\b",
    rf"\b(?:the|a|this|that|my|our)\s+(?:new\s+)?(?:{_ROLES_EN})(?:'s|s')\s+(?:{_ACCOUNT_EN})\b",
]))
"""Someone else's account by a possessive that cannot be the writer's (``ihr``, ``su``, ``their`` are left out:
"your" in formal German and Spanish, and "users must change their password" in a policy quoted by the writer)."""

_NAMED = [
    rf"\b(?:{_ROLES_EN})\s+(?:id\s+|name\s+|account\s+)?:?\s*{_NAME}\s+(?:{_STATE_EN})\b",
    rf"\b(?:for|of)\s+(?:the\s+)?(?:{_ROLES_EN})\s+(?:id\s+|name\s+|account\s+)?:?\s*{_NAME}",
    rf"\b(?:{_ACCOUNT_EN})\s+(?:reset\s+|unlock\s+)?(?:for|of)\s+(?:mr\.?\s+|mrs\.?\s+|ms\.?\s+|dr\.?\s+)?"
    rf"([a-z0-9][a-z0-9'-]{{0,40}}[._@][a-z0-9._@-]{{1,60}}|[a-z]{{1,20}}[0-9]{{1,8}})(?![a-z0-9])",
    rf"\b{_NAME}'s\s+(?:{_ACCOUNT_EN})\b",
    rf"\b(?:{_ROLES_DE})\s+(?:id\s+|name\s+)?:?\s*{_NAME}\s+(?:{_STATE_DE})\b",
    rf"\b(?:l'utilisateur|l'utilisatrice|le collaborateur|la collaboratrice|l'employe)\s+{_NAME}\s+(?:{_STATE_FR})\b",
    rf"\b(?:el usuario|la usuaria|el empleado|la empleada)\s+{_NAME}\s+(?:{_STATE_ES})\b",
    rf"\b(?:gebruiker|medewerker|collega)\s+{_NAME}\s+(?:{_STATE_NL})\b",
]
"""Someone else by name (group 1), dropped by the caller when the name is the requester's."""

_NOT_A_NAME = frozenset([
    "a", "an", "the", "my", "me", "i", "im", "i'm", "we", "our", "us", "you", "your", "yourself", "myself", "mine",
    "this", "that", "these", "those", "it", "its", "he", "she", "they", "them", "is", "was", "has", "have", "had",
    "can", "cannot", "cant", "can't", "could", "not", "no", "yes", "please", "pls", "plz", "kindly", "so", "and",
    "or", "but", "with", "without", "in", "on", "at", "to", "from", "by", "for", "of", "as", "be", "been", "being",
    "who", "which", "what", "when", "where", "why", "how", "all", "any", "some", "every", "each", "account",
    "accounts", "portal", "portals", "login", "logins", "logon", "name", "names", "id", "ids", "profile",
    "profiles", "session", "sessions", "password", "passwords", "pw", "pwd", "mfa", "2fa", "otp", "pin", "code",
    "token", "tokens", "app", "apps", "application", "applications", "guide", "guides", "manual", "help", "support",
    "desk", "helpdesk", "team", "teams", "group", "groups", "list", "lists", "access", "rights", "error", "errors",
    "message", "issue", "issues", "problem", "problems", "request", "requests", "ticket", "tickets", "information",
    "info", "here", "there", "today", "yesterday", "now", "again", "also", "still", "only", "just", "new", "old",
    "same", "other", "another", "user", "users", "colleague", "colleagues", "employee", "employees"
])
"""Words that follow "user" or "for the user" without naming anyone (``for user accounts``, ``the user is``)."""

_NAMED_PATTERNS = [re.compile(p) for p in _NAMED]
_OWN = re.compile(r"\b(?:my|mein|meinen|meine|mon|ma|mi|mijn)\s+$")
"""The writer's own, right before a named user (``my user id jdoe``): their own account, whatever its name."""
_NEXT_WORD = re.compile(r"\s{1,3}([a-z]{1,20})")
_COMPOUND = frozenset([
    "portal", "portals", "guide", "guides", "manual", "manuals", "group", "groups", "list", "lists", "accounts",
    "profile", "profiles", "interface", "experience", "rights", "settings", "training", "trainings", "directory",
    "forum", "forums", "agreement", "policy", "policies", "handbook", "area", "areas", "page", "pages", "site",
    "login", "logins", "account", "data", "documentation"
])
"""Nouns that make "user" or "employee" describe a thing ("the user portal", "the employee handbook")."""


@dataclass(frozen=True)
class Mention:
    """Words of the ticket that say the account is someone else's."""

    evidence: str
    """The words as folded (lower case, no accents), at most 80 characters."""
    name: str | None = None
    """The person's name, user name or address when the words name them."""


def mentions(subject: str, body: str) -> list[Mention]:
    """Every place (at most :data:`MAX_MENTIONS`) where the ticket says the account is someone else's."""
    text = " ".join(fold(subject[:MAX_CHARS]).split()) + " \n " + " ".join(fold(body[:MAX_CHARS]).split())
    text = text.replace("\u2019", "'")
    found: list[Mention] = []
    named: list[tuple[int, int]] = []
    for pattern in _NAMED_PATTERNS:
        for match in pattern.finditer(text):
            name = match.group(1).strip("._'-@")
            if _OWN.search(text, max(0, match.start() - 8), match.start()):  # "my user id jdoe is locked"
                named.append(match.span())
                continue
            if name and name not in _NOT_A_NAME:
                found.append(Mention(match.group(0)[:80], name))
                named.append(match.span())

    def unnamed(match: re.Match[str]) -> bool:
        """Not part of words that name the person (those are kept with the name, for the caller to compare)."""
        return not any(start <= match.start() < end for start, end in named)

    third = next((m for m in _THIRD_PERSON.finditer(text) if unnamed(m)), None)
    if third is not None:
        found.append(Mention(third.group(0)[:80]))
    actions = [m.start() for m in _ACTION.finditer(text)]
    for role in _FOR_ROLE.finditer(text):
        if not unnamed(role) or text.startswith("'s", role.end()):  # "for my colleague's handover": not an account
            continue
        after = _NEXT_WORD.match(text, role.end())
        if after is not None and after.group(1) in _COMPOUND:  # "for the user portal": "user" describes a thing
            continue
        # the nearest account word or verb on either side (positions ascending: a bisect)
        at = bisect.bisect_left(actions, role.start())
        near = [actions[i] for i in (at - 1, at) if 0 <= i < len(actions)]
        if any(abs(position - role.start()) <= NEAR for position in near):
            found.append(Mention(role.group(0)[:80]))
            break
    return found[:MAX_MENTIONS]
