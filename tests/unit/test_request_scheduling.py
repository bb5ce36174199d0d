"""Which operations run on the event loop: a coroutine operation awaits crypto helpers, so it
must be served on the loop, never handed to a thread."""

from __future__ import annotations

import inspect

from application.service import HOT_OPERATIONS, IMPLEMENTED_OPERATIONS, KeyManagementService


def test_operations_that_await_crypto_helpers_are_served_on_the_event_loop():
    awaiting = {
        operation for operation in IMPLEMENTED_OPERATIONS
        if inspect.iscoroutinefunction(getattr(KeyManagementService, operation))
    }
    assert awaiting == {"Decrypt", "ReEncrypt", "Sign", "Verify", "DeriveSharedSecret", "Decapsulate"}
    assert awaiting <= HOT_OPERATIONS
