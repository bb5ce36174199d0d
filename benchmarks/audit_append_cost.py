"""What the audit store's group commit costs per record, in process: the calling thread's CPU
(user + system) and wall time per record of ``AuditStore.append``, by group size.

    .venv/bin/python benchmarks/audit_append_cost.py [--records 20000] [--groups 8,16,64]
        [--dir DIR] [--postgres URL]

The records are Encrypt records as the front end builds them (``api_call_record``, a boto3
user agent, ~950 bytes). Each group size is measured on:

* ``sqlite FULL``: ``SQLiteAuditStore`` as the server opens it (WAL, ``synchronous=FULL``: a
  ``fdatasync`` per commit);
* ``sqlite OFF``: the same store with ``synchronous=OFF`` (no flush): what SQLite's rows,
  indexes and WAL writes cost without the durable write;
* ``postgres`` (with ``--postgres``): ``PostgresAuditStore`` in a fresh schema; the CPU is the
  client's (psycopg, the socket), PostgreSQL's own processes are not counted.

The chain (``infrastructure.ledger_chain``) is not run: its cost per record is printed by
``audit_cost_bench.py``. Pin the process (``taskset -c 1``) and keep ``--dir`` on the disk
the data dir uses.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from application.audit import audit_row, new_event_id  # noqa: E402
from application.audit_records import api_call_record  # noqa: E402
from domain.principals import Principal  # noqa: E402
from infrastructure.audit_store import PostgresAuditStore, SQLiteAuditStore  # noqa: E402

ACCOUNT, REGION = "111122223333", "us-east-1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/41dbe6d0-2fbc-40a7-a746-4ae8862b6cc8"
USER_AGENT = ("Boto3/1.44.18 md/Botocore#1.44.18 ua/2.1 os/linux#6.18.44 md/arch#x86_64 "
              "lang/python#3.11.7 md/pyimpl#CPython cfg/retry-mode#standard Botocore/1.44.18")


def encrypt_rows(count: int) -> list:
    """``count`` distinct Encrypt records, stored form (AuditRow)."""
    principal = Principal.root(ACCOUNT)
    rows = []
    for _ in range(count):
        now = datetime.now(UTC)
        record = api_call_record(
            principal=principal, access_key_id="AKIABENCHROOT0000001", account=ACCOUNT,
            region=REGION, operation="Encrypt",
            params={"KeyId": KEY_ARN.rsplit("/", 1)[1], "Plaintext": b"x" * 1024},
            result={"KeyId": KEY_ARN, "CiphertextBlob": b"c" * 1100,
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
            error_code=None, error_message=None, event_time=now, event_id=new_event_id(),
            request_id=new_event_id(), source_ip="127.0.0.1", user_agent=USER_AGENT,
            resources=(KEY_ARN,), additional={"keyMaterialId": "ab" * 32})
        rows.append(audit_row(record, now, ACCOUNT, (KEY_ARN,), principal.arn,
                              record["requestID"]))
    return rows


def _thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def measure(store, rows: list, group: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per record of appending ``rows`` ``group`` at a time."""
    batches = [rows[i:i + group] for i in range(0, len(rows), group)]
    cpu, wall = _thread_cpu(), time.perf_counter()
    for batch in batches:
        store.append(batch)
    return ((_thread_cpu() - cpu) / len(rows) * 1e6, (time.perf_counter() - wall) / len(rows) * 1e6)


def postgres_store(url: str):
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    schema = "keyledger_append_cost"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    return PostgresAuditStore(conninfo_to_dict(url), schema), schema


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20_000, help="records per measurement")
    p.add_argument("--groups", default="8,16,64", help="records per commit (comma-separated)")
    p.add_argument("--dir", default=None, help="where the SQLite files go (default: a temp dir)")
    p.add_argument("--postgres", metavar="URL", help="also measure PostgresAuditStore there")
    args = p.parse_args(argv)
    groups = [int(g) for g in args.groups.split(",")]
    rows = encrypt_rows(args.records)
    size = sum(len(row.record) for row in rows) / len(rows)
    print(f"{args.records} Encrypt records per measurement, {size:.0f} bytes of record each")
    print(f"{'store':<13} {'group':>5} {'CPU µs/record':>14} {'wall µs/record':>15} "
          f"{'file bytes/record':>18}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for sync in ("FULL", "OFF"):
            for group in groups:
                path = Path(tmp) / f"audit-{sync}-{group}.db"
                store = SQLiteAuditStore(path)
                store._db.execute(f"PRAGMA synchronous={sync}")
                cpu, wall = measure(store, rows, group)
                store.close()
                grown = sum(f.stat().st_size for f in Path(tmp).glob(f"{path.name}*"))
                print(f"{'sqlite ' + sync:<13} {group:>5} {cpu:>14.1f} {wall:>15.1f} "
                      f"{grown / len(rows):>18.0f}")
    if args.postgres:
        for group in groups:
            store, schema = postgres_store(args.postgres)
            cpu, wall = measure(store, rows, group)
            store.close()
            print(f"{'postgres':<13} {group:>5} {cpu:>14.1f} {wall:>15.1f} {'':>18}")
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        print(f"(psycopg implementation: {psycopg.pq.__impl__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
