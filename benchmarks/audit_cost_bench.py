"""Where the durable audit record's CPU goes, per Encrypt request, in process.

keyledger's front end is driven directly, as the server's HTTP protocol drives it
(``KmsFrontend.answer_now``, answering once the record is durable), with 16 requests
(``--in-flight``) in flight on one event loop (as wrk's connections keep them in
``http_bench.py``), from a pool
of 256 distinct pre-signed 1 KiB Encrypt requests (``auth_bench.build``: SigV4 verified, the
default key policy evaluated). The process is pinned to one CPU and its CPU time (every
thread: the loop, the audit writer) is divided by the requests. Each variant runs in a process
of its own, the variants taking turns, ``--rounds`` times; the figure is the fastest round.

* ``no-audit``: the front end skips the audit record (what a request costs without it);
* ``build``: the record is built (``api_call_record``, ``audit_row``) and awaited, but
  ``AuditLog.record`` returns at once: no hand-over, no writer thread;
* ``no-store``: handed to the writer thread and woken as served, but the store writes nothing;
* ``served``: as the server runs it: SQLite, ``synchronous=FULL``, group commit.

Differences: ``build − no-audit`` is building the record, ``no-store − build`` the hand-over
to the writer and the wake-up, ``served − no-store`` the SQLite store. After the ``served``
rounds the region's records are chained (``LedgerChainer``, as the server's maintenance thread
does within a second) and the chain's CPU per record printed: the server pays it too.

    .venv/bin/python benchmarks/audit_cost_bench.py [--requests 16000] [--rounds 5] [--cpu 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

VARIANTS = ("no-audit", "build", "no-store", "served")
IN_FLIGHT = 16  # requests in flight (--in-flight): as wrk's connections


def _patch(variant: str) -> None:
    """Measurement seams, in this process only."""
    if variant == "no-audit":
        from api.app import KmsFrontend

        def no_records(self, scope, headers, request_id, operation, context, *args, **kwargs):
            return context.region, []  # (nothing to store: a future already done)

        KmsFrontend._rows = no_records
    elif variant == "build":
        import asyncio

        from application.audit import AuditLog

        def submit(self, row, kept: bool = False) -> asyncio.Future:
            stored = asyncio.get_running_loop().create_future()
            stored.set_result(None)
            return stored

        AuditLog.submit = submit
    elif variant == "no-store":
        from infrastructure.audit_store import SQLiteAuditStore

        SQLiteAuditStore.append = lambda self, rows: None


def one(variant: str, requests: int, cpu: int, in_flight: int) -> dict:
    import auth_bench

    os.sched_setaffinity(0, {cpu})
    tmp = Path(tempfile.mkdtemp(prefix="keyledger-audit-cost-"))
    _patch(variant)
    app, driver, signed = auth_bench.build("sigv4", tmp, 256)
    loop = driver.loop

    async def connection(offset: int, n: int) -> None:
        for i in range(n):
            scope, body = signed[(i * in_flight + offset) % len(signed)]
            answered = loop.create_future()
            later = app.answer_now(scope, body, lambda status, payload, request_id,
                                   answered=answered: answered.set_result(status))
            if later is not None:  # (not answered in place: as the server does, in a task)
                await later
            if await answered != 200:
                raise SystemExit(f"{variant}: an Encrypt was refused")

    async def load() -> None:
        await asyncio.gather(*(connection(c, requests // in_flight) for c in range(in_flight)))

    cpu_started = time.process_time()
    wall_started = time.perf_counter()
    driver.loop.run_until_complete(load())
    result = {"cpu_us": (time.process_time() - cpu_started) / requests * 1e6,
              "wall_us": (time.perf_counter() - wall_started) / requests * 1e6}
    if variant == "served":
        from infrastructure.ledger_chain import LedgerChainer

        app.service.close()
        chainer = LedgerChainer.for_store(tmp / "sigv4", None)
        chained, cpu_started = 0, time.process_time()
        while (n := chainer.chain("us-east-1", final=True)) > 0:
            chained += n
        result["chain_us"] = (time.process_time() - cpu_started) / max(chained, 1) * 1e6
        result["chained"] = chained
        chainer.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=1)
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.requests, args.cpu, args.in_flight)))
        return 0
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--one", variant, "--requests", str(args.requests),
                 "--cpu", str(args.cpu), "--in-flight", str(args.in_flight)],
                check=True, capture_output=True, text=True).stdout
            runs[variant].append(json.loads(out.strip().splitlines()[-1]))
    best = {v: min(r["cpu_us"] for r in rs) for v, rs in runs.items()}
    median = {v: sorted(r["cpu_us"] for r in rs)[len(rs) // 2] for v, rs in runs.items()}
    print(f"audit cost per Encrypt, in process: {args.in_flight} in flight, {args.requests} requests "
          f"a round, {args.rounds} rounds, CPU {args.cpu}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'variant':10} {'CPU µs/req (best)':>18} {'median':>8}")
    for v in VARIANTS:
        print(f"{v:10} {best[v]:18.1f} {median[v]:8.1f}")
    chain = min(r["chain_us"] for r in runs["served"])
    print(f"building the record          {best['build'] - best['no-audit']:6.1f} µs")
    print(f"hand-over and wake-up        {best['no-store'] - best['build']:6.1f} µs")
    print(f"SQLite store (group commit)  {best['served'] - best['no-store']:6.1f} µs")
    print(f"hash chain (maintenance)     {chain:6.1f} µs per record")
    print(f"audit in all                 {best['served'] - best['no-audit'] + chain:6.1f} µs per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
