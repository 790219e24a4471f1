"""The trigger search: the places detectors look at, the same whichever literal search runs it."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.classify.pii import triggers
from agent.classify.pii.core import detect
from agent.classify.pii.text import TextView

# Pieces that make triggers (digits around separators, labels, titles, IBAN and postcode shapes) and
# pieces that do not, so that generated texts hold many hits, some overlapping.
_PIECES = (
    "0", "12", "345", "6789", " ", "-", ".", "/", "(", ")", "+", ":", '"', "'", "\n", "\t", ",", ";",
    "AB", "DE", "x", "abc", "Mr ", "Dr.", "Señor", "DOB", "d.o.b", "birth", "geb.", "née", "né ",
    "Adresse", "addr", "\nFN:", "\nn:", ": pan ", ":Mevr", "é", "ü", "€", "中", "_", "#",
)  # fmt: skip
_CONTACT = "Kontakt: Dr. Anna Schmidt, Tel. +49 30 12345678, geb. 12.03.1985, anna@example.org"
_TEXTS = st.lists(st.sampled_from(_PIECES) | st.text(max_size=3), max_size=80).map("".join)


def _hits(text: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    monkeypatch.setattr(triggers, "BACKEND", backend)
    view = TextView(text)
    data, shape = triggers.encode(view.text)
    return {
        group: offsets for group, offsets in triggers.find_hits(data, shape, view.lower).items() if offsets
    }


def _backends() -> list[str]:
    pytest.importorskip("hyperscan", reason="no Hyperscan wheel for this platform; YARA-X alone is in use")
    return ["hyperscan", "yara-x"]


def test_hyperscan_is_used_where_installed() -> None:
    pytest.importorskip("hyperscan")
    assert triggers.BACKEND == "hyperscan"


_NO_WHEEL = "sys.modules['hyperscan'] = None  # import hyperscan now raises ImportError\n"
_NO_SSSE3 = (  # the import works, but the library refuses this CPU (as on a virtual CPU without SSSE3)
    "import hyperscan\n"
    "class Refused:\n"
    "    def __init__(self, **_): pass\n"
    "    def compile(self, **_): raise hyperscan.error('HS_ARCH_ERROR')\n"
    "hyperscan.Database = Refused\n"
)


@pytest.mark.parametrize("setup", [_NO_WHEEL, _NO_SSSE3], ids=["no wheel", "cpu refused"])
def test_without_hyperscan_the_detectors_run_on_yara_x(setup: str) -> None:
    """Where Hyperscan is missing or cannot run, detection finds the same on YARA-X."""
    if setup == _NO_SSSE3:
        pytest.importorskip("hyperscan")
    probe = (
        "import sys\n"
        f"{setup}"
        "from agent.classify.pii import core, triggers\n"
        f"print(triggers.BACKEND, sorted(core.detect({_CONTACT!r}).items()))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    backend, found = out.stdout.strip().split(" ", 1)
    assert backend == "yara-x"
    assert found == str(sorted(detect(_CONTACT).items()))
    assert len(detect(_CONTACT)) == 4  # e-mail, phone, date of birth, name: each needs its triggers


@pytest.mark.parametrize("backend", ["hyperscan", "yara-x"])
def test_known_triggers(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "hyperscan":
        pytest.importorskip("hyperscan")
    text = "Mr Jan Nowak, DOB: 01.02.1990, tel +48 123-456-789, IBAN DE44500105175407324931\nFN:Ann"
    hits = _hits(text, backend, monkeypatch)
    assert hits["title"] == [0]
    assert hits["birth"] == [text.index("DOB")]
    assert text.index("+48") in hits["plus"]
    assert text.index("123-456") in hits["separated"]
    assert text.index(" DE44") in hits["iban"]  # the literal starts with the character before
    assert hits["vcard"] == [text.index("\nFN:")]
    assert hits["run"] == [text.index("500105175407324931") - 2]  # "44500105..." is one run of digits


@settings(max_examples=300, deadline=None)
@given(text=_TEXTS)
def test_backends_find_the_same_offsets(text: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        found = [_hits(text, backend, monkeypatch) for backend in _backends()]
    assert found[0] == found[1]


def test_threads_search_independently() -> None:
    """Each thread has its own databases (Hyperscan scratch space is not shared)."""
    texts = [
        f"call +49 30 {i:06d} or write to Dr. No, DOB {i % 28 + 1:02d}.01.1980\n" * 200 for i in range(8)
    ]

    def search(text: str) -> dict[str, list[int]]:
        view = TextView(text)
        return dict(triggers.find_hits(*triggers.encode(view.text), view.lower))

    expected = [search(text) for text in texts]
    results: dict[int, list[dict[str, list[int]]]] = {}

    def worker(index: int) -> None:
        results[index] = [search(text) for text in texts for _ in range(5)][::5]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(found == expected for found in results.values())
