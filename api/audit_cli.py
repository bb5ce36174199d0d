"""``keyledger audit`` (query the audit records, offline on a data dir or store) and
``keyledger audit export --out DIR`` (CloudTrail's own file layout)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from api.settings import Settings


def add_audit_parser(sub) -> None:
    p = sub.add_parser("audit", help="the audit records: who did what, when (offline)")
    _filters(p)
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.add_argument("--limit", type=int, default=None, help="at most this many records")
    actions = p.add_subparsers(dest="audit_command")
    export = actions.add_parser("export", help="write the records as CloudTrail log files")
    _filters(export, default=argparse.SUPPRESS)  # given before or after `export`, both count
    export.add_argument("--out", required=True, help="directory to write AWSLogs/… under")


def _filters(p: argparse.ArgumentParser, default: object = None) -> None:
    p.add_argument("--data-dir", default=default)
    p.add_argument("--store", default=default, help="postgresql://user:pass@host:port/db")
    p.add_argument("--region", default=default, help="default: every region of the store")
    p.add_argument("--key", default=default, help="a key id or key ARN (its Region and account)")
    p.add_argument("--principal", default=default, help="a caller's ARN")
    p.add_argument("--event-name", default=default, help="e.g. Decrypt")
    p.add_argument("--since", default=default, help="ISO 8601 or epoch seconds")
    p.add_argument("--until", default=default, help="ISO 8601 or epoch seconds")
    p.add_argument("--errors", action="store_true",
                   default=False if default is None else default, help="failed requests only")


def audit(args: argparse.Namespace) -> int:
    from api.bootstrap import existing_regions
    from application.audit import AuditQuery
    from application.audit_query import AuditFilter, all_records, key_reference, parse_time
    from domain.errors import KmsError
    from infrastructure.persistence import StoreConfig

    os.umask(0o077)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        print(f"keyledger audit: --limit must be at least 1, not {args.limit}", file=sys.stderr)
        return 1
    settings = Settings.of_store(args)
    try:  # a key ARN names its Region (a --region given too must match) and its account
        named = key_reference(args.key, "keyledger audit --key") if args.key else None
        region = named.region_read(args.region, None) if named is not None else args.region
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    known = existing_regions(settings, [region] if region else ())
    store = StoreConfig(settings.data_path, settings.store)
    # every Region's audit store, its ledger readable or not (verify says what is wrong there)
    regions = [region] if region else sorted(set(known) | set(store.audit_regions()))
    try:
        wanted = AuditFilter(account=named.account if named is not None else None,
                             key_id=named.key_id if named is not None else None,
                             principal=args.principal, event_name=args.event_name,
                             start=parse_time(args.since, "--since"),
                             end=parse_time(args.until, "--until"), errors_only=args.errors)
        records: list[dict[str, Any]] = []
        for name in regions:
            audit_store = store.open_audit_store(name)
            try:
                records.extend(all_records(audit_store, AuditQuery, wanted))
            finally:
                audit_store.close()
    except KmsError as error:
        print(f"{error.code}: {error.message}", file=sys.stderr)
        return 1
    records.sort(key=lambda r: r["eventTime"], reverse=True)
    if args.limit is not None:
        records = records[: args.limit]
    if args.audit_command == "export":
        return _export(records, Path(args.out))
    if args.json:
        for record in records:
            print(json.dumps(record, sort_keys=True))
    else:
        for line in _table(records):
            print(line)
    return 0


def _cells(record: dict[str, Any]) -> tuple[str, ...]:
    """A record's columns in the table: time, Region, operation, outcome, keys, who, where."""
    who = record["userIdentity"].get("arn") or record["userIdentity"].get("invokedBy") or (
        f"unauthenticated ({record['userIdentity'].get('accessKeyId', '-')})")
    keys = ",".join(r["ARN"].split(":", 5)[-1].removeprefix("key/")  # key id, alias/NAME
                    for r in record.get("resources", [])) or "-"
    return (record["eventTime"], record["awsRegion"], record["eventName"],
            record.get("errorCode", "OK"), keys, who,
            f"({record.get('sourceIPAddress', '-')}, request {record.get('requestID', '-')})")


def _table(records: list[dict[str, Any]]) -> list[str]:
    """The records as lines whose columns line up (each as wide as its widest cell)."""
    rows = [_cells(record) for record in records]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)] if rows else []
    return ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False))
            + "  " + row[-1] for row in rows]


def _export(records: list[dict[str, Any]], out: Path) -> int:
    from application.audit_query import cloudtrail_file, cloudtrail_files

    files = cloudtrail_files(records)
    show_progress = sys.stderr.isatty()
    added = changed = 0
    for done, (path, window) in enumerate(sorted(files.items()), 1):
        target = out / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            already = target.read_bytes() if target.exists() else None
            data, new = cloudtrail_file(window, already)
            if new:  # (a file that holds them all already is left as it is)
                target.write_bytes(data)
                added, changed = added + new, changed + 1
        except (OSError, ValueError, KeyError, TypeError) as error:  # (the last three: a
            # file already there that is not an export)
            print(f"keyledger audit export: cannot write {target}: {error}", file=sys.stderr)
            return 1
        if show_progress:
            width = 40
            filled = width * done // len(files)
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{len(files)} files",
                  end="", file=sys.stderr, flush=True)
    if show_progress:
        print(file=sys.stderr)
    there = len(records) - added
    print(f"wrote {added} records in {changed} files under {out / 'AWSLogs'}"
          + (f"; {there} of the records were there already" if there else ""))
    return 0
