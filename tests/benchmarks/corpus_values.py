"""Values for the benchmark corpus: people per locale (from Faker), local labels and hard negatives.

Personal values come from Faker's own generators; where Faker's value is not a valid identifier (the
en_GB NINO uses the reserved ``ZZ`` prefix and ``T`` suffix, de_DE has no tax ID) a valid one is drawn
at random and checked with python-stdnum. Hard negatives look like personal data but are not: numbers
that fail Luhn or mod-97, UUIDs, hashes, versions, timestamps, product and order codes.
"""

from __future__ import annotations

import datetime as dt
import random
import string
import uuid
from dataclasses import dataclass

from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.de import idnr
from stdnum.iso7064 import mod_11_10

__all__ = ["L10N", "LOCALES", "Person", "hard_negatives", "make_person", "number_sentences"]

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "pl_PL")


def _labels(**kw: object) -> dict:
    return kw


# Several spellings per label: real documents do not agree on one.
L10N: dict[str, dict] = {
    "en_US": _labels(
        name=["Name", "Full name", "Customer name", "Employee"], first="First name", last="Last name",
        email=["Email", "E-mail", "Email address"], phone=["Phone", "Tel.", "Mobile", "Cell", "Contact number"],
        address=["Address", "Home address", "Mailing address", "Residence"], dob=["Date of birth", "DOB", "Birth date", "Born"],
        iban=["IBAN", "Bank account (IBAN)"], card=["Card number", "Credit card", "Card"], nid=["SSN", "Social Security Number", "Social Security No."],
        dear=["Dear {name},", "Dear Mr. {last},", "Dear Ms. {last},", "Hello {first},", "Dear Sir or Madam,"], regards=["Kind regards,", "Best regards,", "Sincerely,", "Thanks,"], patient="Patient",
        date_fmt=["%m/%d/%Y", "%B %d, %Y", "%Y-%m-%d"], customer="Customer", title="Customer records",
        hello="Hello",
    ),
    "en_GB": _labels(
        name=["Name", "Full name", "Client", "Account holder"], first="Forename", last="Surname",
        email=["Email", "E-mail"], phone=["Telephone", "Tel", "Mobile", "Phone"],
        address=["Address", "Postal address", "Correspondence address"], dob=["Date of birth", "DOB", "D.O.B."],
        iban=["IBAN"], card=["Card number", "Debit card"], nid=["National Insurance number", "NI number", "NINO"],
        dear=["Dear {name},", "Dear Mrs {last},", "Hi {first},", "Dear Sir or Madam,"], regards=["Kind regards,", "Yours sincerely,", "Best wishes,"], patient="Patient",
        date_fmt=["%d/%m/%Y", "%d %B %Y"], customer="Client", title="Client register", hello="Hi",
    ),
    "de_DE": _labels(
        name=["Name", "Vollständiger Name", "Kunde", "Ansprechpartner"], first="Vorname", last="Nachname",
        email=["E-Mail", "E-Mail-Adresse", "Mail"], phone=["Telefon", "Tel.", "Mobil", "Handy"],
        address=["Anschrift", "Adresse", "Wohnort"], dob=["Geburtsdatum", "geb.", "Geboren am"],
        iban=["IBAN", "Bankverbindung (IBAN)"], card=["Kreditkarte", "Kartennummer"], nid=["Steuer-ID", "Steuerliche Identifikationsnummer", "IdNr"],
        dear=["Sehr geehrte Frau {last},", "Sehr geehrter Herr {last},", "Hallo {name},", "Liebe {first},", "Sehr geehrte Damen und Herren,"], regards=["Mit freundlichen Grüßen", "Viele Grüße", "Beste Grüße"],
        patient="Patient", date_fmt=["%d.%m.%Y"], customer="Kunde", title="Kundenliste", hello="Hallo",
    ),
    "fr_FR": _labels(
        name=["Nom", "Nom complet", "Client", "Titulaire"], first="Prénom", last="Nom de famille",
        email=["E-mail", "Courriel", "Adresse e-mail"], phone=["Téléphone", "Tél.", "Portable", "Mobile"],
        address=["Adresse", "Adresse postale", "Domicile"], dob=["Date de naissance", "Né(e) le", "Date de naiss."],
        iban=["IBAN", "RIB (IBAN)"], card=["Carte bancaire", "N° de carte"], nid=["N° de sécurité sociale", "NIR", "Numéro INSEE"],
        dear=["Bonjour {name},", "Madame {last},", "Cher {name},", "Madame, Monsieur,"], regards=["Cordialement,", "Bien à vous,", "Salutations distinguées,"], patient="Patient",
        date_fmt=["%d/%m/%Y"], customer="Client", title="Fichier clients", hello="Bonjour",
    ),
    "it_IT": _labels(
        name=["Nome", "Nome e cognome", "Cliente", "Intestatario"], first="Nome", last="Cognome",
        email=["Email", "E-mail", "Posta elettronica"], phone=["Telefono", "Tel.", "Cellulare"],
        address=["Indirizzo", "Residenza", "Domicilio"], dob=["Data di nascita", "Nato il", "Nata il"],
        iban=["IBAN", "Coordinate bancarie (IBAN)"], card=["Carta di credito", "Numero carta"], nid=["Codice fiscale", "C.F."],
        dear=["Gentile {name},", "Gentile Sig. {last},", "Caro {first},", "Spettabile cliente,"], regards=["Cordiali saluti,", "Distinti saluti,", "Saluti,"], patient="Paziente",
        date_fmt=["%d/%m/%Y", "%d-%m-%Y"], customer="Cliente", title="Anagrafica clienti", hello="Ciao",
    ),
    "es_ES": _labels(
        name=["Nombre", "Nombre completo", "Cliente", "Titular"], first="Nombre", last="Apellidos",
        email=["Correo electrónico", "Email", "Correo"], phone=["Teléfono", "Tel.", "Móvil"],
        address=["Dirección", "Domicilio", "Dirección postal"], dob=["Fecha de nacimiento", "F. nacimiento", "Nacido el"],
        iban=["IBAN", "Cuenta (IBAN)"], card=["Tarjeta", "Número de tarjeta"], nid=["DNI", "NIF", "NIE", "Documento"],
        dear=["Estimado/a {name}:", "Estimada Sra. {last}:", "Hola {first},", "Muy señores míos:"], regards=["Atentamente,", "Un saludo,", "Saludos cordiales,"], patient="Paciente",
        date_fmt=["%d/%m/%Y", "%d-%m-%Y"], customer="Cliente", title="Listado de clientes", hello="Hola",
    ),
    "nl_NL": _labels(
        name=["Naam", "Volledige naam", "Klant", "Rekeninghouder"], first="Voornaam", last="Achternaam",
        email=["E-mail", "E-mailadres"], phone=["Telefoon", "Tel.", "Mobiel", "Telefoonnummer"],
        address=["Adres", "Woonadres", "Postadres"], dob=["Geboortedatum", "Geboren op", "Geb. datum"],
        iban=["IBAN", "Rekeningnummer"], card=["Creditcard", "Kaartnummer"], nid=["BSN", "Burgerservicenummer"],
        dear=["Beste {name},", "Geachte heer {last},", "Geachte mevrouw {last},", "Geachte heer/mevrouw,"], regards=["Met vriendelijke groet,", "Groeten,", "Hartelijke groet,"], patient="Patiënt",
        date_fmt=["%d-%m-%Y", "%d %B %Y"], customer="Klant", title="Klantenbestand", hello="Hoi",
    ),
    "pl_PL": _labels(
        name=["Imię i nazwisko", "Klient", "Pacjent", "Odbiorca"], first="Imię", last="Nazwisko",
        email=["E-mail", "Adres e-mail"], phone=["Telefon", "Tel.", "Tel. kom.", "Numer telefonu"],
        address=["Adres", "Adres zamieszkania", "Adres do korespondencji"], dob=["Data urodzenia", "Urodzony", "Urodzona"],
        iban=["IBAN", "Numer rachunku"], card=["Karta", "Numer karty"], nid=["PESEL", "Nr PESEL"],
        dear=["Szanowny Panie {last},", "Szanowna Pani {name},", "Dzień dobry {name},", "Szanowni Państwo,"], regards=["Z poważaniem", "Pozdrawiam", "Z wyrazami szacunku"],
        patient="Pacjent", date_fmt=["%d.%m.%Y", "%Y-%m-%d"], customer="Klient", title="Lista klientów", hello="Cześć",
    ),
}  # fmt: skip


@dataclass
class Person:
    """One fake person's values, as Faker gives them for a locale."""

    name: str
    first: str
    last: str
    email: str
    phone: str
    address: str  # multi-line
    dob: str
    iban: str
    card: str
    nid: str


def _nino(rnd: random.Random) -> str:
    first = rnd.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rnd.choice("ABCEGHJKLMNPRSTWXYZ")
    while first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        second = rnd.choice("ABCEGHJKLMNPRSTWXYZ")
    digits = "".join(rnd.choice(string.digits) for _ in range(6))
    sep = rnd.choice(("", " "))
    return sep.join((first + second, digits[:2], digits[2:4], digits[4:], rnd.choice("ABCD")))


def _idnr(rnd: random.Random) -> str:
    while True:
        base = str(rnd.randint(10**9, 10**10 - 1))
        candidate = base + mod_11_10.calc_check_digit(base)
        if idnr.is_valid(candidate):
            return (
                candidate
                if rnd.random() < 0.6
                else f"{candidate[:2]} {candidate[2:5]} {candidate[5:8]} {candidate[8:]}"
            )


def _national_id(f: Faker, loc: str, rnd: random.Random) -> str:
    if loc == "en_GB":
        return _nino(rnd)
    if loc == "de_DE":
        return _idnr(rnd)
    if loc == "es_ES":
        return f.nif() if rnd.random() < 0.6 else f.nie()
    if loc == "pl_PL":
        return f.pesel()
    return f.ssn()


def _spaced(value: str, rnd: random.Random) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rnd.random() < 0.5 else value


def make_person(f: Faker, loc: str, rnd: random.Random) -> Person:
    """Return a fake person of locale ``loc`` with every value drawn from Faker (see module docstring)."""
    first, last = f.first_name(), f.last_name()
    name = f.name() if rnd.random() < 0.5 else f"{first} {last}"
    born = f.date_of_birth(minimum_age=18, maximum_age=90)
    fmt = rnd.choice(L10N[loc]["date_fmt"])
    return Person(
        name=name,
        first=first,
        last=last,
        email=f.email() if rnd.random() < 0.7 else f.free_email(),
        phone=f.phone_number(),
        address=f.address(),
        dob=born.strftime(fmt),
        iban=_spaced(f.iban(), rnd),
        card=_spaced(f.credit_card_number(), rnd),
        nid=_national_id(f, loc, rnd),
    )


# ---------------------------------------------------------------- hard negatives
def _luhn_fail(rnd: random.Random) -> str:
    while True:
        digits = rnd.choice("45") + "".join(rnd.choice(string.digits) for _ in range(15))
        if not luhn.is_valid(digits):
            return _spaced(digits, rnd)


def _bad_iban(f: Faker, rnd: random.Random) -> str:
    while True:
        value = f.iban()
        check = (int(value[2:4]) + rnd.randint(1, 96)) % 97
        bad = f"{value[:2]}{check:02d}{value[4:]}"
        if not std_iban.is_valid(bad):
            return _spaced(bad, rnd)


def _ean13(rnd: random.Random) -> str:
    body = rnd.choice(("40", "50", "54", "76", "80", "84", "87", "590")) + "".join(
        rnd.choice(string.digits) for _ in range(10)
    )
    body = body[:12]
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _hex(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice("0123456789abcdef") for _ in range(n))


def hard_negatives(f: Faker, rnd: random.Random) -> dict[str, str]:
    """Return one value of each kind of look-alike that is not personal data."""
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rnd.randint(0, 40_000_000))
    return {
        "luhn_fail": _luhn_fail(rnd),
        "bad_iban": _bad_iban(f, rnd),
        "uuid": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
        "sha": _hex(rnd, 40),
        "short_sha": _hex(rnd, 7),
        "sha256": _hex(rnd, 64),
        "version": f"{rnd.randint(1, 12)}.{rnd.randint(0, 9)}.{rnd.randint(1000, 22000)}.{rnd.randint(1, 3000)}",
        "semver": f"v{rnd.randint(0, 5)}.{rnd.randint(0, 30)}.{rnd.randint(0, 12)}",
        "iso_ts": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "log_ts": stamp.strftime("%Y-%m-%d %H:%M:%S,") + f"{rnd.randint(0, 999):03d}",
        "epoch": str(int(stamp.timestamp())),
        "epoch_ms": str(int(stamp.timestamp() * 1000)),
        "date": stamp.strftime(rnd.choice(("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%B %d, %Y"))),
        "ipv4": f"{rnd.choice((10, 172, 192))}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
        "order": f"ORD-{stamp.year}-{rnd.randint(0, 999999):06d}",
        "invoice": f"INV-{rnd.randint(10000, 99999)}",
        "ticket": f"{rnd.choice(('JIRA', 'OPS', 'SEC', 'DEV'))}-{rnd.randint(100, 9999)}",
        "sku": f"{rnd.choice(string.ascii_uppercase)}{rnd.choice(string.ascii_uppercase)}-{rnd.randint(1000, 99999)}-{rnd.choice(('BLK', 'WHT', 'X', 'XL'))}",
        "part": f"{rnd.randint(100, 999)}-{rnd.randint(10000, 99999)}-{rnd.randint(1, 99):02d}",
        "ean": _ean13(rnd),
        "isbn": "978" + "".join(rnd.choice(string.digits) for _ in range(10)),
        "amount": f"{rnd.randint(1, 999)},{rnd.randint(0, 999):03d}.{rnd.randint(0, 99):02d}",
        "account_id": str(rnd.randint(10**8, 10**11)),
        "hexaddr": "0x" + _hex(rnd, 12),
        "coords": f"{rnd.uniform(35, 60):.6f}, {rnd.uniform(-10, 25):.6f}",
        "port": str(rnd.choice((443, 8080, 5432, 6379, 9200, 27017))),
        "batch": f"{stamp:%Y%m%d}-{rnd.randint(1, 99):02d}",
        "mac": ":".join(_hex(rnd, 2) for _ in range(6)),
    }


def number_sentences(neg: dict[str, str], rnd: random.Random) -> list[str]:
    """Return business sentences that carry hard negatives (English, like most technical text)."""
    templates = [
        "Build {version} was deployed at {iso_ts} to {ipv4}:{port}.",
        "Commit {short_sha} ({sha}) fixes {ticket}; see release {semver}.",
        "Order {order} and invoice {invoice} were settled on {date} for ${amount}.",
        "SKU {sku} (EAN {ean}, part {part}) is back in stock.",
        "Request {uuid} failed with checksum {sha256}.",
        "Reference {luhn_fail} could not be matched to any payment.",
        "The test vector {bad_iban} must be rejected by the validator.",
        "Batch {batch} finished at {log_ts}, epoch {epoch} ({epoch_ms} ms).",
        "Account {account_id} is an internal ledger, not a customer.",
        "Core dump at {hexaddr} on host with MAC {mac}.",
        "Warehouse coordinates {coords}; ISBN {isbn} ships from there.",
    ]
    rnd.shuffle(templates)
    return [t.format(**neg) for t in templates[: rnd.randint(3, len(templates))]]
