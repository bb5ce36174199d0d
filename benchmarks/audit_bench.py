"""Audit ingestion: how many records per second the group-committed audit log stores durably
on SQLite, and how much the store grows per million records (records, chain and indexes).

    .venv/bin/python benchmarks/audit_bench.py [--records 200000] [--concurrency 256]

Records are real Encrypt records (application.audit_records), submitted from one event loop
with ``concurrency`` requests in flight, each awaiting its durable commit, as the server's
requests do. Then the region is chained (``LedgerChainer``, as a server's maintenance thread
does within a second) and signed, and the files are measured again after a WAL checkpoint:
the growth per million records with the chain. The figures print; nothing is checked here.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from application.audit import AuditLog, audit_row, new_event_id
from application.audit_records import api_call_record
from domain.principals import Principal
from infrastructure.audit_store import SQLiteAuditStore
from infrastructure.ledger_chain import LedgerChainer

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _row(i: int):
    now = datetime.now(UTC)
    record = api_call_record(
        principal=Principal.root(ACCOUNT), access_key_id="AKIAEXAMPLE0000000001", account=ACCOUNT,
        region="us-east-1", operation="Encrypt",
        params={"KeyId": KEY, "Plaintext": b"x" * 1024, "EncryptionContext": {"app": "bench"}},
        result={"CiphertextBlob": b"c", "KeyId": KEY, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        error_code=None, error_message=None, event_time=now, event_id=new_event_id(),
        request_id=f"{i:08x}-0000-0000-0000-000000000000", source_ip="10.0.0.7",
        user_agent="Boto3/1.44.18 md/Botocore#1.44.18 ua/2.1 os/linux lang/python#3.11.7",
        resources=(KEY,), additional={"keyMaterialId": "ab" * 32},
    )
    return audit_row(record, now, ACCOUNT, (KEY,), f"arn:aws:iam::{ACCOUNT}:root", record["requestID"])


async def _ingest(log: AuditLog, rows, concurrency: int) -> float:
    queue = iter(rows)

    async def worker() -> None:
        for row in queue:
            await log.record(row)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    rows = [_row(i) for i in range(args.records)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "regions" / "us-east-1"
        folder.mkdir(parents=True)
        log = AuditLog(SQLiteAuditStore(folder / "audit.db"))
        elapsed = asyncio.run(_ingest(log, rows, args.concurrency))
        log.close()
        stored = _size(folder)
        chainer = LedgerChainer.for_store(Path(tmp), None)
        started = time.perf_counter()
        chained = 0
        while (n := chainer.chain("us-east-1", final=True)) > 0:
            chained += n
        chain_elapsed = time.perf_counter() - started
        chainer.close()
        with_chain = _size(folder)
    record_bytes = sum(len(r.record) for r in rows) / len(rows)
    print(f"audit ingestion (SQLite, synchronous=FULL, {args.concurrency} in flight): "
          f"{args.records / elapsed:,.0f} records/s ({args.records:,} in {elapsed:.2f} s)")
    print(f"chaining: {chained / chain_elapsed:,.0f} records/s ({chained:,} in {chain_elapsed:.2f} s)")
    print(f"record: {record_bytes:.0f} bytes of canonical JSON; store: "
          f"{stored / args.records:.0f} bytes per record (table and indexes), "
          f"{with_chain / args.records:.0f} with the chain = "
          f"{with_chain / args.records:.0f} MB per million records")


def _size(folder: Path) -> int:
    """The region's audit.db after a WAL checkpoint (its pages, not its WAL)."""
    db = sqlite3.connect(folder / "audit.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith("audit.db"))

if __name__ == "__main__":
    main()
