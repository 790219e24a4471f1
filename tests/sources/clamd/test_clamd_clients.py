"""Compatibility with clamd clients we did not write: the ``clamd`` PyPI package and Debian's clamdscan."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess

import clamd
import pytest
import samples

pytest_plugins = ["clamd_fixtures"]

HANG_GUARD = 60.0
EICAR_NAME = "Eicar-Test-Signature"


@pytest.fixture
def files(tmp_path):
    """An EICAR file, a clean file, and a directory with two infected files and a clean one."""
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(samples.eicar())
    clean = tmp_path / "notes.txt"
    clean.write_text("meeting moved to thursday\n")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "one.com").write_bytes(samples.eicar())
    (tree / "two.com").write_bytes(samples.eicar())
    (tree / "fine.txt").write_text("fine\n")
    return eicar, clean, tree


# ---------------------------------------------------------------- the clamd package (PyPI)


@pytest.fixture
def pyclamd(clamd_server):
    return clamd.ClamdUnixSocket(path=str(clamd_server.settings.socket_path), timeout=HANG_GUARD)


def test_pypi_ping_version_reload(pyclamd, clamd_backend):
    """ping(), version() and reload() work and return our answers."""
    assert pyclamd.ping() == "PONG"
    assert pyclamd.version() == clamd_backend.version()
    assert pyclamd.reload() == "RELOADING"


def test_pypi_instream(pyclamd):
    """instream() of EICAR is FOUND and of a clean buffer OK."""
    assert pyclamd.instream(io.BytesIO(samples.eicar())) == {"stream": ("FOUND", EICAR_NAME)}
    assert pyclamd.instream(io.BytesIO(b"hello, world\n" * 500)) == {"stream": ("OK", None)}


def test_pypi_scans(pyclamd, files):
    """scan(), contscan() and multiscan() parse our replies into the results clamd would give."""
    eicar, clean, tree = files
    assert pyclamd.scan(str(eicar)) == {str(eicar): ("FOUND", EICAR_NAME)}
    assert pyclamd.scan(str(clean)) == {str(clean): ("OK", None)}
    expected = {str(tree / name): ("FOUND", EICAR_NAME) for name in ("one.com", "two.com")}
    assert pyclamd.contscan(str(tree)) == expected
    assert pyclamd.multiscan(str(tree)) == expected
    missing = str(tree / "missing")  # the package splits clamd's own reply at the last ": "
    assert pyclamd.scan(missing) == {
        f"{missing}: File path check failure": ("ERROR", "No such file or directory.")
    }


def test_pypi_scan_of_a_symlink_reports_the_name_given(pyclamd, files, tmp_path):
    """A link named in SCAN is followed (as the command line does) and answered under its own name."""
    eicar, _, _ = files
    link = tmp_path / "link.com"
    link.symlink_to(eicar)
    assert pyclamd.scan(str(link)) == {str(link): ("FOUND", EICAR_NAME)}


def test_pypi_stats(pyclamd):
    """stats() gets the STATS body."""
    assert pyclamd.stats().startswith("POOLS: 1")


def test_pypi_instream_over_the_limit(clamd_factory):
    """A buffer past StreamMaxLength raises the package's BufferTooLongError, as with clamd."""
    server = clamd_factory(stream_max_length=16 * 1024)
    client = clamd.ClamdUnixSocket(path=str(server.settings.socket_path), timeout=HANG_GUARD)
    with pytest.raises(clamd.BufferTooLongError):
        client.instream(io.BytesIO(b"x" * 100_000))
    assert client.ping() == "PONG"


def test_pypi_over_tcp(clamd_factory):
    """The network client works against the loopback TCP listener."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = clamd_factory(tcp_port=port)
    host, bound = server.tcp_address
    client = clamd.ClamdNetworkSocket(host=host, port=bound, timeout=HANG_GUARD)
    assert client.ping() == "PONG"
    assert client.instream(io.BytesIO(samples.eicar())) == {"stream": ("FOUND", EICAR_NAME)}


# ---------------------------------------------------------------- Debian's clamdscan


@pytest.fixture
def clamdscan(clamd_server, clamd_dir):
    """Run clamdscan against our socket through a clamd.conf of its own."""
    binary = shutil.which("clamdscan")
    if binary is None:
        if os.environ.get("ENDPOINT_AGENT_REQUIRE_CLAMDSCAN") == "1":
            pytest.fail("clamdscan is required (ENDPOINT_AGENT_REQUIRE_CLAMDSCAN=1) but not installed")
        pytest.skip("clamdscan is not installed (apt-get install clamdscan)")
    conf = clamd_dir / "clamd.conf"
    conf.write_text(f"LocalSocket {clamd_server.settings.socket_path}\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "-c", str(conf), "--no-summary", *args],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            check=False,
        )

    return run


def _found(stdout: str) -> set[str]:
    return set(re.findall(r"^(.*): " + EICAR_NAME + " FOUND$", stdout, re.MULTILINE))


@pytest.mark.parametrize("mode", [[], ["--stream"], ["--fdpass"]])
def test_clamdscan_eicar_and_clean(clamdscan, files, mode):
    """EICAR exits 1 with FOUND, a clean file exits 0 with OK, in the default, stream and fd modes."""
    eicar, clean, _ = files
    found = clamdscan(*mode, str(eicar))
    assert (found.returncode, found.stdout) == (1, f"{eicar}: {EICAR_NAME} FOUND\n"), found.stderr
    ok = clamdscan(*mode, str(clean))
    assert (ok.returncode, ok.stdout) == (0, f"{clean}: OK\n"), ok.stderr


@pytest.mark.parametrize(
    "mode", [["--multiscan"], ["--multiscan", "--fdpass"], ["--multiscan", "--stream"], []]
)
def test_clamdscan_directory(clamdscan, files, mode):
    """A directory is scanned fully (MULTISCAN, or an IDSESSION of FILDES/INSTREAM commands)."""
    _, _, tree = files
    result = clamdscan(*mode, str(tree))
    assert result.returncode == 1, result.stderr
    assert _found(result.stdout) == {str(tree / "one.com"), str(tree / "two.com")}


def test_clamdscan_allmatch(clamdscan, files):
    """--allmatch lists every signature that matched."""
    eicar, _, _ = files
    result = clamdscan("--allmatch", str(eicar))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"{eicar}: {EICAR_NAME} FOUND", f"{eicar}: EICAR_Test_File FOUND"]


def test_clamdscan_version_and_ping(clamdscan, clamd_backend):
    """clamdscan -V shows our version; --ping gets PONG."""
    assert clamdscan("-V").stdout == clamd_backend.version() + "\n"
    ping = clamdscan("--ping", "1")
    assert (ping.returncode, ping.stdout) == (0, "PONG\n")


def test_clamdscan_missing_file(clamdscan, tmp_path):
    """A file that does not exist is an error (exit 2), never OK."""
    result = clamdscan(str(tmp_path / "nope"))
    assert result.returncode == 2
    assert " OK" not in result.stdout
