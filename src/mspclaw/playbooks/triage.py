"""Tickets no playbook may take, whatever else they say: the must-not-automate layer.

It runs before any playbook is scored. A playbook runs diagnostics and proposes fixes on one
user's PC and tells the user their problem is being fixed; for an outage of a whole site, a
machine-generated monitoring alert, a broken screen, a phishing report, an ERP error, a data
restore or a purchase that is the wrong answer, and a worse one than no answer. Those tickets
go to a technician (or, for triage, to a model) with the reason in the decision.

A :class:`Rule` is data: terms (words or phrases, in any of the supported languages; each is
stemmed like ticket text, so inflections match), optionally a second list of which one must occur
within a few words of a term (``broken`` near ``screen``), and terms that cancel it (``everyone
else``). :class:`Triage` indexes them once and checks a ticket in one pass over its words.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from mspclaw.playbooks.cleaning import APP_MARK, HOST_MARK
from mspclaw.playbooks.tokens import stems

Reader = Callable[[str], Sequence[str]]
"""How a term's text becomes the keys a ticket's words are read as (:meth:`Matcher.tokens`); by default
the English light stems, and the matcher passes its own reading per language, so a term's words are
read exactly as the same words in a ticket are."""

BREAK = "|"
"""The token between a ticket's segments (its subject, a title line the body starts with, the rest of the body): a
term and its near word are in one segment, and no term spans two."""
MAX_HITS = 32
"""Positions remembered per rule and role: enough to judge nearness, bounded whatever the ticket."""

T = TypeVar("T")


def breaks(tokens: Sequence[str]) -> tuple[int, ...]:
    """Where the :data:`BREAK` tokens are: the first splits the subject from the body."""
    found: list[int] = []
    at = -1
    while True:
        try:
            at = tokens.index(BREAK, at + 1)
        except ValueError:
            return tuple(found)
        found.append(at)


def together(a: int, b: int, at: Sequence[int]) -> bool:
    """Whether positions ``a`` and ``b`` are in one segment: no break of ``at`` (in order) between them."""
    return bisect_left(at, a) == bisect_left(at, b)


class Terms(Generic[T]):
    """Terms of one or more words (their keys, and a value each), indexed by their first two words.

    :meth:`at` gives the values of the terms that start at a position of a ticket, in the order they
    were given: a word that starts no term costs one look-up, and a common first word ("not", "the")
    costs a second one on the next word instead of a comparison per term that starts with it.
    """

    def __init__(self, entries: Iterable[tuple[tuple[str, ...], T]]) -> None:
        by_first: dict[str, list[tuple[tuple[str, ...], T]]] = {}
        for seq, value in entries:
            if seq:
                by_first.setdefault(seq[0], []).append((seq, value))
        self._first: dict[str, tuple[list[T], dict[str, list[tuple[tuple[str, ...], T]]]]] = {}
        for first, listed in by_first.items():
            alone = [value for seq, value in listed if len(seq) == 1]
            seconds = dict.fromkeys(seq[1] for seq, _ in listed if len(seq) > 1)
            following = {second: [(seq, value) for seq, value in listed if len(seq) == 1 or seq[1] == second]
                         for second in seconds}
            self._first[first] = (alone, following)
        self.starts = frozenset(self._first)
        """The first word of every term: a ticket's other words need no call to :meth:`at`."""

    def at(self, tokens: Sequence[str], pos: int) -> Sequence[T]:
        """The values of the terms whose words are ``tokens[pos:]``'s first words, in the order given."""
        found = self._first.get(tokens[pos])
        if found is None:
            return ()
        alone, following = found
        if following and pos + 1 < len(tokens):
            entries = following.get(tokens[pos + 1])
            if entries is not None:
                return [value for seq, value in entries
                        if len(seq) <= 2 or tuple(tokens[pos:pos + len(seq)]) == seq]
        return alone

    def scan(self, tokens: Sequence[str]) -> list[tuple[int, T]]:
        """Every (position, value) of :meth:`at` over the ticket, by position then in the order given: one
        pass, one look-up per word that starts no term."""
        first = self._first
        found: list[tuple[int, T]] = []
        add = found.append
        last = len(tokens) - 1
        for pos, token in enumerate(tokens):
            entry = first.get(token)
            if entry is None:
                continue
            alone, following = entry
            if following and pos < last:
                entries = following.get(tokens[pos + 1])
                if entries is not None:
                    for seq, value in entries:
                        if len(seq) <= 2 or tuple(tokens[pos:pos + len(seq)]) == seq:
                            add((pos, value))
                    continue
            for value in alone:
                add((pos, value))
        return found


@dataclass(frozen=True)
class Rule:
    reason: str
    terms: tuple[str, ...]
    near: tuple[str, ...] = ()
    """When given, a term counts only with one of these within :attr:`window` words of it."""
    unless: tuple[str, ...] = ()
    """Any of these anywhere in the ticket and the rule does not apply."""
    window: int = 6
    ordered: bool = False
    """When true, the :attr:`near` word must come after the term (``router ... down``, not ``down
    since the router``)."""
    then: tuple[str, ...] = ()
    """When given, one of these must also follow the :attr:`near` word, within :attr:`then_window` words of it
    (``two`` ``users`` ... ``cannot``: a count of people counts only with what fails for them)."""
    then_window: int = 6
    excused: tuple[str, ...] = ()
    """An :attr:`unless` word inside one of these does not count ("install" in "install an extension")."""
    across: bool = False
    """When true, a :attr:`near` word counts anywhere in the ticket, in any segment: the term names what the whole
    ticket is about (a form's application field), not a word of one sentence."""


@dataclass(frozen=True)
class Verdict:
    reason: str
    term: str

    def explain(self) -> str:
        return f"looks like {self.reason} ('{self.term}'): not for automation, a technician handles it, no playbook"


_MANY = ("all users", "all the users", "everyone", "everybody", "all staff", "all employees", "all of us",
         "whole office", "entire office", "whole site", "entire site", "whole company", "entire company",
         "company wide", "whole building", "entire building", "whole floor", "whole team", "entire team",
         "whole department", "whole plant", "entire plant", "in the plant", "all computers", "all pcs",
         "all machines", "all workstations", "all laptops", "multiple users", "several users", "many users",
         "several people", "multiple people",
         "none of us", "all sites", "all locations", "all branches", "every user", "site down", "site is down",
         "outage", "widespread", "users are affected", "users affected", "affecting users",
         "alle benutzer", "alle user", "alle mitarbeiter", "alle kollegen",
         "ganze buro", "gesamte buro", "ganze firma", "ganzen standort", "gesamten standort", "ganze standort",
         "bei allen", "alle rechner", "alle pcs",
         "tous les utilisateurs", "tout le monde", "tout le bureau", "toute l equipe",
         "tous les postes", "panne generale", "todos los usuarios", "todo el mundo",
         "toda la oficina", "todos los equipos", "caida general", "alle gebruikers", "alle medewerkers",
         "iedereen", "hele kantoor", "alle computers", "alle pc s")
_TOGETHER = ("my team and i", "me and my team", "my team and me", "my colleagues and i", "my coworkers and i",
             "my co workers and i", "me and my colleagues", "mein team und ich", "meine kollegen und ich",
             "ich und meine kollegen", "mon equipe et moi", "mes collegues et moi", "moi et mes collegues",
             "mi equipo y yo", "mis companeros y yo", "mijn team en ik", "mijn collegas en ik",
             "ik en mijn collegas")
"""The writer and the people around them, together: what fails fails for a group, not one PC."""
_OURS = ("our whole team", "our entire team", "our division", "the whole division", "the entire division",
         "our whole department", "our entire department", "unser ganzes team", "unsere abteilung",
         "unserer abteilung", "toute notre equipe", "notre service", "todo mi equipo", "todo nuestro equipo",
         "nuestro departamento", "ons hele team", "onze afdeling")
"""The writer's department or team: a group only when a fault is said of it ("our division cannot log in"),
not in a possessive ("the printer of our department", "add Tom from our division to the drive")."""
_ACCESS_ASKED = ("need access", "needs access", "need permission", "need permissions", "request access",
                 "requesting access", "grant access", "give access", "like access", "brauche zugriff",
                 "brauchen zugriff", "benotige zugriff", "benotigen zugriff", "besoin d un acces",
                 "besoin d acces", "besoin de l acces", "necesito acceso", "necesitamos acceso", "toegang nodig")
"""Access asked for, for oneself and one's team: a request, not a fault that stops a group."""
_AT_MY_DESK = ("bei mir", "an meinem", "vanaf mijn", "bij mij", "op mijn", "de mon poste", "depuis mon poste",
               "sur mon poste", "depuis mon ordinateur", "desde mi", "en mi equipo", "en mi ordenador",
               "from my laptop", "from my computer", "from my pc", "on my laptop", "on my computer", "on my pc",
               "on my machine")
"""Where the writer says it fails for them, at their own desk ("druckt bei mir nicht"): one PC, not the group
named beside it."""
_PEOPLE = ("users", "people", "employees", "staff", "staff members", "colleagues", "coworkers", "co workers",
           "team members", "members", "individuals", "individual users", "technicians", "inspectors", "agents",
           "benutzer", "mitarbeiter", "mitarbeitern", "kollegen", "personen", "leute", "utilisateurs",
           "personnes", "employes", "collegues", "usuarios", "personas", "empleados", "companeros",
           "gebruikers", "mensen", "medewerkers", "collegas")
_PEOPLE_PLURAL = ("users are", "users have", "users were", "staff are", "staff have", "employees are",
                  "employees have", "people are", "people have", "colleagues are", "colleagues have",
                  "coworkers are", "members are", "benutzer haben", "mitarbeiter haben", "kollegen haben",
                  "utilisateurs ont", "utilisateurs sont", "usuarios tienen", "usuarios estan",
                  "gebruikers hebben", "medewerkers hebben", "collegas hebben")
"""A plural subject ("users are", "staff have"): the verb shows more than one person, whatever the stem."""
_COUNTS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen",
           "twenty", "dozen", "dozens", "hundreds", "zwei", "drei", "vier", "funf", "sechs", "sieben", "acht",
           "neun", "zehn", "deux", "trois", "quatre", "cinq", "sept", "huit", "neuf", "dix", "dos", "tres",
           "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "twee", "drie", "vijf", "zes", "zeven",
           "negen", "tien")
_GROUP_FAULTS = ("reporting", "reported", "report", "unable", "not able", "cannot", "cant", "experiencing",
                 "having", "getting", "seeing", "affected", "impacted", "complaining", "stuck", "locked", "down",
                 "slow", "slowness", "work stoppage", "at a standstill", "no access", "lost", "melden", "gemeldet",
                 "konnen nicht", "betroffen", "signalent", "ne peuvent", "touches", "reportan", "no pueden",
                 "afectados", "kunnen niet", "getroffen")
_COUNT_FAULTS = (*_GROUP_FAULTS, "not", "no", "nicht", "kein", "keine", "keinen", "pas", "niet", "geen")
"""What fails for a count of people, after it: the group faults, and a plain negation ("3 Benutzer können
sich nicht mehr anmelden")."""
_ONBOARDING = ("new user", "new users", "new employee", "new employees", "new hire", "new hires", "new starter",
               "new starters", "new joiner", "new joiners", "accounts for", "create accounts", "set up accounts",
               "neue mitarbeiter", "neue benutzer", "nouveaux utilisateurs", "nuevos usuarios", "nieuwe gebruikers",
               "nieuwe medewerkers")
_BLACK_SCREEN = ("black screen", "screen is black", "screen went black", "screen goes black", "screen stays black",
                 "screen turned black", "screen turns black", "bildschirm schwarz", "bildschirm bleibt schwarz",
                 "schwarzer bildschirm", "ecran noir", "pantalla negra", "zwart scherm")
_ASKED_DEVICES = ("laptop", "laptops", "computer", "computers", "desktop", "desktops", "pc", "pcs", "workstation",
                  "cell phone", "cellphone", "cell phones", "mobile phone", "smartphone", "iphone", "ipad", "tablet",
                  "monitor", "monitors", "mifi", "hotspot", "docking station", "headset", "webcam", "notebook",
                  "handy", "rechner", "telephone portable", "ordinateur", "ordinateurs", "ordenador", "ordenadores",
                  "portatil", "movil", "telefono movil", "mobiele telefoon")
"""What a user asks to be handed out ("need a new laptop", "requesting a cell phone")."""
_HANDED_OUT = ("hotspot", "hotspots", "wifi hotspot", "mobile hotspot", "mifi", "jetpack", "headset", "headsets",
               "webcam", "docking station", "dock", "monitor", "monitors", "second monitor", "external monitor",
               "keyboard", "mouse", "charger", "power adapter", "laptop bag", "cell phone", "cellphone", "tablet",
               "maus", "tastatur", "ladegerat", "kopfhorer", "souris", "clavier", "chargeur", "ecran", "casque",
               "raton", "teclado", "cargador", "auriculares", "muis", "toetsenbord", "oplader", "scherm", "koptelefoon")
"""Peripherals and small devices a user is handed: asked for, not repaired."""
_HANDED_OUT_FAULTS = ("to work", "to connect", "to show up", "to be detected", "to be recognized", "to charge",
                      "not working", "stopped working", "isnt working", "is broken", "funktioniert nicht",
                      "ne fonctionne pas", "no funciona", "werkt niet", "kaputt", "casse", "roto", "kapot")
"""A device that fails ("can't get a monitor to work", "a headset that stopped working"): no purchase."""
_DEVICE_AS_ADJECTIVE = tuple(
    f"{device} {thing}" for device in ("laptop", "computer", "pc", "desktop", "workstation", "notebook", "phone",
                                       "iphone", "ipad", "tablet", "rechner", "ordinateur", "ordenador")
    for thing in ("password", "passwort", "kennwort", "login", "log in", "logon", "sign in", "account", "software",
                  "program", "programs", "app", "apps", "install", "installation", "shortcut", "shortcuts", "icon",
                  "icons", "settings", "setup", "set up", "profile", "user", "username", "pin"))
"""A device's name before another noun ("a PC software install", "new computer password"): what is asked
for is that thing, not the device."""
_NOT_CARRIER = ("authenticator", "mfa", "2fa", "two factor", "verification code", "code", "codes", "sign in",
                "log in", "login", "laptop", "computer", "pc", "zwei faktor", "double authentification",
                "doble factor", "tweestapsverificatie")
"""A phone named for its sign-in codes or beside a PC: the account's or the PC's, not the carrier's."""
_SHELL_ERRORS = ("cannot create directory", "cant create directory", "no such file or directory", "command not found",
                 "segmentation fault")
"""A Unix shell's errors: an administrator's in a shell, not when Windows says them of a shortcut."""
_NOBODY = ("nobody", "no one", "noone", "none of the users", "niemand", "keiner", "personne", "nadie", "ninguno")
_WORK = ("work", "works", "print", "log", "login", "logon", "access", "connect", "get", "open", "send", "receive",
         "use", "reach", "browse", "arbeiten", "drucken", "anmelden", "zugreifen", "verbinden", "travailler",
         "imprimer", "connecter", "acceder", "trabajar", "imprimir", "conectar", "acceder", "werken", "printen",
         "inloggen", "verbinden")
"""After "nobody can": the office's work stops (not "nobody can hear me" on a call)."""
_ONLY_ME = ("everyone else", "everybody else", "others are fine", "others can", "colleagues can",
            "other people can", "only me", "just me", "only mine", "only my", "only on my", "only i",
            "nur bei mir", "nur ich", "alle anderen", "seulement moi", "sauf moi", "solo yo", "solo a mi",
            "solo mi", "alleen ik", "alleen bij mij", "iedereen behalve", "except me", "but me", "but not me",
            "ausser mir", "sauf moi", "menos yo", "behalve ik", "behalve mij")
_INFRA = ("router", "firewall", "core switch", "network switch", "the switch", "access point", "access points",
          "site to site", "site2site", "isp", "wan", "leased line", "fibre line", "fiber line", "circuit",
          "internet provider", "provider outage", "modem at the office", "meraki", "fortigate", "sonicwall",
          "ipsec")
_AUTOMATED = ("automatically generated", "auto generated", "automated message", "this is an automated",
              "do not reply", "noreply", "no reply", "automatisch generiert", "automatisch erstellt",
              "genere automatiquement", "generado automaticamente", "automatisch gegenereerd")
_SERVERS = ("server", "servers", "serveur", "serveurs", "servidor", "servidores",
            "srv", "host", "hosts", "vm", "vms", "virtual machine", "hypervisor", "esxi",
            "vcenter", "hyper v", "datastore", "domain controller", "dc01", "dc1", "nas", "san", "sql server",
            "exchange server", "cluster", "appliance", "volume", "lun", "raid")


_WHOLE = ("whole", "entire", "complete", "ganze", "ganzen", "gesamte", "gesamten", "komplette", "kompletten",
          "tout", "toute", "todo", "toda", "entera", "entero", "hele", "heel", "gehele")
"""Before a place ("the whole branch", "im ganzen Büro"): the scope is the place, not one PC."""
_PLACES = ("office", "branch", "clinic", "warehouse", "plant", "factory", "site", "campus", "school", "building",
           "floor", "department", "store", "shop", "practice", "location", "network", "house", "company", "team",
           "buro", "filiale", "standort", "niederlassung", "zweigstelle", "praxis", "lager", "werk", "halle",
           "etage", "stockwerk", "abteilung", "haus", "gebaude", "firma", "netzwerk", "netz",
           "bureau", "agence", "succursale", "magasin", "usine", "entrepot", "etage", "service", "batiment",
           "societe", "reseau", "oficina", "sucursal", "tienda", "almacen", "fabrica", "planta", "sede", "edificio",
           "empresa", "red", "kantoor", "vestiging", "filiaal", "winkel", "magazijn", "fabriek", "verdieping",
           "afdeling", "gebouw", "bedrijf", "netwerk")
_SITES = ("branch", "clinic", "warehouse", "plant", "factory", "campus", "branch office", "remote site",
          "filiale", "standort", "niederlassung", "zweigstelle", "praxis", "werk", "agence", "succursale",
          "usine", "entrepot", "sucursal", "fabrica", "sede", "vestiging", "filiaal", "fabriek")
"""A named place of the client's: a connection problem "at the branch" is the branch's line, not one PC."""
_CUT_OFF = ("no internet", "internet down", "internet is down", "internet is out", "internet out", "network down",
            "network is down", "offline", "outage", "no connection", "no network", "cant connect", "cannot connect",
            "lost connection", "is down", "went down", "kein internet", "kein netz", "keine verbindung",
            "kein netzwerk", "ausgefallen", "ausfall", "stoerung", "storung", "pas d internet", "plus d internet",
            "en panne", "panne", "sin internet", "sin conexion", "caido", "caida", "geen internet",
            "geen verbinding", "een storing", "storingen", "ligt plat", "uitgevallen")
_LINE_DOWN = ("no internet", "internet down", "internet is down", "internet is out", "internet went down",
              "lost internet", "lost the internet", "lost our internet", "internet outage", "network down",
              "network is down", "kein internet", "internet ist weg", "internet ist ausgefallen", "internet weg",
              "internet ausgefallen", "netzwerk ausgefallen", "netz ausgefallen", "internet uitgevallen",
              "pas d internet", "plus d internet", "plus internet", "pas internet", "internet en panne",
              "sin internet", "no tenemos internet", "no hay internet", "internet caido", "se cayo el internet",
              "geen internet", "internet ligt plat", "internet is weg")
"""The connection itself gone (not one application's or one site's): with "we" or the office, the site's line."""
_WE = ("we have", "we dont have", "we do not have", "we have lost", "weve lost", "we lost", "our", "ours", "wir haben",
       "haben wir", "unser", "unsere", "unseren", "nous n avons", "nous avons", "on n a", "notre", "nos",
       "tenemos", "no tenemos", "nuestro", "nuestra", "we hebben", "hebben we", "ons", "onze")
_OFFICE = ("office", "the office", "at work", "buro", "im buro", "bureau", "au bureau", "oficina", "kantoor",
           "op kantoor", "op het werk", "en el trabajo", "au travail", "in der arbeit", "in der firma")
_HOME = ("at home", "home office", "my home", "zu hause", "zuhause", "homeoffice", "a la maison", "chez moi",
         "en casa", "thuis", "teletravail", "thuiswerken")
"""A connection at home is the user's own, not the office's."""
_GROUPS = ("printers", "phones", "computers", "pcs", "laptops", "desktops", "users", "staff", "employees",
           "colleagues", "machines", "workstations", "devices", "people", "offices", "branches", "locations",
           "sites", "clients", "terminals", "screens",
           "drucker", "telefone", "rechner", "benutzer", "user", "mitarbeiter", "mitarbeitern", "kollegen",
           "arbeitsplatze", "gerate", "standorte", "filialen", "imprimantes", "telephones", "ordinateurs", "postes",
           "utilisateurs", "collegues", "impresoras", "telefonos", "ordenadores", "equipos", "usuarios",
           "companeros", "telefoons", "gebruikers", "collegas", "medewerkers")
"""After "all" (``all printers``, ``alle Drucker``, ``tous les postes``): a request or a fault for a group."""
_BROWSERS = ("browser", "browsers", "firefox", "chrome", "edge", "safari", "navigateur", "navegador", "webbrowser",
             "internet explorer")
"""A browser named: "all sites", "tous les sites", "meerdere sites" are websites it opens, not the client's places."""
_GROUPS_NOT_SITES = tuple(group for group in _GROUPS if group != "sites")


_RELATIONS = ("friend", "friends", "mother", "mom", "mum", "mothers", "dad", "father", "fathers", "wife", "husband",
              "son", "daughter", "parents", "grandmother", "grandfather", "grandma", "grandpa", "neighbour",
              "neighbor", "girlfriend", "boyfriend", "sister", "brother", "colleague", "colleagues", "coworker",
              "co worker", "boss", "manager", "client", "customer",
              "freund", "freundin", "mutter", "vater", "frau", "mann", "sohn", "tochter", "eltern", "kollege",
              "kollegin", "chef", "ami", "amie", "mere", "pere", "femme", "mari", "fils", "fille", "collegue",
              "amigo", "amiga", "madre", "padre", "esposa", "esposo", "hijo", "hija", "companero", "companera",
              "jefe", "vriend", "vriendin", "moeder", "vader", "vrouw", "zoon", "dochter", "ouders", "collega",
              "baas")
"""Whose device it is ("my mother's laptop", "a colleague's PC"): not the PC the playbook would run on."""
_DEVICES = ("laptop", "laptops", "computer", "computers", "pc", "pcs", "mac", "macbook", "notebook", "desktop",
            "tablet", "ipad", "iphone", "phone", "rechner", "handy", "ordinateur", "portable", "ordenador",
            "portatil", "movil", "equipo")
_RELATIONS_AFTER = ("meiner mutter", "meines vaters", "meiner frau", "meines mannes", "meines sohnes",
                    "meiner tochter", "meiner eltern", "eines freundes", "meines freundes", "meiner freundin",
                    "eines kollegen", "meines kollegen", "meiner kollegin", "de ma mere", "de mon pere",
                    "de ma femme", "de mon mari", "de mon fils", "de ma fille", "de mes parents", "d un ami",
                    "de mon ami", "d une amie", "d un collegue", "de mi madre", "de mi padre", "de mi esposa",
                    "de mi esposo", "de mi hijo", "de mi hija", "de mis padres", "de un amigo", "de mi amigo",
                    "de un companero", "van mijn moeder", "van mijn vader", "van mijn vrouw", "van mijn man",
                    "van mijn zoon", "van mijn dochter", "van mijn ouders", "van een vriend", "van mijn vriend",
                    "van een collega")

_SOFTWARE_CLIENTS = ("vpn client", "email client", "e mail client", "mail client", "desktop client", "sync client",
                     "citrix client", "teams client", "zoom client", "webex client", "rdp client",
                     "remote desktop client", "anyconnect client", "globalprotect client", "thin client", "web client",
                     "ssh client", "ftp client", "client software", "client app", "client application",
                     "client vpn", "client mail", "client de messagerie", "cliente vpn", "cliente de correo",
                     "mailclient", "vpn cliente")
"""A program's client ("a VPN client on the laptop"): software on the writer's own PC, not a customer's device."""
_KIND_OF_USERS = tuple(
    f"{product} {version} {people}" for product in ("windows", "win", "office", "outlook", "ios", "android", "macos")
    for version in ("7", "8", "10", "11", "365", "2013", "2016", "2019", "2021", "2024")
    for people in ("user", "users"))
"""People named by the version they run ("Windows 10 users", "Office 2016 users"): a kind of user, whatever
the figure in it, not a count or a group the fault stops."""
_NETWORK_BOXES = ("router", "wireless router", "wifi router", "wlan router", "modem", "cable modem", "dsl modem",
                  "access point", "firewall", "fritzbox", "fritz box", "box internet", "livebox")
_BOX_CUT_OFF = ("is unable to connect", "unable to connect", "cannot connect", "cant connect", "can not connect",
                "is not connecting", "not connecting", "wont connect", "doesnt connect", "does not connect",
                "will not connect", "has no internet", "no internet", "has no connection", "is not connected",
                "has lost internet", "lost internet", "lost connection", "lost its connection",
                "keeps losing internet", "keeps losing connection", "verbindet sich nicht", "verbindet nicht",
                "hat kein internet", "hat keine verbindung", "kein internet", "keine verbindung",
                "ne se connecte pas", "ne se connecte plus", "n a pas d internet", "n a plus d internet",
                "no se conecta", "no conecta", "no tiene internet", "sin internet", "maakt geen verbinding",
                "heeft geen internet", "geen internet", "geen verbinding")
"""What network equipment itself cannot do, right after its name ("the router is unable to connect to the
internet", "das Modem hat kein Internet"): the equipment's or the line's, not the PC's connection; a PC's
trouble beside it ("connected to the router but no internet") has words between and is left."""

_PORTALS = ("sign in portal", "signin portal", "login portal", "captive portal", "splash page", "portal page",
            "anmeldeportal", "anmeldeseite", "portail captif", "portal cautivo", "inlogportaal")
"""A guest network's sign-in page: removing or changing it is the network's configuration."""
_EXTENSION_INSTALLS = ("install an extension", "install extensions", "install the extension", "install an add on",
                       "install an addon", "install add ons", "install addons", "install a theme", "install themes",
                       "install anything", "installing anything", "install an app for", "installing an extension",
                       "install a plugin", "install a plug in",
                       # an installation the writer has done, in passing: the application is there
                       "i installed", "ive installed", "i have installed", "i had installed", "i just installed",
                       "i have already installed", "i already installed", "ive already installed")
"""An extension, add-on or theme to install, or nothing to install at all, or an installation the writer has
done: in a question about an application's features, said in passing, not an installation asked for or
failing. English only: the rule's ``install`` is."""
_MOVES = ("import", "imports", "importing", "imported", "export", "exports", "exporting", "exported", "importieren",
          "exportieren", "importiert", "exportiert", "importer", "exporter", "importation", "exportation",
          "importar", "exportar", "importacion", "exportacion", "importeren", "exporteren", "geimporteerd",
          "geexporteerd")
"""Moving a program's data in or out, in five languages (French "importe" is also "no matter": left out)."""
_MOVED_DATA = ("email", "emails", "e mail", "e mails", "mail", "mails", "messages", "inbox", "mbox", "pst",
               "maildir", "contacts", "address book", "calendar", "calendars", "bookmarks", "favorites", "favourites",
               "passwords", "logins", "certificate", "certificates", "profile", "settings", "history",
               "nachrichten", "kontakte", "adressbuch", "kalender", "lesezeichen", "favoriten", "passworter",
               "kennworter", "zertifikat", "profil", "courriels", "contacts", "carnet d adresses", "calendrier",
               "marque pages", "favoris", "mots de passe", "certificat", "correos", "mensajes", "contactos",
               "calendario", "marcadores", "favoritos", "contrasenas", "certificado", "perfil", "berichten",
               "contactpersonen", "agenda", "bladwijzers", "favorieten", "wachtwoorden", "certificaat", "profiel")
"""What is moved between programs or computers: mail, contacts, calendars, bookmarks, passwords, certificates."""
_MOVE_UNLESS = ("crash", "crashes", "crashed", "crashing", "freezes", "frozen", "not responding", "quits",
                "keeps quitting", "disk space", "low on disk", "out of space", "absturz", "sturzt", "plante",
                "se cierra", "crasht")
"""A program that crashes on an import, or a disk too full for an export: the fault, not the migration."""
_ADD_ONS = ("extension", "extensions", "add on", "add ons", "addon", "addons", "plugin", "plugins", "plug in",
            "plug ins", "erweiterung", "erweiterungen", "module complementaire", "modules complementaires",
            "extensiones", "complemento", "complementos", "extensie", "extensies")
"""A browser's or mail program's add-ons, in five languages."""
_ADD_ON_UNLESS = ("since i installed", "after i installed", "after installing", "since installing",
                  "havent installed", "have not installed", "didnt install", "did not install", "seit ich",
                  "nachdem ich", "depuis que j ai installe", "apres avoir installe",
                  "despues de instalar", "sinds ik", "nadat ik")
"""An add-on installed before the trouble, or none installed: said in passing about another fault."""
_SIGN_IN = ("password", "passwort", "kennwort", "mot de passe", "contrasena", "wachtwoord", "login", "log in", "logon",
            "log on", "sign in", "signin", "locked", "lockout", "locked out", "anmelden", "anmeldung", "gesperrt",
            "connexion", "se connecter", "bloque", "iniciar sesion", "bloqueado", "inloggen", "geblokkeerd")
"""Signing in to something, in five languages: with an application named beside it, that application's account."""
_DIRECTORY_SIGN_IN = ("windows password", "windows login", "windows logon", "windows account", "windows credentials",
                      "network password", "network login", "domain password", "domain account", "domain login",
                      "ad password", "ad account", "active directory", "single sign on", "sso", "same password as",
                      "same login as", "computer password", "pc password", "laptop password", "windows passwort",
                      "windows kennwort", "windows anmeldung", "domanenkonto", "netzwerkpasswort",
                      "mot de passe windows", "mot de passe de session", "session windows", "contrasena de windows",
                      "windows wachtwoord", "netwerkwachtwoord")
"""The directory's own sign-in named beside an application ("the ERP uses my Windows login", "single sign-on"): the
account is the directory's, whose password the password playbook resets."""
_LOB_KINDS = ("hr", "payroll", "timesheet", "timesheets", "time sheet", "time tracking", "time recording",
              "timekeeping", "time clock", "attendance", "accounting", "bookkeeping", "invoicing", "finance",
              "ordering", "order entry", "order management", "inventory", "stock control", "scheduling", "rostering",
              "booking", "reservation", "reservations", "expense", "expenses", "document management",
              "case management", "patient management", "client management", "customer management", "reporting",
              "learning", "dispatch", "procurement", "purchasing", "claims", "loan", "policy administration")
"""What a line-of-business application is for: before its kind ("the timesheet application", "the HR tool")."""
_APP_KINDS = ("system", "systems", "application", "applications", "app", "software", "tool", "platform", "module",
              "portal", "database", "solution", "suite")
_LOB_NAMED = (
    *(f"{kind} {noun}" for kind in _LOB_KINDS for noun in _APP_KINDS),
    "logiciel de paie", "logiciel de comptabilite", "logiciel comptable", "logiciel de gestion", "logiciel metier",
    "application metier", "logiciel de facturation", "logiciel de planning", "logiciel rh", "portail rh",
    "outil de gestion", "sistema de nomina", "sistema de nominas", "programa de nominas", "sistema contable",
    "programa de contabilidad", "software de contabilidad", "sistema de facturacion", "sistema de inventario",
    "sistema de reservas", "sistema de rrhh", "portal de rrhh", "portal del empleado", "zeiterfassung",
    "zeiterfassungssystem", "zeiterfassungssoftware", "buchhaltungssoftware", "buchhaltungsprogramm",
    "lohnprogramm", "lohnabrechnungsprogramm", "personalsystem", "personalverwaltung", "warenwirtschaftssystem",
    "auftragsverwaltung", "dokumentenmanagement", "kassensystem", "fibu", "boekhoudpakket", "boekhoudprogramma",
    "boekhoudsoftware", "salarisadministratie", "planningssysteem", "planningsysteem", "urenregistratie",
    "roostersysteem", "kassasysteem", "personeelssysteem", "hr systeem")
"""A line-of-business application named by what it is for, in five languages (``the ordering system``, ``logiciel de
paie``, ``Zeiterfassung``, ``urenregistratie``): its own accounts and errors are the application's, not the PC's."""
_NOT_THE_APPLICATION = (
    "windows", "computer", "laptop", "pc", "desktop", "email", "e mail", "outlook", "office 365", "microsoft 365",
    "microsoft account", "network", "vpn", "domain", "authenticator", "mfa", "2fa", "wifi", "printer", "shared drive",
    "network drive", "operating system", "system restore", "system settings", "system preferences",
    "systemeinstellungen", "rechner", "ordinateur", "ordenador", "firefox", "browser", "thunderbird",
    # the directory's own portals: the password reset portal, Intune's Company Portal, SharePoint
    "reset portal", "password reset portal", "self service", "selfservice", "sspr", "company portal", "intune",
    "sharepoint")
"""Beside an application's sign-in, what makes the account or the fault the PC's or the directory's ("HR portal says
account locked, and my laptop says the same")."""
_LOB_TROUBLE = ("access", "error", "errors", "not working", "doesnt work", "isnt working", "down", "slow", "crash",
                "crashes", "crashing", "unable", "cannot", "cant", "not able", "not loading", "wont open", "issue",
                "issues", "problem", "problems", "zugriff", "fehler", "funktioniert nicht", "geht nicht", "langsam",
                "acces", "erreur", "ne fonctionne pas", "ne marche pas", "lent", "acceso", "no funciona", "lento",
                "toegang", "fout", "werkt niet", "traag")
"""What goes wrong with an application, or access to it asked for."""
_LOB_PRODUCTS = ("concur", "adp", "quickbooks", "xero", "jira", "confluence", "bamboohr", "bamboo hr", "zendesk",
                 "hubspot", "docusign", "paychex", "personio", "exact online", "afas", "visma", "cegid",
                 "silae", "freshbooks", "myob", "successfactors", "ultipro", "paylocity", "deltek", "knack", "airtable",
                 "smartsheet", "mailchimp", "surveymonkey", "qualtrics", "trello", "asana", "canva")
"""Software-as-a-service products with their own sign-in: named beside a password or a lock-out, theirs."""
_SUBSCRIPTION_FAULTS = (
    "verify your subscription", "verify the subscription", "verifying your subscription", "couldnt verify",
    "could not verify", "unable to verify", "your subscription has expired", "your subscription expired",
    "subscription has been deactivated", "unlicensed product", "product deactivated", "product activation",
    "activation", "activate", "reactivate", "licensing error", "account notice",
    "abonnement nicht uberprufen", "ihr abonnement ist abgelaufen", "nicht lizenziertes produkt", "aktivierung",
    "aktivieren", "verifier votre abonnement", "votre abonnement a expire", "produit sans licence",
    "comprobar su suscripcion", "verificar su suscripcion", "su suscripcion ha expirado", "su suscripcion ha caducado",
    "activacion", "producto sin licencia", "abonnement niet verifieren", "uw abonnement is verlopen", "activering",
    "activeren", "product zonder licentie")
"""What an Office application shows when it cannot confirm its licence ("We couldn't verify your subscription", "Your
subscription has expired", "Product Activation Failed"), in five languages: an activation fault, not a purchase."""
_CODES = ("2fa", "two step", "2 step", "verification code", "verification codes", "security code", "login code",
          "sign in code", "one time code", "one time password", "otp", "zwei faktor", "2 faktor",
          "bestatigungscode", "verifizierungscode", "sicherheitscode", "code de verification", "code de securite",
          "double authentification", "codigo de verificacion", "codigo de seguridad", "doble factor",
          "verificatiecode", "beveiligingscode", "tweestapsverificatie")
"""A second factor's code or its sign-in step, in five languages (``two-factor`` is read as ``2fa``)."""
_OUTSIDE_SERVICES = (
    "webshop", "web shop", "online shop", "online store", "online banking", "bank", "onlineshop", "tienda online",
    "banco", "banque", "webwinkel", "amazon", "ebay", "paypal", "facebook", "instagram", "linkedin", "twitter",
    "whatsapp", "netflix", "spotify", "steam", "discord", "tiktok", "snapchat", "apple id", "icloud", "gmail",
    "yahoo", "hotmail", "airbnb", "booking com", "zalando", "etsy", "coinbase", "binance", "revolut", "bol com",
    "epic games", "playstation", "xbox", "nintendo", "mozilla", "mozilla account", "firefox account",
    "developer account")
"""A shop, a bank or a consumer service: its own accounts, not the company's directory. A website not named is left
to the playbooks' negatives (the MFA playbook is ruled out, the browser's is not: a site's page can be its fault)."""
_COMPANY_SIGN_IN = ("office 365", "microsoft 365", "m365", "outlook", "teams", "vpn", "work account",
                    "company account", "windows", "azure", "entra", "citrix", "remote desktop", "work email",
                    "sharepoint", "sharepoint site", "onedrive", "intune", "company portal", "our site", "the office",
                    "arbeitskonto", "firmenkonto", "compte professionnel", "cuenta de trabajo", "werkaccount")
"""The company's own sign-in named beside a code: the MFA the playbook resets."""
_RESTORE_UNLESS = ("authenticator", "password", "passwort", "kennwort", "wachtwoord", "contrasena", "mot de passe",
                   "account", "system restore", "restore access", "restore my access", "restore his access",
                   "restore her access")
_LICENCES = ("license", "licence", "licenses", "licences", "lizenz", "lizenzen", "licencia", "licencias", "licentie",
             "licenties")


RULES: tuple[Rule, ...] = (
    Rule("a security report", (
        "phishing", "phish", "phishy", "scam", "scammer", "suspicious", "fraud", "fraudulent", "malware",
        "ransomware", "virus", "trojan", "hacked", "hacker", "compromised", "hijack", "hijacked", "hijacker",
        "browser hijacker", "malwarebytes", "exploit", "threat detected", "threat found", "tampered",
        "antivirus warning", "antivirus alert", "defender warning", "ongebruikelijke aanmelding",
        "ungewohnliche anmeldung", "connexion inhabituelle", "inicio de sesion inusual", "actividad inusual", "breach",
        "spoofed", "spoofing", "infected", "infection", "infiziert", "infektion", "infecte", "infectado",
        "infectada", "geinfecteerd", "besmet", "call this number", "call the number", "tech support scam",
        "fake microsoft", "fake support", "flagged as dangerous", "marked as dangerous", "as dangerous",
        "als gefahrlich", "comme dangereux", "como peligroso", "als gevaarlijk",
        "gift cards", "clicked a link", "clicked the link", "clicked on a link", "fake email", "fake invoice",
        "someone logged into", "someone else logged", "unknown sign in", "unknown signin", "unknown login",
        "someone is logging", "someone has logged", "someone keeps logging", "someone is signing",
        "from another country", "from a different country", "from an unknown location",
        "encrypted my files", "bitcoin", "unauthorized", "unauthorised", "impersonating", "impersonation",
        "unknown account", "account i dont recognize", "account i dont recognise",
        "login from russia", "strange login", "weird login", "unusual sign in",
        "unusual activity", "security alert", "data leak", "keylogger", "spyware", "adware", "is it real",
        "is this real", "is it legit", "is this legit", "is this legitimate", "is it legitimate", "is it genuine",
        "account suspended", "account has been suspended", "ist das echt", "ist die echt", "est ce un vrai",
        "es real", "es legitimo", "is dit echt",
        "verdachtig", "verdachtige", "betrug", "gehackt", "hackeado", "hameconnage", "frauduleux",
        # French "suspect" after what it qualifies (English "suspect" is as often a verb: "I suspect the driver")
        "courriel suspect", "mail suspect", "email suspect", "message suspect", "lien suspect", "piece jointe suspecte",
        "courrier suspect", "activite suspecte", "connexion suspecte",
        "sospechoso", "suplantacion", "estafa", "verdacht", "oplichting", "gehackt",
        "someone sent", "someone is sending", "someone has been sending", "someone else is sending",
        "sent from my account", "sending from my account", "sending spam", "sent spam", "spam from my",
        "emails i didnt send", "emails i did not send", "mails i didnt send", "messages i didnt send",
        "someone accessed", "someone has access to my", "someone else is using my", "someone is using my",
        "spoof our domain", "spoof my domain",
        "jemand verschickt", "in meinem namen", "en mon nom",
        "en mi nombre", "iemand verstuurt", "uit mijn naam", "namens mij",
    ), unless=("no virus", "not a virus", "no malware", "no tengo virus", "kein virus", "keinen virus",
               "pas de virus", "geen virus", "virus free", "virus scan is clean", "scan found nothing",
               # a scan that found nothing rules the PC's malware out: the fault is what is left
               "nothing found", "found nothing", "no threats", "no threat found", "scan was clean",
               "came back clean")),
    # mail from one's own domain (or stopping someone's) is a report only when it is forged, not when it is missing
    # or unwanted ("I stopped getting emails from our domain", "block someone from sending me emails")
    Rule("a security report", (
        "someone from sending", "someone else from sending", "sending emails from my domain",
        "sending email from my domain", "sending mail from my domain", "send emails from my domain",
        "emails from our domain", "mails from our domain", "emails from my domain", "mails from my domain",
    ), near=("spoof", "spoofed", "spoofing", "impersonate", "impersonating", "impersonation", "pretending",
             "pretends", "fake", "faked", "forged", "phishing", "nobody", "no one", "none of us", "didnt send",
             "did not send", "didnt write", "did not write", "never sent", "never wrote", "not from us",
             "not sent by"), window=10),
    Rule("a security report", (
        "terminated", "fired", "former employee", "ex employee", "former staff", "former colleague",
        # "no longer works" and "phoned" only with who or whom: alone, a phone that no longer works reads as both
        "left the company", "no longer works here", "no longer works for us", "no longer works at",
        "no longer works with us", "no longer with us", "leaver", "dismissed",
        "ehemaliger mitarbeiter", "ehemalige mitarbeiterin", "gekundigt", "ancien employe", "ex empleado",
        "antiguo empleado", "voormalig medewerker", "oud medewerker",
    ), near=("called", "calls", "calling", "phoned us", "phoned in", "has phoned", "phoned the", "rang",
             "wants access", "asking for access",
             "asked for access", "requesting access", "asks for access", "wants his", "wants her", "contacted us",
             "trying to log", "tried to log", "still logging", "still logged", "logged in", "signed in",
             "hat angerufen", "ruft an", "a appele", "llamo", "belde"), window=8),
    Rule("a security report", (
        "terminated user", "terminated employee", "former employee", "ex employee", "former staff", "leaver",
        "the leaver", "ehemaliger mitarbeiter", "ehemalige mitarbeiterin", "ancien employe", "ex empleado",
        "voormalig medewerker",
    ), near=("asked", "asks", "asking", "wants", "wanted", "requested", "requests", "would like", "mochte",
             "will", "demande", "pide", "wil"), window=3, ordered=True),
    Rule("a machine-generated monitoring alert", (
        "nagios", "zabbix", "prtg", "solarwinds", "datto rmm", "ninjaone", "ninjarmm", "n able", "ncentral",
        "connectwise automate", "labtech", "auvik", "checkmk", "icinga", "prometheus", "grafana", "pagerduty",
        "opsgenie", "threshold", "thresholds", "alert id", "event id", "eventid", "severity critical",
        "severity high", "severity warning", "severity major", "severity minor", "snmp",
        "automatically generated", "auto generated", "automated message", "this is an automated",
        "backup job", "job scheduler", "jobscheduler", "scheduler", "batch job", "backup failed", "job failed",
        "job status",
        "scheduled task", "task scheduler", "cron", "crontab", "veeam", "sql agent", "replication failed",
        "heartbeat", "ping loss", "packet loss on", "is unreachable", "went down at", "cpu utilization",
        "memory utilization", "critical alert", "warning alert", "alert triggered",
        "monitoring alert", "monitor alert", "schwellwert", "schwellenwert", "seuil", "umbral", "drempel",
        *(f"firing {n}" for n in range(1, 10)), *(f"resolved {n}" for n in range(1, 10)), "alertname",
    )),
    Rule("a machine-generated monitoring alert", (HOST_MARK,), near=(
        "alert", "alarm", "warning", "critical", "monitor", "monitoring", "threshold", "status", "agent",
        "offline", "detected", "failed", "failure", "failing", "degraded", "stopped", "usage", "utilization",
        "not responding", "down", "reached", "exceeded", "predicted", "patch", "low disk space", "free space",
        "checked in", "heartbeat", "cpu", "memory", "warnung", "kritisch", "fehlgeschlagen", "alerte",
        "avertissement", "echec", "alerta", "advertencia", "fallo", "waarschuwing", "mislukt",
    ), window=10),
    Rule("a machine-generated monitoring alert", (
        "certificate", "certificates", "ssl", "tls", "domain", "zertifikat", "certificat", "certificado",
        "certificaat",
    ), near=("expires in", "will expire", "expiring soon", "expiry notice", "expiration notice", "due to expire",
             "lauft ab in", "lauft in", "expire dans", "expirera", "caduca en", "vence en", "verloopt over",
             "verloopt binnenkort"), window=6),
    Rule("a machine-generated monitoring alert", ("ping",), near=(
        "failed", "failure", "timeout", "timed out", "loss", "lost", "unreachable", "not responding",
        "no response", "fehlgeschlagen", "echoue", "fallido", "mislukt"), window=4),
    Rule("an outage affecting many users or a whole site", (
        "service incident", "service health", "service degradation", "service advisory", "service outage",
        "users may be unable", "users may experience", "some users may", "incident id",
    )),
    Rule("a machine-generated monitoring alert", ("job", "jobs", "batch"), near=(
        "failed", "failure", "aborted", "abended", "fehlgeschlagen", "echoue", "fallido", "mislukt",
    ), unless=("print job", "print jobs", "printing job", "druckauftrag", "impression", "impresion"), window=4),
    Rule("a machine-generated monitoring alert", (
        "alert", "alarm", "critical", "warning", "triggered", "monitoring", "monitor reports", "resolved",
        "status changed", *_AUTOMATED,
    ), near=_SERVERS, window=30),
    Rule("a server or network outage", _SERVERS + _INFRA, near=(
        "down", "offline", "unreachable", "outage", "rebooted", "crashed", "degraded",
        "nicht erreichbar", "ausgefallen", "ist aus", "en panne", "hors service", "caido", "no responde",
        "ne repond plus", "ne repond pas", "reagiert nicht", "antwortet nicht", "reageert niet", "not reachable",
        "onbereikbaar", "plat", "uitgevallen",
    ), unless=("my home router", "home router", "my router at home", "router at home"), window=7, ordered=True),
    # a server itself crashed or to be repaired, its name right after ("Repair and crash video srv")
    Rule("a server or network outage", ("crash", "crashed", "repair", "repaired"), near=_SERVERS, window=3,
         ordered=True),
    # the equipment itself cut off, its name right before ("the router is unable to connect to the internet")
    Rule("a server or network outage", _NETWORK_BOXES, near=_BOX_CUT_OFF, window=1, ordered=True,
         unless=("my home router", "home router", "my router at home", "router at home", "connect to the router",
                 "connect to my router", "connect to the modem", "connect to router")),
    Rule("a server or network outage", (
        "disk space", "low disk", "free space", "space", "full", "capacity", "storage", "speicherplatz", "voll",
        "espace disque", "plein", "espacio", "lleno", "schijfruimte", "vol",
    ), near=_SERVERS, window=5),
    Rule("an outage affecting many users or a whole site", ("down for all", "not working for all",
                                                            "broken for all", "down for the whole",
                                                            "out for all")),
    Rule("an outage affecting many users or a whole site", _MANY,
         unless=(*_ONLY_ME, "user accounts", "user profiles", "benutzerkonten", "comptes utilisateurs",
                 "cuentas de usuario", "gebruikersaccounts")),
    Rule("an outage affecting many users or a whole site", _TOGETHER,
         unless=(*_ONLY_ME, *_AT_MY_DESK, *_ACCESS_ASKED)),
    Rule("an outage affecting many users or a whole site", _OURS, near=_GROUP_FAULTS, window=4,
         unless=(*_ONLY_ME, *_AT_MY_DESK, *_ACCESS_ASKED)),
    Rule("an outage affecting many users or a whole site", _WHOLE, near=_PLACES, window=2, ordered=True,
         unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", ("all", "alle", "allen", "tous", "toutes", "todos",
                                                            "todas"),
         near=_GROUPS_NOT_SITES, window=2, ordered=True, unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", ("all", "alle", "allen", "tous", "toutes", "todos",
                                                            "todas"),
         near=("sites",), window=2, ordered=True, unless=(*_ONLY_ME, *_BROWSERS)),
    Rule("an outage affecting many users or a whole site", ("all", "alle", "allen", "tous", "toutes", "todos",
                                                            "todas"),
         near=("accounts", "mailboxes", "postfacher", "konten", "comptes", "cuentas", "buzones", "mailboxen"),
         window=2, ordered=True,
         unless=(*_ONLY_ME, "all my", "all of my", "alle meine", "tous mes", "toutes mes", "todos mis", "todas mis",
                 "al mijn")),
    Rule("an outage affecting many users or a whole site", (
        "several", "multiple", "many", "numerous", "various", "mehrere", "viele", "verschiedene", "plusieurs",
        "nombreux", "varios", "varias", "muchos", "meerdere", "veel"), near=_GROUPS_NOT_SITES, window=2, ordered=True,
         unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", (
        "several", "multiple", "many", "numerous", "various", "mehrere", "viele", "verschiedene", "plusieurs",
        "nombreux", "varios", "varias", "muchos", "meerdere", "veel"), near=("sites",), window=2, ordered=True,
         unless=(*_ONLY_ME, *_BROWSERS)),
    Rule("an outage affecting many users or a whole site", _SITES, near=_CUT_OFF, window=6, unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", _WE, near=_LINE_DOWN, window=3,
         unless=(*_ONLY_ME, *_HOME)),
    Rule("an outage affecting many users or a whole site", _OFFICE, near=_LINE_DOWN, window=6,
         unless=(*_ONLY_ME, *_HOME)),
    Rule("an outage affecting many users or a whole site", (
        "for anyone", "for anybody", "for any user", "for everyone", "anyone in the office", "organisation wide",
        "organization wide", "org wide", "tenant wide", "across the company", "across the organisation",
        "across the organization", "firmenweit", "unternehmensweit", "toute l entreprise", "toda la empresa",
        "bedrijfsbreed", "fur niemanden",
        "bei niemandem", "pour personne", "para nadie", "voor niemand", "phones and internet",
        "internet and phones", "internet and phone", "phone and internet", "telefon und internet",
        "internet und telefon", "phone system", "phone lines", "telephone system", "telefonanlage",
        "standard telephonique", "centralita", "telefooncentrale",
    ), unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", (
        "both wired and wireless", "wired and wifi", "hardline and wifi", "cable and wifi", "sent the team home",
        "sent team home", "sent everyone home",
    )),
    # the internet provider's outage, or the line down while the internal network still works: the site's uplink
    Rule("an outage affecting many users or a whole site", (
        "downdetector", "down detector", "isp outage", "outage at the isp", "outage at our isp", "isp is down",
        "provider is down", "provider outage", "outage at the provider", "internal network is working",
        "internal network works", "internal network is fine", "internal network is ok",
        "storung beim anbieter", "storung beim provider", "storung des anbieters", "ausfall beim anbieter",
        "ausfall beim provider", "internes netz funktioniert", "internes netzwerk funktioniert",
        "panne chez l operateur", "panne chez le fournisseur", "panne du fournisseur", "panne de l operateur",
        "reseau interne fonctionne", "caida del proveedor", "caida de la operadora", "averia del proveedor",
        "fallo del proveedor", "red interna funciona", "storing bij de provider", "storing bij de internetprovider",
        "storing bij onze provider", "intern netwerk werkt", "interne netwerk werkt",
    ), unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", (
        "public wifi", "guest wifi", "guest network", "visitor wifi", "gaste wlan", "wifi invites", "wifi publico",
        "gastenwifi",
    ), near=("down", "out", "gone out", "not working", "offline", "no internet", "doesnt work", "isnt working",
             "ausgefallen", "en panne", "caido", "no funciona", "werkt niet", "plat"), window=6),
    Rule("an outage affecting many users or a whole site", ("building", "gebaude", "batiment", "edificio",
                                                            "gebouw"), near=(
        "no internet", "internet is out", "internet access is out", "internet down", "network down", "wifi down",
        "kein internet", "pas d internet", "sin internet", "geen internet", "outage", "is out"), window=6),
    Rule("an outage affecting many users or a whole site", (
        "all our", "all of our", "none of our", "not one of our", "not one of", "each of our", "every one of our",
        "alle unsere", "keiner unserer", "tous nos", "toutes nos", "aucun de nos", "todos nuestros",
        "todas nuestras", "ninguno de nuestros", "al onze", "geen van onze",
    ), near=("computers", "pcs", "machines", "laptops", "desktops", "workstations", "users", "staff", "employees",
             "devices", "rigs", "sites", "offices", "branches", "locations", "rechner", "computer", "benutzer",
             "mitarbeiter", "standorte", "ordinateurs", "postes", "utilisateurs", "sites", "ordenadores", "equipos",
             "usuarios", "oficinas", "computers", "gebruikers", "medewerkers", "vestigingen"), window=4,
         ordered=True, unless=_ONLY_ME),
    Rule("an outage affecting many users or a whole site", _NOBODY, near=_WORK, unless=_ONLY_ME, window=4,
         ordered=True),
    # not one of a kind of device or person, and what it fails to do after ("ninguna impresora funciona", "aucun
    # poste ne marche", "keiner der Drucker druckt"): every one of them; not one the writer's PC does not see
    Rule("an outage affecting many users or a whole site", (
        "none of the", "not a single", "not one", "keiner der", "keines der", "kein einziger", "kein einziges",
        "aucun", "aucune", "pas un seul", "pas une seule", "ninguna", "ninguno", "ningun", "ni un solo", "ni una sola",
        "geen enkele",
    ), near=(*_GROUPS, "printer", "computer", "pc", "laptop", "workstation", "user", "drucker", "rechner",
             "arbeitsplatz", "imprimante", "ordinateur", "poste", "utilisateur", "impresora", "ordenador", "equipo",
             "usuario", "computadora", "gebruiker", "werkplek"), window=3, ordered=True,
         then=("work", "works", "working", "print", "prints", "printing", "connect", "connects",
               "funktioniert", "geht", "druckt", "fonctionne", "marche", "imprime", "funciona", "werkt",
               "doet het"), then_window=3, unless=(*_ONLY_ME, *_AT_MY_DESK)),
    Rule("a hardware failure", (
        "cracked", "smashed", "spilled", "spill", "water damage", "smoke", "burning smell", "sparks",
        "wont turn on", "doesnt turn on", "does not turn on", "wont power on", "doesnt power on",
        "will not turn on", "not turning on", "not powering on", "wont power up", "doesnt power up",
        "not switching on", "wont switch on", "no power", "dead battery", "battery swollen", "swollen", "broken screen",
        "screen is broken", "screen broke", "keyboard broken",
        "keys stopped working", "hinge", "clicking noise", "grinding noise", "beeping", "beeps",
        "paper jam", "jammed", "toner", "fuser", "drum unit", "imaging drum", "pickup roller", "feed roller",
        "misfeed", "misfeeds", "not feeding", "wont feed", "doesnt feed", "streaks", "streaky", "smudged", "smudges",
        "ink cartridge", "cartridge", "cartridges", "out of ink", "low on ink", "tintenpatrone", "patrone",
        "papierstau", "trommel", "cartouche", "bourrage", "cartucho", "atasco de papel", "inktcartridge",
        "papierstoring", "dead pixel", "flickering", "flickers", "no display",
        "overheating", "overheat", "overheats",
        "overheated", "too hot", "very hot", "burning hot", "hot to touch", "no post", "wont post",
        "doesnt post", "will not post", "does not post", "not posting", "fails to post", "post error",
        # the firmware screen named as such: a bare "bios" reads as "bio" (a biology room's PCs)
        "bios screen", "bios error", "bios password", "bios update", "bios setup", "bios settings", "bios menu",
        "into the bios", "into bios", "stuck in bios", "stuck in the bios", "boots to bios", "boots to the bios",
        "wont boot", "doesnt boot", "will not boot", "does not boot", "no boot", "boot loop", "unable to boot",
        "cant boot", "cannot boot", "fails to boot", "failed to boot", "lines on the screen",
        "usb port", "usb ports", "hdmi port", "charging port", "port is broken", "port broken", "ports broken",
        "loose port", "hard drive failing", "hard drive failure", "disk failure", "smart error",
        "screen replacement", "keyboard replacement",
        # a device to be mended or swapped, or the warranty it is under, is the vendor's and a technician's
        "warranty", "under warranty", "out of warranty", "warranty expired", "garantie", "garantia",
        "repaired or replaced", "replaced or repaired", "repair or replace", "replace or repair",
        "needs to be replaced", "need to be replaced", "needs replacing", "needs replacement",
        "requesting replacement", "requesting a replacement", "request a replacement", "need a replacement",
        "needs a replacement",
        # a device to be serviced is the vendor's or a technician's visit
        "needs servicing", "need servicing", "needs to be serviced", "need to be serviced", "needs a service",
        "muss gewartet werden", "mussen gewartet werden", "braucht eine wartung", "wartung notig",
        "wartung erforderlich", "besoin d entretien", "besoin d un entretien", "doit etre entretenue",
        "necesita mantenimiento", "necesitan mantenimiento", "requiere mantenimiento", "onderhoud nodig",
        "heeft onderhoud nodig", "moet onderhouden worden",
        # a printer's paper path and finishing, like its toner and rollers
        "paper tray", "finishing tray", "output tray", "input tray", "bypass tray", "tray 1", "tray 2",
        "tray 3", "tray 4", "finisher", "stapler", "stapling", "staples", "hole punch", "holes punched",
        "punched holes", "papierfach", "bac papier", "bandeja de papel", "papierlade",
        "does not charge", "doesnt charge", "wont charge",
        "will not charge", "not charging", "stopped charging", "charging problem", "charging issue",
        "no carga la bateria", "bateria no carga", "laadt niet op",
        "uberhitzt", "uberhitzung", "zu heiss", "fahrt nicht hoch",
        "lasst sich nicht einschalten",
        "display flackert", "flackert", "akku", "netzteil", "ladegerat", "tastatur defekt",
        "surchauffe", "chauffe", "ne s allume pas", "ecran casse", "ecran fissure",
        "batterie gonflee", "se sobrecalienta", "sobrecalentamiento", "se calienta",
        "no enciende", "pantalla rota", "oververhit", "oververhitting", "wordt heet",
        "scherm kapot",
        # the casing coming apart: the device's, whatever else it does
        "peeling", "peeling off", "coming apart", "falling apart", "blattert ab", "lost sich ab", "se decolle",
        "se despega", "se esta despegando", "laat los", "bladdert af",
    )),
    # a device to be repaired ("Repair printers on the 2nd floor", "Drucker muss repariert werden"), like one to be
    # replaced: a technician's or the vendor's; an application repaired ("Office quick repair") is not a device
    Rule("a hardware failure", (
        "repair", "repairs", "repaired", "reparieren", "repariert", "reparatur", "reparer", "reparee", "repare",
        "reparation", "reparar", "reparacion", "repareren", "gerepareerd", "reparatie",
    ), near=("printer", "printers", "laptop", "laptops", "pc", "pcs", "computer", "computers", "desktop", "desktops",
             "notebook", "monitor", "monitors", "screen", "keyboard", "docking station", "dock", "drucker",
             "rechner", "bildschirm", "tastatur", "imprimante", "imprimantes", "ordinateur", "ecran", "clavier",
             "impresora", "impresoras", "ordenador", "portatil", "pantalla", "teclado", "scherm", "toetsenbord"),
         window=4, unless=("quick repair", "online repair", "office repair", "repair office", "repair outlook",
                           "outlook repair", "repair install", "repair the installation", "repair installation",
                           "repair tool", "reparaturinstallation", "reparer office", "reparar office",
                           "office repareren")),
    # a black screen for a while on the way to the desktop is a slow start, not a dead display; one that stays
    # black ("forever", "nothing shows", "it's dead") is the display's, slow or not
    Rule("a hardware failure", _BLACK_SCREEN, near=(
        "dead", "forever", "nothing", "wont turn on", "doesnt turn on", "does not turn on", "will not turn on",
        "no power", "power led", "nothing shows", "stays black", "permanently", "nichts", "tot",
        "rien", "nada", "niets"), window=12),
    Rule("a hardware failure", _BLACK_SCREEN,
         unless=("slow", "slowly", "slowness", "laggy", "lagging", "sluggish", "langsam", "lenteur", "lentitud",
                 "traag", "langzaam")),
    Rule("a hardware failure", (
        "ladt nicht", "ladt nicht mehr", "ladt nicht auf", "ne charge pas", "ne charge plus", "ne se charge pas",
        "ne se charge plus", "no carga", "laadt niet",
    ), near=("akku", "laptop", "notebook", "batterie", "battery", "bateria", "accu", "portable", "portatil",
             "ladegerat", "chargeur", "cargador", "oplader", "netzteil", "tablet", "handy", "telephone", "movil"),
         window=4),
    Rule("a hardware failure", (
        "start niet op", "gaat niet aan", "no arranca", "no prende", "startet nicht", "bootet nicht",
        "geht nicht an", "ne demarre pas", "ne demarre plus", "boot niet", "wont start", "doesnt start",
        "will not start",
    ), near=("laptop", "pc", "computer", "rechner", "notebook", "ordinateur", "portable", "ordenador",
             "portatil", "equipo", "mac", "macbook", "desktop", "workstation"), window=4),
    Rule("a hardware failure", (
        "mouse", "headset", "webcam", "microphone", "mic", "camera", "mikrofon", "microphone", "microfono",
        "trackpad", "touchpad", "touch pad", "touchscreen", "touch screen",
        "microfoon", "docking station", "dock", "speakers", "monitor", "monitors", "keyboard",
        "charger", "power supply", "power button", "maus", "souris", "raton", "muis", "tastatur", "clavier",
        "teclado", "toetsenbord",
    ), near=("not working", "doesnt work", "dont work", "stopped working", "broken", "dead", "not detected",
             "not recognized", "not recognised", "no signal", "powers on", "power on", "turn on", "turns on",
             "wont work", "barely", "defekt", "kaputt", "funktioniert nicht", "ne marche pas", "ne fonctionne pas",
             "no funciona", "werkt niet", "kapot"), window=6),
    Rule("a hardware failure", (
        "broken", "damaged", "cracked", "kaputt", "defekt", "gebrochen", "zerbrochen", "gesprungen", "beschadigt",
        "casse", "fissure", "endommage", "roto", "rota", "danado", "kapot", "stuk", "gebarsten", "physically",
    ), near=("screen", "display", "monitor", "keyboard", "laptop lid", "port", "ports", "hinge", "charger",
             "chargeur", "cargador", "oplader", "ladegerat", "netzteil",
             "battery", "trackpad", "touchpad", "cable", "bildschirm", "tastatur", "anschluss", "buchse",
             "ecran", "clavier", "pantalla", "teclado", "puerto", "scherm", "toetsenbord", "poort"), window=6),
    # "dropped it" is a fall only when no connection is said to drop ("the wifi keeps dropping. It ...")
    Rule("a hardware failure", ("dropped my laptop", "dropped it", "dropped the laptop", "dropped my phone"),
         unless=("connection", "connections", "wifi", "wi fi", "wireless", "network", "internet", "vpn", "call",
                 "calls", "signal", "meeting", "meetings", "reconnect", "reconnects", "disconnect",
                 "disconnects")),
    Rule("a hardware or operating-system installation job", (
        "partition", "partitions", "partitioning", "repartition", "grub", "bootloader", "boot loader",
        "boot manager", "dual boot", "multi boot", "triple boot", "mbr", "gpt", "efi partition", "uefi",
        "graphics card", "video card", "sound card", "motherboard", "mainboard", "dimm", "ram slot",
        "ram slots", "new ram", "more ram", "install ram", "ram upgrade", "gpu", "nvidia", "radeon", "geforce",
        "clean install", "fresh install of windows", "reinstall windows", "reinstalling windows",
        "windows installation", "operating system installation",
        "partitionierung", "partition", "grafikkarte", "hauptplatine", "arbeitsspeicher erweitern",
        "carte graphique", "carte mere", "tarjeta grafica", "placa base", "videokaart", "moederbord",
    )),
    Rule("a feature request or a suggestion, not a fault", (
        "feature request", "feature requests", "feature suggestion", "bug report",
        "would be nice", "would be great", "would be helpful", "it would be good", "please add an option",
        "please add a feature", "please add the option", "please add support", "please consider",
        "wish list", "wishlist", "why dont you", "why doesnt mozilla", "why doesnt microsoft",
        "funktionswunsch", "verbesserungsvorschlag", "mein vorschlag", "ein vorschlag", "vorschlag zur",
        "vorschlag fur", "ware schon", "ware toll", "ware gut",
        "warum gibt es kein", "warum gibt es keine", "suggestion d amelioration", "ce serait bien",
        "ce serait bien", "pourquoi ne pas", "pourquoi vous ne", "mi sugerencia", "una sugerencia",
        "sugerencia para", "les sugiero", "seria bueno", "seria genial",
        "por que no", "suggestie", "verbeterpunt", "het zou fijn zijn", "het zou mooi zijn", "waarom niet",
    ), unless=("error", "fehler", "erreur", "fout", "any help", "help would be", "advice would be",
               "any advice", "any suggestions", "any ideas", "jede hilfe", "toute aide", "cualquier ayuda",
               "alle hulp",
               # someone asked to look at a fault, or a heads-up, is no product change
               "if someone could", "if somebody could", "if anyone could", "if someone can", "heads up",
               "let you know", "wenn sich das jemand", "wenn jemand", "si quelqu un", "si alguien", "als iemand")),
    # a ticket that calls itself a feature request asks for a product change, whatever error it recalls in passing
    # ("Feature request: ... last year I got errors"); a stray "error" switches only the softer phrasings above off
    Rule("a feature request or a suggestion, not a fault", (
        "feature request", "feature requests", "feature suggestion", "added as a feature", "add as a feature",
        "feature to be added", "become a feature", "add this feature", "add such a feature",
        "implement this feature", "implement such a feature", "funktionswunsch", "feature wunsch",
        "als funktion hinzufugen", "demande de fonctionnalite", "demande d amelioration",
        "suggestion de fonctionnalite",
        "solicitud de funcion", "solicitud de funcionalidad", "peticion de funcion", "sugerencia de funcion",
        "functieverzoek", "functiewens", "verzoek om functie",
    ), unless=("fails to install", "failed to install", "install failed", "installation failed")),
    Rule("a feature request or a suggestion, not a fault", ("why not", "warum nicht"), near=(
        "add", "make", "offer", "enable", "provide", "include", "support", "allow", "have", "let", "anbieten",
        "einbauen", "ermoglichen"), window=2, ordered=True),
    Rule("several distinct problems in one ticket, for a person to sort out", (
        "second question", "another question", "other question", "two questions", "2 questions", "2nd question",
        "second problem", "another problem", "other problem", "two problems", "2 problems", "several problems",
        "multiple problems", "many problems", "several issues", "multiple issues", "two issues", "2 issues",
        "second issue", "another issue", "a few issues", "a few problems", "a couple of issues",
        "a couple of problems", "series of issues", "series of problems", "number of issues",
        "number of problems", "range of issues", "list of issues", "list of problems", "zweite frage", "zwei fragen",
        "noch eine frage", "weitere frage",
        "zweites problem", "zwei probleme", "mehrere probleme", "weiteres problem", "deuxieme question",
        "deux questions", "autre question", "second probleme", "deuxieme probleme", "deux problemes",
        "plusieurs problemes", "autre probleme", "segunda pregunta", "dos preguntas", "otra pregunta",
        "segundo problema", "dos problemas", "varios problemas", "otro problema", "tweede vraag", "twee vragen",
        "nog een vraag", "andere vraag", "tweede probleem", "twee problemen", "meerdere problemen",
        "ander probleem",
    )),
    # "this is also on my wife's phone": the writer's own device has it too, the relative's is one more
    Rule("a report about someone else's device, which a playbook on this PC would not reach", _RELATIONS,
         near=_DEVICES, window=2, ordered=True,
         unless=(*_SOFTWARE_CLIENTS, "also on my", "and also on my", "as well as on my", "auch auf meinem",
                 "auch bei meiner", "aussi sur mon", "aussi sur le", "tambien en mi", "ook op mijn")),
    Rule("a report about someone else's device, which a playbook on this PC would not reach", _DEVICES,
         near=_RELATIONS_AFTER, window=3, ordered=True),
    # software asked for on a shared server or a cluster ("Install tig on the headnode", "upgrade R on the cluster"):
    # a change to a machine many use, made by its administrator, not an install on the user's PC
    Rule("software on a server or a cluster, not the user's PC", (
        "install", "installed", "installing", "installation", "upgrade", "deploy", "installieren", "installer",
        "instalar", "installeren",
    ), near=("headnode", "head node", "login node", "login nodes", "compute node", "compute nodes", "the cluster",
             "our cluster", "hpc cluster", "on the server", "on our server", "on the servers", "on the file server",
             "sur le serveur", "en el servidor"),
         window=6, ordered=True,
         # the server only holds the installer ("install it from the installer on the server share"): the user's PC
         unless=("on my laptop", "on my computer", "on my pc", "on my desktop", "on my machine", "to my laptop",
                 "installer is on", "installer on", "setup file", "from the server", "auf meinem", "sur mon",
                 "en mi", "op mijn")),
    # German and Dutch put the verb last ("die neue Version auf dem Server installieren")
    Rule("software on a server or a cluster, not the user's PC", (
        "auf dem server", "auf den server", "auf dem cluster", "op de server", "op het cluster",
    ), near=("installieren", "installeren"), window=4, ordered=True,
         unless=("auf meinem", "op mijn")),
    Rule("a developer's or administrator's configuration question, not a user's fault", (
        "web developer", "web development", "developer tools", "dev tools", "devtools", "dev console",
        "developer console", "web console", "localhost", "javascript", "css", "userchrome", "usercontent",
        "about config", "prefs js", "policies json", "group policy", "gpo", "gpedit", "regedit",
        "registry key", "registry keys", "registry setting", "registry settings", "command line", "commandline",
        "cli", "apt get", "bash", "shell script", "powershell script", "batch file", "api", "xpi",
        "source code", "compile", "compiler", "dns over https", "mx record", "mx records", "mail exchanger",
        "mail exchangers", "dns record", "dns records", "spf record", "dkim", "dmarc",
        "gruppenrichtlinie", "gruppenrichtlinien", "registrierung", "kommandozeile", "befehlszeile",
        "strategie de groupe", "ligne de commande", "base de registre", "directiva de grupo", "linea de comandos",
        "registro de windows", "groepsbeleid", "opdrachtregel", "chmod", "chown", "make install",
        "makefile", "tarball",
    )),
    # a shell's error is an administrator's only in a shell ("sudo ... command not found"), not when Windows
    # says it of a shortcut or a program the user asks to have installed
    Rule("a developer's or administrator's configuration question, not a user's fault", _SHELL_ERRORS,
         near=("bash", "zsh", "linux", "ubuntu", "debian", "centos", "fedora", "unix", "sudo", "ssh", "make", "apt",
               "cron"), window=10, unless=("shortcut", "drive", "laufwerk", "lecteur", "unidad", "schijf")),
    # in a terminal or a script the user may be setting up a program they asked for ("install Python ... 'command
    # not found' in the terminal"): a request, unless it is a Unix system's
    Rule("a developer's or administrator's configuration question, not a user's fault", _SHELL_ERRORS,
         near=("terminal", "shell", "script", "console"), window=10,
         unless=("install", "installed", "installing", "installation", "shortcut", "windows", "drive", "laufwerk",
                 "lecteur", "unidad", "schijf")),
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "router interface", "router admin", "router login", "router settings", "router configuration",
        "router config", "router web interface", "router page", "router admin page", "log into the router",
        "log in to the router", "login to the router", "sign in to the router",
        "static ip", "fixed ip", "default gateway", "netmask", "subnet mask", "ping each other",
        "see each other", "wifi direct", "ad hoc", "adhoc", "routing", "mesh network", "repeater", "extender",
        "range extender", "powerline", "feste ip", "ip fixe", "ip fija", "vast ip", "firewall rule",
        "firewall rules", "open a port", "open the port", "block a port", "block the port", "port 3389",
        "firewallregel", "regle de pare feu", "regla de firewall",
    )),
    # the guest network's sign-in page changed or removed for everyone: the network's configuration, not a PC's
    # wifi (a portal that does not show on the user's laptop is left to the wifi playbook)
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "remove", "disable", "get rid of", "turn off", "change", "supprimer", "desactiver", "quitar", "eliminar",
        "desactivar",
    ), near=_PORTALS, window=4, ordered=True),
    # the wireless network itself worked on ("Improve the quality of wi-fi on MPK", "replace the access point"): the
    # network's equipment, not one PC's wifi
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "improve", "improving", "extend", "expand", "verbessern", "erweitern", "ameliorer", "etendre", "mejorar",
        "ampliar", "verbeteren", "uitbreiden",
    ), near=("wifi coverage", "wi fi coverage", "wlan coverage", "wireless coverage", "quality of wi fi",
             "quality of the wi fi", "quality of wifi", "quality of the wifi", "wifi quality", "wi fi quality",
             "wlan abdeckung", "couverture wifi", "cobertura wifi", "wifi dekking"), window=4, ordered=True),
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "replace", "replacement", "swap", "austauschen", "ersetzen", "remplacer", "reemplazar", "vervangen",
    ), near=("router", "routers", "access point", "access points", "network switch", "wifi router", "wi fi router",
             "wlan router", "wireless router"), window=3, ordered=True),
    # German and Dutch put the verb last ("das Anmeldeportal im Gäste-WLAN entfernen")
    Rule("network equipment or virtual machine configuration, not the user's PC", _PORTALS, near=(
        "entfernen", "deaktivieren", "abschalten", "abstellen", "verwijderen", "uitschakelen", "weghalen"),
         window=5, ordered=True),
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "allow", "block", "open", "forward", "only through", "only over", "freigeben", "sperren", "autoriser",
        "bloquer", "ouvrir", "permitir", "bloquear", "abrir", "toestaan", "blokkeren", "openen",
    ), near=("port", "ports", "rdp port", "3389", "portnummer", "puerto", "puertos", "poort", "poorten"),
         window=4, unless=("usb", "hdmi", "charging", "display port", "displayport", "serial port", "com port")),
    Rule("a hardware failure", (
        "battery", "batteries", "batterie", "bateria", "accu",
    ), near=("charge", "charges", "charging", "charged", "drain", "drains", "draining", "drainage", "life",
             "health", "laden", "ladt", "entladt", "decharge", "carga", "opladen", "leeg"), window=6),
    Rule("a hardware failure", (
        "clock speed", "cpu clock", "overclock", "overclocking", "overclocked", "undervolt", "p states",
        "temperature", "temperatures", "temperatur", "temperatura", "ram speed", "memory speed",
        "thermal paste", "thermal throttling",
    )),
    # a whole workplace to set up ("PC-Arbeitsplatz mit Drucker für Raum 4", "new workstation for reception"):
    # hardware to place and connect, not a fault on a PC; a new employee's is the onboarding playbook's
    Rule("a hardware or operating-system installation job", (
        "pc arbeitsplatz", "computerarbeitsplatz", "edv arbeitsplatz", "neuer arbeitsplatz", "neuen arbeitsplatz",
        "arbeitsplatz einrichten", "new workstation", "new workstations", "set up a workstation",
        "setup a workstation", "new desk setup", "nouveau poste de travail", "installer un poste de travail",
        "nuevo puesto de trabajo", "montar un puesto de trabajo", "nieuwe werkplek", "werkplek inrichten",
    ), unless=(*_ONBOARDING, "starter", "joiner", "onboarding", "new hire", "neuer mitarbeiter",
               "neue mitarbeiterin", "nouvel arrivant", "nuevo empleado", "nieuwe medewerker",
               # a fault on the new workstation is one to diagnose ("set up a new workstation, but could not
               # get connected")
               "cannot", "cant", "couldnt", "could not", "unable", "not working", "doesnt work", "error", "fails",
               "failed", "no internet", "nicht", "kein", "keine", "fehler", "pas", "impossible", "erreur", "no puedo",
               "no funciona", "niet", "geen", "fout")),
    Rule("a vendor's or a website's own service problem, not the user's PC", (
        "microsoft", "office 365", "microsoft 365", "m365", "teams", "zoom", "google", "gmail", "yahoo", "hotmail",
        "outlook com", "icloud", "dropbox", "aws", "azure", "website", "web site", "their site", "their website",
        "their server", "their servers", "the vendor", "the provider", "mozilla", "the service",
    ), near=("is down", "are down", "went down", "outage", "status page", "service status", "service is down",
             "on their end", "on their side", "their end", "their side", "ist down", "est en panne",
             "esta caido", "is plat", "ligt eruit"), window=4, ordered=True),
    Rule("a personal account with an outside service, which the MSP does not manage", (
        "recovery key", "recovery keys", "recovery code", "recovery codes",
        "personal account", "private account", "my personal email", "my private email", "apple id",
        "icloud account", "privates konto", "private e mail", "privates e mail", "mein privates", "compte personnel",
        "ma messagerie personnelle", "cuenta personal", "mi correo personal", "prive account", "privemail",
        "mijn prive", "persoonlijk account", "facebook account", "instagram account", "amazon account",
        "ebay account", "online banking", "my bank account", "mozilla account", "firefox account",
        "konto bei mozilla", "compte mozilla", "compte firefox", "cuenta de mozilla", "cuenta de firefox",
        "mozilla konto", "firefox konto", "firefox sync account",
    )),
    Rule("a personal account with an outside service, which the MSP does not manage", (
        "yahoo", "hotmail", "aol", "gmail", "facebook", "instagram", "my bank", "firefox", "mozilla", "amazon",
        "paypal", "ebay", "twitter", "whatsapp", "netflix", "steam", "meine bank", "ma banque",
        "mi banco", "mijn bank",
    ), near=("password", "passwords", "passwort", "kennwort", "mot de passe", "contrasena", "wachtwoord",
             "2fa", "two step", "verification code", "authenticator", "recovery", "locked out", "forgot", "hacked"),
         window=6),
    # a website's or an outside service's own sign-in code ("Amazon 2FA code", "Zwei-Faktor-Code von Amazon"): its
    # account is the user's with that service, not the company's MFA the playbook resets
    Rule("a website's or an outside service's own verification code, not the company's MFA", _CODES,
         near=_OUTSIDE_SERVICES, window=8, unless=_COMPANY_SIGN_IN),
    # two-step sign-in being turned on ("Enable two-step authentication", "2FA aktivieren"): an account's security
    # set up, not a lost or expired factor the MFA playbook removes; a new phone or a lost one is a reset
    Rule("two-step sign-in being turned on, not a lost or expired factor to reset", (
        "turn on", "turning on", "turn it on", "switch on", "switch it on", "enable", "enabling", "activate",
        "activating", "aktivieren", "einschalten", "activer", "activar", "inschakelen", "activeren", "aanzetten",
    ), near=("2fa", "two step", "2 step", "two step verification", "2 step verification", "zwei faktor", "2 faktor",
             "zweistufige", "double authentification", "doble factor", "verificacion en dos pasos",
             "tweestapsverificatie"), window=4,
         unless=("new phone", "new mobile", "lost", "stolen", "broken", "reset", "expired", "no longer",
                 "neues handy", "verloren", "nouveau telephone", "perdu", "telefono nuevo", "movil nuevo", "perdido",
                 "nieuwe telefoon", "kwijt", "company", "work account", "office 365", "microsoft 365", "vpn")),
    Rule("a complaint about what a vendor's update changed, not a fault", (
        "update", "updates", "new version", "latest version", "mise a jour", "nouvelle version", "actualizacion",
        "nueva version", "nieuwe versie", "neue version",
    ), near=("new look", "new design", "new layout", "new interface", "new menu", "looks different",
             "changed the layout", "changed the menu", "changed the look", "changed my settings",
             "reset my settings", "reverted my settings", "neues design", "neue oberflache", "neues layout",
             "nouvelle interface", "nouveau design", "nueva interfaz", "nuevo diseno", "nieuwe layout",
             "nieuw ontwerp", "nieuwe interface"), window=12,
         unless=("crash", "crashes", "crashed", "error", "freezes", "frozen", "wont open", "not responding",
                 "absturz", "sturzt", "fehler", "plante", "erreur", "se cierra", "se bloquea", "crasht", "fout")),
    # mail, bookmarks, passwords or contacts moved between programs or computers ("email import failure", "Import
    # PST to Thunderbird", "wachtwoorden exporteren"): a migration a person does, not a fault a playbook fixes
    Rule("a question about using an application's features, not a fault", _MOVES, near=_MOVED_DATA, window=5,
         unless=_MOVE_UNLESS),
    # an extension or add-on being installed ("unable to install the Bitwarden extension", "al instalar extensiones"):
    # the browser's own add-on store, not an application the install playbook deploys; one installed before the
    # trouble is said in passing
    Rule("a question about using an application's features, not a fault", (
        "install", "installing", "instalar", "installer", "ajouter",
    ), near=_ADD_ONS, window=3, ordered=True, unless=_ADD_ON_UNLESS),
    Rule("a question about using an application's features, not a fault", _ADD_ONS, near=(
        "installieren", "installiert werden", "hinzufugen", "installeren", "toevoegen", "geinstalleerd worden",
    ), window=3, ordered=True, unless=_ADD_ON_UNLESS),
    Rule("a question about using an application's features, not a fault", (
        "formula", "formulas", "macro", "macros", "vba", "pivot", "pivot table", "column",
        "columns", "dropdown", "drop down list", "bullets", "bullet points", "font size", "fonts",
        "table of contents", "footnote", "footnotes", "mail merge", "conditional formatting", "chart",
        "charts", "slide", "slides", "animation", "header and footer", "page numbers", "track changes",
        "spreadsheet formula", "shortcut key", "keyboard shortcut", "hotkey", "bookmark", "bookmarks",
        "favorites", "favourites", "toolbar", "menu bar", "title bar", "wallpaper", "signature", "signatures",
        "message filter", "mail rule", "mail rules", "outlook rule", "outlook rules", "inbox rule",
        "message threading", "on behalf of", "delegate access", "im auftrag von", "en nombre de",
        # Dutch "namens" (on behalf of) only with what is sent: alone it is German for "called" and reads as
        # German "Name" (a form's "Name: John Smith")
        "verzenden namens", "versturen namens", "verstuur namens", "sturen namens", "mailen namens",
        "namens iemand anders", "namens een collega", "namens mijn", "namens een andere",
        "conversation view", "import emails", "import mail", "import contacts", "import bookmarks",
        "import calendar", "export emails", "export mail", "export contacts", "export bookmarks", "export calendar",
        "autofill", "autocomplete",
        "saved passwords", "password manager", "master password", "pinned tab", "pinned tabs", "new tab page",
        "home button", "dark mode", "zoom level", "default font", "primary password", "main password",
        "hauptpasswort", "gespeicherte passworter", "gespeicherte kennworter", "passwortmanager",
        # the plural is the browser's or manager's stored passwords, not the one sign-in a reset is for
        "passworter", "kennworter", "wachtwoorden",
        "mot de passe principal", "mots de passe enregistres", "gestionnaire de mots de passe",
        "contrasena maestra", "contrasena principal", "contrasenas guardadas", "gestor de contrasenas",
        "hoofdwachtwoord", "opgeslagen wachtwoorden", "wachtwoordbeheerder", "message rule", "message rules",
        "distribution list", "distribution lists", "mailing list", "pgp", "openpgp",
        "gpg", "quick filter", "pst file", "import pst", "ad blocker", "adblock", "adblocker", "werbeblocker",
        "bloqueur de pub", "bloqueador de anuncios", "reader view", "reading mode", "picture in picture",
        "translation", "translate", "speed dial", "ubersetzung", "ubersetzen", "traduction", "traduire",
        "traduccion", "traducir", "vertaling", "vertalen",
        # the tabs of the last session brought back on start: the browser's start-up setting
        "previous session", "restore session", "session restore", "restore the session",
        "vorherige sitzung", "letzte sitzung", "sitzung wiederherstellen", "session precedente",
        "restaurer la session", "sesion anterior", "restaurar la sesion", "vorige sessie", "sessie herstellen",
        "lesezeichen", "favoriten", "symbolleiste", "signatur",
        "marque pages", "favoris", "barre d outils", "marcadores", "barra de herramientas", "firma", "bladwijzers",
        "favorieten", "werkbalk", "handtekening",
        "formel", "formeln", "zelle", "zellen", "spalte", "spalten", "serienbrief", "diagramm", "folie",
        # how a page comes out on paper: the application's print settings, not a fault of the printer
        "fit to page", "shrink to fit", "scale to fit", "fit to width", "page width", "landscape", "portrait mode",
        "page orientation", "margins", "page setup", "print preview", "print selection", "print frames",
        "two sided", "2 sided", "double sided", "duplex", "headers and footers", "background colors",
        "fit page", "fit to paper", "page size", "all frames", "only the selection",
        "selection only", "print only selection", "print only the selected", "print selected text",
        "paper size", "paper format", "a4 page", "a4 format", "a4 paper", "letter size", "legal size",
        "papierformat", "format de papier", "format a4", "tamano de papel", "papierformaat",
        "background images", "querformat", "hochformat", "seitenrand", "seitenrander", "beidseitig",
        "doppelseitig", "druckvorschau", "seite einrichten", "paysage", "mode portrait", "marges", "recto verso",
        "apercu avant impression", "mise en page", "margenes", "doble cara", "ambas caras", "vista previa",
        "configurar pagina", "orientacion", "liggend", "staand", "dubbelzijdig", "afdrukvoorbeeld",
        "pagina instelling", "paginainstelling",
        "formule", "cellule", "cellules", "colonne", "colonnes", "publipostage", "graphique", "diapositive",
        "formula excel", "celda", "celdas", "columna", "columnas", "combinar correspondencia", "grafico",
        "diapositiva", "formule excel", "kolom", "kolommen", "cellen", "grafiek",
    ), unless=("crash", "crashes", "crashed", "crashing", "freeze", "freezes", "frozen", "not responding",
               "wont open", "doesnt open", "will not open", "cannot open", "cant open", "error message",
               "stopped working", "quits", "quit unexpectedly", "hangs", "sturzt", "absturz", "plante",
               "se cierra", "crasht", "licence", "license", "unlicensed", "activation", "install",
               "wont start", "doesnt start", "will not start", "no longer opens", "will no longer open",
               "startet nicht", "reagiert nicht", "ne demarre pas", "ne demarre plus", "ne repond pas",
               "no arranca", "no responde", "start niet", "reageert niet"), excused=_EXTENSION_INSTALLS),
    Rule("an operating-system installation or disk migration job", (
        "install ubuntu", "installing ubuntu", "install linux", "installing linux", "install windows 7",
        "install windows 10", "install windows 11", "install windows xp", "installing windows", "upgrade to windows",
        "upgrading to windows", "migrate windows", "migrating windows", "clone the disk", "clone my disk",
        "clone the drive", "clone my drive", "cloning", "new ssd", "new hard drive", "replace the hard drive",
        "replacing the hard drive", "second hard drive", "external hard drive", "boot disk", "boot from usb",
        "bootable usb", "boot from cd", "live cd", "live usb", "ntldr", "bootmgr", "lvm", "fstab", "mount point",
        "windows neu installieren", "neuinstallation von windows", "windows neuinstallation",
        "reinstaller windows", "reinstalar windows",
        "windows opnieuw installeren",
        # any other operating system installed or reinstalled ("installing Fedora after Windows 8", "reinstall the
        # OS"): the same job as Windows or Ubuntu
        *(f"{verb} {system}" for verb in ("install", "reinstall", "re install")
          for system in ("debian", "fedora", "linux mint", "mint", "centos", "arch linux", "red hat", "redhat",
                         "opensuse", "suse", "kubuntu", "xubuntu", "lubuntu", "os x", "mac os", "macos", "freebsd",
                         "vista", "windows vista", "the os", "an os", "a new os", "another os", "the operating system",
                         "an operating system", "a new operating system", "another operating system")),
        # the same in French and Spanish (verb first) and in German and Dutch (verb last, "kan ik Windows 11
        # installeren"), and an upgrade to a new Windows in each
        *(f"{verb} {system}" for verb in ("installer", "instalar", "reinstaller", "reinstalar", "passer a",
                                          "actualizar a", "migrer vers", "migrar a", "mise a niveau vers")
          for system in ("windows", "linux", "ubuntu")),
        *(f"{system} {verb}" for system in ("windows", "windows 7", "windows 8", "windows 10", "windows 11", "linux",
                                            "ubuntu")
          for verb in ("installieren", "neu installieren", "installeren", "opnieuw installeren")),
        "upgrade auf windows", "umstieg auf windows", "upgrade naar windows", "overstappen naar windows",
        "overstappen op windows",
        # a disk's file system or array: formatted, partitioned or rebuilt by a technician
        "ntfs", "ext3", "ext4", "fat32", "exfat", "raid 0", "raid 1", "raid 5", "raid array", "raid controller",
    )),
    Rule("an operating-system installation or disk migration job", (
        "format", "formatting", "formatted", "reformat", "reformatting", "reformatted", "formater", "formatear",
    ), near=("drive", "disk", "partition", "usb stick", "usb drive", "flash drive", "ssd", "hdd", "hard drive",
             "hard disk", "sd card", "disque", "disco", "unidad", "disque dur", "disco duro"), window=3, ordered=True),
    Rule("an operating-system installation or disk migration job", ("ssd", "hdd", "festplatte", "disque dur",
                                                                     "disco duro", "harde schijf"),
         near=("install", "clone", "cloning", "migrate", "migrating", "upgrade", "swap", "replace", "replacing",
               "einbauen", "tauschen", "klonen", "remplacer", "cloner", "reemplazar", "clonar", "vervangen"),
         window=3),
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "openwrt", "dd wrt", "ddwrt", "tomato firmware", "pfsense", "opnsense", "mikrotik", "iptables",
        "port forwarding", "port forward", "forward port", "static route", "routing table", "subnet",
        "subnets", "nat", "dmz", "dhcp server", "wireless bridge", "bridge mode", "bridged networking",
        "access point setup", "set up a router", "setup a router", "second router", "two routers",
        "virtualbox", "vmware", "guest os", "host only", "hyper v", "openvpn server", "vpn server",
        "portweiterleitung", "redirection de port", "reenvio de puertos", "port doorsturen",
    )),
    Rule("a data restore", (
        "accidentally deleted", "deleted by accident", "deleted by mistake", "accidentally removed",
        "accidently deleted", "deleted accidentally", "i deleted", "got deleted", "was deleted", "were deleted",
        "versehentlich geloscht", "geloscht", "supprime par erreur", "supprime",
        # Spanish past forms as phrases, like English "i deleted": the bare words are read by their stem,
        # so "borre" alone would also be "borrar"/"borrando" (to delete, deleting)
        "lo borre", "la borre", "los borre", "las borre", "borre el", "borre la", "borre los", "borre las",
        "borre un", "borre una", "borre sin querer", "borre por error", "he borrado", "ha borrado", "han borrado",
        "fue borrado", "fue borrada", "se borro", "se borraron", "borrado por error", "borrada por error",
        "he eliminado", "ha eliminado", "fue eliminado", "fue eliminada", "eliminado por error", "se elimino",
        "per ongeluk verwijderd", "verwijderd", "overwrote", "overwritten", "uberschrieben", "ecrase",
        "sobrescrito", "overschreven",
    ), near=("file", "files", "folder", "folders", "document", "documents", "spreadsheet", "presentation",
             "datei", "dateien", "ordner", "dokument", "fichier", "fichiers", "dossier", "archivo", "archivos",
             "carpeta", "documento", "bestand", "bestanden", "map", "document", "work", "version"), window=6),
    Rule("a data restore", (
        "previous version", "previous versions", "older version", "earlier version", "vorherige version",
        "fruhere version", "version precedente", "version anterior", "vorige versie", "eerdere versie",
    ), near=("file", "files", "document", "documents", "spreadsheet", "presentation", "folder", "datei", "dokument",
             "ordner", "fichier", "document", "dossier", "archivo", "documento", "carpeta", "bestand", "map",
             "excel file", "word file"), window=6, unless=_RESTORE_UNLESS),
    Rule("a data restore", (
        "recover the file", "recover a file",
        "recover files", "recover deleted", "recover my files", "lost my files", "lost files", "file is gone",
        "files are gone", "files disappeared", "folder disappeared", "folder is gone", "from backup",
        "from the backup", "aus dem backup",
    ), unless=_RESTORE_UNLESS),
    Rule("a data restore", (
        "restore", "restoring", "wiederherstellen", "wiederherstellung", "restaurer", "recuperer", "restaurar",
        "recuperar", "terugzetten",
    ), near=("file", "files", "folder", "folders", "document", "documents", "data", "email", "emails", "mailbox",
             "version", "backup", "deleted", "spreadsheet", "datei", "dateien", "ordner", "daten", "fichier",
             "fichiers", "dossier", "donnees", "archivo", "archivos", "carpeta", "datos", "bestand", "bestanden",
             "map", "gegevens"), window=6, unless=_RESTORE_UNLESS),
    Rule("a business application problem, not the user's PC", (
        "erp", "sap", "crm", "navision", "dynamics", "salesforce", "oracle", "sage", "datev", "lexware",
        "cerner", "ehr", "emr", "line of business", "terminal server", "citrix", "database", "sql",
        "warehouse system", "payroll system", "hr system", "ticketing system", "booking system",
        "practice management", "point of sale", "pos system", "administrative system", "administration system",
        "maximo", "workday", "peoplesoft", "kronos", "servicenow", "netsuite", "accela", "munis", "athenahealth",
        "meditech", "epic", "prod", "production environment", "uat", "test environment",
        "warenwirtschaft", "wawi",
    ), unless=_DIRECTORY_SIGN_IN),
    # an application named by what it is for, with its sign-in, access or an error beside it: not one it is needed
    # for ("the VPN for the accounting system") or a new hire will use
    Rule("a business application problem, not the user's PC", _LOB_NAMED, near=(*_SIGN_IN, *_LOB_TROUBLE), window=6,
         unless=(*_NOT_THE_APPLICATION, *_DIRECTORY_SIGN_IN, *_ONBOARDING, "starter", "joiner", "new hire")),
    # a product with its own accounts, its password or lock-out: the product's administrator resets it
    # a password reset that sends an e-mail ("the reset email never arrives", "l'e-mail de réinitialisation"): a
    # website's or an application's own account; the directory's reset is the technician's or a link on the sign-in
    # screen ("the reset link asks for my old phone"), with no e-mail
    Rule("a business application problem, not the user's PC", (
        "reset email", "reset e mail", "reset mail", "password reset email", "recovery email", "email to reset",
        "e mail to reset", "e mail zum zurucksetzen", "mail zum zurucksetzen", "e mail de reinitialisation",
        "mail de reinitialisation", "correo para restablecer", "correo de restablecimiento", "resetmail",
        "e mail om te resetten", "mail om te resetten",
    ), unless=_DIRECTORY_SIGN_IN),
    Rule("a business application problem, not the user's PC", (
        "zurucksetzen", "zurucksetzten", "reset", "reinitialiser", "reinitialisation", "restablecer", "resetten",
    ), near=("erhalte keine e mail", "bekomme keine e mail", "keine e mail erhalten", "keine e mail bekommen",
             "never get an email", "never got an email", "never received an email", "never receive an email",
             "dont get an email", "dont receive an email", "didnt get an email", "didnt receive an email",
             "je ne recois aucun e mail", "je ne recois pas d e mail", "no recibo ningun correo",
             "no me llega ningun correo", "ik krijg geen e mail", "ik ontvang geen e mail"),
         window=10, ordered=True, unless=_DIRECTORY_SIGN_IN),
    Rule("a business application problem, not the user's PC", _LOB_PRODUCTS, near=_SIGN_IN, window=6,
         unless=_DIRECTORY_SIGN_IN),
    Rule("a business application problem, not the user's PC", (
        # a portal or tracker the user signs in to is an application's account, not the directory's
        "portal", "portals", "tracker", "web app", "web application", "business application", "portail",
        # an application's own web interface shows the sign-in or the lockout ("no indication on the UI")
        "web interface", "web ui", "webui", "the ui", "weboberflache", "webinterface", "interface web",
        "interfaz web",
    ), near=("password", "passwort", "kennwort", "mot de passe", "contrasena", "wachtwoord", "login", "log in",
             "logon", "log on", "sign in", "signin", "locked", "lockout", "account", "access", "anmelden",
             "anmeldung", "gesperrt", "connexion", "bloque", "iniciar sesion", "bloqueado", "inloggen",
             "geblokkeerd"), window=6,
         unless=_NOT_THE_APPLICATION),
    Rule("a purchase, licence or billing question", (
        "billing question", "billing issue", "our billing", "the billing for", "we were billed", "billed for",
        "billed twice", "refund", "overcharged", "charged twice", "discuss pricing", "our pricing",
        "your invoice", "our invoice", "last invoice", "monthly invoice", "invoice from you", "invoice number",
        "a quote for", "a quote", "quotation", "price for", "contract renewal", "our contract",
        "how much does", "how much would", "how much is", "credit card", "purchase order", "purchase",
        "purchasing", "cancel our subscription", "a license for", "a licence for", "license for", "licence for",
        "assign a license", "assign a licence", "assign an", "need a license", "need a licence", "new license",
        "new licence", "license request", "licence request", "procure", "procurement", "paypal", "donation",
        "contribution", "payment", "paid for",
        "debit card", "card payment",
        "zahlung", "bezahlt", "paiement", "pago", "betaling", "hourly rate", "order a", "order new",
        "please order", "can you order",
        "could you order", "need to order", "order one", "order me", "order us", "order another",
        "new laptop for", "need a new laptop", "need a new computer", "need a new pc",
        "need a new monitor", "need a new phone", "additional license", "additional licence",
        "more licenses", "more licences", "another license", "another licence", "extra license",
        "extra licence", "renew our", "renewal", "renew the subscription", "renew my subscription",
        "renew subscription", "renew the license", "renew the licence", "renew my license", "renew my licence",
        "abonnement verlangern", "renouveler l abonnement", "renouveler notre abonnement", "renovar la suscripcion",
        "abonnement verlengen", "kaufen", "bestellen", "bestellung", "angebot", "rechnung",
        "kosten", "acheter", "commander", "devis", "facture", "comprar", "presupuesto", "factura", "pedido",
        "kopen", "offerte", "factuur", "bestelling",
    )),
    # buying, except a new phone bought for the authenticator that was on the old one ("i buy new phone ... Google
    # Authenticator"): the phone is bought already, the factor on it is what to reset
    Rule("a purchase, licence or billing question", ("buy", "buying"),
         unless=("authenticator", "authentication app", "verification code", "verification codes")),
    # a subscription is bought, renewed or cancelled; but an Office application that cannot verify its subscription
    # or says it has expired shows an activation fault the install playbook treats (a renewal asked for beside it is
    # still a purchase: "renew our", "renewal" above)
    Rule("a purchase, licence or billing question", ("subscription", "subscriptions", "abonnement", "suscripcion"),
         unless=_SUBSCRIPTION_FAULTS),
    # a device asked for ("requesting a laptop for", "need two monitors"): bought or handed out, not fixed
    Rule("a purchase, licence or billing question", (
        # asking for a device to be handed out: a request verb with "a new", "another", a number... A bare
        # "need", "get" or "issue" is not one ("need help, computer is slow", "cannot get computer to connect")
        "request a", "request an", "request new", "request for a", "request for new", "requesting a",
        "requesting an", "requesting new", "requested a", "requested new", "need a new", "need new", "need another",
        "need an additional", "need additional", "need a second", "need an extra", "need a spare", "needs a new",
        "needs new", "needs another", "require a new", "require new", "require another", "requires a new",
        "order a", "order an", "order new", "order another", "ordering a", "ordering new", "would like a new",
        "would like another", "get a new", "get another", "get new", "brauche ein neues", "brauche einen neuen",
        "brauche eine neue", "brauche neue", "benotige ein neues", "benotige einen neuen", "benotige eine neue",
        "bestellen", "besoin d un nouvel", "besoin d un nouveau", "besoin d une nouvelle", "commander",
        "necesito un nuevo", "necesito una nueva", "necesito otro", "necesito otra", "pedir un", "pedir una",
        "need a", "need an", "needs a", "require a", "would like a", "brauche ein", "brauche einen",
        "brauche eine", "besoin d un", "besoin d une", "necesito un", "necesito una",
        *(f"{verb} {count}" for verb in ("need", "request", "requesting", "order", "ordering")
          for count in ("two", "three", "four", "five", "six", "ten", "2", "3", "4", "5", "6", "10")),
    ), near=_ASKED_DEVICES, window=2, ordered=True,
         unless=(*_DEVICE_AS_ADJECTIVE, "software install", "install software", "forgot", "forgotten",
                 "password reset", "reset my password",
                 "my laptop", "my computer", "my pc", "my desktop", "my phone", "my cell phone", "my iphone",
                 "my ipad", "my tablet", "my monitor", "my monitors", "my workstation", "my notebook", "his laptop",
                 "her laptop", "the laptop", "the computer", "this laptop", "this computer", "on a laptop",
                 "on the laptop", "on my", "to my", "from my", "new phone number", "authenticator", "mfa", "2fa",
                 "two factor", "verification code", "access to", "set up my",
                 "setup my", "mein laptop", "mein rechner", "mon ordinateur", "mi ordenador", "mi portatil",
                 "mijn laptop", "mijn computer", *_ONBOARDING, "starter", "joiner", "onboarding", "new hire",
                 "starting", "starts", "first day", "neuer mitarbeiter", "nouvel arrivant", "nuevo empleado",
                 "nieuwe medewerker")),
    # a licence asked for, with the product between ("need an Acrobat Pro license"): bought or assigned, not
    # installed; a licence the user has, or one that fails to activate, is the install playbook's
    Rule("a purchase, licence or billing question", (
        "need", "needs", "request", "requesting", "requested", "grant", "assign", "would like", "want",
        "brauche", "benotige", "besoin", "necesito", "solicito",
    ), near=("license", "licence", "licenses", "licences", "lizenz", "licencia", "licentie"), window=4, ordered=True,
         unless=("already have", "already has", "i have a license", "i have a licence", "expired", "error",
                 "activation", "activate", "activated", "unlicensed", "not licensed", "install", "installed",
                 "installing", "reinstall"),
         # the licence and its installation asked for together: the licence comes first, bought or assigned
         excused=("license and install", "licence and install", "license and installation",
                  "licence and installation", "license and to install", "licence and to install",
                  "license and have it installed", "licence and have it installed")),
    # German and Dutch put the verb last ("Lizenz für Visio benötigt", "licentie voor Visio nodig")
    Rule("a purchase, licence or billing question", (
        "license", "licence", "licenses", "licences", "lizenz", "lizenzen", "licentie", "licenties",
    ), near=("benotigt", "benotige", "benotigen", "brauche", "brauchen", "gebraucht", "nodig", "aanvragen",
             "beantragen", "bestellen"), window=4, ordered=True,
         unless=("expired", "activation", "activate", "error", "install", "installed", "already have",
                 "abgelaufen", "fehler", "verlopen", "fout")),
    # a phone asked for, for a new employee too: handed out, not an account to create
    Rule("a purchase, licence or billing question", (
        "cell phone", "cellphone", "mobile phone", "smartphone", "iphone", "work phone", "company phone",
        "diensthandy", "firmenhandy",
    ), near=("requires", "require", "request for", "requesting", "request a", "issued", "provide", "need a",
             "needs a", "order"), window=3,
         unless=(*_NOT_CARRIER, "my phone", "my cell phone", "my iphone", "my work phone", "new phone number",
                 "account", "accounts", "mailbox", "email", "e mail")),
    Rule("a mobile phone or its carrier's service, which a playbook on a PC does not reach", (
        "cellular", "cellular data", "cellular service", "cell service", "cell signal", "mobile data",
        "sim card", "simcard", "no service", "sos only", "carrier",
        "mobilfunk", "mobile daten", "sim karte", "donnees mobiles", "carte sim", "datos moviles", "tarjeta sim",
        "sin cobertura", "mobiele data", "simkaart", "geen bereik",
    ), unless=_NOT_CARRIER),
    # calls, voicemail and texts are a phone's only with the phone said: Teams, Zoom and Outlook have them too
    Rule("a mobile phone or its carrier's service, which a playbook on a PC does not reach", (
        "make calls", "making calls", "receive calls", "receiving calls", "outgoing calls", "incoming calls",
        "text messages", "voicemail",
    ), near=("phone", "phones", "iphone", "android", "mobile", "cell", "cellphone", "smartphone", "handy",
             "telefon", "portable", "telephone", "movil", "celular", "telefono", "mobiel", "gsm", "sim"), window=8,
         unless=(*_NOT_CARRIER, "teams", "zoom", "softphone", "soft phone", "outlook", "email", "emails", "e mail",
                 "skype", "webex", "3cx", "ringcentral")),
    # a desk phone's own sign-in (its PIN or password, logged out of it): the phone system's, not the directory's
    Rule("a desk phone or the phone system, which a playbook on a PC does not reach", (
        "office phone", "desk phone", "deskphone", "ip phone", "voip phone", "work phone", "telephone set",
        "tischtelefon", "festnetztelefon", "burotelefon", "telephone fixe", "poste telephonique", "telefono fijo",
        "telefono de escritorio", "vaste telefoon", "bureautelefoon",
    ), near=(*_SIGN_IN, "pin", "logged out", "log out", "signed out", "abgemeldet", "deconnecte", "desconectado",
             "uitgelogd"), window=8, unless=("cell phone", "mobile phone", "iphone", "android", "authenticator", "mfa",
                                              "2fa", "verification code", "code", "sms", "text message", "outlook",
                                              "teams")),
    # a blue screen, or the whole machine crashing or restarting by itself: the hardware or its drivers, which a
    # technician reads from the dump; an application that crashes names itself, not the PC
    Rule("a hardware failure", (
        "blue screen", "bluescreen", "blue screen of death", "bsod", "stop code", "blauer bildschirm",
        "ecran bleu", "pantalla azul", "blauw scherm", "blauwe scherm",
    )),
    Rule("a hardware failure", ("computer", "pc", "laptop", "desktop", "workstation", "notebook", "machine", "rechner",
                                "ordinateur", "ordenador", "portatil", "equipo"),
         near=("crashes", "crashed", "crashing", "keeps crashing", "has crashed", "keeps restarting", "restarts itself",
               "restarts by itself", "restarts on its own", "reboots itself", "reboots by itself", "keeps rebooting",
               "shuts down by itself", "shuts off by itself", "turns off by itself", "sturzt ab", "startet neu",
               "startet standig neu", "plante", "redemarre tout seul", "se reinicia", "se apaga solo", "herstart",
               "valt uit"),
         window=3, ordered=True),
    # a device handed out, asked for in more ways than "need a" ("could I get a headset", "would like to have a mifi",
    # "a hotspot is being requested", "ein Headset bekommen"): bought or issued, not fixed; "get a monitor to work"
    # is a fault
    Rule("a purchase, licence or billing question", ("get a", "get me a", "get us a", "want a", "wants a"),
         near=_HANDED_OUT, window=3, ordered=True,
         unless=(*_HANDED_OUT_FAULTS, "get a message", "get a warning", "get a black", "get a blank", "get a blue")),
    Rule("a purchase, licence or billing question", (
        "like to have a", "like to have an", "like to get a", "provide a", "provide me with a", "issue me a",
        "be issued a", "be given a", "hatte gerne ein",
        "hatte gern ein", "mochte ein", "mochte einen", "mochte eine", "j aimerais avoir un", "j aimerais un",
        "je voudrais un", "voudrais avoir un", "obtenir un", "quisiera un", "quisiera una", "me gustaria tener un",
        "me gustaria un", "solicito un", "solicito una", "zou graag een", "wil graag een", "graag een",
    ), near=_HANDED_OUT, window=5, ordered=True, unless=_HANDED_OUT_FAULTS),
    Rule("a purchase, licence or billing question", _HANDED_OUT, near=(
        "is being requested", "being requested", "is requested", "are requested", "requested", "request",
        "requests", "bekommen", "beantragen", "beantragt", "demande", "solicitud", "aanvragen", "aangevraagd",
        "krijgen"), window=3, ordered=True, unless=_HANDED_OUT_FAULTS),
    # a form's application field naming an application ("What application are you using? AMANDA"), its sign-in
    # failing anywhere in the ticket: that application's account; Office, Windows, the VPN or mail named are the
    # directory's
    Rule("a business application problem, not the user's PC", (APP_MARK,), near=(
        *_SIGN_IN, "cant log in", "cannot log in", "unable to log in", "not able to log in", "cant login",
        "cannot login", "unable to login", "cant sign in", "cannot sign in", "unable to sign in", "log into",
        "logging in", "logging into", "sign into", "signing in", "credentials",
        "user id", "userid", "username"), across=True,
         unless=(*_NOT_THE_APPLICATION, *_DIRECTORY_SIGN_IN, "office", "teams", "onedrive", "word", "excel",
                 "powerpoint", "microsoft", "adobe", "acrobat", "zoom", "webex", "chrome", "edge", "safari")),
    # a named tracker or database signed in to ("unable to log in to the equipment tracking"): the application's
    # account, which its administrator keeps, not the directory's
    Rule("a business application problem, not the user's PC", (
        "log in to the", "login to the", "log into the", "login into the", "sign in to the", "sign into the",
        "signin to the", "log on to the", "logon to the", "log in to our", "login to our", "sign in to our",
    ), near=("tracking", "tracker", "database", "databases", "dashboard", "platform", "webapp", "web app"), window=5,
         ordered=True, unless=(*_NOT_THE_APPLICATION, *_DIRECTORY_SIGN_IN)),
    # a licence about to run out ("the Matlab license will expire in 2 days"): renewed or bought, nothing on the PC
    # to fix yet; one that has expired or fails to activate stays the install playbook's
    Rule("a purchase, licence or billing question", _LICENCES,
         near=("will expire", "about to expire", "going to expire", "due to expire", "expires soon", "expire soon",
               "lauft bald ab", "lauft demnachst ab", "wird ablaufen", "va expirer", "expire bientot",
               "va a caducar", "a punto de caducar", "caduca pronto", "vence pronto", "gaat verlopen",
               "verloopt binnenkort"), window=6),
    Rule("a purchase, licence or billing question", _LICENCES, near=("expires in", "expire in", "lauft in",
                                                                     "expire dans", "caduca en", "vence en",
                                                                     "verloopt over"),
         window=6, ordered=True, then=("day", "days", "week", "weeks", "month", "months", "tag", "tagen", "woche",
                                       "wochen", "jour", "jours", "semaine", "semaines", "dia", "dias", "semana",
                                       "semanas", "dag", "dagen", "weken"), then_window=3),
    # a network licence server or licence manager (FlexLM): the server's, not the user's PC
    Rule("a purchase, licence or billing question", (
        "license server", "licence server", "license manager", "licence manager", "network license",
        "network licence", "flexlm", "flexnet", "lizenzserver", "lizenz server", "netzwerklizenz",
        "serveur de licences", "serveur de licence", "servidor de licencias", "licentieserver", "licentie server",
    )),
    # the printer fails on its own, without a PC ("not even a test page from the printer itself", "auch keine
    # Testseite vom Gerät aus"): the device's fault, for a technician; a test page that fails only from the PC
    # is the printer playbook's
    Rule("a hardware failure", (
        "no test page", "not even a test page", "not even the test page", "not a test page", "keine testseite",
        "nicht mal eine testseite", "nicht einmal eine testseite", "pas de page de test", "aucune page de test",
        "meme pas une page de test", "ni una pagina de prueba", "ninguna pagina de prueba", "geen testpagina",
        "zelfs geen testpagina",
    ), near=("from the printer", "on the printer", "printer itself", "from the device", "on the device",
             "vom gerat", "am gerat", "direkt am", "vom drucker", "am drucker", "depuis l imprimante",
             "sur l imprimante", "desde la impresora", "en la impresora", "vanaf de printer", "op de printer"),
         window=8, ordered=True),
    # a wireless network or a network "down" as a whole ("the Staff wifi seems to be down"), not one device that
    # cannot connect: the access points' or the line's, a technician checks them
    Rule("an outage affecting many users or a whole site", (
        "wifi", "wi fi", "wlan", "wireless", "network", "netzwerk", "reseau", "netwerk",
    ), near=("seems to be down", "seem to be down", "appears to be down", "is down", "are down", "went down",
             "ist down", "ist ausgefallen", "est en panne", "esta caido", "esta caida", "ligt eruit", "ligt plat"),
         window=4, ordered=True,
         unless=(*_ONLY_ME, *_AT_MY_DESK, *_HOME, "my wifi", "my wi fi", "my network", "my wireless",
                 "mein wlan", "mon wifi", "mi wifi", "mijn wifi")),
    # the wireless network in rooms or a building newly taken over ("WLAN in den neuen Räumen funktioniert nicht"):
    # access points to set up or extend, not one device's adapter
    Rule("network equipment or virtual machine configuration, not the user's PC", (
        "wifi", "wi fi", "wlan", "wireless", "network", "netzwerk", "reseau", "netwerk",
    ), near=("new rooms", "new room", "new office", "new offices", "new building", "new floor", "new classroom",
             "neuen raumen", "neuen raum", "neue raume", "neuen buro", "neuen buros", "neuen gebaude",
             "neue gebaude", "neuen etage", "nouveaux locaux", "nouveau batiment", "nouvelle salle",
             "nouvelles salles", "nuevas oficinas", "nueva oficina", "nuevo edificio", "nuevas salas",
             "nieuwe lokalen", "nieuwe lokaal", "nieuwe kantoor", "nieuwe gebouw"), window=6,
         unless=(*_ONLY_ME, *_AT_MY_DESK, "my laptop", "my computer", "my pc", "my phone", "my notebook",
                 "mein laptop", "meinem laptop", "mein rechner", "mon portable", "mon ordinateur", "mi portatil",
                 "mi ordenador", "mijn laptop", "mijn computer")),
    # a web service refusing sign-ins for a while ("Error: 429 Too Many Requests"): its own rate limit, which
    # ends by itself or with its operator, not a directory account to unlock
    Rule("a vendor's or a website's own service problem, not the user's PC", (
        "too many requests", "rate limit", "rate limited", "rate limiting", "error 429", "http 429",
    )),
    # a vendor's support engineer writing back on a case opened with them (a storage array's, a firewall's):
    # the technician who opened the case follows it up, nothing runs on a user's PC
    Rule("a vendor's or a website's own service problem, not the user's PC", (
        "technical support engineer", "technical support center", "technical support centre",
        "support escalation engineer", "your support case", "your case number", "your service request number",
    )),
    # someone asking whether others see it too ("is anyone else having trouble with the portal?"): a service's own
    # trouble, maybe many users', for a person to check
    Rule("an outage affecting many users or a whole site", (
        "is anyone else", "anyone else experiencing", "anyone else having", "anyone else getting", "anyone else seeing",
        "does anyone else", "has anyone else", "hat noch jemand", "haben andere auch", "quelqu un d autre",
        "alguien mas", "alguien mas tiene", "heeft iemand anders", "heeft nog iemand",
    ), unless=_ONLY_ME),
    # last: a count of people ("billed for 12 users", "5 users need the new app") is what a rule above is about
    # when one applies; otherwise they are the people a fault affects
    Rule("an outage affecting many users or a whole site", _PEOPLE_PLURAL, near=_GROUP_FAULTS, window=3,
         ordered=True, unless=(*_ONLY_ME, *_ONBOARDING, *_KIND_OF_USERS)),
    # a count of people with what fails for them after it ("five users cannot log in"), not people who ask
    # for something ("two users who need their passwords reset") or gave advice ("deux collègues m'ont dit")
    Rule("an outage affecting many users or a whole site", _COUNTS, near=_PEOPLE, window=2, ordered=True,
         then=_COUNT_FAULTS, unless=(*_ONLY_ME, *_AT_MY_DESK, *_ONBOARDING)),
    # a figure right before a plural ("12 users"), not a version or a room ("Windows 10 user", "room 12 user")
    Rule("an outage affecting many users or a whole site", tuple(str(n) for n in range(2, 1000)), near=_PEOPLE,
         window=1, ordered=True, then=_COUNT_FAULTS, unless=(*_ONLY_ME, *_AT_MY_DESK, *_ONBOARDING, *_KIND_OF_USERS)),
)
"""First rule that applies wins; its reason goes in the decision."""

_Entry = tuple[int, str, str]
"""(rule index, role: term/near/unless, the term as written)."""


class Triage:
    """The rules, indexed by the stem of their first word; :meth:`check` is one pass over a ticket."""

    def __init__(self, rules: Sequence[Rule] = RULES, read: Reader = stems) -> None:
        self.rules = tuple(rules)
        self._index: Terms[_Entry] = Terms(
            (tuple(read(term)), (number, role, term)) for number, rule in enumerate(self.rules)
            for role, terms in (("term", rule.terms), ("near", rule.near), ("unless", rule.unless),
                                ("then", rule.then), ("excused", rule.excused))
            for term in terms)
        self._spans = {term: len(read(term)) for rule in self.rules for term in rule.excused}
        """Words of each excused term as read: the positions it covers in a ticket."""

    def reading(self, read: Reader) -> Triage:
        """The same rules with their terms read by ``read`` (the matcher's reading of one language)."""
        return Triage(self.rules, read)

    def terms(self) -> list[str]:
        """Every term of every rule, as written."""
        return [term for rule in self.rules
                for term in (*rule.terms, *rule.near, *rule.unless, *rule.then, *rule.excused)]

    def vocabulary(self) -> list[str]:
        """Every word of every rule, as written: the matcher maps other languages' inflections onto them."""
        return [w for term in self.terms() for w in term.split()]

    def check(self, tokens: Sequence[str]) -> Verdict | None:
        """The first rule the ticket's stemmed words meet, or None."""
        hits: dict[tuple[int, str], list[tuple[int, str]]] = {}
        cuts = breaks(tokens)
        for pos, (number, role, term) in self._index.scan(tokens):
            found = hits.setdefault((number, role), [])
            if len(found) < MAX_HITS:
                found.append((pos, term))
        # only the rules one of whose terms the ticket says, in their order (most rules meet none)
        for number in sorted({number for number, role in hits if role == "term"}):
            rule, terms = self.rules[number], hits[(number, "term")]
            if self._vetoed(hits, number):
                continue
            if not rule.near:
                return Verdict(rule.reason, terms[0][1])
            near = hits.get((number, "near"), [])
            then = hits.get((number, "then"), [])
            for pos, term in terms:
                for other, word in near:
                    if rule.across or (other != pos and abs(other - pos) <= rule.window
                                       and (other > pos or not rule.ordered) and together(pos, other, cuts)):
                        pair = f"{term} ... {word}" if other > pos else f"{word} ... {term}"
                        if not rule.then:
                            return Verdict(rule.reason, pair)
                        for after, fault in then:
                            if other < after <= other + rule.then_window and together(after, other, cuts):
                                return Verdict(rule.reason, f"{pair} ... {fault}")
        return None

    def _vetoed(self, hits: dict[tuple[int, str], list[tuple[int, str]]], number: int) -> bool:
        """Whether an :attr:`Rule.unless` term of rule ``number`` starts outside every :attr:`Rule.excused` term
        the ticket says."""
        unless = hits.get((number, "unless"))
        if not unless:
            return False
        excused = hits.get((number, "excused"))
        if not excused:
            return True
        covered = {at for pos, term in excused for at in range(pos, pos + self._spans[term])}
        return any(pos not in covered for pos, _ in unless)
