"""Shared fixtures: the PostgreSQL test database (enabled by KEYLEDGER_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse, urlunparse

import pytest

POSTGRES_URL = os.environ.get("KEYLEDGER_TEST_POSTGRES_URL")


def postgres_required() -> bool:
    """In CI, or when the URL is set, PostgreSQL tests must run (and fail if it is down)."""
    return bool(POSTGRES_URL) or os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    if not postgres_required():
        pytest.skip("set KEYLEDGER_TEST_POSTGRES_URL to run the PostgreSQL tests")
    return POSTGRES_URL or "postgresql://postgres@127.0.0.1:5432/keyledger_test"


@pytest.fixture
def postgres_url(postgres_server_url: str):
    """A fresh, empty database for one test, dropped afterwards."""
    import psycopg

    parsed = urlparse(postgres_server_url)
    name = "keyledger_t_" + uuid.uuid4().hex[:12]
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield urlunparse(parsed._replace(path="/" + name))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A test process that dies fails its test and the run goes on (tests/xdist_crashes.py).
from tests.xdist_crashes import pytest_testnodedown, pytest_xdist_make_scheduler  # noqa: E402, F401
