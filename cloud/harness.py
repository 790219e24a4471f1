"""Run the real cloud in a child process on an ephemeral loopback port: for tests, demos and benchmarks.

::

    with running_cloud(tmp_path / "cloud") as cloud:
        cloud.url            # https://127.0.0.1:<port>
        cloud.ca_file        # trust this (ssl.create_default_context(cafile=...))
        cloud.pin            # SPKI pin of the server certificate (base64 SHA-256)
        cloud.signing_public_key   # base64 raw Ed25519 key that signs the prefix list
        cloud.product_key    # what POST /v1/enroll accepts
        cloud.records()      # what is stored, as dicts
        cloud.add_bad_hash(sha256, name)

The work directory keeps TLS material, databases and the signing key, so a second
``running_cloud`` on the same directory (optionally with ``port=`` the old port) is the same cloud
restarted: the outage scenario. Leaving the block sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.signing import load_or_create_key, public_key_b64
from cloud.store import read_records
from cloud.tls import init_tls, spki_pin

__all__ = ["DEFAULT_PRODUCT_KEY", "CloudProcess", "running_cloud"]

DEFAULT_PRODUCT_KEY = "test-product-key"


@dataclass(frozen=True, slots=True)
class CloudProcess:
    """A running ``endpoint-cloud serve`` child and where its files are."""

    url: str
    port: int
    workdir: Path
    db: Path
    ca_file: Path
    pin: str
    signing_public_key: str
    product_key: str
    log_file: Path
    stdout_file: Path
    process: subprocess.Popen[bytes]

    def records(self) -> list[dict[str, Any]]:
        """Every stored record, oldest first."""
        return [json.loads(body) for body in read_records(self.db)]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``endpoint-cloud ARGS`` (as ``python -m cloud``) against this cloud's files."""
        return subprocess.run(
            [sys.executable, "-m", "cloud", *args], capture_output=True, text=True, check=check, timeout=60
        )

    def add_bad_hash(self, sha256: str, name: str) -> int:
        """List a known-bad hash through the CLI; returns the new prefix-list version."""
        out = self.cli("add-bad-hash", sha256, name, "--db", str(self.db)).stdout
        return int(out.rsplit(maxsplit=1)[-1])

    def remove_bad_hash(self, sha256: str) -> int:
        """Withdraw a known-bad hash through the CLI; returns the new prefix-list version."""
        out = self.cli("remove-bad-hash", sha256, "--db", str(self.db)).stdout
        return int(out.rsplit(maxsplit=1)[-1])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _wait_ready(
    process: subprocess.Popen[bytes], ready: Path, log_file: Path, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"endpoint-cloud did not start (exit {process.returncode}): {tail}")
        time.sleep(0.02)
    info: dict[str, Any] = json.loads(ready.read_text())
    return info


@contextlib.contextmanager
def running_cloud(
    workdir: Path,
    *,
    port: int = 0,
    product_key: str = DEFAULT_PRODUCT_KEY,
    extra_args: Sequence[str] = (),
    timeout: float = 60,
) -> Iterator[CloudProcess]:
    """Start ``endpoint-cloud serve`` over TLS on 127.0.0.1 and stop it (SIGTERM) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    tls = workdir / "tls"
    if not (tls / "server.pem").exists():
        init_tls(tls)
    key_file, db = workdir / "signing.pem", workdir / "records.db"
    public_key = public_key_b64(load_or_create_key(key_file))
    ready, log_file, stdout_file = workdir / "ready.json", workdir / "server.log", workdir / "stdout.log"
    ready.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "cloud", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
        "--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server.key"),
        "--signing-key", str(key_file), "--product-key", product_key, "--ready-file", str(ready), *extra_args,
    ]  # fmt: skip
    with log_file.open("ab") as log, stdout_file.open("ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=log, cwd=workdir)
    info = _wait_ready(process, ready, log_file, timeout)
    cloud = CloudProcess(
        url=info["url"], port=info["port"], workdir=workdir, db=db, ca_file=tls / "ca.pem",
        pin=spki_pin((tls / "server.pem").read_bytes()), signing_public_key=public_key,
        product_key=product_key, log_file=log_file, stdout_file=stdout_file, process=process,
    )  # fmt: skip
    try:
        yield cloud
    finally:
        cloud.stop()
