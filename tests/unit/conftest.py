"""Fixtures shared by the domain's unit tests."""

from __future__ import annotations

import pytest

from application.ledger import KeyLedger
from infrastructure.transcoding import TRANSCODINGS


@pytest.fixture
def ledger():
    """The key ledger on eventsourcing's in-memory store, with keyledger's transcodings."""
    app = KeyLedger({"PERSISTENCE_MODULE": "eventsourcing.popo"}, TRANSCODINGS)
    yield app
    app.close()
