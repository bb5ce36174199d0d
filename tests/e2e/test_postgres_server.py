"""The server on the PostgreSQL event store (``--store postgresql://...``).

Skipped only when neither KEYLEDGER_TEST_POSTGRES_URL nor CI is set. With either set, an
unreachable PostgreSQL is a test failure, not a skip.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
E2E_DATABASE = "keyledger_e2e"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture(scope="module")
def pg_store_url():
    """A fresh database for this module's servers, dropped afterwards."""
    configured = os.environ.get("KEYLEDGER_TEST_POSTGRES_URL")
    if not configured and not _ci():
        pytest.skip("set KEYLEDGER_TEST_POSTGRES_URL (or CI=true) to run the PostgreSQL e2e tests")
    admin_url = _with_database(configured or DEFAULT_ADMIN_URL, "postgres")
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - environment problem, must not be silent
        pytest.fail(f"psycopg is required for the PostgreSQL e2e tests: {exc}")
    database = f"{E2E_DATABASE}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL unreachable at {admin_url}: {exc}")
    yield _with_database(admin_url, database)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


@pytest.fixture(scope="module")
def pg_server(server_factory, pg_store_url):
    return server_factory("pg", store=pg_store_url)


def test_postgres_round_trip_and_crash_restart(pg_server, aws_error):
    kms = pg_server.kms()
    md = kms.create_key(Description="on postgres")["KeyMetadata"]
    key_id = md["KeyId"]
    alias = f"alias/pg-{uuid.uuid4().hex[:10]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    ctx = {"store": "postgres"}
    blobs = {bytes([i]) * (i + 1): kms.encrypt(KeyId=alias, Plaintext=bytes([i]) * (i + 1),
                                               EncryptionContext=ctx)["CiphertextBlob"] for i in range(10)}
    for pt, blob in blobs.items():
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == pt

    kms.rotate_key_on_demand(KeyId=key_id)
    rotated_material = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert rotated_material != md["CurrentKeyMaterialId"]
    other = kms.create_key(Description="pg disabled")["KeyMetadata"]
    kms.disable_key(KeyId=other["KeyId"])

    pg_server.kill()
    pg_server.start()
    kms = pg_server.kms()

    desc = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert desc["KeyId"] == key_id
    assert desc["KeyState"] == "Enabled"
    assert desc["CurrentKeyMaterialId"] == rotated_material
    for pt, blob in blobs.items():
        resp = kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)
        assert resp["Plaintext"] == pt
        assert resp["KeyMaterialId"] == md["CurrentKeyMaterialId"]
    assert kms.describe_key(KeyId=other["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    with aws_error("DisabledException"):
        kms.encrypt(KeyId=other["KeyId"], Plaintext=b"x")
    listed = {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert {key_id, other["KeyId"]} <= listed
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == [alias]

    events = pg_server.events(key_id)["Events"]
    assert events[0]["Type"] == "KeyCreated"
    assert any("Rotat" in e["Type"] for e in events)


def test_two_servers_on_one_database_agree(pg_server, server_factory, pg_store_url, e2e):
    # same --data-dir: the root key (data-dir/root.key) must be shared by every instance
    second = server_factory("pg-second", store=pg_store_url, start=False)
    second.data_dir = pg_server.data_dir
    second.start()
    ka, kb = pg_server.kms(), second.kms()
    md = ka.create_key(Description="pg shared")["KeyMetadata"]
    key_id = md["KeyId"]
    blob = ka.encrypt(KeyId=key_id, Plaintext=b"shared pg")["CiphertextBlob"]
    assert kb.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared pg"

    ka.disable_key(KeyId=key_id)
    started = time.monotonic()
    while True:
        r = e2e.raw_kms_call(second.url, "Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"p").decode()})
        assert r.status_code < 500, r.text
        if r.status_code == 400 and e2e.aws_error_type(r.json()) == "DisabledException":
            break
        assert time.monotonic() - started < 1.0, f"second server still answers {r.status_code} after 1s"
        time.sleep(0.05)
