"""Which operations run on the event loop: a coroutine operation awaits crypto helpers, so it
must be served on the loop, never handed to a thread. The operation table says both."""

from __future__ import annotations

import inspect

from application.handlers.crypto import Encryption
from application.service import HANDLER_GROUPS, IMPLEMENTED_OPERATIONS
from domain.operations import HOT_OPERATIONS, OPERATIONS


def _method(operation: str):
    for group in HANDLER_GROUPS:
        if hasattr(group, operation):
            return getattr(group, operation)
    raise AssertionError(operation)


def test_operations_that_await_crypto_helpers_are_served_on_the_event_loop():
    awaiting = {op for op in IMPLEMENTED_OPERATIONS if inspect.iscoroutinefunction(_method(op))}
    assert awaiting == {"Decrypt", "ReEncrypt", "Sign", "Verify", "DeriveSharedSecret", "Decapsulate"}
    assert awaiting <= HOT_OPERATIONS


def test_every_operation_of_the_table_has_exactly_one_handler():
    for operation in IMPLEMENTED_OPERATIONS:
        assert sum(hasattr(group, operation) for group in HANDLER_GROUPS) == 1, operation


def test_the_operation_table_says_which_handlers_await():
    for operation in IMPLEMENTED_OPERATIONS:
        assert OPERATIONS[operation].awaits == inspect.iscoroutinefunction(_method(operation)), operation
    assert inspect.iscoroutinefunction(Encryption.Decrypt)
