"""Time travel benchmark: the state of a key with 10,000 events as of random instants.

Builds one key through the application itself (the handlers a request reaches, so every
write goes through the group committer and the ledger snapshots the key every 50 events):
CreateKey, then N-1 events alternating TagResource and UntagResource (every 10th an
UpdateKeyDescription), so the key ends with N events. Then asks
:func:`application.forensics.key_state_at` for the state at random instants between the
key's first and last event (uniformly over the versions: T is an event's own timestamp or
the middle of two) and prints p50/p95/max in ms, with its two parts: the version search
(``version_at``: a binary search, one event read per probe) and the rebuild
(``repository.get(id, version=v)`` from the newest snapshot at or below v). On PostgreSQL
state-at runs the search and the rebuild's reads as one query instead
(infrastructure.ledger_recorder); the two parts are then those of the event-by-event path
(SQLite's, and PostgreSQL's fallback).

Run: ``.venv/bin/python benchmarks/time_travel_bench.py [--events 10000] [--samples 1000]
[--store postgresql://…] [--data-dir DIR]``. Progress goes to stderr, the report to stdout;
``--json`` prints the figures as JSON. The target (issue 10): p50 ≤ 5 ms for 10,000 events.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.bootstrap import build_service  # noqa: E402
from api.settings import Settings  # noqa: E402
from application import forensics  # noqa: E402
from application.authorization import Caller  # noqa: E402
from application.context import RequestContext  # noqa: E402
from application.forensics import key_state_at, rebuild_at, version_at  # noqa: E402
from domain.principals import Principal  # noqa: E402

ACCOUNT = "111122223333"
REGION = "us-east-1"
TARGET_P50_MS = 5.0


def context() -> RequestContext:
    caller = Caller.of(Principal.root(ACCOUNT), "AKIABENCH")
    return RequestContext(ACCOUNT, REGION, str(uuid.uuid4()), caller, "AKIABENCH")


def build(service, events: int) -> str:
    call = service.handler
    key_id = call("CreateKey")(context(), {"Description": "time travel"})["KeyMetadata"]["KeyId"]
    started = time.perf_counter()
    for n in range(2, events + 1):
        if n % 10 == 0:
            call("UpdateKeyDescription")(context(), {"KeyId": key_id, "Description": f"v{n}"})
        elif n % 2 == 0:
            call("TagResource")(context(), {"KeyId": key_id,
                                            "Tags": [{"TagKey": f"t{n % 40}", "TagValue": str(n)}]})
        else:
            call("UntagResource")(context(), {"KeyId": key_id, "TagKeys": [f"t{(n - 1) % 40}"]})
        if n % 1000 == 0:
            rate = (n - 1) / (time.perf_counter() - started)
            print(f"  {n} events ({rate:.0f}/s)", file=sys.stderr, flush=True)
    return key_id


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--store", default=None, help="postgresql://… (default: SQLite)")
    parser.add_argument("--data-dir", default=None, help="default: a temporary directory")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    temporary = None
    data_dir = args.data_dir
    if data_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="keyledger-timetravel-")
        data_dir = temporary.name
    service = build_service(Settings(data_dir=data_dir, store=args.store))
    try:
        print(f"building a key with {args.events} events in "
              f"{'PostgreSQL' if args.store else 'SQLite'} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        key_id = build(service, args.events)
        built = time.perf_counter() - started
        region = service.region(REGION)
        ledger = region.ledger
        stamps = [e.timestamp for e in ledger.repository.event_store.get(key_id)]
        assert len(stamps) == args.events, len(stamps)
        snapshots = len(list(ledger.snapshots.get(key_id))) if ledger.snapshots else 0

        rng = random.Random(args.seed)
        instants = []
        for _ in range(args.samples):
            v = rng.randrange(1, args.events + 1)
            at = stamps[v - 1] if v == args.events or rng.random() < 0.5 else (
                stamps[v - 1] + (stamps[v] - stamps[v - 1]) / 2)
            instants.append((v, at))

        for v, at in instants[:20]:  # warm up the code paths (and check the answers)
            assert key_state_at(region, key_id, at)["Version"] == v
        forensics.forget_timelines()
        # a serving process: the timestamps its searches read stay known (events never change)
        warm = []
        for v, at in instants:
            t0 = time.perf_counter()
            state = key_state_at(region, key_id, at)
            warm.append((time.perf_counter() - t0) * 1000)
            assert state["Version"] == v, (state["Version"], v)
        # every query from nothing: no timestamp known; and its two parts
        cold, search, rebuild = [], [], []
        for v, at in instants:
            forensics.forget_timelines()
            t0 = time.perf_counter()
            key_state_at(region, key_id, at)
            t1 = time.perf_counter()
            forensics.forget_timelines()
            found = version_at(ledger, key_id, at)
            t2 = time.perf_counter()
            rebuild_at(ledger, key_id, found)
            t3 = time.perf_counter()
            assert found == v
            cold.append((t1 - t0) * 1000)
            search.append((t2 - t1) * 1000)
            rebuild.append((t3 - t2) * 1000)
    finally:
        service.close()
        if temporary is not None:
            temporary.cleanup()

    report = {
        "store": "postgresql" if args.store else "sqlite",
        "events": args.events,
        "snapshots": snapshots,
        "build_seconds": round(built, 1),
        "samples": args.samples,
        "state_at_ms": {k: round(v, 3) for k, v in percentiles(warm).items()},
        "state_at_cold_ms": {k: round(v, 3) for k, v in percentiles(cold).items()},
        "version_search_cold_ms": {k: round(v, 3) for k, v in percentiles(search).items()},
        "rebuild_ms": {k: round(v, 3) for k, v in percentiles(rebuild).items()},
        "target_p50_ms": TARGET_P50_MS,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        p = report["state_at_ms"]
        print(f"state-at on {report['store']}: a key with {args.events} events "
              f"({snapshots} snapshots), {args.samples} random instants")
        print(f"  state-at (serving)       p50 {p['p50']:.2f} ms  p95 {p['p95']:.2f} ms  "
              f"max {p['max']:.2f} ms   target p50 <= {TARGET_P50_MS} ms: "
              f"{'OK' if p['p50'] <= TARGET_P50_MS else 'MISS'}")
        for name, label in (("state_at_cold_ms", "state-at, nothing known"),
                            ("version_search_cold_ms", "  version search"),
                            ("rebuild_ms", "  rebuild at v")):
            q = report[name]
            print(f"  {label:<24} p50 {q['p50']:.2f} ms  p95 {q['p95']:.2f} ms  max {q['max']:.2f} ms")
        if args.store:
            print("  (on PostgreSQL state-at is one query: the two parts are the event-by-event "
                  "path's)")
        print(f"  (built in {built:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
