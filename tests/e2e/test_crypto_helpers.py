"""Private-key work runs in the server's crypto helper processes: at a lower CPU priority, never
stalling other requests, and a helper that dies is replaced without losing the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.e2e.conftest import process_stat, process_stats

PSS_SHA_256 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory("helpers")


def _children(pid: int) -> list[int]:
    return [child for child, fields in process_stats() if int(fields[1]) == pid]


def _helpers(server) -> list[int]:
    """The server's crypto helpers: its child processes running below its priority."""
    own = os.getpriority(os.PRIO_PROCESS, server.proc.pid)
    return [pid for pid in _children(server.proc.pid) if os.getpriority(os.PRIO_PROCESS, pid) > own]


def _sign_and_check(kms, key_id: str, public_key, message: bytes) -> None:
    signature = kms.sign(KeyId=key_id, Message=message, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    public_key.verify(signature, message, PSS_SHA_256, hashes.SHA256())


def test_rsa_signing_runs_in_helpers_at_a_lower_priority(server):
    kms = server.kms()
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    for n in range(4):
        _sign_and_check(kms, key_id, public_key, b"message %d" % n)
    helpers = _helpers(server)
    assert len(helpers) == os.cpu_count()
    own = os.getpriority(os.PRIO_PROCESS, server.proc.pid)
    assert all(os.getpriority(os.PRIO_PROCESS, pid) == min(own + 10, 19) for pid in helpers)


def test_rsa_4096_key_generation_does_not_stall_other_requests(server):
    """Generating RSA_4096 keys takes seconds of CPU in the helpers: the server keeps answering
    Encrypt meanwhile, and Sign too (key generation never takes the last helper)."""
    kms = server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"warm")
    signing_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=signing_key)["PublicKey"])
    _sign_and_check(kms, signing_key, public_key, b"warm")
    creators = [server.kms() for _ in range(4)]  # one client per thread
    with ThreadPoolExecutor(len(creators)) as pool:
        creating = [
            pool.submit(c.create_key, KeySpec="RSA_4096", KeyUsage="SIGN_VERIFY") for c in creators
        ]
        latencies: dict[str, list[float]] = {"Encrypt": [], "Sign": []}
        while not all(f.done() for f in creating):
            started = time.perf_counter()
            kms.encrypt(KeyId=key_id, Plaintext=b"x" * 1024)
            latencies["Encrypt"].append(time.perf_counter() - started)
            started = time.perf_counter()
            _sign_and_check(kms, signing_key, public_key, b"beside key generation")
            latencies["Sign"].append(time.perf_counter() - started)
        created = [f.result()["KeyMetadata"] for f in creating]
    assert all(md["KeySpec"] == "RSA_4096" for md in created)
    for operation, measured in latencies.items():
        assert len(measured) >= 5, "the keys were made before requests could be measured beside them"
        assert max(measured) < 0.5, f"{operation} stalled for {max(measured):.2f} s during key generation"


def test_a_helper_that_dies_is_replaced(server):
    kms = server.kms()
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    _sign_and_check(kms, key_id, public_key, b"before")
    before = _helpers(server)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    failures = 0
    for n in range(6):
        try:
            _sign_and_check(kms, key_id, public_key, b"after %d" % n)
        except ClientError as error:  # only the calls the dead helpers were serving
            assert error.response["Error"]["Code"] == "KMSInternalException"
            failures += 1
    assert failures <= len(before)
    deadline = time.monotonic() + 10
    after = _helpers(server)
    while (len(after) != len(before) or set(after) & set(before)) and time.monotonic() < deadline:
        time.sleep(0.05)  # replacements start in the background and lower their priority
        after = _helpers(server)
    assert len(after) == len(before) and not set(after) & set(before)


def test_the_helpers_niceness_is_a_setting(server_factory):
    srv = server_factory("nice3", extra_args=("--crypto-niceness", "3"))
    kms = srv.kms()
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    own = os.getpriority(os.PRIO_PROCESS, srv.proc.pid)
    helpers = _helpers(srv)  # the key was generated in a helper
    assert helpers and all(os.getpriority(os.PRIO_PROCESS, pid) == own + 3 for pid in helpers)
    assert kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's SCHED_IDLE policy")
def test_idle_helpers_run_under_the_sched_idle_policy(server_factory):
    """``--crypto-niceness idle``: the helpers take only CPU time nothing else wants."""
    srv = server_factory("idle", extra_args=("--crypto-niceness", "idle"))
    kms = srv.kms()
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    _sign_and_check(kms, key_id, public_key, b"signed at idle priority")
    deadline = time.monotonic() + 15  # helpers start in the background; a busy machine is slow
    while True:
        idle = [pid for pid in _children(srv.proc.pid) if os.sched_getscheduler(pid) == os.SCHED_IDLE]
        if len(idle) >= os.cpu_count() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(idle) == os.cpu_count()  # one helper per core
    assert os.sched_getscheduler(srv.proc.pid) == os.SCHED_OTHER  # the server itself is not


@pytest.mark.parametrize("value", ["20", "-1", "lazy"])
def test_an_invalid_niceness_is_refused_at_startup(tmp_path, value):
    proc = subprocess.run(
        [sys.executable, "-m", "api", "serve", "--crypto-niceness", value, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert f"niceness must be 0 to 19 or idle, not {value}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_graceful_stop_ends_the_helpers_promptly(server_factory):
    srv = server_factory("stop")
    kms = srv.kms()
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    helpers = _helpers(srv)
    assert helpers
    started = time.monotonic()
    srv.stop(timeout=10)  # raises if SIGTERM did not end it (uvicorn re-raises the signal: -15)
    assert time.monotonic() - started < 5
    for pid in helpers:  # gone, not left behind for the group kill
        fields = process_stat(pid)
        assert fields is None or fields[0] == b"Z", fields
