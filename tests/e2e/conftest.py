"""End-to-end fixtures: run the real keyledger server on loopback and talk to it with real clients.

Nothing here is mocked: every test drives a ``python -m api serve`` process over TCP.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import httpx
import psycopg
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "111122223333"
DEFAULT_REGION = "us-east-1"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
STARTUP_TIMEOUT = 20.0
# The account root's access key every e2e server knows (written into its identities file).
ROOT_ACCESS_KEY_ID = "AKIAE2EROOT000000001"
ROOT_SECRET_ACCESS_KEY = "e2e/root/secret/access/key/0000000000001"
ROOT_CREDENTIALS = Credentials(ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY)


def root_identities(account: str = ACCOUNT_ID) -> dict[str, Any]:
    """An identities file with the account root's e2e access key, and a role ``app`` (no keys)
    that key policies in the suites name (a policy's principals must exist, as on AWS)."""
    return {"accounts": {account: {
        "root": {"access_keys": [
            {"access_key_id": ROOT_ACCESS_KEY_ID, "secret_access_key": ROOT_SECRET_ACCESS_KEY}
        ]},
        "roles": {"app": {}},
    }}}


def pytest_collection_modifyitems(config, items):
    """Every test in this directory is an e2e test."""
    e2e_dir = Path(__file__).parent
    for item in items:
        if e2e_dir in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


# Each test process (pytest-xdist worker gwN) takes its servers' ports from a block of its own,
# below the ephemeral range the kernel hands clients' ports (and bind(("", 0))'s) from: two
# processes never pick the same port, and a server restarted on its port does not find it
# taken by another process's server.
_PORTS_PER_PROCESS = 2000
_FIRST_PORT = 20000
_port_offsets = itertools.count(random.randrange(_PORTS_PER_PROCESS))


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base = _FIRST_PORT + int(worker.removeprefix("gw") or 0) * _PORTS_PER_PROCESS
    for offset in itertools.islice(_port_offsets, _PORTS_PER_PROCESS):
        port = base + offset % _PORTS_PER_PROCESS
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:  # in use (another service of the machine's)
                continue
        return port
    raise RuntimeError(f"no free port in {base}..{base + _PORTS_PER_PROCESS - 1}")


def sign(url: str, headers: dict[str, str], body: bytes, region: str = DEFAULT_REGION,
         credentials: Credentials = ROOT_CREDENTIALS, service: str = "kms",
         method: str = "POST") -> dict[str, str]:
    """``headers`` plus X-Amz-Date and a real SigV4 Authorization, signed by botocore exactly as
    boto3 signs (``url``'s host is signed unless ``headers`` has its own Host)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


def aws_error_type(body: dict[str, Any]) -> str:
    """AWS JSON 1.1 ``__type`` may be namespaced (``com.amazonaws.kms#NotFoundException``)."""
    raw = body.get("__type") or body.get("code") or body.get("Code") or ""
    return raw.rsplit("#", 1)[-1].split(":", 1)[0]


def raw_kms_call(
    url: str,
    operation: str,
    payload: dict[str, Any] | None = None,
    region: str = DEFAULT_REGION,
    timeout: float = 10.0,
) -> httpx.Response:
    """One signed KMS call over a *fresh* TCP connection (``httpx.post`` opens and closes its
    own client)."""
    body = json.dumps(payload or {}).encode()
    headers = sign(url + "/", {"Content-Type": JSON_CONTENT_TYPE,
                               "X-Amz-Target": f"TrentService.{operation}"}, body, region)
    return httpx.post(url + "/", content=body, headers={**headers, "Connection": "close"},
                      timeout=timeout)


def stored_audit_record(server, request_id: str, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """The one audit record a request left, read straight from the store (no API between)."""
    records = stored_audit_records(server, request_id, region)
    assert len(records) == 1, records
    return records[0]


def stored_audit_records(server, request_id: str, region: str = DEFAULT_REGION) -> list[dict[str, Any]]:
    """Every audit record a request left (a cross-account call: one per account), in the
    order they were stored."""
    return [json.loads(bytes(record)) for _, record in stored_audit_rows(server, request_id, region)]


def stored_audit_rows(server, request_id: str, region: str = DEFAULT_REGION) -> list[tuple]:
    """(position, record bytes) of a request's audit records, read straight from the store, in
    the order they were stored."""
    if server.store is None:
        db = sqlite3.connect(f"file:{server.data_dir}/regions/{region}/audit.db?mode=ro", uri=True)
        try:
            return db.execute("SELECT position, record FROM keyledger_audit WHERE request_id = ? "
                              "ORDER BY position", (request_id,)).fetchall()
        finally:
            db.close()
    with psycopg.connect(server.store, autocommit=True) as conn:
        schema = "keyledger_" + region.replace("-", "_")  # the Region's schema
        return conn.execute(f"SELECT position, record FROM {schema}.keyledger_audit "
                            "WHERE request_id = %s ORDER BY position", (request_id,)).fetchall()


def until(predicate, timeout: float = 5.0):
    """Poll ``predicate`` until it returns a true value (a ClientError counts as not yet), and
    return that value; fail after ``timeout`` seconds naming the last error."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
        except ClientError as error:
            value, last = None, error
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s (last error: {last})")
        time.sleep(0.05)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def process_stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the process's name: state, ppid, pgrp, ... (None
    once it has ended and been reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def process_stats() -> Iterator[tuple[int, list[bytes]]]:
    """Every process's pid and :func:`process_stat` fields."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := process_stat(int(entry.name))) is not None:
            yield int(entry.name), fields


def _living_members(group: int) -> list[int]:
    """The processes of a process group that have not ended (a zombie has)."""
    return [pid for pid, fields in process_stats() if int(fields[2]) == group and fields[0] != b"Z"]


#: one root key per PostgreSQL database: the servers of a module that share a database share
#: it, as a deployment's nodes serving the same Regions of one database do (``serve`` refuses
#: a root key that does not open the data keys already in the store)
_STORE_ROOT_KEYS: dict[str, bytes] = {}


class KeyledgerServer:
    """A real ``python -m api serve`` process bound to 127.0.0.1."""

    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        *,
        port: int | None = None,
        workers: int | None = None,
        store: str | None = None,
        test_control: bool = True,
        name: str = "server",
        extra_args: tuple[str, ...] = (),
        auth: str = "sigv4",
        identities: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.env = env or {}  # the server's environment beyond child_env()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.workers = workers
        self.store = store
        if store:  # stopped before its database is dropped (pg_database)
            _ON_STORE.setdefault(store, []).append(self)
            root_key = self.data_dir / "root.key"
            if not root_key.exists():  # the database's: its data keys are sealed under it
                root_key.write_bytes(_STORE_ROOT_KEYS.setdefault(
                    store, base64.b64encode(os.urandom(32)) + b"\n"))
                root_key.chmod(0o600)
        self.test_control = test_control
        self.name = name
        self.extra_args = extra_args
        self.auth = auth
        self.identities_path = self.data_dir / "identities.json"
        if auth == "sigv4":
            self.write_identities(identities or root_identities())
        self.proc: subprocess.Popen | None = None
        self._asked_to_stop = False  # this process was sent SIGTERM
        self._starts = 0
        self._group_ended = False  # no process of the group started last is left
        self.log_path = self.log_dir / f"{name}.log"

    # -- process control -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "api", "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--account-id", ACCOUNT_ID,
            "--default-region", DEFAULT_REGION,
        ]
        cmd += ["--auth", self.auth]
        if self.test_control:
            cmd.append("--enable-test-control")
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        if self.store:
            cmd += ["--store", self.store]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = STARTUP_TIMEOUT) -> KeyledgerServer:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self._starts += 1
        self._asked_to_stop = False
        self._group_ended = False
        env = {**self.child_env(), **self.env}
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self._starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # own process group: kill() reaches every worker
            )
        self._wait_healthy(timeout)
        return self

    @staticmethod
    def child_env() -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONPATH", None)
        for name in list(env):  # no ambient keyledger configuration (root key, store, ...)
            if name.startswith("KEYLEDGER_"):
                del env[name]
        return env

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"keyledger server exited with {self.proc.returncode} during startup.\n"
                    f"--- {self.log_path} ---\n{self.log_text()[-8000:]}",
                    pytrace=False,
                )
            try:
                r = httpx.get(self.url + "/healthz", timeout=1.0)
                if r.status_code == 200:
                    return
                last_error = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        self._terminate_group(signal.SIGKILL)
        pytest.fail(
            f"keyledger server not healthy after {timeout}s (last: {last_error}).\n"
            f"--- {self.log_path} ---\n{self.log_text()[-8000:]}",
            pytrace=False,
        )

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _terminate_group(self, sig: int) -> None:
        """Signal the server's process group, while any of it is left. Once every process of
        it has ended, its id is free, and the kernel hands it to the next process that starts
        a group (another test's server): it is never signalled again."""
        if self.proc is None or self._group_ended:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group id is the pid we started (start_new_session)
        except ProcessLookupError:
            self._group_ended = True
            return
        if sig == signal.SIGKILL and self.proc.poll() is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if not _living_members(self.proc.pid):  # (zombies wait for init to reap them)
                    self._group_ended = True
                    return
                time.sleep(0.01)

    def ask_to_stop(self) -> None:
        """SIGTERM, once (a second one makes uvicorn skip its graceful shutdown)."""
        if self.is_running() and not self._asked_to_stop:
            self.proc.send_signal(signal.SIGTERM)
            self._asked_to_stop = True

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful shutdown (SIGTERM). Returns the exit code; SIGKILLs if it hangs."""
        if not self.is_running():
            return self.proc.returncode if self.proc else None
        self.ask_to_stop()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._terminate_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(f"server ignored SIGTERM for {timeout}s\n{self.log_text()[-4000:]}") from None
        # reap any worker that outlived the supervisor
        self._terminate_group(signal.SIGKILL)
        return rc

    def kill(self) -> None:
        """Simulated crash: SIGKILL the whole process group, no chance to clean up."""
        if self.proc is None:
            return
        self._terminate_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return
        self._terminate_group(signal.SIGKILL)  # (returns once the whole group has ended)

    def restart(self, *, crash: bool = False) -> KeyledgerServer:
        """Restart on the same data dir and port (graceful by default, SIGKILL with crash=True)."""
        if self.is_running():
            self.kill() if crash else self.stop()
        return self.start()

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=5)
            except AssertionError:
                pass
        self._terminate_group(signal.SIGKILL)

    def write_identities(self, identities: dict[str, Any]) -> None:
        """(Re)write the identities file, as an operator would (mode 0600, replaced whole)."""
        temporary = self.identities_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(identities, indent=2))
        temporary.chmod(0o600)
        temporary.replace(self.identities_path)

    # -- clients -----------------------------------------------------------------------------

    def kms(self, region: str = DEFAULT_REGION, *, validate: bool = True,
            credentials: Credentials = ROOT_CREDENTIALS, **config: Any):
        cfg = Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            parameter_validation=validate,
            **config,
        )
        return boto3.session.Session().client(
            "kms",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            config=cfg,
        )

    def raw(self, operation: str, payload: dict | None = None, region: str = DEFAULT_REGION):
        return raw_kms_call(self.url, operation, payload, region)

    def advance_clock(self, seconds: float) -> float:
        r = httpx.post(self.url + "/_test/clock", json={"advance_seconds": seconds}, timeout=60)
        assert r.status_code == 200, f"/_test/clock -> {r.status_code} {r.text}"
        return float(r.json()["now"])

    def ledger_get(self, path: str, region: str = DEFAULT_REGION,
                   credentials: Credentials = ROOT_CREDENTIALS) -> httpx.Response:
        """A signed GET of the ledger API (``path`` with its query string)."""
        url = self.url + path
        return httpx.get(url, headers=sign(url, {}, b"", region, credentials, method="GET"),
                         timeout=10)

    def events(self, key_id: str, region: str = DEFAULT_REGION) -> dict[str, Any]:
        r = self.ledger_get(f"/ledger/v1/keys/{key_id}/events?region={region}", region)
        assert r.status_code == 200, f"ledger events -> {r.status_code} {r.text}"
        return r.json()

    def history_cli(self, key_id: str, region: str = DEFAULT_REGION, *, as_json: bool = True):
        cmd = [sys.executable, "-m", "api", "history", key_id, "--region", region,
               "--data-dir", str(self.data_dir)]
        if self.store:
            cmd += ["--store", self.store]
        if as_json:
            cmd.append("--json")
        return subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                              env=self.child_env())


#: the servers started on each PostgreSQL store (URL)
_ON_STORE: dict[str, list[KeyledgerServer]] = {}


def stop_all(servers: list[KeyledgerServer]) -> None:
    """Stop servers side by side: each is asked to stop gracefully, then each is waited for."""
    for srv in servers:
        srv.ask_to_stop()
    for srv in servers:
        srv.cleanup()


def _make_server(tmp_path_factory, name: str, **kwargs) -> KeyledgerServer:
    base = tmp_path_factory.mktemp(f"keyledger-{name}")
    return KeyledgerServer(base / "data", base / "logs", name=name, **kwargs)


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory):
    """Start extra servers; all of them are torn down at the end of the test module, side by
    side (those on a PostgreSQL store earlier: before their database is dropped)."""
    started: list[KeyledgerServer] = []

    def factory(name: str = "server", *, start: bool = True, **kwargs) -> KeyledgerServer:
        srv = _make_server(tmp_path_factory, f"{name}-{uuid.uuid4().hex[:6]}", **kwargs)
        started.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    stop_all(started)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory):
    """One server shared by the read-mostly suites (lifecycle, CLI, ESDK, wire protocol).

    Tests that advance the clock, kill the process or share data dirs use their own servers.
    """
    srv = _make_server(tmp_path_factory, "shared")
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


# -- PostgreSQL ----------------------------------------------------------------------------------

DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture(scope="module")
def pg_database():
    """A fresh PostgreSQL database for this module's servers, dropped afterwards.

    Skipped only when neither KEYLEDGER_TEST_POSTGRES_URL nor CI is set; with either set, an
    unreachable PostgreSQL is a test failure, not a skip."""
    configured = os.environ.get("KEYLEDGER_TEST_POSTGRES_URL")
    if not configured and not _ci():
        pytest.skip("set KEYLEDGER_TEST_POSTGRES_URL (or CI=true) to run the PostgreSQL e2e tests")
    admin_url = _with_database(configured or DEFAULT_POSTGRES_ADMIN_URL, "postgres")
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - environment problem, must not be silent
        pytest.fail(f"psycopg is required for the PostgreSQL e2e tests: {exc}")
    database = f"keyledger_e2e_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL unreachable at {admin_url}: {exc}")
    url = _with_database(admin_url, database)
    yield url
    # a server whose database is gone takes seconds to stop (its reads retry the connection)
    stop_all(_ON_STORE.pop(url, []))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=STORES)
def store(request):
    """The event store a suite runs on, once each: None (SQLite, the default) or the URL of a
    fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_database")


@pytest.fixture(scope="module")
def store_server(request, store, shared_server, server_factory):
    """The server of a suite that runs on both stores: the shared SQLite server, or one of
    the module's own on PostgreSQL (stopped before its database is dropped)."""
    if store is None:
        yield shared_server
        return
    srv = server_factory(f"{request.module.__name__.rsplit('.', 1)[-1]}-pg", store=store)
    yield srv
    srv.cleanup()


@pytest.fixture(scope="session")
def kms(shared_server):
    return shared_server.kms()


@pytest.fixture()
def new_key(kms):
    """Factory creating a fresh symmetric key on the shared server; returns its KeyMetadata."""

    def make(description: str = "e2e test key", **kwargs) -> dict[str, Any]:
        resp = kms.create_key(Description=description, **kwargs)
        return resp["KeyMetadata"]

    return make


def unique_alias(prefix: str = "e2e") -> str:
    return f"alias/{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def expect_aws_error(code: str | tuple[str, ...], status: int = 400):
    """Assert the block raises a botocore ClientError with this AWS error code and HTTP status."""
    codes = (code,) if isinstance(code, str) else tuple(code)
    with pytest.raises(ClientError) as excinfo:
        yield excinfo
    response = excinfo.value.response
    actual = response.get("Error", {}).get("Code")
    http_status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert actual in codes, f"expected {codes}, got {actual!r} ({excinfo.value})"
    assert http_status == status, f"expected HTTP {status}, got {http_status} ({excinfo.value})"


@pytest.fixture(scope="session")
def aws_error():
    """``with aws_error("NotFoundException"): kms.describe_key(...)``"""
    return expect_aws_error


@pytest.fixture(scope="session")
def e2e():
    """Helpers for test modules (they cannot import conftest reliably)."""
    return SimpleNamespace(
        ACCOUNT_ID=ACCOUNT_ID,
        DEFAULT_REGION=DEFAULT_REGION,
        JSON_CONTENT_TYPE=JSON_CONTENT_TYPE,
        PROJECT_ROOT=PROJECT_ROOT,
        sign=sign,
        ROOT_ACCESS_KEY_ID=ROOT_ACCESS_KEY_ID,
        ROOT_SECRET_ACCESS_KEY=ROOT_SECRET_ACCESS_KEY,
        ROOT_CREDENTIALS=ROOT_CREDENTIALS,
        root_identities=root_identities,
        aws_error_type=aws_error_type,
        raw_kms_call=raw_kms_call,
        unique_alias=unique_alias,
        expect_aws_error=expect_aws_error,
        b64=b64,
        free_port=free_port,
    )
