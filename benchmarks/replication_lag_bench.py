"""Replication lag between two nodes on loopback under a stream of rotations.

Two `keyledger serve` processes — us-east-1 on one, us-west-2 on the other, separate data dirs,
SigV4 on, one identities file with a "nodes" key — are pinned to CPU 0 (``--server-cpus``), the
load generator to CPU 1. ``--keys`` multi-Region keys are made on the east node and replicated
to the west node; then boto3 rotates them on demand (each at most 25 times, AWS's limit) at
``--rate`` rotations a second for ``--duration`` seconds. Each rotation is a shared-property
change the west node must apply from the east node's feed. The west node's
``GET /ledger/v1/replication`` reports the lag of what it applied — from the commit in us-east-1
to the commit in us-west-2 — as p50/p99/max of the last 1,000 events; the figures print.

    .venv/bin/python benchmarks/replication_lag_bench.py [--rate 100] [--duration 10] [--keys 60]

Issue 11's target: p99 ≤ 100 ms on loopback under 100 rotations/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[1]
ROOT = ("AKIABENCHROOT0000001", "bench/root/secret/0000000000000000000001")
NODE = ("AKIABENCHNODE0000001", "bench/node/secret/0000000000000000000001")
EAST, WEST = "us-east-1", "us-west-2"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp: Path, name: str, port: int, region: str, peer: str, cpus: str) -> subprocess.Popen:
    data = tmp / name
    data.mkdir()
    identities = tmp / "identities.json"
    command = ["taskset", "-c", cpus, sys.executable, "-m", "api", "serve", "--port", str(port),
               "--data-dir", str(data), "--identities", str(identities), "--regions", region,
               "--default-region", region, "--peers", peer]
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{name} did not start: see {tmp / (name + '.log')}")


def _replication(port: int, region: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/ledger/v1/replication"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(*ROOT), "kms", region).add_auth(request)
    answer = httpx.get(url, headers=dict(request.headers.items()), timeout=10)
    answer.raise_for_status()
    return answer.json()["Replication"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="rotations a second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=60)
    parser.add_argument("--clients", type=int, default=4,
                        help="rotations in flight at most (each on another key)")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {int(c) for c in args.load_cpus.split(",")})
    tmp = Path(tempfile.mkdtemp(prefix="keyledger-replication-"))
    (tmp / "identities.json").write_text(json.dumps({
        "accounts": {"111122223333": {"root": {"access_keys": [
            {"access_key_id": ROOT[0], "secret_access_key": ROOT[1]}]}}},
        "nodes": {"access_keys": [{"access_key_id": NODE[0], "secret_access_key": NODE[1]}]},
    }))
    east_port, west_port = _port(), _port()
    servers = [
        _serve(tmp, "east", east_port, EAST, f"{WEST}=http://127.0.0.1:{west_port}", args.server_cpus),
        _serve(tmp, "west", west_port, WEST, f"{EAST}=http://127.0.0.1:{east_port}", args.server_cpus),
    ]
    try:
        def client(port: int, region: str):
            return boto3.client("kms", region_name=region, endpoint_url=f"http://127.0.0.1:{port}",
                                aws_access_key_id=ROOT[0], aws_secret_access_key=ROOT[1],
                                config=Config(retries={"max_attempts": 1}))

        east, west = client(east_port, EAST), client(west_port, WEST)
        keys = []
        for _ in range(args.keys):
            key_id = east.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
            east.replicate_key(KeyId=key_id, ReplicaRegion=WEST)
            keys.append(key_id)
        for key_id in keys:  # every replica Enabled before the load starts
            while west.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] != "Enabled":
                time.sleep(0.05)
        total = min(int(args.rate * args.duration), 25 * len(keys))
        clients = [client(east_port, EAST) for _ in range(args.clients)]
        started = time.monotonic()

        def rotate(n: int) -> None:  # rotation n starts at its slot of the schedule
            pause = started + n / args.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            clients[n % args.clients].rotate_key_on_demand(KeyId=keys[n % len(keys)])

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(rotate, range(total)))
        elapsed = time.monotonic() - started
        last = keys[(total - 1) % len(keys)]
        current = east.describe_key(KeyId=last)["KeyMetadata"]["CurrentKeyMaterialId"]
        while west.describe_key(KeyId=last)["KeyMetadata"]["CurrentKeyMaterialId"] != current:
            time.sleep(0.01)
        (pair,) = [p for p in _replication(west_port, WEST) if p["Source"] == EAST]
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
    print(f"replication lag us-east-1 -> us-west-2, two nodes on loopback (servers on CPU "
          f"{args.server_cpus}, load on CPU {args.load_cpus}); load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"  {total} rotations of {len(keys)} multi-Region keys in {elapsed:.1f} s = "
          f"{total / elapsed:.1f} rotations/s")
    print(f"  applied in us-west-2: {pair['Applied']} events; lag of the last 1,000: "
          f"p50 {pair['LagP50Ms']} ms, p99 {pair['LagP99Ms']} ms, max {pair['LagMaxMs']} ms "
          f"(target p99 ≤ 100 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
