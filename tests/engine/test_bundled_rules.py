"""Each bundled rule fires on a positive sample and stays quiet on a near-miss negative."""

from __future__ import annotations

import pytest
import samples

from agent.config import bundled_rules_dir
from agent.engine import DEFAULT_LIMITS, Engine, load_rules


@pytest.fixture(scope="module")
def engine():
    return Engine(load_rules(bundled_rules_dir()), DEFAULT_LIMITS)


def _hits(engine, data, name="sample"):
    result = engine.scan_bytes(data, name, lambda *a: None)
    return {d.name for d in result.detections if d.source == "yara"}


CASES = [
    ("EICAR_Test_File", samples.eicar, lambda: b"EICAR test file: see eicar.org for the string\n"),
    ("EICAR_Test_File", lambda: samples.eicar() + b"\r\n  ", lambda: b"prefix " + samples.eicar()),
    ("PowerShell_Encoded_Command", samples.powershell_encoded, samples.powershell_benign),
    ("PowerShell_Download_Cradle", samples.powershell_cradle, samples.powershell_benign),
    (
        "Office_AutoExec_Macro",
        lambda: samples.docm(samples.ole_vba("AutoOpen")),
        lambda: samples.docm(samples.ole_vba("FormatTable")),
    ),
    (
        "Office_AutoExec_Macro",
        lambda: samples.docm(samples.ole_vba("Document_Open")),
        lambda: samples.docm(None),
    ),
    (
        "Office_AutoExec_Macro",
        lambda: samples.docm(samples.ole_vba("Workbook_Open")),
        lambda: b"Sub AutoOpen()\nEnd Sub\n",
    ),
    ("Script_Dropper_Download_Exec", samples.shell_dropper, samples.shell_benign),
    (
        "Script_Dropper_ADODB",
        samples.vbs_dropper,
        samples.vbs_near_miss,
    ),
    ("Packer_UPX_ELF", samples.elf_upx, lambda: samples.elf(b"no packer here, UPX! mentioned once")),
    (
        "Packer_UPX_PE",
        lambda: samples.pe((b"UPX0", b"UPX1", b".rsrc")),
        lambda: samples.pe((b".text", b".data")),
    ),
]


@pytest.mark.parametrize(("rule", "positive", "negative"), CASES)
def test_rule_positive_and_negative(engine, rule, positive, negative):
    """The rule fires on its positive sample and not on its negative."""
    assert rule in _hits(engine, positive())
    assert rule not in _hits(engine, negative())


def test_macro_rule_needs_the_vba_member_name(engine):
    """The OLE stream with AutoOpen outside a vbaProject.bin member does not fire."""
    assert "Office_AutoExec_Macro" not in _hits(
        engine, samples.zip_of({"notes.bin": samples.ole_vba("AutoOpen")})
    )


def test_every_rule_has_severity_and_description():
    """Rules are honest: each carries severity and description metadata."""
    import re

    for path in sorted(bundled_rules_dir().rglob("*.yar")):
        text = path.read_text()
        for rule in re.findall(r"^rule\s+\w+[\s\S]*?\n}", text, re.MULTILINE):
            assert re.search(r'severity\s*=\s*"(low|medium|high|critical)"', rule), (path.name, rule[:40])
            assert re.search(r'description\s*=\s*"', rule), (path.name, rule[:40])


def test_the_repository_itself_is_clean(engine):
    """No file of this repository matches a bundled rule: rules and tests hold no whole sample."""
    from conftest import ROOT

    hits = {}
    for top in ("agent", "rules", "tests", "README.md", "pyproject.toml"):
        base = ROOT / top
        for path in [base] if base.is_file() else sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found = _hits(engine, path.read_bytes(), path.name)
                if found:
                    hits[str(path.relative_to(ROOT))] = found
    assert hits == {}
