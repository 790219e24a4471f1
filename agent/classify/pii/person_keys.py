"""The keys that name a person, as data: shared by the name detector and the trigger search.

:mod:`agent.classify.pii.names` reads values after these keys and in table columns headed by them;
:mod:`agent.classify.pii.triggers` looks for the last word of each in the lower-cased text, so that only
tables whose header holds one are read.
"""

from __future__ import annotations

__all__ = ["FULL", "QUALIFIED", "SINGLE", "header_words"]

SINGLE = (
    "first name|last name|given name|family name|middle name|maiden name|surname|forename|vorname|nachname|"
    "familienname|prénom|prenom|cognome|apellido|apellidos|voornaam|achternaam|imię|imie|nazwisko|"
    "förnamn|efternamn|fornavn|efternavn|příjmení|sobrenome|apelido"
)
# Not qualifiers: "display" (an app's displayName), "legal" (a company's legal name), "ship" (a vessel),
# "tenant" (a cloud tenant), "member" (a membership tier), "owner" (a team or a service).
QUALIFIED = (
    "full|complete|customer|patient|client|employee|contact|person|account holder|card holder|"
    "holder|beneficiary|insured|guest|passenger|student|applicant|shipping|ship to|billing|bill to|"
    "delivery|consignee|buyer|sender|recipient|landlord|policyholder"
)
FULL = (
    "name|patient|patientin|customer|client|cliente|employee|contact|contact person|applicant|account holder|"
    "cardholder|holder|beneficiary|recipient|attn|attention|author|assignee|reporter|signed|signature|fn|"
    "vollständiger name|kunde|kundin|ansprechpartner|ansprechpartnerin|empfänger|absender|kontoinhaber|"
    "nom|nom complet|nom et prénom|destinataire|expéditeur|titulaire|"
    "nome|nome e cognome|nome completo|nominativo|paziente|destinatario|mittente|intestatario|titolare|"
    "nombre|nombre completo|nombre y apellidos|paciente|remitente|titular|"
    "naam|volledige naam|patiënt|klant|ontvanger|afzender|rekeninghouder|tenaamstelling|"
    "imię i nazwisko|imie i nazwisko|pacjent|klient|odbiorca|nadawca|posiadacz|właściciel|"
    # the parties of HR records, tenancies and policies
    "landlord|lessor|lessee|policyholder|mitarbeiter|mitarbeiterin|arbeitnehmer|arbeitnehmerin|"
    "mieter|mieterin|vermieter|vermieterin|versicherter|versicherte|salarié|salariée|employé|employée|"
    "locataire|bailleur|dipendente|lavoratore|lavoratrice|locatario|locatore|conduttore|empleado|empleada|"
    "trabajador|trabajadora|inquilino|inquilina|arrendador|arrendatario|werknemer|medewerker|huurder|"
    "verhuurder|pracownik|pracownica|najemca|wynajmujący|zákazník|zákaznice|"
    # who receives a parcel or an invoice
    "ship to|bill to|deliver to|sold to|invoice to|"
    # who took part: minutes, invitations, registrations
    "attendee|attendees|participant|participants|teilnehmer|teilnehmerin|partecipante|participante|"
    "deelnemer|deelnemers|uczestnik|uczestnicy|partecipanti|participantes|teilnehmende|assigned to|"
    # names in neighbouring languages: Nordic, Czech, Portuguese
    "namn|navn|fullt namn|fulde navn|jméno|jméno a příjmení|celé jméno"
)


def header_words() -> tuple[str, ...]:
    """The last word of every key that may head a name column (at least three letters), sorted."""
    keys = [*SINGLE.split("|"), *FULL.split("|"), "name"]  # a qualified key ends in "name"
    return tuple(sorted({key.split()[-1] for key in keys if len(key.split()[-1]) >= 3}))
