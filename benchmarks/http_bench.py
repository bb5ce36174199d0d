"""HTTP benchmark for keyledger: throughput/latency vs. a raw-ASGI floor, CreateKey/s, RSS.

One run:

1. starts keyledger (``python -m api serve``, one worker, fresh temp data dir) and
   the floor server (``benchmarks/floor_server.py``: raw ASGI + uvicorn/uvloop/httptools
   answering every POST with a canned Encrypt response), both on free loopback ports;
2. creates a key and a 1 KiB ciphertext with boto3;
3. drives Encrypt / Decrypt / GenerateDataKey against keyledger and the same Encrypt
   request against the floor with ``wrk`` (``benchmarks/wrk/kms.lua``), side by side;
4. measures CreateKey/s over HTTP (SQLite store);
5. fills the store up to ``--keys`` keys, runs Encrypt across a sample of them and reads
   the server's RSS from /proc;
6. prints a table plus a JSON summary, and stops both servers.

Targets are reported as PASS/MISS; a miss never makes the script fail. The exit
status is non-zero only when the harness itself cannot run (wrk missing, a server
does not start, a sanity request does not return 200, ...).

Usage::

    .venv/bin/python benchmarks/http_bench.py [--duration 10] [--connections 16] \
        [--keys 10000] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WRK_SCRIPT = BENCH_DIR / "wrk" / "kms.lua"
FLOOR_SCRIPT = BENCH_DIR / "floor_server.py"

HOST = "127.0.0.1"
AMZ_JSON = "application/x-amz-json-1.1"

# Targets from the issue.
TARGET_ENCRYPT_RATIO = 0.70  # keyledger Encrypt req/s >= 0.7 x floor req/s (16 conns, 1 worker)
TARGET_CREATE_KEY_RPS = 400.0  # CreateKey/s over HTTP on SQLite
TARGET_RSS_MB = 200.0  # server RSS with 10,000 keys

SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 10.0


class BenchError(RuntimeError):
    """The harness cannot continue (as opposed to a target being missed)."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # "pid (comm) state ppid ..." - comm may contain spaces/parens
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) >= 2:
            children.setdefault(int(rest[1]), []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """pid plus all of its descendants (uvicorn may spawn worker processes)."""
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _status_kib(pid: int, fieldname: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(fieldname + ":"):
                    return int(line.split()[1])  # "VmRSS:   12345 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_of_tree(pid: int) -> dict[str, Any]:
    procs = []
    for p in process_tree(pid):
        rss = _status_kib(p, "VmRSS")
        if rss is None:
            continue
        procs.append({"pid": p, "rss_kib": rss, "hwm_kib": _status_kib(p, "VmHWM")})
    total = sum(p["rss_kib"] for p in procs)
    return {"total_rss_mb": round(total / 1024, 1), "processes": procs}


class ServerProcess:
    def __init__(self, name: str, cmd: list[str], cwd: Path, log_path: Path, env: dict[str, str]):
        self.name = name
        self.cmd = cmd
        self.cwd = cwd
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log(f"starting {self.name}: {' '.join(self.cmd)} (cwd={self.cwd})")
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=str(self.cwd),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:]) or "(empty log)"

    def wait_ready(self, url: str, timeout: float = SERVER_START_TIMEOUT) -> float:
        assert self.proc is not None
        t0 = time.monotonic()
        deadline = t0 + timeout
        last_err = ""
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise BenchError(
                    f"{self.name} exited with status {rc} before becoming ready.\n"
                    f"--- {self.name} log ({self.log_path}) ---\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - t0
                    last_err = f"HTTP {resp.status}"
            except urllib.error.HTTPError as e:
                last_err = f"HTTP {e.code}: {e.read()[:200]!r}"
            except (urllib.error.URLError, OSError) as e:
                last_err = str(e)
            time.sleep(0.1)
        raise BenchError(
            f"{self.name} did not answer 200 on {url} within {timeout:.0f}s (last: {last_err}).\n"
            f"--- {self.name} log ({self.log_path}) ---\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            tree = process_tree(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not exit within {SERVER_STOP_TIMEOUT:.0f}s of SIGTERM; killing")
                self.proc.kill()
                self.proc.wait(timeout=SERVER_STOP_TIMEOUT)
            # Leftover worker processes this server spawned (if any): kill by pid.
            for p in tree[1:]:
                try:
                    os.kill(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# --------------------------------------------------------------------------- HTTP helpers


def kms_call(base_url: str, op: str, body: dict | str, timeout: float = 30.0) -> tuple[int, bytes]:
    data = body if isinstance(body, str) else json.dumps(body)
    req = urllib.request.Request(
        base_url + "/",
        data=data.encode("utf-8"),
        method="POST",
        headers={"Content-Type": AMZ_JSON, "X-Amz-Target": f"TrentService.{op}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check_200(base_url: str, label: str, op: str, body: str) -> bytes:
    """One request with urllib before a load run; abort with the body if it is not 200."""
    try:
        status, payload = kms_call(base_url, op, body)
    except (urllib.error.URLError, OSError) as e:
        raise BenchError(f"sanity request {label} ({op}) to {base_url} failed: {e}") from e
    if status != 200:
        raise BenchError(
            f"sanity request {label} ({op}) to {base_url} returned HTTP {status}, "
            f"expected 200. Body:\n{payload[:2000].decode('utf-8', 'replace')}"
        )
    return payload


def list_keys(base_url: str) -> list[str]:
    """All key ids via paginated ListKeys. Raises BenchError if ListKeys fails."""
    ids: list[str] = []
    marker = None
    for _ in range(10_000):
        body: dict[str, Any] = {"Limit": 1000}
        if marker:
            body["Marker"] = marker
        status, payload = kms_call(base_url, "ListKeys", body)
        if status != 200:
            raise BenchError(f"ListKeys returned HTTP {status}: {payload[:500]!r}")
        doc = json.loads(payload)
        ids.extend(k["KeyId"] for k in doc.get("Keys", []))
        if not doc.get("Truncated"):
            return ids
        marker = doc.get("NextMarker")
        if not marker:
            raise BenchError("ListKeys says Truncated but returned no NextMarker")
    raise BenchError("ListKeys pagination did not terminate")


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    label: str
    operation: str
    target: str
    url: str
    requests: int = 0
    duration_s: float = 0.0
    rps: float = 0.0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    ok_counted: int = 0
    threads: int = 0
    connections: int = 0

    @property
    def non_2xx(self) -> int:
        return int(self.errors.get("status", 0))

    @property
    def socket_errors(self) -> int:
        return sum(int(self.errors.get(k, 0)) for k in ("connect", "read", "write", "timeout"))


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk_output(text: str, res: WrkResult) -> WrkResult:
    """Fill ``res`` from the KLBENCH_JSON line of kms.lua's done(); fall back to wrk's own text."""
    for line in text.splitlines():
        if line.startswith("KLBENCH_JSON "):
            doc = json.loads(line[len("KLBENCH_JSON ") :])
            lat = doc["latency_us"]
            res.requests = int(doc["requests"])
            res.duration_s = doc["duration_us"] / 1e6
            res.rps = res.requests / res.duration_s if res.duration_s > 0 else 0.0
            res.errors = {k: int(v) for k, v in doc["errors"].items()}
            res.ok_counted = int(doc.get("ok_counted", 0))
            if res.requests > 0:
                res.p50_ms = lat["p50"] / 1000
                res.p90_ms = lat["p90"] / 1000
                res.p99_ms = lat["p99"] / 1000
                res.p999_ms = lat["p999"] / 1000
                res.mean_ms = lat["mean"] / 1000
                res.max_ms = lat["max"] / 1000
            return res
    # Fallback: wrk --latency text output.
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise BenchError(f"could not parse wrk output for {res.label}:\n{text}")
    res.rps = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        res.requests = int(m.group(1))
        res.duration_s = float(m.group(2)) * _UNIT_MS[m.group(3)] / 1000
    for pct, attr in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            setattr(res, attr, float(m.group(1)) * _UNIT_MS[m.group(2)])
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    res.errors = {"status": int(m.group(1)) if m else 0}
    m = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if m:
        res.errors.update(
            connect=int(m.group(1)), read=int(m.group(2)), write=int(m.group(3)),
            timeout=int(m.group(4)),
        )
    return res


class Wrk:
    def __init__(self, binary: str, threads: int, connections: int, workdir: Path):
        self.binary = binary
        self.threads = threads
        self.connections = connections
        self.workdir = workdir
        self._n = 0

    def run(
        self,
        *,
        label: str,
        operation: str,
        target: str,
        url: str,
        duration_s: int,
        body: str | None = None,
        bodies: list[str] | None = None,
        quota: int | None = None,
        connections: int | None = None,
        delay_ms: int | None = None,
    ) -> WrkResult:
        """One bounded wrk run. With ``quota``, stops early once that many 200s were seen; with
        ``delay_ms``, each connection waits that long after a response (a paced load)."""
        self._n += 1
        conns = connections or self.connections
        threads = min(self.threads, conns)
        env = dict(os.environ)
        env["KLB_TARGET"] = f"TrentService.{operation}"
        for k in ("KLB_BODY_FILE", "KLB_BODIES_FILE", "KLB_QUOTA_PER_THREAD", "KLB_DONE_DIR",
                  "KLB_DELAY_MS"):
            env.pop(k, None)
        if delay_ms:
            env["KLB_DELAY_MS"] = str(int(delay_ms))
        if bodies is not None:
            path = self.workdir / f"bodies-{self._n}.txt"
            path.write_text("\n".join(bodies) + "\n")
            env["KLB_BODIES_FILE"] = str(path)
        else:
            path = self.workdir / f"body-{self._n}.json"
            path.write_text(body if body is not None else "{}")
            env["KLB_BODY_FILE"] = str(path)
        done_dir = None
        if quota is not None:
            done_dir = self.workdir / f"done-{self._n}"
            done_dir.mkdir()
            env["KLB_QUOTA_PER_THREAD"] = str(max(1, math.ceil(quota / threads)))
            env["KLB_DONE_DIR"] = str(done_dir)
        cmd = [
            self.binary,
            f"-t{threads}",
            f"-c{conns}",
            f"-d{max(1, int(duration_s))}s",
            "--timeout", "10s",
            "--latency",
            "-s", str(WRK_SCRIPT),
            url + "/",
        ]
        log(f"wrk {label}: {' '.join(cmd[1:])}" + (f" (quota {quota})" if quota else ""))
        out_path = self.workdir / f"wrk-{self._n}.out"
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + duration_s + 30
            interrupted = False
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    raise BenchError(f"wrk {label} did not finish in time; killed")
                if done_dir is not None and not interrupted:
                    if len(list(done_dir.glob("thread-*.done"))) >= threads:
                        proc.send_signal(signal.SIGINT)  # wrk stops and prints its results
                        interrupted = True
                time.sleep(0.05)
        text = out_path.read_text(errors="replace")
        if proc.returncode != 0:
            raise BenchError(f"wrk {label} exited with status {proc.returncode}:\n{text}")
        res = WrkResult(label=label, operation=operation, target=target, url=url,
                        threads=threads, connections=conns)
        parse_wrk_output(text, res)
        if res.non_2xx or res.socket_errors:
            log(f"WARNING: wrk {label}: {res.non_2xx} HTTP error responses, "
                f"socket errors {res.errors} (out of {res.requests} requests)")
        return res


# --------------------------------------------------------------------------- benchmark


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kms_client(base_url: str):
    """A boto3 KMS client for a benchmark server (no retries: failures must show)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kms",
        endpoint_url=base_url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"},
                      connect_timeout=5, read_timeout=30),
    )


def require_wrk() -> str:
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise BenchError(
            "wrk is not installed. Install it with:\n"
            "    sudo apt-get install -y wrk        (Debian/Ubuntu)\n"
            "    brew install wrk                   (macOS)"
        )
    return wrk_bin


def keyledger_server(port: int, data_dir: Path, tmp: Path, cwd: str, env: dict[str, str]) -> ServerProcess:
    """keyledger as the benchmarks run it: one worker, SQLite in ``data_dir``."""
    return ServerProcess(
        "keyledger",
        [sys.executable, "-m", "api", "serve", "--host", HOST, "--port", str(port),
         "--data-dir", str(data_dir), "--workers", "1"],
        cwd=Path(cwd), log_path=tmp / "keyledger.log", env=env,
    )


def setup_with_boto3(base_url: str) -> tuple[str, str]:
    """CreateKey + Encrypt(1 KiB) with boto3. Returns (key_id, ciphertext_b64)."""
    client = kms_client(base_url)
    key_id = client.create_key(Description="keyledger http_bench")["KeyMetadata"]["KeyId"]
    plaintext = os.urandom(1024)
    ciphertext = client.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
    roundtrip = client.decrypt(CiphertextBlob=ciphertext)["Plaintext"]
    if roundtrip != plaintext:
        raise BenchError("boto3 Decrypt did not return the original plaintext")
    return key_id, b64(ciphertext)


def fill_keys(wrk: Wrk, url: str, want: int, have: int, rate_hint: float) -> tuple[int, float, int]:
    """CreateKey with wrk until at least ``want`` keys exist. Returns (count, seconds, rounds)."""
    t0 = time.monotonic()
    rounds = 0
    rate = max(rate_hint, 20.0)
    while have < want and rounds < 6:
        rounds += 1
        remaining = want - have
        # Bounded: ~3x the expected time at the measured rate, at least 15 s, at most 10 min.
        duration = int(min(600, max(15, 3 * remaining / rate)))
        res = wrk.run(label=f"fill-keys-{rounds}", operation="CreateKey", target="keyledger",
                      url=url, duration_s=duration, body="{}", quota=remaining)
        created = res.ok_counted
        have += created
        if res.duration_s > 0 and created:
            rate = created / res.duration_s
        log(f"fill round {rounds}: +{created} keys in {res.duration_s:.1f}s -> {have}/{want}")
        if created == 0:
            break
    return have, time.monotonic() - t0, rounds


def create_keys_threadpool(url: str, n: int, workers: int) -> list[str]:
    def one(_: int) -> str:
        status, payload = kms_call(url, "CreateKey", {})
        if status != 200:
            raise BenchError(f"CreateKey returned HTTP {status}: {payload[:500]!r}")
        return json.loads(payload)["KeyMetadata"]["KeyId"]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, range(n)))


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_load_note(summary: dict[str, Any]) -> None:
    """Warn when the machine was busy as the run started (both benchmarks' reports)."""
    cfg = summary["config"]
    load = summary.get("loadavg_start")
    if load and cfg["cpus"] and load[0] > 0.5 * cfg["cpus"]:
        print(f"NOTE: load average was {load[0]:.2f} on {cfg['cpus']} CPUs when the run started; "
              "other work on this machine makes the figures noisy")


def print_report(summary: dict[str, Any]) -> None:
    rows = summary["results"]
    floor = summary["floor_encrypt_rps"]
    cfg = summary["config"]
    print()
    print(f"keyledger HTTP benchmark - wrk -t{cfg['threads']} -c{cfg['connections']} "
          f"-d{cfg['duration_s']}s, 1 server worker, {cfg['cpus']} CPUs, "
          f"python {cfg['python']}")
    print_load_note(summary)
    header = (f"{'operation':<26} {'target':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>7}  {'÷ floor':>8}")
    print(header)
    print("-" * (len(header) + 28))
    for r in rows:
        ratio = ""
        note = ""
        if r["target"] == "keyledger" and floor and r.get("compare_to_floor"):
            ratio = f"{r['rps'] / floor:.2f}"
        elif r["target"] == "floor" and floor:
            ratio = f"{r['rps'] / floor:.2f}"
        if r["operation"] == "CreateKey" and r["label"] == "CreateKey":
            chk = summary["checks"]["create_key_rps"]
            note = f"{'PASS' if chk['pass'] else 'MISS'} (target ≥ {TARGET_CREATE_KEY_RPS:.0f}/s)"
        errs = r["errors"].get("status", 0) + sum(
            r["errors"].get(k, 0) for k in ("connect", "read", "write", "timeout"))
        print(f"{r['label']:<26} {r['target']:<10} {r['rps']:>10.1f} {fmt(r['p50_ms']):>8} "
              f"{fmt(r['p99_ms']):>8} {errs:>7}  {ratio:>8}  {note}")
    if floor:
        runs = summary.get("floor_encrypt_runs_rps", [])
        print(f"÷ floor = req/s ÷ {floor:.1f} (mean of the {len(runs)} floor Encrypt runs, "
              f"spread {summary.get('floor_spread', 0):.0%})")
        chk = summary["checks"]["encrypt_vs_floor"]
        rounds = ", ".join(f"{r:.3f}" for r in summary["encrypt_round_ratios"])
        print(f"Encrypt ÷ floor by round (each keyledger run ÷ the mean of the floor runs either "
              f"side of it): {rounds}; median {chk['value']:.3f}  "
              f"{'PASS' if chk['pass'] else 'MISS'} (target ≥ {TARGET_ENCRYPT_RATIO:.2f})")
    rss = summary.get("rss")
    if rss:
        chk = summary["checks"]["rss"]
        keys = summary["keys"]
        print()
        print(f"Keys in store: {keys['count']} (requested {keys['requested']}, "
              f"{'via ListKeys' if keys['listed'] else 'counted from CreateKey responses'}); "
              f"filled in {keys['fill_seconds']:.1f}s")
        print(f"Server RSS with {keys['count']} keys after Encrypt over a {keys['sample']}-key sample: "
              f"{rss['total_rss_mb']:.1f} MB over {len(rss['processes'])} process(es)  "
              f"{'PASS' if chk['pass'] else 'MISS'} (target ≤ {TARGET_RSS_MB:.0f} MB)")
    print()


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk_bin = require_wrk()

    tmp = Path(tempfile.mkdtemp(prefix="keyledger-bench-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    wrk_dir = tmp / "wrk"
    wrk_dir.mkdir()
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"

    kl_port, floor_port = free_port(), free_port()
    while floor_port == kl_port:
        floor_port = free_port()
    kl_url = f"http://{HOST}:{kl_port}"
    floor_url = f"http://{HOST}:{floor_port}"

    keyledger = keyledger_server(kl_port, data_dir, tmp, args.server_cwd, env)
    floor = ServerProcess(
        "floor",
        [sys.executable, str(FLOOR_SCRIPT), "--host", HOST, "--port", str(floor_port)],
        cwd=REPO_ROOT, log_path=tmp / "floor.log", env=env,
    )
    wrk = Wrk(wrk_bin, args.threads, args.connections, wrk_dir)
    results: list[WrkResult] = []
    summary: dict[str, Any] = {
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "threads": args.threads,
            "connections": args.connections,
            "keys": args.keys,
            "sample": args.sample,
            "create_key_duration_s": args.create_key_duration,
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "wrk": wrk_bin,
            "keyledger_url": kl_url,
            "floor_url": floor_url,
            "data_dir": str(data_dir),
        },
        "targets": {
            "encrypt_vs_floor_ratio": TARGET_ENCRYPT_RATIO,
            "create_key_rps": TARGET_CREATE_KEY_RPS,
            "rss_mb": TARGET_RSS_MB,
        },
    }
    failed = False
    summary["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    try:
        keyledger.start()
        floor.start()
        t = keyledger.wait_ready(kl_url + "/healthz")
        log(f"keyledger ready in {t:.2f}s at {kl_url} (pid {keyledger.pid})")
        floor.wait_ready(floor_url + "/healthz")
        log(f"floor ready at {floor_url} (pid {floor.pid})")
        summary["startup_seconds"] = round(t, 3)

        key_id, ciphertext_b64 = setup_with_boto3(kl_url)
        log(f"boto3 setup ok: key {key_id}, ciphertext {len(base64.b64decode(ciphertext_b64))} bytes")
        plaintext_b64 = b64(os.urandom(1024))
        encrypt_body = json.dumps({"KeyId": key_id, "Plaintext": plaintext_b64})
        decrypt_body = json.dumps({"CiphertextBlob": ciphertext_b64})
        gdk_body = json.dumps({"KeyId": key_id, "KeySpec": "AES_256"})

        # Encrypt alternates between the floor and keyledger, --rounds times, floor first and
        # last: each keyledger run is compared with the mean of the floor runs on either side
        # of it, so a change in background load hits both sides alike, and the checked ratio
        # is the median of the rounds.
        plan = []
        for n in range(1, args.rounds + 1):
            plan.append((f"Encrypt #{n}", "Encrypt", "floor", floor_url, encrypt_body))
            plan.append((f"Encrypt #{n}", "Encrypt", "keyledger", kl_url, encrypt_body))
        plan += [
            (f"Encrypt #{args.rounds + 1}", "Encrypt", "floor", floor_url, encrypt_body),
            ("Decrypt", "Decrypt", "keyledger", kl_url, decrypt_body),
            ("GenerateDataKey", "GenerateDataKey", "keyledger", kl_url, gdk_body),
        ]
        for _label, op, target, url, body in plan:
            check_200(url, target, op, body)
        by_label: dict[tuple[str, str], WrkResult] = {}
        for label, op, target, url, body in plan:
            if args.warmup > 0:
                wrk.run(label=f"warmup {label}", operation=op, target=target, url=url,
                        duration_s=args.warmup, body=body)
            res = wrk.run(label=label, operation=op, target=target, url=url,
                          duration_s=args.duration, body=body)
            results.append(res)
            by_label[(label, target)] = res
            log(f"{label} @ {target}: {res.rps:.1f} req/s, p50 {fmt(res.p50_ms)} ms, "
                f"p99 {fmt(res.p99_ms)} ms")

        floor_runs = [by_label[(f"Encrypt #{n}", "floor")].rps for n in range(1, args.rounds + 2)]
        encrypt_runs = [by_label[(f"Encrypt #{n}", "keyledger")] for n in range(1, args.rounds + 1)]
        floor_rps = sum(floor_runs) / len(floor_runs)
        spread = (max(floor_runs) - min(floor_runs)) / floor_rps if floor_rps else 0.0
        if spread > 0.15:
            log(f"WARNING: the floor runs differ by {spread:.0%} "
                f"({', '.join(f'{r:.0f}' for r in floor_runs)} req/s): the machine is busy, "
                "figures are noisy")
        round_ratios = [
            enc.rps / ((floor_runs[i] + floor_runs[i + 1]) / 2) if floor_runs[i] + floor_runs[i + 1] else 0.0
            for i, enc in enumerate(encrypt_runs)
        ]
        ratio = statistics.median(round_ratios)
        summary["floor_encrypt_rps"] = floor_rps
        summary["floor_encrypt_runs_rps"] = floor_runs
        summary["floor_spread"] = round(spread, 3)
        summary["encrypt_round_ratios"] = [round(r, 3) for r in round_ratios]
        checks: dict[str, Any] = {
            "encrypt_vs_floor": {"value": round(ratio, 3), "target": TARGET_ENCRYPT_RATIO,
                                 "pass": ratio >= TARGET_ENCRYPT_RATIO
                                 and all(enc.non_2xx == 0 for enc in encrypt_runs)},
        }
        summary["checks"] = checks

        # CreateKey/s over HTTP (SQLite store).
        check_200(kl_url, "keyledger", "CreateKey", "{}")
        known_keys = 2  # setup key + the sanity CreateKey
        # Bounded by time and by the key budget (so the store does not overshoot --keys
        # by much when CreateKey is fast); the keys it creates count towards --keys.
        quota = args.keys - known_keys
        ck = wrk.run(label="CreateKey", operation="CreateKey", target="keyledger", url=kl_url,
                     duration_s=args.create_key_duration, body="{}",
                     quota=quota if quota > 0 else None)
        results.append(ck)
        ck_ok = ck.ok_counted if quota > 0 else max(0, ck.requests - ck.non_2xx)
        known_keys += ck_ok
        ck_ok_rps = ck_ok / ck.duration_s if ck.duration_s else 0.0
        log(f"CreateKey: {ck_ok_rps:.1f} keys/s ({ck_ok} keys in {ck.duration_s:.2f}s)")
        if ck.duration_s < 0.8 * args.create_key_duration:
            log(f"note: the --keys budget ended the CreateKey run after {ck.duration_s:.2f}s; "
                "raise --keys for a longer CreateKey measurement window")
        checks["create_key_rps"] = {"value": round(ck_ok_rps, 1), "target": TARGET_CREATE_KEY_RPS,
                                    "pass": ck_ok_rps >= TARGET_CREATE_KEY_RPS}

        # Fill up to N keys.
        listed = True
        try:
            have = len(list_keys(kl_url))
        except BenchError as e:
            log(f"ListKeys unusable ({e}); counting keys from CreateKey responses")
            listed = False
            have = known_keys
        have, fill_s, rounds = fill_keys(wrk, kl_url, args.keys, have, ck_ok_rps)
        key_ids: list[str] = []
        if listed:
            key_ids = list_keys(kl_url)
            have = len(key_ids)
            if have < args.keys:
                have, more_s, _ = fill_keys(wrk, kl_url, args.keys, have, ck_ok_rps)
                fill_s += more_s
                key_ids = list_keys(kl_url)
                have = len(key_ids)
        sample_n = min(args.sample, max(1, args.keys))
        if key_ids:
            sample = random.Random(1234).sample(key_ids, min(sample_n, len(key_ids)))
        else:
            log(f"creating a {sample_n}-key sample with urllib (ListKeys unavailable)")
            sample = create_keys_threadpool(kl_url, sample_n, args.connections)
            have += len(sample)
        summary["keys"] = {"requested": args.keys, "count": have, "listed": listed,
                           "fill_seconds": round(fill_s, 2), "fill_rounds": rounds,
                           "sample": len(sample)}

        # Encrypt across the sample (loads many keys into the server), then RSS.
        sample_bodies = [json.dumps({"KeyId": k, "Plaintext": plaintext_b64}) for k in sample]
        check_200(kl_url, "keyledger", "Encrypt", sample_bodies[0])
        sres = wrk.run(label=f"Encrypt ({len(sample)}-key sample)", operation="Encrypt",
                       target="keyledger", url=kl_url, duration_s=args.sample_duration,
                       bodies=sample_bodies)
        results.append(sres)
        time.sleep(0.5)
        rss = rss_of_tree(keyledger.pid)
        summary["rss"] = rss
        checks["rss"] = {"value": rss["total_rss_mb"], "target": TARGET_RSS_MB,
                         "pass": rss["total_rss_mb"] <= TARGET_RSS_MB}
        summary["floor_rss_mb"] = rss_of_tree(floor.pid)["total_rss_mb"]
    except BaseException as exc:
        failed = True
        if (not isinstance(exc, BenchError) and keyledger.proc is not None
                and keyledger.proc.poll() is not None):
            log(f"keyledger exited with {keyledger.proc.returncode}; log tail:\n"
                f"{keyledger.log_tail()}")
        raise
    finally:
        summary["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        keyledger.stop()
        floor.stop()
        summary["results"] = [
            {**asdict(r), "compare_to_floor": r.label.startswith(("Encrypt #", "Decrypt", "GenerateDataKey"))}
            for r in results
        ]
        if args.keep_tmp or failed:
            log(f"kept temp dir {tmp} (server logs, wrk output, data)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="keyledger HTTP benchmark (wrk): Encrypt/Decrypt/GenerateDataKey vs a raw-ASGI "
                    "floor, CreateKey/s, RSS with N keys.")
    p.add_argument("--duration", type=int, default=None,
                   help="seconds per measured wrk run (default 10; 3 with --quick)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--keys", type=int, default=None,
                   help="keys in the store for the RSS measurement (default 10000; 1000 with --quick)")
    p.add_argument("--sample", type=int, default=1000,
                   help="keys to Encrypt against before reading RSS (default 1000)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each run (default 1)")
    p.add_argument("--rounds", type=int, default=3,
                   help="Encrypt runs against keyledger, each between two floor runs (default 3)")
    p.add_argument("--create-key-duration", type=int, default=None,
                   help="seconds for the CreateKey/s run (default 5; 3 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 s runs and 1000 keys")
    p.add_argument("--json", metavar="PATH", help="write the JSON summary here instead of stdout")
    p.add_argument("--server-cwd", default=str(REPO_ROOT),
                   help="directory to run `python -m api serve` from (default: repo root)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (data, logs, wrk output)")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.keys is None:
        args.keys = 1000 if args.quick else 10_000
    if args.create_key_duration is None:
        args.create_key_duration = 3 if args.quick else 5
    args.sample_duration = min(args.duration, 5)
    if args.connections < 1 or args.threads < 1 or args.duration < 1:
        p.error("--connections, --threads and --duration must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except BenchError as e:
        print(f"\nhttp_bench: ABORTED: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nhttp_bench: interrupted", file=sys.stderr)
        return 130
    print_report(summary)
    write_summary(summary, args.json)
    return 0


def write_summary(summary: dict[str, Any], json_path: str | None) -> None:
    """The JSON summary: to ``json_path``, or after the table on stdout."""
    text = json.dumps(summary, indent=2, sort_keys=False)
    if json_path:
        Path(json_path).write_text(text + "\n")
        print(f"JSON summary written to {json_path}")
    else:
        print("# JSON summary")
        print(text)


if __name__ == "__main__":
    sys.exit(main())
