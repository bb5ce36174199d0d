"""Integration tests run the application with its real adapters on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from api.bootstrap import build_service
from api.settings import Settings
from application.authorization import Caller
from application.context import RequestContext
from domain.principals import Principal


class Harness:
    """The application wired to a real store, plus ways to restart it and move its clock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = build_service(settings)
        self.ctx = self.context()

    def context(self, region: str = "us-east-1", principal: Principal | None = None) -> RequestContext:
        """A request of the account's root (or of ``principal``), as the front end builds it."""
        caller = Caller.of(principal or Principal.root(self.settings.account_id), "AKIDTEST")
        return RequestContext(
            account_id=caller.principal.account, region=region, request_id=str(uuid.uuid4()),
            caller=caller, access_key_id="AKIDTEST", source_ip="127.0.0.1", user_agent="pytest",
        )

    def call(self, operation: str, ctx: RequestContext | None = None, **params):
        result = self.service.handler(operation)(ctx or self.context(), params)
        if inspect.iscoroutine(result):  # an operation that may await a crypto helper
            result = asyncio.run(result)
        return result

    def restart(self) -> None:
        self.service.close()
        self.service = build_service(self.settings)

    def other_process(self) -> Harness:
        return Harness(self.settings)

    def advance(self, **delta) -> None:
        self.service.clock.advance(timedelta(**delta))
        self.service.run_scheduled()

    def close(self) -> None:
        self.service.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, tmp_path) -> Settings:
    store = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Settings(data_dir=str(tmp_path / "data"), store=store, enable_test_control=True)


@pytest.fixture
def kms(settings):
    harness = Harness(settings)
    yield harness
    harness.close()


@pytest.fixture
def second_settings(settings):
    return replace(settings)
