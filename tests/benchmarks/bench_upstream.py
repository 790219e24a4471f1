"""What leaves the device: bytes sent upstream per 10,000 files scanned, verdicts vs lookups.

Run on demand (not a pytest test)::

    python tests/benchmarks/bench_upstream.py [--files 10000] [--detect-every 100]

It starts the reference cloud over TLS on loopback (``cloud.harness``), seeds it with known-bad hashes
of files that are NOT in the tree, enrols an agent with delivery and private reputation on, scans a
generated tree (every N-th file a distinct dropper script, the rest ordinary text and binary), and counts every request
byte on the wire side of the client's transport seam (headers and body), split into verdict uploads
and reputation lookups. Targets: 0 bytes of lookup traffic for a tree with no prefix hits, and a
verdict record under 300 bytes on the wire. Then it plants one file whose hash is listed and shows
the cost of one lookup. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from samples import shell_dropper

from agent import cli
from agent.upstream import client as upstream_client
from cloud.harness import running_cloud


class _Meter(httpx.BaseTransport):
    def __init__(self, real: httpx.BaseTransport, counts: dict[str, list[int]]) -> None:
        self.real, self.counts = real, counts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        head = len(f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n") + sum(
            len(k) + len(v) + 4 for k, v in request.headers.raw
        )
        kind = (
            "lookup"
            if "reputation/search" in request.url.path
            else ("verdicts" if "verdicts" in request.url.path else "other")
        )
        self.counts.setdefault(kind, []).append(head + len(body))
        if kind == "verdicts":
            raw = gzip.decompress(body)
            self.counts.setdefault("records", []).append(len(json.loads(raw)))
            self.counts.setdefault("json_bytes", []).append(len(raw))
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def make_tree(root: Path, files: int, every: int) -> None:
    """``files`` files in 100 directories; every ``every``-th one is a (distinct) dropper script."""
    rng = random.Random(5)
    for n in range(files):
        d = root / f"d{n % 100}"
        d.mkdir(parents=True, exist_ok=True)
        if n % every == 0:  # a detected script, each one different: distinct hashes, as in real life
            (d / f"f{n}.sh").write_bytes(shell_dropper() + b"# build %d\n" % n)
        elif n % 2:
            (d / f"f{n}.bin").write_bytes(rng.randbytes(2048))
        else:
            (d / f"f{n}.txt").write_bytes(b"an ordinary line of text %d\n" % n * 40)


def scan(root: Path, counts: dict[str, list[int]]) -> None:
    """One scan with upload, in this process, with the metering transport."""
    counts.clear()
    assert cli.main(["scan", "--no-cache", "--json", str(root)]) in (0, 1)


def report(label: str, counts: dict[str, list[int]], files: int) -> None:
    """Print the byte split."""
    verdict_bytes, lookup_bytes = sum(counts.get("verdicts", [])), sum(counts.get("lookup", []))
    records = sum(counts.get("records", []))
    per_10k = 10_000 / files
    print(f"{label}: {files:,} files, {records:,} records in {len(counts.get('verdicts', []))} uploads")
    print(
        f"  verdict traffic {verdict_bytes:,} B ({verdict_bytes * per_10k:,.0f} B per 10,000 files), "
        f"{verdict_bytes / max(records, 1):.0f} B per record on the wire (target < 300); "
        f"{sum(counts.get('json_bytes', [])) / max(records, 1):.0f} B per record as JSON before gzip"
    )
    print(
        f"  lookup traffic  {lookup_bytes:,} B in {len(counts.get('lookup', []))} requests "
        f"({lookup_bytes * per_10k:,.0f} B per 10,000 files)"
    )


def main() -> None:
    """Run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--detect-every", type=int, default=100)
    args = parser.parse_args()
    counts: dict[str, list[int]] = {}
    upstream_client.transport_factory = lambda ctx: _Meter(httpx.HTTPTransport(verify=ctx), counts)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["ENDPOINT_AGENT_HOME"] = str(work / "home")
        make_tree(work / "tree", args.files, args.detect_every)
        with running_cloud(work / "cloud", extra_args=("--rate", "1000", "--burst", "5000")) as cloud:
            for i in range(200):
                cloud.add_bad_hash(hashlib.sha256(b"not in the tree %d" % i).hexdigest(), f"Bench.Bad.{i}")
            assert cli.main([
                "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file),
                "--prefix-key", cloud.signing_public_key,
            ]) == 0  # fmt: skip
            scan(work / "tree", counts)
            report("tree with no prefix hits", counts, args.files)
            listed = work / "tree" / "listed.bin"
            listed.write_bytes(b"a file the cloud knows is bad")
            cloud.add_bad_hash(hashlib.sha256(listed.read_bytes()).hexdigest(), "Bench.Bad.Listed")
            (work / "home" / "prefixes.json").unlink()  # make the next scan sync the new list
            scan(work / "tree", counts)
            report("same tree plus one listed file", counts, args.files + 1)


if __name__ == "__main__":
    main()
