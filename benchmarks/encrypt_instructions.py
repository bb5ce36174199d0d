"""Instructions per Encrypt request, counted by valgrind (callgrind): load-independent figures.

Two measurements:

In-process (the default): keyledger's ASGI front, ``KmsFrontend.__call__``, driven
directly with the Encrypt request wrk sends in ``http_bench.py`` (1 KiB plaintext, the
headers of ``wrk/kms.lua``, a scope as uvicorn's httptools protocol builds it). The coroutine
is stepped with ``send(None)``: ``receive``/``send`` never suspend, so no event loop runs.
Under ``--callgrind`` the script runs itself twice under valgrind, with 0 and with
``--requests`` requests after the same set-up and warm-up, and prints the difference per
request; without it, it prints wall-clock µs per request (a quick, noisy check).

``--server``: the whole server (uvicorn + uvloop + httptools + keyledger, or the floor server
with ``--floor``) under callgrind with instrumentation off during start-up; it is switched
on (``callgrind_control -i on``) for a wrk run of ``--duration`` seconds only, and the
instructions counted are divided by the requests wrk completed.

Usage::

    .venv/bin/python benchmarks/encrypt_instructions.py --callgrind            # in-process
    .venv/bin/python benchmarks/encrypt_instructions.py --callgrind --keep DIR # + callgrind.out
    .venv/bin/python benchmarks/encrypt_instructions.py --server [--floor]     # whole server
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PLAINTEXT_BYTES = 1024


def _totals(callgrind_out: Path) -> int:
    """The instruction total of a callgrind output file, as callgrind_annotate sums it (the
    file's own summary line reads 0 when instrumentation started switched off)."""
    report = subprocess.run(["callgrind_annotate", str(callgrind_out)], check=True,
                            capture_output=True, text=True).stdout
    match = re.search(r"^\s*([\d,]+) .*PROGRAM TOTALS", report, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no totals in {callgrind_out}")
    return int(match.group(1).replace(",", ""))


# -- in-process ---------------------------------------------------------------------------------


def _scope(target: str, body: bytes) -> dict:
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
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-type", b"application/x-amz-json-1.1"),
            (b"x-amz-target", target.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }


class _Driver:
    """Sends one request to ``app`` again and again, without an event loop.

    ``receive`` and ``send`` never suspend, so the handler's coroutine runs to its end in one
    ``send(None)``. The scope and the callables are built once: uvicorn's cost of building
    them is the same for keyledger and the floor, and it is not the handler's.
    """

    def __init__(self, app, target: str, body: bytes) -> None:
        self.app = app
        self.scope = _scope(target, body)
        self.sent: list[dict] = []
        request = {"type": "http.request", "body": body, "more_body": False}

        async def receive():
            return request

        self.receive, self.send = receive, self._send

    async def _send(self, message) -> None:
        self.sent.append(message)

    def __call__(self) -> tuple[int, bytes]:
        sent = self.sent
        sent.clear()
        try:
            self.app(self.scope, self.receive, self.send).send(None)
        except StopIteration:
            return sent[0]["status"], sent[1]["body"]
        raise RuntimeError("the request suspended: it did not run inline")


def in_process(requests: int, warmup: int) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from api.app import create_app
    from api.settings import Settings

    with tempfile.TemporaryDirectory(prefix="keyledger-instr-") as data_dir:
        app = create_app(Settings(data_dir=data_dir))
        # CreateKey runs in a worker thread (anyio): give it an event loop, once
        status, created = asyncio.run(_create_key(app))
        assert status == 200, created
        key_id = json.loads(created)["KeyMetadata"]["KeyId"]
        plaintext = base64.b64encode(os.urandom(PLAINTEXT_BYTES)).decode()
        body = json.dumps({"KeyId": key_id, "Plaintext": plaintext}).encode()  # as http_bench
        encrypt = _Driver(app, "TrentService.Encrypt", body)
        for _ in range(warmup):
            status, payload = encrypt()
            assert status == 200, payload
        gc.collect()
        gc.freeze()  # as the server's lifespan does
        started = time.perf_counter()
        for _ in range(requests):
            encrypt()
        elapsed = time.perf_counter() - started
        if requests and not os.environ.get("KEYLEDGER_UNDER_CALLGRIND"):
            print(f"{elapsed / requests * 1e6:.2f} µs per Encrypt request (wall clock, in-process)")
        app.service.close()


async def _create_key(app) -> tuple[int, bytes]:
    sent: list[dict] = []
    body = b"{}"

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(_scope("TrentService.CreateKey", body), receive, send)
    return sent[0]["status"], sent[1]["body"]


def callgrind_in_process(requests: int, warmup: int, keep: Path | None) -> None:
    out_dir = keep or Path(tempfile.mkdtemp(prefix="keyledger-callgrind-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONHASHSEED="0", KEYLEDGER_UNDER_CALLGRIND="1")
    totals = {}
    for n in (0, requests):
        out = out_dir / f"callgrind.out.inproc.{n}"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--requests", str(n), "--warmup", str(warmup)],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        totals[n] = _totals(out)
    per_request = (totals[requests] - totals[0]) / requests
    print(f"{per_request:,.0f} instructions per Encrypt request "
          f"(in-process handler, {requests} requests; callgrind files in {out_dir})")


# -- whole server -------------------------------------------------------------------------------


def server(floor: bool, duration: int, keep: Path | None) -> None:
    sys.path.insert(0, str(BENCH_DIR))
    from http_bench import FLOOR_SCRIPT, HOST, free_port, kms_call, setup_with_boto3

    out_dir = keep or Path(tempfile.mkdtemp(prefix="keyledger-callgrind-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "floor" if floor else "keyledger"
    out = out_dir / f"callgrind.out.{name}"
    port = free_port()
    url = f"http://{HOST}:{port}"
    data_dir = tempfile.TemporaryDirectory(prefix="keyledger-instr-data-")
    if floor:
        command = [sys.executable, str(FLOOR_SCRIPT), "--host", HOST, "--port", str(port)]
    else:
        command = [sys.executable, "-m", "api", "serve", "--host", HOST, "--port", str(port),
                   "--data-dir", data_dir.name, "--workers", "1", "--auth", "open"]  # unsigned wrk
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         *command],
        cwd=REPO_ROOT, env=dict(os.environ, PYTHONHASHSEED="0"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(url + "/healthz")
        key_id = setup_with_boto3(url)[0] if not floor else "1234abcd-12ab-34cd-56ef-1234567890ab"
        plaintext = base64.b64encode(os.urandom(PLAINTEXT_BYTES)).decode()
        body = json.dumps({"KeyId": key_id, "Plaintext": plaintext})
        for _ in range(50):  # warm-up outside the measurement
            status, payload = kms_call(url, "Encrypt", body)
            assert status == 200, payload
        body_file = out_dir / "encrypt-body.json"
        body_file.write_text(body)
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        wrk = subprocess.run(
            # the timeout is generous: under valgrind the server answers ~50x slower
            ["wrk", "-t2", "-c16", f"-d{duration}s", "--timeout", "60s",
             "-s", str(BENCH_DIR / "wrk" / "kms.lua"), url],
            env=dict(os.environ, KLB_TARGET="TrentService.Encrypt", KLB_BODY_FILE=str(body_file)),
            check=True, capture_output=True, text=True,
        )
        subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], check=True,
                       stdout=subprocess.DEVNULL)
        summary = json.loads(wrk.stdout.split("KLBENCH_JSON ", 1)[1].splitlines()[0])
        if any(summary["errors"].values()):
            raise SystemExit(f"wrk reported errors: {summary['errors']}")
    finally:
        process.terminate()
        process.wait(timeout=120)
        data_dir.cleanup()
    requests = summary["requests"]
    print(f"{_totals(out) / requests:,.0f} instructions per Encrypt request "
          f"(whole {name} server, {requests} requests under wrk; {out})")


def _wait_ready(url: str, timeout: float = 300.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer in {timeout:.0f}s")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests (in-process)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests first")
    parser.add_argument("--callgrind", action="store_true", help="count instructions (in-process)")
    parser.add_argument("--server", action="store_true", help="the whole server under wrk")
    parser.add_argument("--floor", action="store_true", help="with --server: the floor server")
    parser.add_argument("--duration", type=int, default=20, help="with --server: wrk seconds")
    parser.add_argument("--keep", type=Path, help="directory for the callgrind output files")
    args = parser.parse_args()
    if args.server:
        server(args.floor, args.duration, args.keep)
    elif args.callgrind:
        callgrind_in_process(args.requests, args.warmup, args.keep)
    else:
        in_process(args.requests, args.warmup)


if __name__ == "__main__":
    main()
