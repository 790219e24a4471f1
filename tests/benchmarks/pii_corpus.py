"""Generate a labelled corpus of personal and non-personal files for the classification benchmark.

::

    python tests/benchmarks/pii_corpus.py OUT_DIR [--files 1500] [--seed 7]

Writes ``OUT_DIR/<nnnnn>.<fmt>`` files, ``labels.json`` (file name -> true when the file holds personal
data) and ``meta.json`` (file name -> locale, format, generator). Files cycle through eight Faker
locales and fifteen formats. Personal files are customer tables, forms, letters, mails, patient notes,
activity logs, vCards and invitations, and "needles": one value buried in 20-60 KB of filler. Non-personal
files are release notes, inventories, reports, server logs, meeting notes, settings and lists of look-alike
numbers (Luhn failures, bad IBANs, UUIDs, hashes, versions, timestamps, product codes). File names carry
no hint of the label.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_office import OFFICE_RENDERERS
from corpus_render import FORMATS, TEXT_RENDERERS, Doc
from corpus_values import L10N, LOCALES, Person, hard_negatives, make_person, number_sentences

__all__ = ["generate"]

_FIELDS = ("name", "email", "phone", "address", "dob", "iban", "card", "nid")


class Gen:
    """Per-file generator state: locale, Faker, random source, the target format."""

    def __init__(self, loc: str, seed: int, fmt: str) -> None:
        self.loc, self.fmt, self.lab = loc, fmt, L10N[loc]
        self.f = Faker(loc)
        self.f.seed_instance(seed)
        self.rnd = random.Random(seed)

    def label(self, key: str) -> str:
        value = self.lab[key]
        return self.rnd.choice(value) if isinstance(value, list) else value

    def person(self) -> Person:
        return make_person(self.f, self.loc, self.rnd)

    def prose(self, n: int) -> list[tuple]:
        return [("p", self.f.paragraph(nb_sentences=self.rnd.randint(3, 8))) for _ in range(n)]

    def numbers(self) -> list[tuple]:
        return [("p", s) for s in number_sentences(hard_negatives(self.f, self.rnd), self.rnd)]

    def filler(self, size: int) -> list[tuple]:
        blocks: list[tuple] = []
        while sum(len(b[1]) for b in blocks) < size:
            blocks += self.prose(3) + (self.numbers() if self.rnd.random() < 0.4 else [])
        return blocks

    def value(self, p: Person, key: str) -> str:
        return getattr(p, key)

    def greeting(self, p: Person, named: bool = False) -> str:
        """Return an opening line; ``named`` picks one that names the addressee."""
        forms = [d for d in self.lab["dear"] if "{" in d or not named]
        return self.rnd.choice(forms).format(name=p.name, first=p.first, last=p.last)


# ---------------------------------------------------------------- personal generators
def customer_table(g: Gen) -> Doc:
    keys = ["name", *g.rnd.sample(_FIELDS[1:], g.rnd.randint(2, 5))]
    english = g.rnd.random() < 0.4
    snake = {"name": "full_name", "dob": "date_of_birth", "nid": "national_id", "card": "card_number"}
    header = [snake.get(k, k) if english else g.label(k) for k in keys]
    people = [g.person() for _ in range(g.rnd.randint(3, 40))]
    rows = [[g.value(p, k) for k in keys] for p in people]
    return Doc(g.label("title"), [("table", header, rows)], variant=g.rnd.randint(0, 9))


def form(g: Gen) -> Doc:
    p = g.person()
    keys = ["name", *g.rnd.sample(_FIELDS[1:], g.rnd.randint(2, 6))]
    pairs = [(g.label(k), g.value(p, k)) for k in keys]
    if g.rnd.random() < 0.3:
        pairs[0:1] = [(g.lab["first"], p.first), (g.lab["last"], p.last)]
    blocks = [*g.prose(g.rnd.randint(0, 2)), ("kv", pairs), *g.prose(g.rnd.randint(0, 3))]
    return Doc(
        g.f.catch_phrase() if g.loc.startswith("en") else g.lab["title"], blocks, variant=g.rnd.randint(0, 9)
    )


def letter(g: Gen) -> Doc:
    p, sender = g.person(), g.person()
    blocks: list[tuple] = []
    roll = g.rnd.random()
    if roll < 0.5:  # the recipient's address block, as letters start
        blocks.append(("p", p.name + "\n" + p.address))
    elif roll < 0.7:
        blocks.append(("kv", [(g.lab["customer"], p.name), (g.label("address"), p.address)]))
    blocks.append(("p", g.greeting(p)))
    blocks += g.prose(g.rnd.randint(2, 5))
    if g.rnd.random() < 0.5:
        blocks.append(("p", f"{g.label('phone')}: {sender.phone}"))
    blocks.append(("p", g.label("regards")))
    blocks.append(("p", sender.name))
    return Doc(g.f.sentence(nb_words=4).rstrip("."), blocks, sender=(sender.name, sender.email),
               recipients=[(p.name, p.email)], variant=g.rnd.randint(0, 9))  # fmt: skip


def patient_note(g: Gen) -> Doc:
    p = g.person()
    pairs = [(g.lab["patient"], p.name), (g.label("dob"), p.dob)]
    if g.rnd.random() < 0.5:
        pairs.append((g.label("nid"), p.nid))
    return Doc(g.lab["patient"], [("kv", pairs), *g.prose(g.rnd.randint(1, 4))], variant=g.rnd.randint(0, 9))


def activity_log(g: Gen) -> Doc:
    blocks = g.numbers()
    for _ in range(g.rnd.randint(2, 8)):
        p = g.person()
        line = g.rnd.choice((
            f"user login ok email={p.email} ip=10.0.{g.rnd.randint(0, 255)}.{g.rnd.randint(1, 254)}",
            f"profile updated for {p.email}: phone changed to {p.phone}",
            f"payout scheduled to {p.iban} (beneficiary {p.name})",
            f"shipping label created: {p.name}, {p.address.replace(chr(10), ', ')}",
        ))  # fmt: skip
        blocks.insert(g.rnd.randint(0, len(blocks)), ("p", line))
    return Doc("audit", blocks, variant=g.rnd.randint(0, 9))


def needle(g: Gen) -> Doc:
    """One personal value, usually labelled as people write it, buried in 20-60 KB of filler."""
    p = g.person()
    key = g.rnd.choice((*_FIELDS, "name_greeting", "name_signoff"))
    if key == "name_greeting":
        sentence = g.greeting(p, named=True)
    elif key == "name_signoff":
        sentence = f"{g.label('regards')}\n{p.name}"
    elif key in ("email", "phone", "iban", "card") and g.rnd.random() < 0.5:
        sentence = g.rnd.choice(("{v}", "({v})", "- {v}")).format(v=g.value(p, key))
    else:
        sentence = f"{g.label(key)}: {g.value(p, key)}"
    blocks = g.filler(g.rnd.randint(20_000, 60_000))
    blocks.insert(g.rnd.randint(0, len(blocks)), ("p", sentence))
    return Doc(g.f.sentence(nb_words=3).rstrip("."), blocks, sender=("", "root@buildhost"),
               recipients=[("", "ops@buildhost")], variant=g.rnd.randint(0, 9), tag=f"{key}\t{sentence}")  # fmt: skip


def vcards(g: Gen) -> Doc:
    cards = []
    for _ in range(g.rnd.randint(1, 5)):
        p = g.person()
        lines = p.address.split("\n")
        card = [("FN", p.name), ("N", f"{p.last};{p.first};;;")]
        card += [("EMAIL;TYPE=INTERNET", p.email), ("TEL;TYPE=CELL", p.phone)]
        if g.rnd.random() < 0.6:
            card.append(("ADR;TYPE=HOME", ";;" + ";".join(lines)))
        if g.rnd.random() < 0.4:
            card.append(("BDAY", g.f.date_of_birth().isoformat()))
        card.append(("NOTE", g.f.paragraph(nb_sentences=2)))
        cards.append(card)
    return Doc("contacts", cards=cards)


def invitation(g: Gen) -> Doc:
    org, guests = g.person(), [g.person() for _ in range(g.rnd.randint(1, 4))]
    event = [("UID", f"{g.rnd.getrandbits(64):x}@calendar.internal"), ("DTSTAMP", "20240115T102345Z"),
             ("DTSTART", "20240220T090000Z"), ("SUMMARY", g.f.sentence(nb_words=4)),
             ("ORGANIZER;CN=" + org.name, "mailto:" + org.email)]  # fmt: skip
    event += [(f"ATTENDEE;CN={p.name};ROLE=REQ-PARTICIPANT", "mailto:" + p.email) for p in guests]
    event.append(("DESCRIPTION", g.f.paragraph(nb_sentences=3) + f" {g.label('phone')}: {org.phone}"))
    return Doc("invite", events=[event])


# ---------------------------------------------------------------- non-personal generators
def release_notes(g: Gen) -> Doc:
    neg = hard_negatives(g.f, g.rnd)
    items = [f"{neg['ticket']}: {g.f.sentence()}" for _ in range(g.rnd.randint(3, 10))]
    pairs = [
        ("Version", neg["semver"]),
        ("Build", neg["version"]),
        ("Commit", neg["sha"]),
        ("Date", neg["date"]),
    ]
    return Doc(f"Release {neg['semver']}", [("kv", pairs), *[("p", i) for i in items], *g.numbers()])


def inventory(g: Gen) -> Doc:
    header = ["SKU", "Product", "EAN", "Qty", "Price", "Location"]
    rows = []
    for _ in range(g.rnd.randint(5, 60)):
        neg = hard_negatives(g.f, g.rnd)
        product = " ".join(w.capitalize() for w in g.f.words(nb=2))
        place = f"Aisle {g.rnd.randint(1, 40)}, Bay {g.rnd.randint(1, 12)}"
        rows.append([neg["sku"], product, neg["ean"], str(g.rnd.randint(0, 900)), neg["amount"], place])
    return Doc("Inventory", [("table", header, rows)], variant=g.rnd.randint(0, 9))


def report(g: Gen) -> Doc:
    header = ["Quarter", "Revenue", "Costs", "Margin %", "Headcount"]
    rows = [[f"Q{q} {y}", f"{g.rnd.randint(1, 90)},{g.rnd.randint(0, 999):03d},{g.rnd.randint(0, 999):03d}",
             f"{g.rnd.randint(1, 60)},{g.rnd.randint(0, 999):03d},000", f"{g.rnd.uniform(-5, 40):.1f}",
             str(g.rnd.randint(20, 4000))] for y in (2022, 2023) for q in range(1, 5)]  # fmt: skip
    return Doc(g.f.catch_phrase(), [*g.prose(2), ("table", header, rows), *g.prose(2), *g.numbers()])


def server_log(g: Gen) -> Doc:
    lines = []
    for _ in range(g.rnd.randint(30, 300)):
        neg = hard_negatives(g.f, g.rnd)
        lines.append(g.rnd.choice((
            f"GET /api/v2/orders/{neg['order']} 200 {g.rnd.randint(1, 900)}ms req={neg['uuid']}",
            f"connected to {neg['ipv4']}:{neg['port']} session={neg['short_sha']}",
            f"cache miss key=sku:{neg['sku']} ean={neg['ean']}",
            f"job {neg['batch']} done in {g.rnd.uniform(0, 90):.3f}s build={neg['version']}",
            f"checksum mismatch {neg['sha256']} at {neg['hexaddr']}",
        )))  # fmt: skip
    return Doc("server", [("p", ln) for ln in lines])


def meeting_notes(g: Gen) -> Doc:
    neg = hard_negatives(g.f, g.rnd)
    pairs = [("Project name", " ".join(w.capitalize() for w in g.f.words(nb=2))), ("Date", neg["date"]),
             ("Room", f"{g.rnd.randint(1, 9)}.{g.rnd.randint(1, 40):02d}"), ("Ticket", neg["ticket"])]  # fmt: skip
    actions = [
        f"- The {g.rnd.choice(('platform', 'QA', 'data', 'finance'))} team will {g.f.sentence().lower()}"
        for _ in range(4)
    ]
    return Doc("Meeting notes", [("kv", pairs), *g.prose(2), *[("p", a) for a in actions], *g.numbers()])


def settings(g: Gen) -> Doc:
    neg = hard_negatives(g.f, g.rnd)
    pairs = [("name", g.f.word() + "-service"), ("version", neg["semver"]), ("port", neg["port"]),
             ("timeout_ms", str(g.rnd.randint(100, 60000))), ("endpoint", f"https://{neg['ipv4']}:{neg['port']}/v1"),
             ("instance_id", neg["uuid"]), ("checksum", neg["sha256"]), ("region", "eu-central-1")]  # fmt: skip
    return Doc("settings", [("kv", pairs), *g.numbers()], variant=g.rnd.randint(0, 9))


def lookalikes(g: Gen) -> Doc:
    header = ["Case", "Input", "Expected"]
    rows = []
    for _ in range(g.rnd.randint(5, 30)):
        neg = hard_negatives(g.f, g.rnd)
        kind = g.rnd.choice(
            ("luhn_fail", "bad_iban", "uuid", "version", "iso_ts", "account_id", "ean", "part")
        )
        rows.append([kind, neg[kind], "reject"])
    return Doc("Validator test vectors", [*g.prose(1), ("table", header, rows), *g.numbers()])


def big_negative(g: Gen) -> Doc:
    return Doc(g.f.sentence(nb_words=3).rstrip("."), g.filler(g.rnd.randint(20_000, 60_000)),
               sender=("Cron Daemon", "root@buildhost"), recipients=[("", "root@buildhost")])  # fmt: skip


def org_card(g: Gen) -> Doc:
    company = g.f.company()
    card = [("FN", f"{company} Helpdesk"), ("ORG", company), ("URL", f"https://{g.f.domain_name()}/support"),
            ("CATEGORIES", "vendor,support"), ("NOTE", " ".join(number_sentences(hard_negatives(g.f, g.rnd), g.rnd)))]  # fmt: skip
    return Doc("vendor", cards=[card])


def team_calendar(g: Gen) -> Doc:
    events = []
    for _ in range(g.rnd.randint(1, 6)):
        neg = hard_negatives(g.f, g.rnd)
        events.append([("UID", f"{neg['uuid']}@calendar.internal"), ("DTSTAMP", neg["iso_ts"].replace("-", "").replace(":", "")),
                       ("SUMMARY", g.rnd.choice(("Sprint review", "Release", "Planning", "Maintenance window")) + f" {neg['semver']}"),
                       ("LOCATION", f"Room {g.rnd.randint(1, 9)}.{g.rnd.randint(1, 40):02d}"),
                       ("DESCRIPTION", " ".join(number_sentences(neg, g.rnd)))])  # fmt: skip
    return Doc("team", events=events)


PERSONAL = {"table": customer_table, "form": form, "letter": letter, "patient": patient_note,
            "log": activity_log, "needle": needle}  # fmt: skip
NON_PERSONAL = {"release": release_notes, "inventory": inventory, "report": report, "serverlog": server_log,
                "meeting": meeting_notes, "settings": settings, "lookalikes": lookalikes, "big": big_negative}  # fmt: skip
_WEIGHTS = {"table": 2, "form": 2, "letter": 2, "needle": 3, "big": 2}
_SPECIAL = {
    ("vcf", True): vcards,
    ("ics", True): invitation,
    ("vcf", False): org_card,
    ("ics", False): team_calendar,
}


def _pick(g: Gen, personal: bool) -> tuple[str, Doc]:
    special = _SPECIAL.get((g.fmt, personal))
    if special is not None and g.rnd.random() < 0.8:
        return special.__name__, special(g)
    table = PERSONAL if personal else NON_PERSONAL
    names = [n for n in table for _ in range(_WEIGHTS.get(n, 1))]
    name = g.rnd.choice(names)
    doc = table[name](g)
    if g.fmt == "eml" and not personal:
        doc.sender, doc.recipients = ("Cron Daemon", "root@buildhost"), [("", "root@buildhost")]
    elif g.fmt == "eml" and not doc.sender[1]:
        doc.sender, doc.recipients = (
            (g.person().name, g.person().email),
            [(g.person().name, g.person().email)],
        )
    if g.fmt in ("vcf", "ics") and not doc.cards and not doc.events:  # a plain document as a note
        note = "\n".join(_block_text(b) for b in doc.blocks)
        note = note.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")
        doc.cards, doc.events = (
            ([[("FN", doc.title), ("NOTE", note)]], [])
            if g.fmt == "vcf"
            else ([], [[("SUMMARY", doc.title), ("DESCRIPTION", note)]])
        )
    return name, doc


def _block_text(block: tuple) -> str:
    if block[0] == "p":
        return block[1]
    if block[0] == "kv":
        return "\n".join(f"{k}: {v}" for k, v in block[1])
    return "\n".join("\t".join(map(str, row)) for row in (block[1], *block[2]))


def render(doc: Doc, fmt: str) -> bytes:
    """Return the bytes of ``doc`` written as ``fmt`` (one of ``FORMATS``)."""
    return {**TEXT_RENDERERS, **OFFICE_RENDERERS}[fmt](doc)


def generate(out: Path, files: int = 1500, seed: int = 7) -> dict[str, bool]:
    """Write ``files`` labelled files into ``out``; return the labels (also written to ``labels.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    labels: dict[str, bool] = {}
    meta: dict[str, dict[str, str]] = {}
    for i in range(files):
        loc, fmt = LOCALES[i % len(LOCALES)], FORMATS[(i // len(LOCALES) + i) % len(FORMATS)]
        personal = rnd.random() < 0.5
        g = Gen(loc, seed * 100_003 + i, fmt)
        generator, doc = _pick(g, personal)
        name = f"{i:05d}.{fmt}"
        (out / name).write_bytes(render(doc, fmt))
        labels[name] = personal
        tag, _, planted = doc.tag.partition("\t")
        meta[name] = {"locale": loc, "fmt": fmt, "generator": generator, "needle": tag, "planted": planted}
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    labels = generate(args.out, args.files, args.seed)
    print(f"{len(labels)} files, {sum(labels.values())} personal, in {args.out}")


if __name__ == "__main__":
    main()
