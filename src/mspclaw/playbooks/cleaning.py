"""The part of a ticket a person wrote about the problem: bounded, without mail furniture.

Tickets arrive as e-mail more often than not, so the text carries mail headers (``From:``,
``Gesendet:``), quoted earlier messages (``> ...``, ``On ... wrote:``), signatures, legal
disclaimers and "external sender" banners. Their words (``click``, ``confidential``, a company's
name, ``Server``) must not score or veto a playbook, so they are dropped before matching.

Every step here is one pass over at most :data:`MAX_SUBJECT` / :data:`MAX_BODY` characters: the
text is cut to those bounds first, whatever arrives. Matching reads the first few thousand words
of a ticket; a 1 MB body costs the same as a 20 KB one.
"""

from __future__ import annotations

import re

MAX_SUBJECT = 1_000
"""Characters of the subject read; the rest is ignored."""
MAX_BODY = 20_000
"""Characters of the body read; the rest is ignored (a screen of text is a few thousand)."""

_HEADER = re.compile(
    r"^\s*(from|sent|to|cc|bcc|date|reply-to|importance|von|gesendet|an|datum|wichtigkeit|de|envoye|envoyé|"
    r"à|a|cc|date|para|enviado|fecha|van|verzonden|aan|datum|ticket|priority|status|requester|"
    r"created|category|assigned to|received from|sender|reply to)\s*:\s", re.IGNORECASE)
_SUBJECT_HEADER = re.compile(r"^\s*(subject|betreff|objet|asunto|onderwerp|re|aw|fw|fwd|wg|tr)\s*:\s*",
                             re.IGNORECASE)
_QUOTE_START = re.compile(
    r"^\s*(-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"oorspronkelijk bericht|forwarded message|weitergeleitete nachricht)\s*-{2,}|_{10,}|"
    r"on .{0,120} wrote:|am .{0,120} schrieb .{0,80}:|le .{0,120} a écrit\s*:|el .{0,120} escribió\s*:|"
    r"op .{0,120} schreef .{0,80}:)\s*$", re.IGNORECASE)
_CLOSING = re.compile(
    r"^\s*(thanks( a lot| again| in advance)?|thank you( very much| in advance)?|thx|ty|cheers|regards|best|"
    r"best regards|kind regards|warm regards|with regards|many thanks|br|rgds|"
    r"(thanks|thank you|many thanks)( and| &) (best |kind )?regards|"
    r"mfg|mit freundlichen gr(ü|ue|u)(ß|ss)en|freundliche gr(ü|ue|u)(ß|ss)e|viele gr(ü|ue|u)(ß|ss)e|"
    r"liebe gr(ü|ue|u)(ß|ss)e|beste gr(ü|ue|u)(ß|ss)e|gr(ü|ue|u)(ß|ss)e|gru(ß|ss)|vg|lg|danke( schön| schoen)?|"
    r"vielen dank( im voraus)?|cordialement|bien cordialement|bien à vous|merci( d'avance| beaucoup)?|"
    r"salutations|saludos( cordiales)?|un saludo|atentamente|muchas gracias|gracias|"
    r"met vriendelijke groet(en)?|vriendelijke groet(en)?|groeten|groetjes|mvg|bedankt|alvast bedankt|"
    r"dank je( wel)?|dank u( wel)?)(?=$|[\s,.!:;/&-])", re.IGNORECASE)
CLOSING_TAIL = 4
"""Words a sign-off line may carry after its greeting ("Best regards, John Smith", "Danke und Gruß",
"Mit freundlichen Grüßen / Best regards") and still be a sign-off, not a sentence about the problem."""
_DEVICE_FOOTER = re.compile(
    r"^\s*(sent from my|get outlook for|von meinem .{0,30} gesendet|envoyé de mon|enviado desde mi|"
    r"verzonden (vanaf|met) mijn|sent from (mail|outlook|yahoo mail|gmail) for|gesendet von mail f(ü|ue|u)r|"
    r"envoy(é|e) (à partir de|depuis) (courrier|outlook)|enviado desde (correo|outlook) para)", re.IGNORECASE)
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|hiya|dear|greetings|good (morning|afternoon|evening|day)|hallo|moin|servus|"
    r"guten (morgen|tag|abend)|liebe[rs]?|sehr geehrte[rs]?|bonjour|bonsoir|salut|cher|ch(è|e)re|chers|madame|"
    r"monsieur|hola|buenos d(í|i)as|buenas tardes|buenas|estimad[oa]s?|hoi|beste|goedemorgen|goedemiddag|geachte)"
    r"(?:[ \t]{1,3}[\w.&'/-]{1,30}){0,3}[ \t]{0,3}(?:,|!|:|$)[ \t]*", re.IGNORECASE | re.MULTILINE)
"""A greeting at the start of a body's first line, alone or before a comma (``hello team,``, ``Hi all``, ``Hallo
zusammen,``, ``Sehr geehrte Damen und Herren,``, ``Bonjour à tous,``, ``Beste Jan,``): who the mail is for, not what
is wrong; its words ("team", "all") are no product and no count of people. At most three words after the greeting
word."""
_DISCLAIMER = re.compile(
    r"^\s*((important|notice|legal notice|confidential|confidentiality|privileged|wichtig|hinweis|wichtiger hinweis|"
    r"rechtlicher hinweis|vertraulich|avis|avertissement|aviso|aviso legal|vertrouwelijk|let op)\s*[:!-]\s*)?"
    r"(this (e-?mail|message|communication) (and any|and its|including|is|may contain|contains)|confidentiality notice|"
    r"disclaimer|diese (e-?mail|nachricht) (enthält|kann|ist)|ce (message|courriel) (et|est|peut)|"
    r"este (mensaje|correo) (y|es|puede)|dit (bericht|e-?mailbericht) (is|kan|bevat)|"
    r"the information (contained )?in this|the contents? of this (e-?mail|message|communication)|"
    r"if you are not the (intended|named) (recipient|addressee)|der inhalt dieser (e-?mail|nachricht)|"
    r"wenn sie nicht der (richtige|beabsichtigte|vorgesehene) (adressat|empf(ä|ae|a)nger)|"
    r"le contenu de ce (message|courriel)|el contenido de este (mensaje|correo)|de inhoud van dit (e-?mail)?bericht|"
    r"(please )?(consider|think of|think about) the environment before printing|think before you print|"
    r"(bitte )?denken sie an die umwelt|(merci de )?penser? (à|a) l'environnement|"
    r"(por favor,? )?(considere|piense en) el medio ambiente|denk aan het milieu)", re.IGNORECASE)
"""A legal disclaimer's or a print-saving footer's first line, in en/de/fr/es/nl, with or without a label before it
(``IMPORTANT: The information in this message ...``, ``Please consider the environment before printing this email``):
its words ("unauthorised", "printing") are the company's, not the user's. Above the user's words, its paragraph is
dropped; below them, it ends the ticket."""
_BANNER = re.compile(
    r"^\s*(\[?external\]?|caution|warning|achtung|attention|precaución|let op)\s*[:!-]?\s*.{0,40}"
    r"(outside|external|extern|extérieur|externe|externo|buiten)", re.IGNORECASE)
_TAG = re.compile(r"\[(external|extern|externe|externo|ext|spam\?*)\]\s*", re.IGNORECASE)
_SIGNATURE_DASHES = re.compile(r"^\s*--\s*$")
_FORM_FIELD = re.compile(r"^\s*(internet browser|web browser|browser|navigateur|navegador|webbrowser)\s*:\s*"
                         r"(?:[\w.,;/()+-]{1,40}(?:[ \t]{1,3}[\w.,;/()+-]{1,40}){0,7})?[ \t]*$", re.IGNORECASE)
"""A web form's field line naming the browser the form was sent from (``Internet Browser: Chrome``, ``Browser: Google
Chrome Version 119.0.6045.160 (Official Build) (64-bit)``, ``Browser: Chrome, Edge``: at most eight words): what the
user's screen was, not what is wrong; a user who means the browser says so in a sentence."""
_FORM_LABEL = re.compile(r"^[ \t]{0,8}[A-Z][\w/&()-]{0,24}(?:[ \t][\w/&()-]{1,24}){0,3}[ \t]{0,3}:(?=[ \t]|$)",
                         re.MULTILINE)
"""A web form's field label at the start of a line (``Location:``, ``Device Type:``, ``Description:``): a capital, at
most four words, a colon and a space or the line's end (no ``https://``, no ``10:30``)."""
FORM_LABELS = 2
"""A body with at least this many labelled lines is a form: its labels are the form's words, not the user's (the
value after each is kept). One labelled line is as often the user's ("Error: printer offline") and is left."""
_FIELD_LABEL = re.compile(r"^\s*(website address|web site address|web address|website url|page address|url|"
                          r"webadresse|adresse du site|adresse web|direccion web|direccion del sitio|webadres)\s*:\s*",
                          re.IGNORECASE)
"""A web form's field label before the address the user was on (``Website Address: all``): the form's word, not
the user's; the address after it is kept (it may name the application that fails)."""
_PLACEHOLDER_WORDS = (r"(other|others|n/?a|none|unknown|not sure|unsure|don'?t know|do not know|no idea|not applicable|"
                      r"sonstiges?|andere|unbekannt|wei(ß|ss) nicht|keine angabe|autre|autres|inconnu|je ne sais pas|"
                      r"ne sais pas|otro|otra|otros|desconocido|no s(é|e)|anders|overig|overige|onbekend|weet ik niet|"
                      r"weet niet)")
_PLACEHOLDER = re.compile(rf"{_PLACEHOLDER_WORDS}([ \t]{{0,3}}(/|,|\||-|or|oder|ou|o|of)[ \t]{{0,3}}"
                          rf"{_PLACEHOLDER_WORDS}){{0,3}}[.!]?", re.IGNORECASE)
"""A form's picker answer that names nothing (``Other / Not sure``, ``N/A``, ``Sonstiges``, ``Je ne sais pas``): the
form's words, not the user's; its "not" says nothing is wrong."""
_URGENCY = re.compile(
    r"(urgent|urgently|very urgent|soon|flexible|asap|immediately|today|this week|whenever|no rush|not urgent|"
    r"low|medium|normal|high|critical|dringend|sehr dringend|bald|sofort|niedrig|mittel|hoch|kritisch|"
    r"bient(ô|o)t|imm(é|e)diatement|faible|moyenne?|(é|e)lev(é|e)e?|urgente|pronto|inmediatamente|baja|media|alta|"
    r"spoed|snel|laag|gemiddeld|hoog|kritiek)[ \t]{0,3}(—|–|-{1,2})[ \t][^\n]{0,80}", re.IGNORECASE)
"""A form's urgency picker answer (``Urgently — Critical that this is addressed today``, ``Soon — Within a week``,
``Flexible — An extended timeline is OK``): how soon, not what is wrong; its words ("critical", "extended") are no
symptom."""
APP_MARK = "namedapplication"
"""What a form's application field turns its answer into (``What application are you using?`` / ``AMANDA`` ->
``namedapplication AMANDA``): the word a triage rule reads as "the ticket is about this application", wherever in the
ticket the fault is said."""
_APP_QUESTION = re.compile(
    r"(>|#{1,6})?[ \t]{0,3}((what|which) (application|app|system|software|program) (are you using|is (it|this) about|"
    r"is affected) ?\??|(affected )?(application|app|software)( name)? ?:?|(betroffene )?anwendung ?:?|"
    r"application concern(é|e)e ?:?|aplicaci(ó|o)n( afectada)? ?:?|(betreffende )?applicatie ?:?|toepassing ?:?)",
    re.IGNORECASE)
"""A form's question for the application the ticket is about, alone on its (stripped) line; its answer is the next
line. The patterns here are matched whole against stripped lines: no leading or trailing whitespace run to backtrack
over."""
_APP_FIELD = re.compile(r"^\s*((affected )?application|app|anwendung|application concern(é|e)e|aplicaci(ó|o)n|"
                        r"applicatie|toepassing)\s*:\s*(?=\S)", re.IGNORECASE)
"""The same field on one line (``Application: Maximo``)."""
APP_ANSWER_WORDS = 8
"""An answer of at most this many words names an application; a longer one is the user's sentence."""
_NAMED_SIGN_IN = re.compile(
    r"\b((?i:locked out of|locked out from|log(?:ged|ging)? ?(?:in|on) ?to|log(?:ged|ging)? ?into|"
    r"sign(?:ed|ing)? ?in ?to|sign(?:ed|ing)? ?into|"
    r"(?:my|our|the|a|an)(?= [A-Z][A-Za-z]{2,20} (?i:account|login|log in|password)\b)))\s+(?i:(?:my|our|the)\s+)?"
    r"([A-Z][A-Za-z]{2,20})\b(?![-\d])")
"""A sign-in to something named with a capital (``locked out of my Arctos account``, ``log into Maximo``, ``my TACC
account``): an application's own account, unless the name is one of the directory's (:data:`DIRECTORY_NAMES`)."""
DIRECTORY_NAMES = frozenset((
    "windows", "microsoft", "office", "outlook", "teams", "onedrive", "sharepoint", "azure", "entra", "okta", "duo",
    "google", "gmail", "apple", "mac", "macbook", "vpn", "ad", "active", "domain", "network", "citrix", "remote",
    "email", "mail", "exchange", "intune", "company", "work", "computer", "laptop", "desktop", "pc", "wifi", "the",
    "my", "our", "your", "this", "that", "account", "it", "zoom", "webex", "adobe", "chrome", "edge", "firefox",
    "safari", "word", "excel", "powerpoint", "skype", "user", "users", "admin", "global", "portal", "authenticator",
    "sso", "mfa", "o365", "m365", "aad", "ms", "win", "mailbox", "device", "session", "profile", "system", "server",
    "drive", "machine", "workstation", "notebook", "login", "password", "phone", "iphone", "ipad", "android"))
"""Names that sign in with the directory's account (or are no name at all): no application of its own."""


def _named_sign_in(found: re.Match[str]) -> str:
    if found.group(2).lower() in DIRECTORY_NAMES:
        return found.group(0)
    return f"{found.group(0)[:found.start(2) - found.start()]}{APP_MARK} {found.group(2)}"


_FORM_HEADING = re.compile(r"^\s*#{1,6}\s+\S")
"""A Markdown heading (``### Describe the problem.``): an issue form's question when an answer quoted below it or the
next question follows; the answers such forms quote (``> Printer jams``) are the user's words, not a reply's."""
_QUOTED_HEADER = re.compile(r"^\s*(from|von|de|van|sent|gesendet|envoy(e|é)|enviado|verzonden)\s*:\s", re.IGNORECASE)
"""The first header of a quoted earlier message (``Von: ... Gesendet: ...``): once the user's own words
are read, what follows is the thread they replied to."""
_CONTACT = re.compile(
    r"^\s*((tel|tel\.|phone|ph|mobile|mob|cell|direct|fax|m|t|f|p|telefon|telefoon|handy|mobil|portable|"
    r"m(o|ó)vil|tél|tél\.|fon|telefax)\s*[:.]?\s*[+(]?\d|"
    r"(geschäftsführer|geschaeftsfuehrer|geschäftsführung|amtsgericht|registergericht|sitz der gesellschaft|"
    r"ust-idnr|ust-id|steuernummer|hrb \d|registered office|registered in|company (registration )?number|"
    r"vat (no|number|reg)|siret|siège social|kvk|cif)\b)", re.IGNORECASE)
"""A signature's contact or company-register line (``Tel: +49 ...``, ``M: 555 ...``, ``Geschäftsführer:``,
``Registered office:``); a web address alone is no sign of one: users paste the address of the page that
fails."""
_PHONE_LINE = re.compile(
    r"^\s*(?:.{0,120}\|\s*)?(?:\+\d[\d ().\-/]{7,20}\d|\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}|0\d{2,5} ?[/\-]? ?\d{3,8}"
    r"(?:[ \-]\d{1,5})?)(?:\s*(?:x|ext\.?)\s*\d{1,5})?\s*$", re.IGNORECASE)
"""A line that is a phone number, alone or at the end of a one-line signature (``(217) 555-0134``, ``Jane Doe |
Purchasing Agent | 217-555-0134``): a signature's, with no label before it. An address (``192.168.1.10``) is no
phone number."""
SIGNATURE_LINES = 4
"""Short lines just above a contact line, after a blank line, are the signature's name and title."""


HOST_MARK = "hostname"
"""What a machine's name (``DESKTOP-4F7K2LM``, ``SRV-FS01``, ``ws01``) is read as: the word a monitoring
rule looks for, whatever the name."""
# (?<!\w) is \b here (every prefix starts with a letter), and lets the scan skip non-word characters faster
_HOST = re.compile(r"(?<!\w)(?:desktop|laptop|notebook|ws|wks|pc|nb|srv|svr|server|vm|dc|fs|ts|sql|exch|host|node)"
                   r"-?[a-z0-9]*\d[a-z0-9-]*\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")


def mark_hosts(text: str) -> str:
    """``Low disk space on LAPTOP-8HJ3K2`` -> ``Low disk space on hostname``: machine names as one word.

    A name is a machine prefix, an optional hyphen and letters and digits with at least one digit, as RMM
    and monitoring tools print them; one pass, each candidate starts at a word boundary.
    """
    if not _DIGIT.search(text):  # every name holds a digit: most texts need no further scan
        return text
    return _HOST.sub(HOST_MARK, text)


_DRIVE = re.compile(r"(?<![\w:/\\.-])([a-z])(?::[\\/]?|;[\\/])(?=[\s.,;!?)\"]|$)"
                    r"(?!\s*([+(\d]|(drive|laufwerk|lecteur|unidad|schijf|station)\b))"
                    r"(?!\s*([\w.+-]+@|www\.|https?:|[\w-]+\.(com|net|org|edu|gov|de|at|ch|fr|be|es|nl|eu|uk|io|co)\b))",
                    re.IGNORECASE)
"""A drive letter and its colon (or a slip of the shift key, ``C;/``), not followed by a path, a phone
number (``M: 555 ...``), an address (a signature's ``E: bob@contoso.com``, ``W: www.contoso.com``) or the
word drive itself."""
_LABELS = frozenset((
    "option", "options", "plan", "step", "part", "section", "appendix", "annex", "exhibit", "case", "scenario",
    "variant", "version", "choice", "answer", "question", "item", "point", "type", "class", "grade", "model", "group",
    "team", "level", "tier", "phase", "zone", "block", "wing", "building", "room", "floor", "row", "column", "line",
    "note", "variante", "anlage", "teil", "punkt", "gruppe", "etape", "partie", "annexe", "opcion", "paso", "parte",
    "anexo", "optie", "stap", "deel", "bijlage"))
"""A word that names the letter after it (``Option B:``, ``Plan A:``, ``Anlage C:``): a label, not a drive."""


def _drive(found: re.Match[str]) -> str:
    start = found.start()
    before = found.string[max(0, start - 16):start]
    if before[-1:].isspace():
        words = before.split()
        if words and words[-1].lower() in _LABELS:
            return found.group(0)
    return f"{found.group(1)} drive "


def mark_drives(text: str) -> str:
    """``my C: is full``, ``no access to G:\\`` -> ``my C drive is full``, ``no access to G drive``: a drive
    letter said alone (its root, not a path under it), the way the playbooks' phrases name it (``c drive``,
    ``g drive``). A path (``C:\\Users\\...`` in an error message) names a file, not the drive, and is left; so is
    a letter a word names (``Option B: reinstall``)."""
    text = _NAMED_DRIVE.sub(_named_drive, text)
    if ":" not in text and ";" not in text:
        return text
    return _DRIVE.sub(_drive, text)


_NAMED_DRIVE = re.compile(r"\b((?i:unidad|lecteur|schijf))[ \t]([B-DF-HJ-NP-TV-XZ])\b(?![-'’]\w)"
                          r"|\b([B-DF-HJ-NP-TV-XZ])-((?i:schijf))\b")
"""A drive letter the Spanish, French and Dutch name with their word for a drive (``la unidad G``,
``le lecteur H``, ``de G-schijf``): a capital letter, and none that is also a word (``a``, ``e``, ``o``, ``u``,
``y``, ``i``)."""


def _named_drive(found: re.Match[str]) -> str:
    if found.group(2):
        return f"{found.group(1)} {found.group(2).lower()} drive"
    return f"{found.group(3).lower()} drive {found.group(4)}"


def clean_subject(subject: str) -> str:
    """The subject without ``RE:``/``AW:``/``FW:`` prefixes and ``[EXTERNAL]`` tags."""
    text = _TAG.sub("", subject[:MAX_SUBJECT])
    for _ in range(5):
        stripped = _SUBJECT_HEADER.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return _NAMED_SIGN_IN.sub(_named_sign_in, text)


def clean_body(body: str) -> str:
    """The body without headers, quoted replies, signatures, disclaimers and banners.

    A cut (a quoted reply, a sign-off, a disclaimer) only drops what follows once some words were
    kept before it: a forwarded message with nothing above it *is* the ticket.
    """
    kept: list[str] = []
    words = 0
    heading = ""  # a Markdown heading not yet known to be a form's question or the user's title
    answers = False  # quoted lines after a form's question are its answers
    field = False  # the next line answers a form's question for the application
    body = body[:MAX_BODY]
    form = ":" in body and _is_form(body)
    skipping = False  # in a disclaimer's paragraph above the user's words
    for line in body.splitlines():
        if not line.strip():
            skipping = False
            if not heading:
                kept.append(line)
            continue
        if skipping:
            continue
        if _APP_QUESTION.fullmatch(line.strip()):
            field = True
            answers = answers or not line.lstrip().startswith(">")  # a heading's answer is quoted below it
            heading = ""
            continue
        if _FORM_HEADING.match(line):
            heading = line  # a question right after a question: the first had no answer
            continue
        quoted = line.lstrip().startswith(">")
        if heading:
            if not quoted:
                kept.append(heading)  # the user's own heading over their text
                words += len(heading.split())
            heading = ""
            answers = quoted
        elif not quoted:
            answers = False
        if quoted:
            if not answers:
                continue
            line = line.lstrip()[1:]
            if not line.strip():
                continue
        inline = _APP_FIELD.match(line)
        if inline:
            line, field = line[inline.end():], True
        if (_BANNER.match(line) or _FORM_FIELD.match(line) or _PLACEHOLDER.fullmatch(line.strip())
                or _URGENCY.fullmatch(line.strip())):
            field = False
            continue
        if field:
            field = False
            if len(line.split()) <= APP_ANSWER_WORDS:
                line = f"{APP_MARK} {line.strip()}"
        else:
            line = _NAMED_SIGN_IN.sub(_named_sign_in, line)
        if _HEADER.match(line):
            if words >= 3 and _QUOTED_HEADER.match(line):
                break
            continue
        subject = _SUBJECT_HEADER.match(line) or _FIELD_LABEL.match(line) or (form and _FORM_LABEL.match(line))
        if subject:
            line = line[subject.end():]
        closing = _CLOSING.match(line)
        ends = ((closing is not None and len(line[closing.end():].split()) <= CLOSING_TAIL)
                or _QUOTE_START.match(line) or _DEVICE_FOOTER.match(line) or _DISCLAIMER.match(line)
                or _SIGNATURE_DASHES.match(line))
        if ends:
            if words >= 3:
                break
            skipping = _DISCLAIMER.match(line) is not None  # its other lines are the disclaimer's too
            continue
        if words >= 3 and (_CONTACT.match(line) or _PHONE_LINE.match(line)):
            _drop_signature(kept)
            break
        kept.append(line)
        words += len(line.split())
    return "\n".join(kept)


def _is_form(body: str) -> bool:
    """True when at least :data:`FORM_LABELS` lines of the body start with a field label. A mail header (``From:``,
    ``Sent:``, ``Subject:``) is no form's label: a forwarded mail is no form, and the user's own "Mon adresse mail:"
    under it is their sentence."""
    count = 0
    for found in _FORM_LABEL.finditer(body):
        end = body.find("\n", found.start())
        line = body[found.start():end if end >= 0 else len(body)]
        if not (_HEADER.match(line) or _SUBJECT_HEADER.match(line)):
            count += 1
            if count >= FORM_LABELS:
                return True
    return False


HEADING_WORDS = 8
"""A body's first line of at most this many words, with more text after it, reads as a title (``Outlook not
syncing`` over the user's sentences), not as the start of a sentence that runs on: one that ends without a full
stop right above a line starting in lower case is read as one sentence with it."""
HEADING_CHARS = 80
_RUNS_ON = (",", ";", ":", "-", "(", "/", "&", "+")
"""A first line ending so runs on into the next ("Hi team,", "I get this error:"): no title."""


SENTENCE_WORDS = 8
"""A body's first sentence of at most this many words (as short as a title line) stands for the subject of a ticket that
has none; a longer one is read as body text, as before."""
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def first_sentence(body: str) -> tuple[str, str]:
    """A cleaned body's first sentence and the rest: ``("", body)`` when it runs longer than :data:`SENTENCE_WORDS`.

    A ticket without a subject (a phone note, a form with one text field) says what is wrong in its first sentence,
    as a subject would: the matcher reads that sentence as the subject ("The printer on my computer says paused.").
    """
    text = body.lstrip()
    end = _SENTENCE_END.search(text)
    cut = end.end() if end else len(text)
    if not text[:cut].strip() or len(text[:cut].split()) > SENTENCE_WORDS:
        return "", body
    return text[:cut], text[cut:]


def drop_greeting(body: str) -> str:
    """A cleaned body without the greeting its first line opens with (``Hi all``, ``Hallo zusammen,``): the
    matcher reads the rest. Once per ticket, on the cleaned body, whose first line is the user's once mail headers
    and banners are gone."""
    found = _GREETING.match(body)
    return body[found.end():] if found else body


def split_heading(body: str) -> tuple[str, str]:
    """A cleaned body's title line and the rest: ``("", body)`` when its first line reads as no title.

    Tickets forwarded from a form or a mail put the subject, or a title like one, on the body's first line
    (``Outlook not syncing`` then ``Hi, since this morning ...``). Read as one stretch with what follows, the
    title's last word and the body's first make phrases and near pairs that neither says; the matcher reads
    the title as a segment of its own (as the subject, when the ticket has none).
    """
    lines = body.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return "", body
    title = lines[first].strip()
    rest = "\n".join(lines[first + 1:])
    if (not rest.strip() or len(title) > HEADING_CHARS or len(title.split()) > HEADING_WORDS
            or title.endswith(_RUNS_ON)):
        return "", body
    following = lines[first + 1].lstrip()
    if following[:1].islower() and not title.endswith((".", "!", "?")):
        return "", body  # a sentence the writer broke in two ("my Outlook does not" / "sync since Monday")
    return title, rest


def _drop_signature(kept: list[str]) -> None:
    """Drop the name and title lines above a contact line: at most :data:`SIGNATURE_LINES` short lines
    back to a blank line, and only when some text stands above that blank line."""
    block = 0
    while block < len(kept) and kept[-1 - block].strip():
        block += 1
    above = kept[:len(kept) - block]
    if 0 < block <= SIGNATURE_LINES and any(line.strip() for line in above) and all(
            len(line.split()) <= 6 and not line.rstrip().endswith((".", "?", "!"))
            for line in kept[len(kept) - block:]):
        del kept[len(kept) - block:]
