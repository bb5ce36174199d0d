"""Access control's cost per Encrypt request, in-process: no sockets, no wrk.

keyledger's ASGI front (``KmsFrontend.__call__``) is driven directly, as
``encrypt_instructions.py`` drives it, with a pool of distinct pre-signed Encrypt requests
(1 KiB plaintexts, signed by botocore's SigV4Auth with the root key of an identities file the
script writes, the headers wrk sends in ``http_bench.py``). Three apps of this tree, each
with its own temp data dir:

* ``sigv4``: ``--auth sigv4`` - the signature verified, the default key policy evaluated
  (the allow decision cached per caller after the first request);
* ``open``: ``--auth open`` - no signature check, the key policy still evaluated;
* ``open-noauthz``: ``--auth open`` with ``Authorizer.check_key`` replaced by a no-op.

Batches of ``--requests`` requests are timed per app, the apps taking turns, ``--repeats``
times; each app's figure is its fastest batch (the least disturbed by anything else on the
machine) and the median is printed beside it. Differences: ``sigv4 − open`` is the SigV4
verification, ``open − open-noauthz`` the authorization (a cached allow), ``sigv4 −
open-noauthz`` both. Also timed on their own: ``Authenticator.authenticate`` for both modes.

    .venv/bin/python benchmarks/auth_bench.py [--requests 2000] [--repeats 15] [--cpu 0]
    .venv/bin/python benchmarks/auth_bench.py --tree /tmp/kl-ac --cpu 1 \
        --legacy before=/tmp/kl-before --legacy moved=/tmp/kl-moved

``--legacy NAME=DIR`` adds an older build (from before access control, so no ``--auth``; it
accepts the signed requests without checking them) imported from its own tree, in a process of
its own: the same requests, the same driver, so it compares with ``open-noauthz``.
``--tree DIR`` measures another checkout's keyledger instead of this one's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH_DIR))

import http_bench as hb  # noqa: E402

HOSTPORT = "127.0.0.1:8080"
URL = f"http://{HOSTPORT}"
MODES = ("sigv4", "open", "open-noauthz")


def _scope(headers: dict[str, str]) -> dict:
    """An HTTP scope as uvicorn's httptools protocol builds it for wrk's request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "state": {},
    }


def _request(op: str, body: str) -> tuple[dict, bytes]:
    headers = hb.signed_headers(URL, op, body)
    headers["Content-Length"] = str(len(body.encode()))
    return _scope(headers), body.encode()


class Driver:
    """Cycles through pre-built requests, awaited one after the other in one coroutine on an
    event loop. A request that never suspends costs exactly what it would stepped with
    ``send(None)``; one that does (an audit write to wait for, a thread hop) waits for it, one
    request at a time."""

    def __init__(self, app, requests: list[tuple[dict, bytes]]) -> None:
        self.app = app
        self.items = []
        for scope, body in requests:
            message = {"type": "http.request", "body": body, "more_body": False}

            async def receive(message=message):
                return message

            self.items.append((scope, receive))
        self.sent: list[dict] = []
        self.i = 0
        self.loop = asyncio.new_event_loop()

    async def _send(self, message) -> None:
        self.sent.append(message)

    def __call__(self) -> tuple[int, bytes]:
        scope, receive = self.items[self.i]
        self.i = (self.i + 1) % len(self.items)
        self.sent.clear()
        self.loop.run_until_complete(self.app(scope, receive, self._send))
        return self.sent[0]["status"], self.sent[1]["body"]

    async def _batch(self, n: int) -> None:
        items, k, send = self.items, len(self.items), self._send
        for _ in range(n):
            scope, receive = items[self.i]
            self.i = (self.i + 1) % k
            await self.app(scope, receive, send)
        self.sent.clear()

    def batch(self, n: int) -> float:
        """µs per request over n requests."""
        started = time.perf_counter()
        self.loop.run_until_complete(self._batch(n))
        return (time.perf_counter() - started) / n * 1e6 if n else 0.0


async def _call(app, scope: dict, body: bytes) -> tuple[int, bytes]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


def build(mode: str, tmp: Path, pool: int) -> tuple[object, Driver, list[tuple[dict, bytes]]]:
    from api.app import create_app
    from api.settings import Settings

    data_dir = tmp / mode
    data_dir.mkdir()
    identities = hb.write_identities(data_dir / "identities.json")
    if mode == "legacy":  # a build from before access control (--tree): no such settings
        app = create_app(Settings(data_dir=str(data_dir)))
    else:
        auth = "sigv4" if mode == "sigv4" else "open"
        app = create_app(Settings(data_dir=str(data_dir), auth=auth, identities=str(identities)))
    if mode == "open-noauthz":
        app.service.authorizer.check_key = lambda *args, **kwargs: None
    loop = asyncio.new_event_loop()
    status, created = loop.run_until_complete(_call(app, *_request("CreateKey", "{}")))
    assert status == 200, created
    key_id = json.loads(created)["KeyMetadata"]["KeyId"]
    rng = random.Random(4321)
    requests = [
        _request("Encrypt", json.dumps({"KeyId": key_id,
                                        "Plaintext": base64.b64encode(rng.randbytes(1024)).decode()}))
        for _ in range(pool)
    ]
    driver = Driver(app, requests)
    status, payload = driver.loop.run_until_complete(_call(app, *requests[0]))
    assert status == 200, payload
    for _ in range(2 * pool):  # warm-up: every request once or more, every cache filled
        status, payload = driver()
        assert status == 200, payload
    return app, driver, requests


def time_authenticate(app, requests, n: int) -> float:
    """µs per ``Authenticator.authenticate`` call over the pool."""
    authenticate = app.authenticator.authenticate
    items = [(scope["query_string"], scope["headers"], body) for scope, body in requests]
    k = len(items)
    started = time.perf_counter()
    for i in range(n):
        qs, headers, body = items[i % k]
        authenticate("POST", "/", qs, headers, body)
    return (time.perf_counter() - started) / n * 1e6


def wall_clock(args: argparse.Namespace) -> None:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with tempfile.TemporaryDirectory(prefix="keyledger-authbench-") as tmp:
        built = {mode: build(mode, Path(tmp), args.pool) for mode in MODES}
        gc.collect()
        gc.freeze()  # as the server's lifespan does
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        auth_times: dict[str, list[float]] = {"sigv4": [], "open": []}
        order = list(MODES)
        for rep in range(args.repeats):
            for mode in order[rep % 3:] + order[:rep % 3]:  # take turns, rotating who goes first
                times[mode].append(built[mode][1].batch(args.requests))
            for mode in auth_times:
                app, _driver, requests = built[mode]
                auth_times[mode].append(time_authenticate(app, requests, args.requests))
        for app, _driver, _requests in built.values():
            app.service.close()
    for spec in args.legacy:  # older builds: each in a child process importing its own tree
        name, _, tree = spec.partition("=")
        out = subprocess.run(
            [sys.executable, __file__, "--one", "legacy", "--tree", str(Path(tree).resolve()),
             "--requests", str(args.requests), "--repeats", str(args.repeats),
             "--pool", str(args.pool), "--report"]
            + (["--cpu", str(args.cpu)] if args.cpu is not None else []),
            check=True, capture_output=True, text=True).stdout
        times[name] = json.loads(out.strip().splitlines()[-1])
    print(f"keyledger from {args.tree or REPO_ROOT}")
    print(f"in-process Encrypt (1 KiB), {args.pool} distinct signed requests, "
          f"{args.repeats} batches of {args.requests} per app"
          + (f", pinned to CPU {args.cpu}" if args.cpu is not None else "")
          + f"; load average {os.getloadavg()[0]:.2f}")
    print(f"{'app':<14} {'min µs/req':>11} {'median':>8}")
    best = {}
    for mode in times:
        best[mode] = min(times[mode])
        print(f"{mode:<14} {best[mode]:>11.2f} {statistics.median(times[mode]):>8.2f}"
              + ("   (its own process, after the others)" if mode not in MODES else ""))
    for mode in auth_times:
        print(f"{'authenticate ' + mode:<14} {min(auth_times[mode]):>11.2f} "
              f"{statistics.median(auth_times[mode]):>8.2f}   (Authenticator.authenticate alone)")
    med = {m: statistics.median(t) for m, t in times.items()}
    print()
    for title, a, b in (("SigV4 verification (sigv4 − open)", "sigv4", "open"),
                        ("authorization, cached allow (open − open-noauthz)", "open", "open-noauthz"),
                        ("authentication + authorization (sigv4 − open-noauthz)", "sigv4",
                         "open-noauthz")):
        print(f"{title:<56} {best[a] - best[b]:+6.2f} µs (min)  {med[a] - med[b]:+6.2f} µs (median)")
    for name in times:
        if name not in MODES:
            for a in ("sigv4", "open-noauthz"):
                print(f"{a + ' − ' + name:<56} {best[a] - best[name]:+6.2f} µs (min)  "
                      f"{med[a] - med[name]:+6.2f} µs (median)")


def one(args: argparse.Namespace) -> None:
    """Set up one app, warm it up, then run --requests requests; with --report, time --repeats
    batches of them and print the µs per request of each as JSON (for --legacy)."""
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with tempfile.TemporaryDirectory(prefix="keyledger-authbench-") as tmp:
        app, driver, _requests = build(args.one, Path(tmp), args.pool)
        gc.collect()
        gc.freeze()
        if args.report:
            print(json.dumps([driver.batch(args.requests) for _ in range(args.repeats)]))
        else:
            driver.batch(args.requests)
        app.service.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="requests per batch (default 2000)")
    p.add_argument("--repeats", type=int, default=15, help="batches per app (default 15)")
    p.add_argument("--pool", type=int, default=256, help="distinct signed requests (default 256)")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--legacy", metavar="NAME=DIR", action="append", default=[],
                   help="also measure a build from before access control, imported from its "
                        "tree DIR (e.g. before=/tmp/kl-before) in a process of its own; repeatable")
    p.add_argument("--report", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--one", choices=(*MODES, "legacy"), help=argparse.SUPPRESS)
    p.add_argument("--tree", metavar="DIR",
                   help="import keyledger from this tree (a checkout of another commit) instead "
                        "of the one this script is in")
    args = p.parse_args(argv)
    if args.tree:  # import that tree's keyledger, not this one's
        sys.path.insert(0, args.tree)
    if args.one:
        one(args)
    else:
        wall_clock(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
