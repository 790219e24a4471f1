"""Run one fuzz target of ``fuzz_targets`` under atheris (libFuzzer) for a long campaign.

Not collected by pytest. Usage, from the repository root::

    pip install atheris                      # a binary wheel on x86_64 Linux; elsewhere it needs clang
    python tests/fuzz/atheris_main.py seeds corpus   # valid starting inputs per target
    python tests/fuzz/atheris_clamd.py -max_total_time=3600 -rss_limit_mb=2048 corpus/clamd/

Every ``atheris_<target>.py`` is a two-line script calling :func:`run` with its target's name; any
libFuzzer flag may follow. A crash is written as ``crash-<sha1>``; replay it with
``python -c 'import sys; sys.path[:0]=["tests","tests/fuzz"]; import fuzz_targets;
fuzz_targets.TARGETS["clamd"](open("crash-...", "rb").read())'`` and add it as a regression test.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def run(target: str) -> None:
    """Fuzz ``fuzz_targets.TARGETS[target]`` with the command line's libFuzzer arguments."""
    import atheris

    with atheris.instrument_imports(include=["agent", "cloud", "fuzz_targets"]):
        import fuzz_targets

    function = fuzz_targets.TARGETS[target]
    atheris.Setup(sys.argv, function)
    atheris.Fuzz()


def write_seeds(directory: str) -> None:
    """Write each target's valid seeds under ``directory/<target>/`` as a starting corpus."""
    import fuzz_targets

    for target, inputs in fuzz_targets.seeds().items():
        folder = Path(directory) / target
        folder.mkdir(parents=True, exist_ok=True)
        for number, data in enumerate(inputs):
            (folder / f"seed-{number}").write_bytes(data)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "seeds":
        sys.exit("usage: python tests/fuzz/atheris_main.py seeds DIR   (then run an atheris_<target>.py)")
    write_seeds(sys.argv[2])
