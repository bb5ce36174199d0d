"""What checking the snapshots costs ``keyledger verify``.

Builds a store through the application itself (the handlers a request reaches: every write goes
through the group committer, and the ledger snapshots each key every 50 events): K keys of E
events each (CreateKey, then TagResource, UntagResource and every 10th an
UpdateKeyDescription), then chains and checkpoints it as a server does. Then times
:func:`infrastructure.ledger_chain.verify` on it, alternately with the snapshot check and
without it (its hook made a no-op), and prints the median and the fastest of each.

Run (pinned to one CPU, as benchmarks.md's figures are)::

    taskset -c 1 .venv/bin/python benchmarks/verify_snapshots_bench.py [--keys 20]
        [--events 500] [--repeat 5] [--store postgresql://…] [--data-dir DIR]

Progress goes to stderr, the report to stdout. A ``--data-dir`` that already holds a store is
measured as it is (nothing is built).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.bootstrap import build_service  # noqa: E402
from api.settings import Settings  # noqa: E402
from application.authorization import Caller  # noqa: E402
from application.context import RequestContext  # noqa: E402
from domain.principals import Principal  # noqa: E402
from infrastructure import ledger_chain  # noqa: E402
from infrastructure.ledger_chain import LedgerChainer, verify  # noqa: E402
from infrastructure.persistence import StoreConfig  # noqa: E402

ACCOUNT = "111122223333"
REGION = "us-east-1"


def context() -> RequestContext:
    caller = Caller.of(Principal.root(ACCOUNT), "AKIABENCH")
    return RequestContext(ACCOUNT, REGION, str(uuid.uuid4()), caller, "AKIABENCH")


def build(settings: Settings, keys: int, events: int) -> None:
    service = build_service(settings)
    call = service.handler
    started = time.perf_counter()
    try:
        for k in range(keys):
            key_id = call("CreateKey")(context(), {"Description": f"k{k}"})["KeyMetadata"]["KeyId"]
            for n in range(2, events + 1):
                if n % 10 == 0:
                    call("UpdateKeyDescription")(context(), {"KeyId": key_id,
                                                             "Description": f"v{n}"})
                elif n % 2 == 0:
                    call("TagResource")(context(), {"KeyId": key_id, "Tags": [
                        {"TagKey": f"t{n % 40}", "TagValue": str(n)}]})
                else:
                    call("UntagResource")(context(), {"KeyId": key_id,
                                                      "TagKeys": [f"t{(n - 1) % 40}"]})
            rate = (k + 1) * events / (time.perf_counter() - started)
            print(f"  {k + 1}/{keys} keys ({rate:.0f} events/s)", file=sys.stderr, flush=True)
    finally:
        service.close()
    chainer = LedgerChainer.for_store(settings.data_path, settings.store)
    try:
        while chainer.chain(REGION):
            pass
        chainer.chain(REGION, final=True)
    finally:
        chainer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="verify-snapshots-")) / "data"
    settings = Settings(data_dir=str(data_dir), store=args.store)
    config = StoreConfig(settings.data_path, settings.store)
    if REGION not in config.known_regions():
        print(f"building {args.keys} keys x {args.events} events in {config.describe()}",
              file=sys.stderr)
        build(settings, args.keys, args.events)
    chainer = LedgerChainer.for_store(settings.data_path, settings.store)
    try:
        public_key = chainer.public_key_pem(REGION)
    finally:
        chainer.close()

    check = ledger_chain._RegionVerifier._check_snapshots
    times: dict[str, list[float]] = {"with the snapshot check": [], "without it": []}
    summaries = {}
    for _ in range(args.repeat):
        for label, hook in (("with the snapshot check", check), ("without it", lambda self: None)):
            ledger_chain._RegionVerifier._check_snapshots = hook
            started = time.perf_counter()
            report = verify(config, public_key, [REGION])
            times[label].append(time.perf_counter() - started)
            assert report.ok, report.lines()
            summaries[label] = report.regions[0].summary()
    ledger_chain._RegionVerifier._check_snapshots = check

    print(f"store: {config.describe()}")
    for label, samples in times.items():
        print(f"{label}: median {statistics.median(samples):.3f} s, fastest {min(samples):.3f} s "
              f"({len(samples)} runs)\n  {summaries[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
