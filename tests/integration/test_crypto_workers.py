"""The crypto helper processes: lower priority, errors carried back, a lost helper replaced,
calls served side by side (awaited on an event loop), key management (blocking a thread) kept
off the last helper, cancelled awaits that give their helper back, and key material computed
there as it is here."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from infrastructure import key_material as km
from infrastructure.crypto_workers import CryptoWorkerLost, CryptoWorkers, memoized


@pytest.fixture
def workers():
    pool = CryptoWorkers(processes=2, niceness=7)
    yield pool
    pool.close()


def _on_every_helper(workers: CryptoWorkers) -> list[int]:
    """Keep both helpers busy at once, so each answers a call (from a loop of this thread's
    own, handed to the pool's); returns the helpers' pids."""

    async def both():
        return await asyncio.gather(*(workers.run(_sleep_then_pid, 0.3) for _ in range(2)))

    return asyncio.run(both())


def test_helpers_run_at_a_lower_cpu_priority_than_the_server(workers):
    assert workers.call(os.getpid) != os.getpid()
    _on_every_helper(workers)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert len(workers.pids()) == 2
    for pid in workers.pids():
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(own + 7, 19)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's SCHED_IDLE policy")
def test_idle_helpers_take_only_cpu_time_nothing_else_wants():
    pool = CryptoWorkers(processes=1, niceness="idle")
    try:
        assert pool.call(os.sched_getscheduler, 0) == os.SCHED_IDLE
        assert os.sched_getscheduler(0) != os.SCHED_IDLE
    finally:
        pool.close()


@pytest.mark.parametrize("value", [20, -1, "19.5", "lazy", None])
def test_the_niceness_is_checked(value):
    with pytest.raises(ValueError, match="must be 0 to 19 or idle"):
        CryptoWorkers(processes=1, niceness=value)


def test_an_exception_in_a_helper_is_raised_in_the_caller(workers):
    with pytest.raises(ValueError, match="invalid literal"):
        workers.call(int, "not a number")
    assert workers.call(int, "42") == 42  # the helper goes on serving


def test_calls_from_another_loop_run_side_by_side(workers):
    _on_every_helper(workers)  # started
    started = time.perf_counter()
    pids = _on_every_helper(workers)
    assert time.perf_counter() - started < 0.55  # two helpers: not one after the other
    assert sorted(pids) == sorted(workers.pids())


def test_key_management_never_holds_up_a_request_call(workers):
    """Threads managing keys (call) may take seconds: they queue on all helpers but the last,
    and a request's call (run) meanwhile goes to a helper free of them, answered at once."""
    _on_every_helper(workers)
    managed: list[int] = []
    threads = [threading.Thread(target=lambda: managed.append(workers.call(_pid_after, 0.5)))
               for _ in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(0.1)  # both management calls are in flight
    pid, waited = _request_call(workers)
    for thread in threads:
        thread.join()
    assert waited < 0.3, f"a request call waited {waited:.2f} s behind key management"
    assert len(set(managed)) == 1 and pid not in managed
    assert time.perf_counter() - started >= 1.0  # the two management calls took turns


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_helper_that_dies_is_replaced_and_only_its_call_fails(workers):
    workers.call(time.sleep, 0)
    before = set(workers.pids())
    outcomes: list[object] = []

    def one_call():
        try:
            outcomes.append(asyncio.run(workers.run(_pid_after, 1.0)))
        except CryptoWorkerLost:
            outcomes.append("lost")

    threads = [threading.Thread(target=one_call) for _ in range(2)]  # one per helper
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    victim = next(iter(before))
    os.kill(victim, signal.SIGKILL)  # while it serves its call
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == sorted([before.difference({victim}).pop(), "lost"], key=str)
    deadline = time.monotonic() + 10
    while (victim in workers.pids() or len(workers.pids()) != 2) and time.monotonic() < deadline:
        time.sleep(0.05)  # the replacement starts in the background
    after = set(workers.pids())
    assert victim not in after and len(after) == 2
    assert {workers.call(_pid_after, 0) for _ in range(4)} <= after


def test_the_event_loop_awaits_helpers_side_by_side(workers):
    async def main():
        assert await workers.run(int, "7") == 7
        with pytest.raises(ValueError):
            await workers.run(int, "seven")
        return await asyncio.gather(*(workers.run(_sleep_span, 0.3) for _ in range(2)))

    spans = asyncio.run(main())
    assert {pid for pid, _, _ in spans} == set(workers.pids())
    # side by side: each began before the other ended (CLOCK_MONOTONIC is the machine's; a
    # loaded machine delays both, it cannot make serial calls overlap)
    assert max(start for _, start, _ in spans) < min(end for _, _, end in spans)


def _sleep_span(seconds: float) -> tuple[int, float, float]:
    """The helper's pid and when (monotonic clock) it began and ended sleeping."""
    started = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), started, time.monotonic()


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _request_call(pool: CryptoWorkers) -> tuple[int, float]:
    """A request's call, awaited on an event loop: the helper's pid and how long it took."""

    async def request():
        started = time.perf_counter()
        pid = await pool.run(_sleep_then_pid, 0)
        return pid, time.perf_counter() - started

    return asyncio.run(request())


def test_a_thread_and_the_loop_wait_their_turn_for_a_busy_helper():
    pool = CryptoWorkers(processes=1, niceness=1)
    try:
        pool.call(time.sleep, 0)
        thread = threading.Thread(target=pool.call, args=(time.sleep, 0.4))
        thread.start()
        time.sleep(0.1)  # the thread holds the only helper
        pid, waited = _request_call(pool)
        thread.join()
        assert pid == pool.pids()[0] and waited >= 0.2
        assert pool.call(int, "3") == 3
    finally:
        pool.close()


def test_a_cancelled_await_gives_its_helper_back():
    pool = CryptoWorkers(processes=1, niceness=1)
    try:
        async def main():
            computing = asyncio.ensure_future(pool.run(time.sleep, 0.3))  # holds the helper
            await asyncio.sleep(0.05)
            queued = asyncio.ensure_future(pool.run(int, "1"))  # waits for it
            await asyncio.sleep(0.05)
            queued.cancel()
            computing.cancel()
            for task in (computing, queued):
                with pytest.raises(asyncio.CancelledError):
                    await task
            return await asyncio.wait_for(pool.run(int, "2"), timeout=5)

        assert asyncio.run(main()) == 2
    finally:
        pool.close()


def test_blocking_on_an_event_loop_is_refused(workers):
    async def main():
        workers.call(int, "1")

    with pytest.raises(RuntimeError, match="block the event loop"):
        asyncio.run(main())


def test_private_key_work_in_helpers_matches_local_cryptography():
    """RSA signing and decryption go to the module's helpers; the results verify and decrypt
    with the key object held here."""
    pkcs8, _ = km.generate_key_pair("RSA_2048")
    key = km.load("RSA_2048", pkcs8)
    message = b"signed in a helper"

    async def main():
        signature = await km.sign("RSA_2048", key, "RSASSA_PSS_SHA_256", "RAW", message)
        blob = km.rsa_encrypt(key, "RSAES_OAEP_SHA_256", b"secret")
        plaintext = await km.rsa_decrypt(key, "RSAES_OAEP_SHA_256", blob)
        with pytest.raises(ValueError):
            await km.rsa_decrypt(key, "RSAES_OAEP_SHA_256", bytes(256))
        return signature, plaintext

    signature, plaintext = asyncio.run(main())
    key.key.public_key().verify(
        signature, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert plaintext == b"secret"
    assert km.workers.pids() and os.getpid() not in km.workers.pids()


class _Witness:
    """Writes a file when it is garbage: shows when a helper dropped it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __del__(self) -> None:
        with open(self.path, "w") as f:
            f.write("dropped")


def _remember(path: str) -> int:
    return id(memoized(path, _Witness))


def test_a_helper_keeps_what_it_loaded_for_a_while_then_drops_it_even_when_idle(tmp_path):
    pool = CryptoWorkers(processes=1, niceness=0, memo_seconds=0.5)
    try:
        witness = str(tmp_path / "witness")
        first = pool.call(_remember, witness)
        assert pool.call(_remember, witness) == first  # reused, not made again
        assert not os.path.exists(witness)
        deadline = time.monotonic() + 5
        while not os.path.exists(witness) and time.monotonic() < deadline:
            time.sleep(0.05)  # no call meanwhile: the helper is idle
        assert os.path.exists(witness), "the idle helper kept it"
        assert time.monotonic() - (deadline - 5) >= 0.5
    finally:
        pool.close()
