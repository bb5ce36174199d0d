"""``keyledger history KEY --at T`` and ``keyledger who-can ACTION KEY [--at T]``: the ledger
API's state and access routes, offline on a data dir or store (application.forensics)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from api.settings import Settings


def as_json(value: Any) -> str:
    """What a command prints with --json: times as the ledger API writes them (ISO 8601, UTC
    as ``Z``), so the two answers to one question are the same text."""
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            text = item.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return str(item)

    return json.dumps(value, default=default, indent=2)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def key_named(args: argparse.Namespace, settings: Settings):
    """(the key KEY names, the Region to read): KEY is a key id or key ARN, never an alias
    (application.audit_query.key_reference, as the ledger API's key routes); a key ARN's
    Region is the one read (a --region given too must match it), else --region or the default
    Region. ValidationException for an alias or a mismatch; NoStore if that Region has no
    ledger in the store (when a Region was named)."""
    from api.bootstrap import existing_regions
    from application.audit_query import key_reference

    named = key_reference(args.key_id, f"keyledger {args.command}", "this command")
    region = named.region_read(args.region, settings.default_region)
    existing_regions(settings, [region] if args.region or named.region is not None else ())
    return named, region


def _run(args: argparse.Namespace, read) -> tuple[int, Any]:
    """``read(forensics, region, at, key_id, account)`` on a service built on the data dir or
    store (``account``: a key ARN's, which must own the key; None for a key id)."""
    from api.bootstrap import build_service
    from application.forensics import Forensics, past_instant
    from domain.errors import KmsError

    os.umask(0o077)
    settings = Settings.of_store(args)
    try:
        named, region = key_named(args, settings)
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1, None
    service = build_service(settings, read_only=True)
    try:
        at = past_instant(args.at, datetime.now(UTC), "--at")
        return 0, read(Forensics(service, settings.default_region), region, at, named.key_id,
                       named.account)
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1, None
    finally:
        service.close()


# -- history --at ----------------------------------------------------------------------------


def add_at_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", default=None,
                        help="print the key's state at this instant (ISO 8601 or epoch seconds) "
                             "instead of its events")


def history_at(args: argparse.Namespace) -> int:
    status, state = _run(args, lambda f, region, at, key_id, account: (
        region, at, f.key_state(region, key_id, at, account)))
    if status:
        return status
    region, at, state = state
    if args.json:
        print(as_json(state))
        return 0
    metadata = state["KeyMetadata"]
    print(f"{metadata['KeyId']} in {region} at {at.isoformat()} (version {state['Version']}"
          f"{', deleted' if state['Deleted'] else ''})")
    for name in ("Arn", "KeyState", "Description", "KeySpec", "KeyUsage", "Origin",
                 "CreationDate", "CurrentKeyMaterialId", "DeletionDate", "ValidTo"):
        if name in metadata:
            print(f"  {name:<21} {_when(metadata[name])}")
    rotation = state["KeyRotationStatus"]
    print(f"  {'Rotation':<21} " + (
        f"every {rotation['RotationPeriodInDays']} days, next {_when(rotation['NextRotationDate'])}"
        if rotation["KeyRotationEnabled"] else "disabled"))
    tags = ", ".join(f"{t['TagKey']}={t['TagValue']}" for t in state["Tags"])
    print(f"  {'Tags':<21} {tags or '-'}")
    aliases = ", ".join(a["AliasName"] for a in state["Aliases"])
    print(f"  {'Aliases':<21} {aliases or '-'}")
    print(f"  Grants ({len(state['Grants'])})")
    for grant in state["Grants"]:
        constraints = f" {json.dumps(grant['Constraints'])}" if "Constraints" in grant else ""
        print(f"    {grant['GrantId'][:16]}…  {grant['GranteePrincipal']}  "
              f"{','.join(grant['Operations'])}{constraints}")
    print("  Policy")
    for line in state["Policy"].splitlines():
        print(f"    {line}")
    return 0


# -- who-can ---------------------------------------------------------------------------------


def add_who_can_parser(sub) -> None:
    p = sub.add_parser("who-can", help="every principal that could perform an action on a key "
                                       "(now, or at --at), and through what")
    p.add_argument("action", help="e.g. kms:Decrypt")
    p.add_argument("key_id", metavar="KEY", help="a key id or key ARN (not an alias)")
    p.add_argument("--at", default=None, help="ISO 8601 or epoch seconds (default: now)")
    p.add_argument("--region", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--store", default=None, help="postgresql://user:pass@host:port/db")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _route(entry: dict[str, Any]) -> str:
    if entry["Via"] == "grant":
        return f"grant {entry['GrantId']}"
    if entry["Via"] == "identity-policy":
        through = entry.get("KeyPolicyStatement")
        return (f"identity policy {entry['PolicyName']} / {entry['Statement']}"
                + (f" (key policy {through})" if through else ""))
    return f"key policy {entry['Statement']}"


def _conditions(entry: dict[str, Any]) -> str:
    parts = [json.dumps(c, separators=(",", ":"))
             for c in (entry.get("Conditions"), entry.get("KeyPolicyConditions")) if c]
    text = " and ".join(parts) or "-"
    for deny in entry.get("DeniedWhen", ()):
        text += f"; denied when {json.dumps(deny['Conditions'], separators=(',', ':'))}"
    return text


def who_can(args: argparse.Namespace) -> int:
    status, answer = _run(args, lambda f, region, at, key_id, account: f.who_can(
        region, key_id, args.action, at, account))
    if status:
        return status
    if args.json:
        print(as_json(answer))
        return 0
    rows = answer["Principals"]
    print(f"Who could {answer['Action']} {answer['KeyId']} at {answer['At'].isoformat()} "
          f"(version {answer['Version']}, {answer['KeyState']}): {len(rows)} route(s)")
    if "RefusedByKeyState" in answer:
        print(f"  no one: the key's state refused it ({answer['RefusedByKeyState']})")
    width = max([len(r["Principal"]) for r in rows] + [9])
    for entry in rows:
        print(f"  {entry['Principal']:<{width}}  {_route(entry)}  conditions: {_conditions(entry)}")
    return 0
