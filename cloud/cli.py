"""``endpoint-cloud``: the reference security cloud's command line.

::

    endpoint-cloud init-tls DIR                 private CA + loopback server certificate; prints the SPKI pin
    endpoint-cloud pin CERT                     the SPKI pin (base64 SHA-256) of a PEM certificate
    endpoint-cloud signing-key FILE [--show-public]
                                                create (0600) or read the Ed25519 key; prints the public key
    endpoint-cloud serve --db FILE --tls-cert C --tls-key K [--host H] [--port N] [--product-key KEY ...]
                         [--signing-key FILE] [--auth-db FILE] [--ready-file F] [--rate R] [--burst B]
                         [--cache-seconds S] [--max-body BYTES]
    endpoint-cloud add-bad-hash SHA256 NAME --db FILE
    endpoint-cloud remove-bad-hash SHA256 --db FILE
    endpoint-cloud records --db FILE [--json]
    endpoint-cloud publish-rules BUNDLE --db FILE [--minimum-wait S]
                                                serve a signed rule bundle (its version must be the newest)

Exit codes: 0 done, 1 the operation failed (e.g. a hash that is not listed), 2 bad usage or setup.
Imports are deferred so that the small commands do not load the web stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _out(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")


def _beside(db: Path, tail: str) -> Path:
    return db.with_name(f"{db.stem}{tail}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="endpoint-cloud", description="The reference security cloud.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init-tls", help="create a private CA and a server certificate").add_argument(
        "dir", type=Path
    )
    sub.add_parser("pin", help="print a certificate's SPKI pin").add_argument("cert", type=Path)
    key = sub.add_parser("signing-key", help="create or show the prefix-list signing key")
    key.add_argument("file", type=Path)
    key.add_argument("--show-public", action="store_true", help="only show; fail if the key does not exist")
    serve = sub.add_parser("serve", help="serve over TLS (never plain HTTP)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    serve.add_argument("--db", type=Path, required=True, help="record and reputation database")
    serve.add_argument("--auth-db", type=Path, help="token database (default: DB's stem + -auth)")
    serve.add_argument("--tls-cert", type=Path, required=True)
    serve.add_argument("--tls-key", type=Path, required=True)
    serve.add_argument("--product-key", action="append", default=[], help="a key enroll accepts (repeatable)")
    serve.add_argument("--signing-key", type=Path, help="Ed25519 key (default: DB's stem + -signing.pem)")
    serve.add_argument("--ready-file", type=Path, help="write {url, port} here once listening")
    serve.add_argument("--rate", type=float, default=20.0, help="requests per second per token")
    serve.add_argument("--burst", type=int, default=100, help="bucket size per token")
    serve.add_argument("--cache-seconds", type=int, default=3600, help="cache duration for search answers")
    serve.add_argument("--max-body", type=int, default=8 << 20, help="bytes, on the wire and inflated")
    add = sub.add_parser("add-bad-hash", help="list a known-bad SHA-256")
    add.add_argument("sha256")
    add.add_argument("name")
    add.add_argument("--db", type=Path, required=True)
    remove = sub.add_parser("remove-bad-hash", help="withdraw a known-bad SHA-256")
    remove.add_argument("sha256")
    remove.add_argument("--db", type=Path, required=True)
    records = sub.add_parser("records", help="dump stored records")
    records.add_argument("--db", type=Path, required=True)
    records.add_argument("--json", action="store_true", help="one JSON object per line")
    publish = sub.add_parser("publish-rules", help="serve a signed rule bundle at /v1/rules/latest")
    publish.add_argument("bundle", type=Path)
    publish.add_argument("--db", type=Path, required=True)
    publish.add_argument("--minimum-wait", type=int, default=3600, help="seconds agents wait between polls")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from cloud.logs import configure  # noqa: PLC0415 - deferred: loads the web stack
    from cloud.serve import serve  # noqa: PLC0415
    from cloud.service import Settings  # noqa: PLC0415

    configure()
    settings = Settings(
        db=args.db, auth_db=args.auth_db or _beside(args.db, f"-auth{args.db.suffix}"),
        signing_key=args.signing_key or _beside(args.db, "-signing.pem"),
        product_keys=tuple(args.product_key), rate=args.rate, burst=args.burst,
        cache_seconds=args.cache_seconds, max_body=args.max_body, max_inflated=args.max_body,
    )  # fmt: skip
    return serve(settings, args.host, args.port, args.tls_cert, args.tls_key, ready_file=args.ready_file)


def _signing_key(args: argparse.Namespace) -> int:
    from cloud.signing import load_or_create_key, public_key_b64  # noqa: PLC0415

    _out(public_key_b64(load_or_create_key(args.file, create=not args.show_public)))
    return 0


def _reputation(args: argparse.Namespace) -> int:
    from cloud.reputation import REPUTATION_SCHEMA, ReputationStore  # noqa: PLC0415
    from cloud.store import RecordStore  # noqa: PLC0415

    store = RecordStore(args.db, REPUTATION_SCHEMA)
    try:
        reputation = ReputationStore(store.conn)
        if args.command == "add-bad-hash":
            version = reputation.add(args.sha256, args.name)
        else:
            version = reputation.remove(args.sha256)
    finally:
        store.close()
    _out(f"prefix list version {version}")
    return 0


def _records(args: argparse.Namespace) -> int:
    from cloud.store import read_records  # noqa: PLC0415

    for body in read_records(args.db):
        if args.json:
            _out(body)
        else:
            record = json.loads(body)
            names = ",".join(d["name"] for d in record["detections"]) or "-"
            _out(record["record_id"], record["verdict"], record.get("kind") or "-", names)
    return 0


def _publish_rules(args: argparse.Namespace) -> int:
    from cloud.rules_feed import RulesFeed  # noqa: PLC0415
    from cloud.store import RecordStore  # noqa: PLC0415

    store = RecordStore(args.db)
    try:
        version = RulesFeed(store.conn).publish(args.bundle.read_bytes(), args.minimum_wait)
    finally:
        store.close()
    _out(f"rules version {version} published")
    return 0


def _init_tls(args: argparse.Namespace) -> int:
    from cloud.tls import init_tls  # noqa: PLC0415

    pin = init_tls(args.dir)
    _out(f"wrote {args.dir / 'ca.pem'}, {args.dir / 'server.pem'}, {args.dir / 'server.key'}")
    _out(f"pin-sha256: {pin}")
    return 0


def _pin(args: argparse.Namespace) -> int:
    from cloud.tls import spki_pin  # noqa: PLC0415

    _out(spki_pin(args.cert.read_bytes()))
    return 0


_COMMANDS = {
    "init-tls": _init_tls,
    "pin": _pin,
    "signing-key": _signing_key,
    "serve": _serve,
    "add-bad-hash": _reputation,
    "remove-bad-hash": _reputation,
    "records": _records,
    "publish-rules": _publish_rules,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = _parser().parse_args(argv)
    from cloud.errors import SetupError  # noqa: PLC0415 - cheap, but keeps the top of the module light

    try:
        return _COMMANDS[args.command](args)
    except SetupError as exc:
        sys.stderr.write(f"endpoint-cloud: {exc}\n")
        return 2
    except (ValueError, LookupError, OSError) as exc:
        sys.stderr.write(f"endpoint-cloud: {exc}\n")
        return 1
