"""The interactive screens: the neutral age screen, the notice of necessary processing, one screen per option.

The age screen asks for a country and a free-form date of birth: nothing is prefilled, no cutoff is
shown, there is no "I am over 18" box, and every malformed entry gets the same re-prompt. Its result is
passed or not; the date itself never leaves :func:`age_screen`. Each optional purpose gets a screen of
its own, with its switch off; the SHA-256 of the exact text of that screen (the prompt included) is
what the ledger records with the choice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agent.governance import Purposes, render_notice
from installer.agegate import AgePolicy, age_in_years, parse_birth_date

__all__ = [
    "BLOCKED",
    "MALFORMED_DATE",
    "REFUSAL",
    "Choice",
    "Console",
    "TerminalConsole",
    "age_screen",
    "choice_screen",
    "necessary_screen",
    "purpose_text",
]

REFUSAL = "Thank you. Setup cannot continue on this device."
BLOCKED = "Setup cannot continue on this device at the moment."
MALFORMED_DATE = "That entry could not be read as a date. Please enter it as YYYY-MM-DD."
_MALFORMED_COUNTRY = "Please enter a two-letter code, for example DE, FR or US."
_INTRO = (
    "endpoint-agent setup\n"
    "\n"
    "Please enter your country or region of residence and your date of birth.\n"
    "Your date of birth is used for this check only, on this device: it is not stored or sent.\n"
)
_YES, _NO = ("y", "yes"), ("", "n", "no")


class Console(Protocol):
    """Where the screens are shown and answers typed."""

    def say(self, text: str) -> None:
        """Show ``text`` as is."""

    def ask(self, prompt: str) -> str:
        """Show ``prompt`` and return the line typed (``EOFError`` at the end of input)."""


class TerminalConsole:
    """The process's standard input and output."""

    def say(self, text: str) -> None:
        """Write and flush."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def ask(self, prompt: str) -> str:
        """One line from standard input, without its newline."""
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")


@dataclass(frozen=True, slots=True)
class Choice:
    """One optional purpose: on or off, and the exact text of the screen the choice was made on."""

    purpose: str
    on: bool
    text: str

    @property
    def sha256(self) -> str:
        """SHA-256 of the text shown."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def age_screen(console: Console, policy: AgePolicy, today: Callable[[], dt.date]) -> str | None:
    """Ask country and date of birth; return the text recorded with ``age_check_passed``, or ``None``."""
    console.say(_INTRO + "\n")
    country = _ask_country(console)
    while True:
        born = parse_birth_date(console.ask("Date of birth (YYYY-MM-DD): ")[:256], today())
        if born is not None:
            break
        console.say(MALFORMED_DATE + "\n")
    passed = age_in_years(born, today()) >= policy.min_age(country)
    del born  # the date of birth goes no further than this line
    if not passed:
        return None
    return (
        f"Age check passed: self-declared on the installer's age screen; age policy version {policy.version}."
    )


def _ask_country(console: Console) -> str:
    while True:
        entry = console.ask("Country or region (two-letter code, for example DE): ").strip().upper()
        if len(entry) == 2 and entry.isascii() and entry.isalpha():
            return entry
        console.say(_MALFORMED_COUNTRY + "\n")


def necessary_screen(console: Console, purposes: Purposes) -> None:
    """Show each contract purpose: what it sends, and to whom. Nothing is asked."""
    for purpose in purposes.purposes.values():
        if purpose.basis != "contract":
            continue
        # render_notice offers `consent object` as the way to stop; a contract purpose stops with uninstall.
        notice = "".join(
            line
            for line in render_notice(purposes, purpose).splitlines(keepends=True)
            if not line.startswith("To stop:")
        )
        console.say(
            f"\n---- Necessary processing: {purpose.name} ----\n"
            f"{notice}\n"
            "This is what the agent does for you under the licence (contract, GDPR Art. 6(1)(b)).\n"
            "It is not a choice: it ends when you uninstall the agent.\n"
        )
        console.ask("Press Enter to continue. ")


def purpose_text(purposes: Purposes, name: str, index: int, total: int) -> str:
    """The exact text of the screen of the optional purpose ``name`` (its prompt included)."""
    purpose = purposes.get(name)
    if purpose.basis == "legitimate_interest":
        basis = (
            "This rests on our legitimate interest. You have the right to object (GDPR Art. 21).\n"
            "The switch starts OFF: left off, your objection is recorded and nothing of it is sent.\n"
        )
    else:
        basis = (
            "This needs your consent (GDPR Art. 6(1)(a)), separate from the licence terms.\n"
            "The switch starts OFF: left off, no consent is given and nothing of it is sent.\n"
        )
    return (
        f"\n---- Optional {index} of {total}: {name} ----\n"
        f"{render_notice(purposes, purpose)}\n"
        f"{basis}"
        "The agent works the same whether this is on or off.\n"
        f"[ ] {name}: type y to turn it on, or press Enter to leave it off: "
    )


def choice_screen(console: Console, purposes: Purposes, name: str, index: int, total: int) -> Choice:
    """Show the screen of one optional purpose and read its switch (off unless the answer is yes)."""
    text = purpose_text(purposes, name, index, total)
    head, prompt = text.rsplit("\n", 1)
    console.say(head + "\n")
    while True:
        answer = console.ask(prompt).strip().lower()
        if answer in _YES or answer in _NO:
            return Choice(purpose=name, on=answer in _YES, text=text)
        console.say("Please type y, or press Enter to leave it off.\n")
