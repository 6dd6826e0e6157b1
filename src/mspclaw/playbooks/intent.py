"""What a ticket asks for: a fix, a piece of work, or only an answer.

A playbook diagnoses and fixes one user's problem, or does a piece of work someone asked for
(reset a password, install an application, give access to a share). A ticket that names a
product and states neither ("Outlook rule to move sent items to another folder", "Conversation
archiving with Outlook 2013"), or asks how to do something without saying that anything is wrong
("How can I print a batch of files with custom settings?"), is a question for a person: running
diagnostics on the user's PC and telling them their problem is being fixed would be the wrong
answer. Such tickets get no playbook; a model (when one is configured) or a technician answers.

Two word lists, in every supported language, decide it:

* :data:`FAULTS`: words that say something is wrong (``not``, ``error``, ``cannot``, ``locked``,
  ``forgot``, ``slow``, ``fehler``, ``bloque``, ``no funciona``, ``werkt niet``...);
* :data:`REQUESTS`: words that ask for work to be done (``please``, ``reset``, ``install``,
  ``access``, ``new starter``, ``bitte``, ``besoin``, ``necesito``, ``graag``...).

A ticket with a fault word is actionable. A ticket phrased as a how-to question
(:data:`QUESTIONS`: ``how do I``, ``is it possible``, ``wie kann ich``...) with no fault word is a
question, whatever it requests in passing; so is one whose only fault words are bare negations
(:data:`WEAK_FAULTS`: "the built-in VPN is not showing up... how to activate it?"), which then
describe what the user wants to happen, not a breakage. Any other ticket is actionable when it has a request
word. Words are matched on the stems the matcher reads (other languages' inflections are mapped
onto these words by the matcher's vocabulary, as for the triage rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mspclaw.playbooks.tokens import stems
from mspclaw.playbooks.triage import BREAK, Reader, Terms

_VERBS = ("work", "working", "sync", "syncing", "open", "opening", "load", "loading", "print", "printing", "start",
          "starting", "connect", "connecting", "send", "sending", "receive", "receiving", "boot", "launch", "save",
          "saving")
NEGATED_FUNCTIONS: tuple[str, ...] = (
    *(f"{neg} {verb}" for neg in ("not", "doesnt", "dont", "wont", "didnt", "cant", "cannot", "isnt", "arent")
      for verb in _VERBS),
    "ne marche pas", "ne marche plus", "ne fonctionne pas", "ne fonctionne plus", "ne s ouvre pas",
    "ne s ouvre plus", "ne charge pas", "ne charge plus", "ne se connecte pas", "ne se connecte plus",
    "n imprime pas", "n imprime plus", "ne demarre pas", "ne demarre plus", "ne synchronise pas", "n envoie pas",
    "no carga", "no abre", "no se abre", "no conecta", "no se conecta", "no imprime", "no arranca", "no envia",
    "no sincroniza", "no recibo", "werkt niet", "laadt niet", "opent niet", "start niet", "print niet",
    "verbindt niet", "synchroniseert niet", "verstuurt niet", "ladt nicht", "offnet nicht", "startet nicht",
    "druckt nicht", "verbindet nicht", "synchronisiert nicht", "sendet nicht",
)
"""A negation before what a thing is for ("does not sync", "ne s'ouvre pas"): a breakage, not the bare negation
that describes a wanted setting; except after a how-to about settings in the subject ("How can I set up Outlook to
send but not receive"), where it describes the setting wanted."""
_NEGATED = frozenset(NEGATED_FUNCTIONS)

FAULTS: tuple[str, ...] = (
    # English
    "not", "no", "never", "nothing", "cant", "cannot", "unable", "wont", "doesnt", "didnt", "isnt", "arent",
    "couldnt", "wasnt", "werent", "havent", "hasnt", "aint", "dont", "error", "errors", "fail", "fails", "failed",
    "failing", "failure", "issue", "issues", "problem", "problems", "trouble", "broken", "broke", "stuck",
    "freeze", "freezes", "freezing", "frozen", "hang", "hangs", "hanging", "hung", "crash", "crashes", "crashed",
    "crashing", "slow", "slowly", "slower", "sluggish", "lag", "lagging", "laggy", "stopped", "stops",
    # "losing" only in phrases: its stem is Spanish "los" (the), in every Spanish ticket
    "keeps", "lost", "lose", "keeps losing", "keep losing", "kept losing", "is losing", "are losing", "am losing",
    "been losing", "started losing", "losing connection", "losing my", "losing the", "losing all", "losing data",
    "losing emails", "losing mail", "missing", "disappeared", "vanished", "gone", "locked", "lockout",
    "expired", "expire", "expires", "expiring", "forgot", "forgotten", "denied", "blocked", "wrong", "incorrect",
    "invalid", "urgent", "asap", "down", "offline", "disconnect", "disconnects", "disconnected", "disconnecting",
    "dropping", "drops", "dropped", "full", "corrupt", "corrupted", "bounce", "bounced", "bounces", "rejected",
    "unreachable", "timeout", "timed out", "weird", "strange", "suddenly", "anymore", "no longer", "randomly",
    "glitch", "bug", "unresponsive", "not responding", "blank", "empty", "greyed out", "grayed out", "prompt",
    "prompts", "prompting", "asking for", "asks for", "keeps asking", "cut out", "cuts out", "wrong password",
    "refuses", "refused", "fix", "repair", "help", "weak", "forever", "takes ages", "low", "warning", "warns",
    "too many", "quit", "quits", "quitting", "unexpectedly", "paused", "unlicensed", "pending", "constantly",
    "every time", "whenever", "again", "flaky", "unstable", "intermittent", "intermittently",
    # the same thing coming back unasked ("Outlook repeatedly asking for password", "repeated prompts to log in")
    "repeatedly", "repeated prompts", "repeated prompt", "repeated requests", "wiederholt", "sans cesse",
    "a repetition", "repetidamente", "herhaaldelijk",
    # what comes out wrong or is not there: unreadable output, a service not available, space used up; a status
    # bar said to be red ("red" alone is Spanish for a network)
    "unavailable", "gibberish", "garbage", "garbled", "unreadable", "random characters", "random symbols",
    "random letters",
    "ran out of", "run out of", "running out of", "out of space", "out of disk space", "out of storage",
    "gb left", "mb left", "gb remaining", "is red", "turned red", "turns red", "went red", "gone red", "shows red",
    # pop-ups that come unasked
    "get pop ups", "getting pop ups", "get popups", "getting popups", "pop ups everywhere", "popups everywhere",
    "popping up",
    # German
    "nicht", "kein", "keine", "keinen", "keiner", "nie", "fehler", "fehlermeldung", "problem", "probleme",
    "storung", "gestort", "gesperrt", "sperre", "vergessen", "abgelaufen", "langsam", "hangt", "haengt",
    "absturz", "sturzt", "abgesturzt", "kaputt", "defekt", "fehlt", "fehlen", "verschwunden", "verloren",
    "falsch", "ungultig", "dringend", "hilfe", "geht nicht", "klappt nicht", "funktioniert nicht", "voll",
    "bricht", "abbricht", "standig", "dauernd", "immer wieder", "warnung", "schwach", "ewig",
    "nicht verbunden", "getrennt", "hangt sich auf", "lahm", "instabil", "leere seiten", "schlagt fehl",
    "fehlgeschlagen", "nicht verfugbar", "unerreichbar", "zeichensalat", "wirre zeichen", "kryptische zeichen",
    "unzureichend", "zu wenig speicher", "zu wenig speicherplatz", "unleserlich", "leere seite", "weisse seite",
    # French
    "pas", "plus", "jamais", "rien", "aucun", "aucune", "impossible", "erreur", "probleme", "souci", "soucis", "panne",
    "bloque", "bloquee", "verrouille", "oublie", "expire", "lent", "lente", "plante", "fige", "disparu", "perdu",
    "manque", "urgent", "aide", "depanner", "deconnecte", "plein", "pleine", "sature", "saturee", "lenteur", "lenteurs",
    "ralenti", "ralentit", "ralentissement",
    "rame", "sans arret", "quitte", "ferme", "avertissement", "faible", "hors ligne", "deconnectee", "instable",
    "echoue", "echec", "indisponible", "insuffisant", "insuffisante", "caracteres bizarres",
    "caracteres aleatoires", "n importe quoi", "illisible", "illisibles", "blanche", "blanches",
    # Spanish
    "nunca", "nada", "error", "errores", "problema", "problemas", "fallo", "falla", "bloqueado", "bloqueada",
    "olvide", "olvidado", "caducado", "caducada", "expirado", "lento", "lenta", "cuelga", "colgado", "congelado",
    "desaparecido", "perdido", "falta", "urgente", "ayuda", "no funciona", "no puedo", "lleno", "llena",
    "desconecta", "cierra", "constantemente", "advertencia", "debil", "tarda", "lentitud", "fuera de linea",
    "desconectado", "desconectada", "sin conexion", "inestable", "congela", "se congela", "se traba",
    "se bloquea", "sin espacio", "no disponible", "insuficiente", "caracteres raros", "caracteres extranos",
    "caracteres aleatorios", "ilegible", "ilegibles", "en blanco",
    # Dutch
    # "een storing": a lone "storing" has the stem of English "stored"
    "niet", "geen", "nooit", "niets", "fout", "foutmelding", "probleem", "problemen", "een storing", "storingen",
    "geblokkeerd", "vergrendeld", "vergeten", "verlopen", "traag", "langzaam", "vast", "crasht", "verdwenen", "kwijt",
    "ontbreekt", "dringend", "hulp", "niks", "vol", "valt weg", "steeds", "waarschuwing", "zwak", "duurt lang",
    "sluit af", "niet verbonden", "verbroken", "instabiel", "mislukt", "lukt niet", "onbereikbaar", "onvoldoende",
    "vreemde tekens", "rare tekens", "willekeurige tekens", "onleesbaar", "leeg", "lege pagina", "witte pagina",
    *NEGATED_FUNCTIONS,
)
"""Words that say something is wrong."""

TROUBLES: tuple[str, ...] = (
    *(f"{verb} {noun}" for verb in ("having", "have", "had", "experiencing", "getting")
      for noun in ("issue", "issues", "an issue", "some issues", "a problem", "problems", "some problems", "trouble",
                   "difficulty", "difficulties")),
    "habe probleme", "habe ein problem", "haben probleme", "j ai un probleme", "j ai des problemes", "j ai un souci",
    "j ai des soucis", "tengo problemas", "tengo un problema", "tenemos problemas", "heb problemen",
    "heb een probleem", "hebben problemen",
)
"""The writer's own trouble said as a noun ("I'm having issues getting my VPN to work", "having an issue with
VPN access"): it names what it is about right after it, where a fault verb follows it ("the VPN doesn't
connect"). A trouble noun alone ("a problem with Outlook 2013 that came up") is often a question's opening."""

GETTING_TROUBLES: tuple[str, ...] = (
    *(f"{noun} {verb}" for noun in ("issue", "issues", "problem", "problems", "trouble", "difficulty", "difficulties",
                                    "a hard time")
      for verb in ("getting", "trying to get", "to get")),
    "probleme beim", "schwierigkeiten beim", "du mal a faire", "du mal a connecter", "du mal a me connecter",
    "problemas para", "dificultades para", "moeite om",
)
"""The writer's trouble getting a thing to do its job ("I'm having issues getting my VPN connection to work",
"Probleme beim Verbinden"): a fault with what it names next, in the body too, where a trouble noun alone
("I'm having trouble with my accounts ... how do I filter") is as often a question's opening."""

REQUESTS: tuple[str, ...] = (
    # English
    "please", "pls", "plz", "kindly", "need", "needs", "needed", "require", "requires", "request",
    "requesting", "reset", "unlock", "install", "reinstall", "uninstall", "setup", "set up", "access",
    "permission", "permissions", "grant", "add", "remove", "enable", "disable", "new", "starter", "joiner",
    "joining", "leaver", "leaving", "onboard", "onboarding", "offboard", "offboarding", "create", "change",
    "update", "map", "want", "clear", "can you", "could you", "would you", "can i get", "could i get",
    "can i have", "may i have",
    # a technician's own task title ("Check Kozlova's printer", "Troubleshoot printer in room 4", "Drucker im
    # Werkraum prüfen"): work to do on what it names
    "check", "troubleshoot", "configure", "give", "make an account", "make accounts", "make a login",
    # German
    "bitte", "brauche", "benotige", "zurucksetzen", "entsperren", "installieren", "einrichten", "zugriff",
    "berechtigung", "berechtigungen", "freischalten", "neu", "neuer", "neue", "anlegen", "andern", "hinzufugen",
    "konnen sie", "konnten sie", "prufen", "uberprufen", "konfigurieren",
    # French
    "svp", "merci de", "besoin", "reinitialiser", "debloquer", "installer", "acces", "droits", "nouveau",
    "nouvelle", "creer", "changer", "ajouter", "pouvez vous", "pourriez vous", "verifier", "configurer",
    # Spanish
    "por favor", "necesito", "necesita", "restablecer", "desbloquear", "instalar", "acceso", "permisos",
    "nuevo", "nueva", "crear", "cambiar", "anadir", "agregar", "revisar", "configurar",
    # Dutch
    "graag", "aub", "nodig", "resetten", "deblokkeren", "installeren", "toegang", "rechten", "nieuw",
    "nieuwe", "aanmaken", "wijzigen", "toevoegen", "kunnen jullie", "controleren", "nakijken", "configureren",
)
"""Words that ask for work to be done."""

_CANT_FIND = ("i cant find", "i cannot find", "i can not find", "i couldnt find", "i could not find",
              "i cant seem to find", "i cannot seem to find", "cant find where", "cannot find where")
"""The writer looking for something ("I can't find the cookies any more"): where a setting or a menu went, an
answer's question; its own negation is not a fault (a device that finds nothing says what it cannot find)."""

QUESTIONS: tuple[str, ...] = (
    "how do i", "how do you", "how can i", "how can we", "how could i", "how to", "how would i", "how should i",
    # the pronoun left out ("How do choose the order...", "how can get the driver"): a how-to in the subject
    # only (:data:`SUBJECT_ONLY`); in a body "How can this be done?" follows a request
    "how do", "how can",
    "how do we", "why does", "why do", "why is", "why are", "what is", "what are", "is it possible",
    "is there a way", "is there any way", "is there an easy way", "what is the best",
    "whats the best", "what is a good", "which is better", "best way to", "should i", "can i change", "can i set",
    "can i make", "can i use", "can i configure", "can i replace", "can i run", "can i create", "can i turn",
    "wie kann ich", "wie kann man", "wie richte ich", "ist es moglich", "gibt es eine moglichkeit",
    "comment faire", "comment puis je", "est il possible", "como puedo", "como hago", "es posible",
    "hoe kan ik", "hoe moet ik", "is het mogelijk", "where is", "where are", "where can i find", "where do i find",
    "how does it work", "wo finde ich", "wo ist", "wie geht das", "wie funktioniert", "ou se trouve", "ou trouver",
    "comment ca marche", "donde esta", "donde encuentro", "como funciona", "waar is", "waar vind ik", "hoe werkt",
    # curiosity asks for an answer ("just curious how that is possible"); beside a fault word the fault still wins
    "just curious", "i am curious", "im curious", "out of curiosity", "aus neugier", "bin neugierig",
    "par curiosite", "je suis curieux", "je suis curieuse", "por curiosidad", "tengo curiosidad",
    "uit nieuwsgierigheid",
    # the writer saying they ask a question ("my question is", "tengo una duda"); beside a fault word the fault wins
    "my question is", "my question", "my questions", "i have a question", "quick question", "a quick question",
    "meine frage", "ich habe eine frage", "kurze frage", "ma question", "j ai une question", "petite question",
    "mi pregunta", "tengo una duda", "tengo una pregunta", "tengo una consulta", "mijn vraag", "ik heb een vraag",
    "korte vraag",
    # whether something is allowed asks for a rule, not for work ("Is it allowed to install themes?")
    "is it allowed", "am i allowed", "are we allowed", "ist es erlaubt", "est il permis", "est il autorise",
    "esta permitido", "is het toegestaan",
    # more ways to ask how in German, French, Spanish and Dutch
    "wie bekomme ich", "wie mache ich", "wie schaffe ich", "comment faire pour", "comment je peux", "como se hace",
    "como se puede", "hoe krijg ik", "hoe zet ik", "hoe doe ik",
    *_CANT_FIND, "je ne trouve pas", "je ne trouve plus", "finde ich nicht", "kann ich nicht finden",
    "nicht auffindbar", "kan ik niet vinden", "kan ik niet meer vinden", "vind ik niet",
)
"""A how-to question: without a fault word, the ticket asks for an answer, not a fix."""
CAUSE_QUESTIONS: frozenset[str] = frozenset({"why does", "why do", "why is", "why are"})
SUBJECT_ONLY: frozenset[str] = frozenset({"how do", "how can"})
"""Questions without their pronoun: a subject's how-to ("How do change the default printer"); in a body they
ask how a request will be met ("I need Zoom installed. How can this be done?"), and are not counted."""
"""Questions about a cause ("why is there no internet?"): they report what they ask about, so a bare negation
beside one still says something is wrong."""

SETTING_QUESTIONS: tuple[str, ...] = (
    "how can i set", "how do i set", "how to set", "how can i configure", "how do i configure", "how to configure",
    "how can i make", "how do i make", "how to make", "how can i stop", "how do i stop", "how to stop",
    "how can i prevent", "how do i prevent", "how to prevent", "how can i disable", "how do i disable",
    "how to disable", "how can i hide", "how do i hide", "how to hide", "how can i change", "how do i change",
    "how to change", "how do i know", "how can i tell", "how do i choose", "how to choose", "how can i get rid",
    "wie stelle ich", "wie kann ich einstellen", "wie deaktiviere ich", "wie verhindere ich", "comment configurer",
    "comment desactiver", "comment empecher", "como configuro", "como configurar", "como desactivo",
    "como desactivar", "como evito", "hoe stel ik", "hoe schakel ik", "hoe voorkom ik",
    *_CANT_FIND,
)
"""A how-to about settings ("How can I set up Outlook to send but not receive"): in the subject it
outweighs the subject's :data:`WEAK_FAULTS`, which then describe the wanted setting, not a fault."""
WEAK_FAULTS: frozenset[str] = frozenset({
    "not", "no", "never", "nothing", "dont", "doesnt", "isnt", "arent", "anymore", "again", "every time",
    "whenever", "keeps", "asking for", "asks for", "prompt", "prompts", "prompting", "nicht", "kein", "keine",
    "pas", "plus", "rien", "aucun", "aucune", "nunca", "nada", "niet", "geen", "niets", "nooit",
})


MAX_POSITIONS = 64
"""Fault words remembered per ticket to judge nearness: enough for any real ticket, bounded for any input."""
TERSE = 8
"""A ticket of fewer words that names only a product ("outlook", "VPN again") is read as a problem with
it: people do not open a ticket to discuss a product, and a terse ticket leaves its fault unsaid. A
longer one had room to say what is wrong and did not."""


@dataclass(frozen=True)
class Ask:
    """What the ticket asks for; ``word`` is the first word that decided it (for the explanation)."""

    actionable: bool
    kind: str
    """``fault``, ``request``, ``question``, ``terse`` (a product named, nothing else) or ``nothing``."""
    word: str = ""

    def explain(self) -> str:
        if self.kind == "question":
            return (f"a how-to question ('{self.word}') with nothing said to be wrong: "
                    "a person answers it, no playbook")
        return "no fault and no request stated (only a product or a topic named): a person reads it, no playbook"


class Intent:
    """The three lists indexed once; :meth:`read` is one pass over a ticket's stemmed words."""

    def __init__(self, faults: Sequence[str] = FAULTS, requests: Sequence[str] = REQUESTS,
                 questions: Sequence[str] = QUESTIONS, read: Reader = stems) -> None:
        self._given = (tuple(faults), tuple(requests), tuple(questions))
        read_as = {kind: [(tuple(read(term)), term) for term in terms] for kind, terms in (
            ("fault", faults), ("request", requests), ("question", questions), ("setting", SETTING_QUESTIONS))}
        self._faults: Terms[str] = Terms(read_as["fault"])
        self._troubles: Terms[tuple[int, bool]] = Terms(
            (seq, (len(seq), anywhere)) for terms, anywhere in ((TROUBLES, False), (GETTING_TROUBLES, True))
            for seq in (tuple(read(term)) for term in terms))
        """Each trouble's length in words, and whether it names its fault in a body too."""
        self._all: Terms[tuple[str, str]] = Terms(
            (seq, (kind, term)) for kind, listed in read_as.items() for seq, term in listed)
        """The four lists in one index: (list, term) per term; each list keeps its own order."""
        self._terms = (*faults, *requests, *questions, *SETTING_QUESTIONS, *TROUBLES, *GETTING_TROUBLES)
        self._span = {term: len(seq) for seq, term in read_as["setting"]}
        """Words of each settings question: its own verb ("how to *stop*", "how do I *disable*") is what the
        user wants done, not a fault they report."""

    def reading(self, read: Reader) -> Intent:
        """The same lists with their terms read by ``read`` (the matcher's reading of one language)."""
        faults, requests, questions = self._given
        return Intent(faults, requests, questions, read)

    def terms(self) -> list[str]:
        """Every term of every list, as written."""
        return list(self._terms)

    def vocabulary(self) -> list[str]:
        """Every word of every list, as written (the matcher maps other languages' inflections onto them)."""
        return [w for term in self._terms for w in term.split()]

    def faults_at(self, tokens: Sequence[str]) -> list[int]:
        """Positions of the fault words in the ticket (at most :data:`MAX_POSITIONS`)."""
        index = self._faults
        found: list[int] = []
        starts = index.starts
        for pos, token in enumerate(tokens):
            if token in starts and index.at(tokens, pos):
                found.append(pos)
                if len(found) >= MAX_POSITIONS:
                    break
        return found

    def troubles_at(self, tokens: Sequence[str], split: int) -> list[int]:
        """Where each trouble said ends in the ticket (at most :data:`MAX_POSITIONS`): any of :data:`TROUBLES` and
        :data:`GETTING_TROUBLES` before ``split`` (the subject), only the latter after it."""
        index = self._troubles
        starts = index.starts
        found: list[int] = []
        for pos, token in enumerate(tokens):
            if token in starts:
                found.extend(pos + length - 1 for length, anywhere in index.at(tokens, pos)
                             if anywhere or pos < split)
                if len(found) >= MAX_POSITIONS:
                    break
        return found[:MAX_POSITIONS]

    def read(self, tokens: Sequence[str]) -> Ask:
        """What the ticket asks for. A how-to question in the subject with no fault word in the subject
        decides for the whole ticket (the body then explains the set-up, and says "problem" in passing)."""
        first: dict[str, str] = {}
        in_subject: set[str] = set()
        subject_faults: set[str] = set()
        faults: set[str] = set()
        how_to = ""
        setting = ""
        asked_until = -1
        # one pass over the ticket for the four lists; what each list decides depends on its own terms only
        split = tokens.index(BREAK) if BREAK in tokens else len(tokens)
        for pos, (kind, term) in self._all.scan(tokens):
            subject = pos < split
            if kind == "setting":
                if subject and not setting:
                    setting = term
                asked_until = max(asked_until, pos + self._span[term])
                continue
            if (kind == "fault" and pos < asked_until) or (kind == "question" and not subject
                                                            and term in SUBJECT_ONLY):
                continue
            if kind == "fault":
                faults.add(term)
                if subject:
                    subject_faults.add(term)
            elif kind == "question" and not how_to and term not in CAUSE_QUESTIONS:
                how_to = term
            if kind not in first:
                first[kind] = term
                if subject:
                    in_subject.add(kind)
        if "question" in in_subject and "fault" not in in_subject:
            return Ask(False, "question", first["question"])
        if setting and subject_faults <= WEAK_FAULTS | _NEGATED:
            return Ask(False, "question", setting)
        if how_to and faults <= WEAK_FAULTS:
            return Ask(False, "question", how_to)
        if "fault" in first:
            return Ask(True, "fault", first["fault"])
        if "question" in first:
            return Ask(False, "question", first["question"])
        if "request" in first:
            return Ask(True, "request", first["request"])
        if len(tokens) - tokens.count(BREAK) < TERSE:
            return Ask(True, "terse")
        return Ask(False, "nothing")
