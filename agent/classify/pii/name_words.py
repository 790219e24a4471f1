"""What a person's name looks like once a label says one follows: words, titles, particles, non-names."""

from __future__ import annotations

from agent.classify.pii.text import words

__all__ = ["COMPANY_MARKERS", "PARTICLES", "STOPWORDS", "TITLES", "looks_like_name"]

MAX_NAME_WORDS = 4

TITLES = words(
    "mr mrs ms miss mx dr prof sir madam dame lord lady rev herr frau fräulein monsieur madame "
    "mademoiselle m mme mlle me sig sig.ra signor signora signorina dott dott.ssa avv ing sr sra srta "
    "señor señora señorita don doña dhr mevr mw heer mevrouw pan pani panie panu mgr inż dipl.-ing "
    "univ.prof"
)
PARTICLES = words(
    "van von der den de di da del della dei degli du des la le lo dos das do y e i ten ter zu zur af "
    "bin al el st st. mac"
)
_STOP_TEXT = """
colleagues friends everyone everybody all team teams members partners sirs readers subscribers students
parents participants community folks world there kollegen kolleginnen freunde zusammen alle collègues amis
tous colleghi amici tutti compañeros amigos todos collega's allemaal iedereen państwo wszyscy wszystkim
string str int integer boolean bool text number float double decimal object array list dict map set
tuple none null nil true false undefined unknown required optional default value values type types name
names field column description example examples test tests testing sample demo admin administrator user
users root system server servers service services project projects report reports document documents
file files data table index product products item items order orders invoice company inc ltd limited
gmbh llc corp co ag sa srl bv nv plc team group department support sales marketing finance legal hr it
the and of for new your my our this that not available version release build update config configuration
settings main page home title subject date time account manager director officer engineer developer
assistant street road avenue city country state region address email mail phone mobile fax total amount
price summary notes note status active inactive pending open closed yes no ok n/a na tbd tba api app
application module package library class function method interface component feature issue bug task step
stage phase level error warning info debug log event message request response network database cluster
node pipeline job worker queue cache storage backup security policy rule license agreement contract
terms section chapter part appendix figure annex schedule meeting agenda minutes monday tuesday
wednesday thursday friday saturday sunday plan pro plus premium basic standard enterprise edition free
trial tool tools device model series unit kit pack bundle board card cards widget widgets guide manual
overview introduction conclusion question answer chart dashboard template draft final copy original
public private internal external general global local central north south east west united national
international university college school institute foundation association society club hotel hospital
bank insurance inventory catalog catalogue shipment delivery payment payments customer customers client
clients patient patients employee employees contact contacts person people guest guests member members
owner owners author authors anonymous redacted hidden masked unspecified other others various multiple
all any each every some keine nicht unbekannt kunde kunden inconnu inconnue client anonyme sconosciuto
cliente desconocido onbekend klant nieznany klient brak mit und ohne le la les el los las il gli het een
des und dem helpdesk hotline desk office center centre reception daemon cron bot robot noreply
postmaster mailer fundacja stiftung fondation fondazione fundación stichting spółka gesellschaft société
società sociedad damen herren messieurs mesdames signori signore señores señoras dames heren kundenservice
kundendienst abteilung servizio clienti atención afdeling klantenservice dział obsługi obsługa klienta
biuro zespół kundtjänst kundeservice management facilities production staging development audio video
gold silver bronze platinum tier browser viewer editor player explorer debugger
"""
STOPWORDS = words(_STOP_TEXT)
# Legal forms and organisational words: a value holding one names an organisation, not a person.
COMPANY_MARKERS = words(
    "gmbh mbh ag kg ohg ug se ltd limited llc inc plc corp corporation company bv nv sa sas sarl spa "
    "srl sl sp sp.j sp.k sp.z o.o s.a s.p.a s.r.l s.l b.v n.v figli fratelli group holding holdings "
    "helpdesk hotline support team department dept e.v eg cie & co co. ltda lda eireli oy oyj aps a/s "
    "kft zrt s.r.o a.s spol d.o.o sasu snc kgaa gbr e.k pty pvt k.k slu s.l.u "
    # what organisations call themselves: "Fjordline Software", "Nordwind Media Events"
    "software systems solutions technologies technology labs media events studio studios digital "
    "consulting industries pharma pharmaceuticals logistics energy robotics components optics foods "
    "textiles printing networks analytics ventures capital agency newsletter"
)
# Legal forms that are also words or given names in small letters ("as", "Asa"): matched as written.
_CASED_MARKERS = frozenset({"AB", "AS", "ASA"})


def _name_word(word: str) -> bool:
    """Return whether a word is written like a name: a capital, then letters, hyphens or apostrophes."""
    if len(word) < 2 or not word[0].isupper() or word.lower() in STOPWORDS:
        return False
    if not all(c.isalpha() or c in "-'\u2019" for c in word):
        return False
    return any(c.islower() for c in word[1:]) or (word.isupper() and len(word) <= 20)


def _capitalised_filler(word: str) -> bool:
    """Return whether a word is one of the common words, written with a capital (as in a title).

    A word before a colon is the next key of a one-line form ("Name: John Smith Phone: ..."), not
    part of a title.
    """
    if word.endswith(":"):
        return False
    word = word.rstrip(",.;")
    return word[:1].isupper() and word.lower() in STOPWORDS


def _title(word: str) -> bool:
    """Return whether a word is an honorific (``Mr``, ``Frau``, ``Mme.``, ``Dr.``)."""
    return word.lower().rstrip(".") in TITLES or word.lower() in TITLES


def looks_like_name(words: list[str], single_ok: bool = False, min_words: int = 1) -> bool:
    """Return whether leading words form a name: titles, then 1-4 name words with particles.

    Args:
        words: the whitespace-split value after a label; trailing words after the name are allowed when
            they are not name words themselves (``Jane Doe is ...``).
        single_ok: whether one name word is enough (first-name and surname fields).
        min_words: how many name words are needed even after a title.

    Returns:
        True when there are at least two name words, or one after a title or in a single-word field.
    """
    bare = [w.strip(",.;:()") for w in words]
    if any(w.lower() in COMPANY_MARKERS or w in _CASED_MARKERS for w in bare):
        return False
    index, titled = 0, False
    while index < len(words) and _title(words[index]):
        index, titled = index + 1, True
    names = 0
    while index < len(words) and names <= MAX_NAME_WORDS:
        word = words[index].rstrip(",.;:")
        if _name_word(word):
            names += 1
        elif not (names and word.lower() in PARTICLES):
            break
        index += 1
    if names > MAX_NAME_WORDS or (names and not all(w[0].isupper() for w in words[index - 1 : index])):
        return False
    if names and index < len(words) and _capitalised_filler(words[index]):
        return False  # a title-cased phrase: "Warehouse Automation Phase II", "Tourist Information Centre"
    return names >= max(2, min_words) or (names == 1 == min_words and (titled or single_ok))
