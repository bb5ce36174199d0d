"""``keyledger serve``, ``history``, ``verify`` and ``checkpoint-key``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import urllib.parse
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from api.audit_cli import add_audit_parser, audit
from api.forensics_cli import (
    add_at_argument,
    add_who_can_parser,
    as_json,
    history_at,
    key_named,
    who_can,
)
from api.settings import Settings

_DEFAULTS = Settings()


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the KMS endpoint")
    for f in fields(Settings):
        if f.name == "maintenance_interval":
            continue
        flag = "--" + f.name.replace("_", "-")
        env = Settings.env_name(f.name)
        if f.type == "bool":
            p.add_argument(flag, action="store_true", default=None,
                           help=f"[{env}] " + ("TEST ONLY: expose POST /_test/clock to move the "
                                               "service clock and POST /_test/maintenance to "
                                               "run a maintenance pass; never enable in "
                                               "production"))
        else:
            p.add_argument(flag, default=None, help=f"[{env}] default: {getattr(_DEFAULTS, f.name)}")


def _history_parser(sub) -> None:
    p = sub.add_parser("history", help="print a key's events as a timeline")
    p.add_argument("key_id", metavar="KEY", help="a key id or key ARN (not an alias)")
    p.add_argument("--region", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None)
    p.add_argument("--json", action="store_true", help="print JSON instead of a timeline")
    add_at_argument(p)  # --at T: the key's state at T (api.forensics_cli)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from api.http_protocol import KmsHttpProtocol

    os.umask(0o077)  # the ledger, keyring and root key are readable by this user only

    from infrastructure.key_material import workers
    from infrastructure.supervision import SUPERVISOR_ENV

    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    try:
        settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
        workers.set_niceness(settings.crypto_niceness)  # checked before the workers start
    except ValueError as error:
        raise SystemExit(f"keyledger serve: {error}") from None
    created = _check_identities(settings)
    from api.bootstrap import check_root_key

    check_root_key(settings)  # (another root key than the store's: one line, exit 2)
    os.environ.update(settings.to_env())  # workers build their settings from the environment
    if settings.workers > 1:  # the workers end with this process (infrastructure.supervision)
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
    else:  # serving in this process: no supervisor (nor one named by whoever started it)
        os.environ.pop(SUPERVISOR_ENV, None)
    url = f"http://{settings.host}:{settings.port}"
    print(f"keyledger: KMS endpoint {url}  (account {settings.account_id}, default region "
          f"{settings.default_region}, data in {settings.data_path}"
          f"{', store ' + settings.store.split('@')[-1] if settings.store else ''})", flush=True)
    if settings.auth == "open":
        print("  --auth open: signatures are not checked; every caller acts as its account's root "
              "(key policies and grants still apply)", flush=True)
        key_id = secret = "x"
    else:
        print(f"  SigV4 authentication with the access keys of {settings.identities_path}", flush=True)
        key_id, secret = ("$AWS_ACCESS_KEY_ID", "$AWS_SECRET_ACCESS_KEY") if created is None else (
            created.access_key_id, created.secret_access_key)
        if created is not None:
            print(f"  created it with an access key of the account root (arn:aws:iam::"
                  f"{settings.account_id}:root), shown only this once:", flush=True)
            print(f"    export AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} "
                  f"AWS_DEFAULT_REGION={settings.default_region}", flush=True)
    print(f"  try: python -c \"import boto3; print(boto3.client('kms', endpoint_url='{url}', "
          f"region_name='{settings.default_region}', aws_access_key_id='{key_id}', "
          f"aws_secret_access_key='{secret}').create_key()['KeyMetadata']['Arn'])\"", flush=True)
    if settings.enable_test_control:
        print("  WARNING: test control is enabled (POST /_test/clock, /_test/maintenance). "
              "Never use in production.",
              flush=True)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=KmsHttpProtocol,  # uvicorn's httptools protocol, one write per response
        access_log=False,
        log_level="warning",
        lifespan="on",
        # The audit trail records the caller's address: X-Forwarded-For is not trusted
        # unless a deployment puts a proxy in front and says so (FORWARDED_ALLOW_IPS).
        proxy_headers=bool(os.environ.get("FORWARDED_ALLOW_IPS")),
        server_header=False,  # AWS does not announce its server software either
    )


def _check_identities(settings: Settings):
    """sigv4 mode: create the identities file on first start (returning the new root access
    key, to be shown once), and refuse to start on a malformed one."""
    from api.auth import AUTH_MODES
    from infrastructure.identities import IdentitiesError, ensure_identities_file, load_directory

    if settings.auth not in AUTH_MODES:
        raise SystemExit(f"keyledger serve: --auth must be one of {', '.join(AUTH_MODES)}, "
                         f"not {settings.auth!r}")
    if settings.auth != "sigv4":
        return None
    path = settings.identities_path
    try:
        created = ensure_identities_file(path, settings.account_id)
        load_directory(path)
    except IdentitiesError as error:
        raise SystemExit(f"keyledger serve: identities file {path}: {error}") from None
    except OSError as error:
        raise SystemExit(f"keyledger serve: identities file {path}: {error}") from None
    return created


def history(args: argparse.Namespace) -> int:
    from api.bootstrap import build_service
    from domain.errors import KmsError

    if args.at is not None:
        return history_at(args)
    os.umask(0o077)

    settings = Settings.of_store(args)
    try:
        named, region = key_named(args, settings)  # a key id or key ARN (api.forensics_cli)
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    service = build_service(settings, read_only=True)
    try:
        events = service.key_history(region, named.key_id, named.account)
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    finally:
        service.close()
    if args.json:
        print(as_json({"KeyId": named.key_id, "Region": region, "Events": events}))
        return 0
    print(f"History of {named.key_id} in {region} ({len(events)} events)")
    for e in events:
        actor = e["Actor"] or {}
        who = actor.get("principal", "?")
        extra = ", ".join(f"{k}={_show(v)}" for k, v in e["Details"].items() if k != "policy")
        print(f"{e['Timestamp'].isoformat(timespec='seconds')}  v{e['Version']:<3} {e['Type']:<22} "
              f"by {who} (request {actor.get('request_id') or '-'}, ip {actor.get('source_ip') or '-'}, "
              f"agent {(actor.get('user_agent') or '-')[:40]})" + (f"\n{'':28}{extra}" if extra else ""))
    return 0


def _show(value) -> str:
    """A detail of an event, compactly: ISO times, {k: v} without Python reprs."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _store_arguments(p) -> None:
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None, help="postgresql://user:pass@host:port/db")


def _regions_parser(sub) -> None:
    p = sub.add_parser("regions", help="how far each Region of a data dir or store has followed "
                                       "the others (multi-Region replication), offline")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None)
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--endpoint", default=None,
                   help="ask a running node instead (GET /ledger/v1/replication, signed with "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY): the lag in milliseconds")
    p.add_argument("--region", default=None, help="the Region to sign for (with --endpoint)")


def _regions_of_node(args: argparse.Namespace) -> int:
    """A running node's replication status: position, events applied, lag p50/p99/max."""
    from urllib.parse import urlsplit

    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = args.endpoint.rstrip("/") + "/ledger/v1/replication"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"keyledger regions: --endpoint takes a node's URL (http://HOST:PORT), not "
              f"{args.endpoint[:100]!r}", file=sys.stderr)
        return 1
    region = args.region or os.environ.get("AWS_DEFAULT_REGION") or Settings().default_region
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(os.environ.get("AWS_ACCESS_KEY_ID", ""),
                          os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                          os.environ.get("AWS_SESSION_TOKEN")), "kms", region).add_auth(request)
    try:
        answer = httpx.get(url, headers=dict(request.headers.items()), timeout=10)
    except httpx.HTTPError as error:
        print(f"keyledger regions: {url}: {error}", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        print(f"keyledger regions: {url}: HTTP {answer.status_code} {answer.text[:200]}",
              file=sys.stderr)
        return 1
    rows = answer.json()["Replication"]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'SOURCE':<16} {'TARGET':<16} {'POSITION':>9} {'APPLIED':>8} {'LAG P50':>9} "
          f"{'LAG P99':>9} {'LAG MAX':>9}")
    for row in rows:
        lags = [f"{row[k]:.1f}ms" if row[k] is not None else "-"
                for k in ("LagP50Ms", "LagP99Ms", "LagMaxMs")]
        print(f"{row['Source']:<16} {row['Target']:<16} {row['Position']:>9} {row['Applied']:>8} "
              f"{lags[0]:>9} {lags[1]:>9} {lags[2]:>9}")
    return 0


def regions(args: argparse.Namespace) -> int:
    """Per (source, target) pair of the store's Regions: the source's ledger position the target
    has applied, the source's head, and how many events are still to read. A running node
    reports its lag in milliseconds at GET /ledger/v1/replication (``--endpoint``)."""
    if args.endpoint:
        return _regions_of_node(args)
    from api.bootstrap import build_service, existing_regions

    settings = Settings.of_store(args)
    names = sorted(existing_regions(settings))
    service = build_service(settings, read_only=True)
    try:
        rows = []
        for target in names:
            recorder = service.region(target).ledger.recorder
            for source in names:
                if source != target:
                    position = recorder.max_tracking_id(f"replication:{source}") or 0
                    head = service.region(source).ledger.recorder.max_notification_id() or 0
                    rows.append({"Source": source, "Target": target, "Position": position,
                                 "Head": head, "Behind": max(head - position, 0)})
    finally:
        service.close()
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'SOURCE':<16} {'TARGET':<16} {'POSITION':>9} {'HEAD':>9} {'BEHIND':>7}")
    for row in rows:
        print(f"{row['Source']:<16} {row['Target']:<16} {row['Position']:>9} {row['Head']:>9} "
              f"{row['Behind']:>7}")
    return 0


def _promote_parser(sub) -> None:
    p = sub.add_parser("promote", help="make a multi-Region replica the primary while the "
                                       "primary's Region is gone (disaster-recovery drills)")
    p.add_argument("key_id")
    p.add_argument("--region", required=True, help="the replica's Region")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None)


def promote(args: argparse.Namespace) -> int:
    """Beyond AWS (which cannot change a primary while its Region is down): the replica
    becomes the primary in the next epoch; the old primary rejoins as its replica when its
    Region comes back. Works beside a running node (it reads the change from its ledger)."""
    from api.bootstrap import build_service, existing_regions, existing_root_key
    from domain.errors import KmsError
    from domain.values import Actor

    os.umask(0o077)
    settings = Settings.of_store(args)
    existing_regions(settings, [args.region])  # (a store and a Region to promote in, not new ones)
    existing_root_key(settings)
    service = build_service(settings)
    try:
        result = service.promote(args.region, args.key_id,
                                 Actor(principal="keyledger promote", user_agent="keyledger-cli"))
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    finally:
        service.close()
    print(f"{result['KeyId']} is the primary now (epoch {result['Epoch']}); replicas: "
          f"{', '.join(result['ReplicaRegions']) or 'none'}")
    if not result["AuditRecordKept"]:
        print("keyledger promote: promoted, but its audit record could not be kept (neither the "
              "audit store nor the spool took it); the record is in the log above",
              file=sys.stderr)
        return 1
    return 0


def _fork_parser(sub) -> None:
    p = sub.add_parser("fork", help="a new data dir holding the ledger as it was at an instant "
                                    "or a position (fixtures, what-if drills)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None)
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", help="ISO 8601 or epoch seconds: the events committed at or before")
    when.add_argument("--position", type=int, help="the events at or before this position of "
                                                   "the Region's ledger (needs one --region)")
    p.add_argument("--region", action="append", help="only these Regions (repeatable)")
    p.add_argument("--out", required=True, help="the new data dir (must not exist)")


def fork(args: argparse.Namespace) -> int:
    """Copy a data dir's (or store's) ledgers as they were into a new SQLite data dir, with the
    root key, the identities file and the Regions' data keys; `keyledger serve --data-dir OUT`
    serves it like any data dir. Not copied: the audit log and its chain (the fork starts its
    own), snapshots (rebuilt on use). A key crypto-shredded since stays unusable in the fork."""
    import shutil

    from api.bootstrap import build_service, existing_regions, existing_root_key
    from application.forensics import past_instant

    os.umask(0o077)
    settings = Settings.of_store(args)
    out = Path(args.out).expanduser().resolve()
    if out.exists():
        print(f"keyledger fork: {out} exists; name a new directory", file=sys.stderr)
        return 1
    named = list(dict.fromkeys(args.region or ()))
    if args.position is not None and len(named) != 1:
        print("keyledger fork: --position is a position of one Region's ledger: name it with "
              "--region", file=sys.stderr)
        return 1
    # as history --at reads it (to the end of a whole second; never the future)
    at = past_instant(args.at, datetime.now(UTC), "--at") if args.at is not None else None
    # the source is only read: no data dir, root key, Region or table is made there
    known = existing_regions(settings, named)  # (NoStore for a Region named without a ledger)
    regions = named or sorted(known)
    existing_root_key(settings)
    source = build_service(settings, read_only=True)
    try:
        out.mkdir(parents=True)
        root_key = Path(settings.root_key_file) if settings.root_key_file else (
            settings.data_path / "root.key")
        if root_key.exists():  # (KEYLEDGER_ROOT_KEY in the environment: nothing to copy)
            shutil.copyfile(root_key, out / "root.key")
        if settings.identities_path.exists():
            shutil.copyfile(settings.identities_path, out / "identities.json")
        target = build_service(Settings(data_dir=str(out), account_id=settings.account_id,
                                        default_region=settings.default_region))
        try:
            copied = source.fork_into(target, regions, lambda region, position, event: (
                event.timestamp <= at if at is not None else position <= args.position))
        finally:
            target.close()
    finally:
        source.close()
    for region, count in copied.items():
        print(f"{region}: {count} events")
    print(f"forked into {out}: keyledger serve --data-dir {out}")
    return 0


def _verify_parser(sub) -> None:
    p = sub.add_parser("verify", help="check offline that no ledger event or audit record was "
                                      "edited, removed, inserted or reordered, and that every "
                                      "snapshot loads what its events make")
    _store_arguments(p)
    p.add_argument("--public-key", required=True,
                   help="the checkpoint public key (PEM) exported by `keyledger checkpoint-key`")
    p.add_argument("--region", action="append", default=None,
                   help="only this region (repeatable); default: every region of the store")
    p.add_argument("--anchored", action="store_true",
                   help="fail when any record is covered by no signed checkpoint (a stopped "
                        "server's store has none; a store whose checkpoints or chain were "
                        "deleted has them)")


def _checkpoint_key_parser(sub) -> None:
    p = sub.add_parser("checkpoint-key", help="print the public key that signs the ledger's "
                                              "checkpoints (PEM); keep it outside the store")
    _store_arguments(p)


#: the most a --public-key file is read of (an Ed25519 public key's PEM is 113 bytes)
_PUBLIC_KEY_BYTES = 16_384


def verify(args: argparse.Namespace) -> int:
    """Exit 0: every region verified; 1: tampering found (or no ledger there); 2: could not run."""
    from api.bootstrap import NoStore, existing_regions
    from infrastructure.ledger_chain import load_public_key
    from infrastructure.ledger_chain import verify as verify_store
    from infrastructure.persistence import StoreConfig

    settings = Settings.of_store(args)
    try:
        with open(args.public_key, "rb") as pem:
            text = pem.read(_PUBLIC_KEY_BYTES + 1)  # (a device that never ends, e.g. /dev/zero)
        if len(text) > _PUBLIC_KEY_BYTES:
            raise ValueError(f"more than {_PUBLIC_KEY_BYTES} bytes: no PEM public key")
        public_key = load_public_key(text)
    except (OSError, ValueError) as error:
        print(f"keyledger verify: cannot read the public key {args.public_key}: {error}",
              file=sys.stderr)
        return 2
    regions = list(dict.fromkeys(args.region)) if args.region else None  # (each once)
    try:
        existing_regions(settings, regions or ())
        report = verify_store(StoreConfig(settings.data_path, settings.store), public_key,
                              regions, anchored=args.anchored)
    except NoStore:
        raise  # (main)
    except Exception as error:  # an unreachable or unreadable store: not a verdict
        print(f"keyledger verify: cannot read the store: {error}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def checkpoint_key(args: argparse.Namespace) -> int:
    from cryptography.exceptions import InvalidTag

    from api.bootstrap import existing_regions, existing_root_key
    from infrastructure.ledger_chain import SigningKeyLost, checkpoint_public_key
    from infrastructure.persistence import StoreConfig

    os.umask(0o077)
    settings = Settings.of_store(args)
    existing_regions(settings)  # the signing key is made in an existing store, never a new one
    root_key = existing_root_key(settings)
    try:
        pem = checkpoint_public_key(StoreConfig(settings.data_path, settings.store), root_key,
                                    settings.default_region)
    except InvalidTag:
        print("keyledger checkpoint-key: the checkpoint signing key cannot be unsealed with this "
              "root key", file=sys.stderr)
        return 1
    except SigningKeyLost as lost:
        print(f"keyledger checkpoint-key: {lost}", file=sys.stderr)
        return 1
    sys.stdout.write(pem.decode())
    return 0


def run() -> None:
    """The ``keyledger`` program. A reader of its output that stops early (``| head``) ends
    the command quietly, with the status a program that SIGPIPE ended has (141), as Python's
    documentation does it: SIGPIPE's default action would end the process as well whenever
    a socket it writes to (a PostgreSQL store's connection) is cut, with no word of why."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (for the flush at exit)
        code = 128 + signal.SIGPIPE
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keyledger", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _history_parser(sub)
    add_who_can_parser(sub)
    _verify_parser(sub)
    _regions_parser(sub)
    _promote_parser(sub)
    _fork_parser(sub)
    _checkpoint_key_parser(sub)
    add_audit_parser(sub)
    args = parser.parse_args(argv)
    from api.bootstrap import NoStore
    from domain.errors import KmsError
    from infrastructure.root_key import RootKeyError

    command = args.command + (" export" if getattr(args, "audit_command", None) else "")
    store = getattr(args, "store", None)
    if store and not store.startswith(("postgresql://", "postgres://")):
        print(f"keyledger {command}: --store takes a postgresql:// URL, not {store[:100]!r}",
              file=sys.stderr)
        return 1
    if store:
        try:  # (its port and host are read when the store is opened: say what is wrong now)
            parsed = urllib.parse.urlparse(store)
            _ = (parsed.port, parsed.hostname)
        except ValueError:  # (its text may quote a password cut at a "/", "?" or "#")
            print(f"keyledger {command}: --store is not a URL keyledger can use: its host or "
                  "port cannot be read (percent-encode a user name or password that holds "
                  "/ ? # @ or :)", file=sys.stderr)
            return 1
    try:
        return _dispatch(args)
    except NoStore as error:  # a command that only reads, pointed at no store: nothing created
        print(f"keyledger {command}: {error}", file=sys.stderr)
        return 1  # (verify too: no ledger where one was expected is a failed verification)
    except RootKeyError as error:  # (a root key file others may read, or no key in it)
        print(f"keyledger {command}: {error}", file=sys.stderr)
        return 2
    except KmsError as error:  # a bad argument (fork --at yesterday), as audit and history say it
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    except _unreadable_store_errors() as error:  # unreachable or damaged: verify says which
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"keyledger {command}: cannot read the store: {detail[:300]} (keyledger verify "
              "checks whether it was tampered with)", file=sys.stderr)
        return 2


def _unreadable_store_errors() -> tuple[type[BaseException], ...]:
    """What reading an unreachable or damaged store raises: the database's errors, and a stored
    event or record that no longer decodes (imported only when a command failed)."""
    import sqlite3

    import orjson
    import psycopg
    from eventsourcing.persistence import MapperDeserialisationError, PersistenceError

    return (sqlite3.Error, psycopg.Error, PersistenceError, MapperDeserialisationError,
            orjson.JSONDecodeError)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        serve(args)
        return 0
    if args.command == "who-can":
        return who_can(args)
    if args.command == "verify":
        return verify(args)
    if args.command == "regions":
        return regions(args)
    if args.command == "promote":
        return promote(args)
    if args.command == "fork":
        return fork(args)
    if args.command == "checkpoint-key":
        return checkpoint_key(args)
    if args.command == "audit":
        return audit(args)
    return history(args)


if __name__ == "__main__":
    sys.exit(main())
