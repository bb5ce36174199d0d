"""The ASGI application: AWS JSON 1.1 on ``POST /``, the ledger REST API on the rest.

``POST /`` is handled by a thin raw-ASGI front (the hot path: parse, validate, call the
application, encode); every other path goes to FastAPI, which serves ``/healthz``, the
ledger API under ``/ledger/v1`` (documented in its OpenAPI) and, only when enabled, the
test-only clock control.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse
from starlette.routing import Match

from api.auth import Authenticator
from api.bootstrap import build_service, serve_crypto_helpers_on, stop_crypto_helpers
from api.protocol import (
    JSON_CONTENT_TYPE,
    TARGET_PREFIX,
    encode_error,
    encode_response,
    input_rules,
    operation_names,
    parse_body,
)
from api.settings import Settings
from application.audit import AuditQuery, AuditRow, audit_row, new_event_id
from application.audit_query import (
    AuditFilter,
    check_limit,
    key_reference,
    parse_flag,
    parse_time,
    read_page,
)
from application.audit_records import api_call_record, ledger_api_record
from application.audit_records import prepare as prepare_audit_records
from application.authorization import Caller
from application.context import RequestContext
from application.forensics import Forensics, past_instant
from application.gate import KEY_ID_PATTERN
from application.kms_model import kms_regions
from application.region import NOTE_RECORDS, WRITTEN
from application.service import KeyManagementService
from domain.errors import (
    AccessDeniedException,
    KmsError,
    NotFoundException,
    UnknownOperationException,
    ValidationException,
)
from domain.messages import Protocol, Requests, Unsupported
from domain.operations import OPERATIONS, Kind, Operation
from domain.values import key_arn
from infrastructure.ledger_chain import LedgerChainer
from infrastructure.os_threads import name_os_threads
from infrastructure.peers import peers_of
from infrastructure.supervision import end_with_supervisor

log = logging.getLogger("keyledger.api")

MAX_BODY_BYTES = 512 * 1024
_MAX_BODY_DIGITS = len(str(MAX_BODY_BYTES))
ACCEPTED_CONTENT_TYPES = (JSON_CONTENT_TYPE, "application/json")


class _Disconnected(Exception):
    pass


@dataclass(frozen=True, slots=True)  # slots: the hot path reads its fields on every request
class _Route:
    operation: str
    rules: Any  # the input's validation rules (api.protocol.input_rules)
    handler: Callable[[RequestContext, dict[str, Any]], dict[str, Any]] | None  # None: not yet
    hot: bool  # served from memory: run on the event loop (else on a thread)
    awaits: bool  # a coroutine: may await a crypto helper process


_JSON_CONTENT_TYPE = JSON_CONTENT_TYPE.encode()
_CONTENT_TYPE_HEADER = (b"content-type", _JSON_CONTENT_TYPE)


_p = os.urandom(10).hex()
_REQUEST_ID_PREFIX = f"{_p[:8]}-{_p[8:12]}-{_p[12:16]}-{_p[16:20]}-"  # random, per process
# a random 48-bit start with bit 48 set: see _request_id
_request_ids = itertools.count(1 << 48 | int.from_bytes(os.urandom(6), "big"))


def _request_id() -> str:
    """A unique, UUID-shaped request id: a random per-process prefix and a counter."""
    # The counter's low 48 bits as 12 hex digits: the counter lies between 2**48 and 2**52
    # (for the next 4 * 10**15 requests), so its hex() is "0x", one digit, and those 12
    # digits. A third cheaper than a "012x" format spec, and than masking the counter.
    return _REQUEST_ID_PREFIX + hex(next(_request_ids))[3:]


class KmsFrontend:
    """Routes ``POST /`` to the KMS protocol handler and everything else to FastAPI."""

    def __init__(self, service: KeyManagementService, settings: Settings, fallback,
                 authenticator: Authenticator) -> None:
        self.service = service
        self.settings = settings
        self.fallback = fallback
        self.authenticator = authenticator
        #: X-Amz-Target (raw header bytes) -> route, for every operation of the model
        self._routes = {}
        for operation in operation_names():
            entry = OPERATIONS.get(operation)
            self._routes[(TARGET_PREFIX + operation).encode()] = _Route(
                operation,
                input_rules(operation),
                service.handler(operation),
                entry is not None and entry.hot,
                entry is not None and entry.awaits,
            )

    async def __call__(self, scope, receive, send) -> None:
        """Handle ``POST /`` here (in this coroutine: one fewer per request); the rest: FastAPI."""
        if scope["type"] != "http" or scope["path"] != "/" or scope["method"] != "POST":
            await self.fallback(scope, receive, send)
            return
        headers = _request_headers(scope["headers"])
        body: bytes | KmsError
        try:
            self._route(headers)  # a request that names no operation is refused unread
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body"):
                body = message.get("body", b"")  # the whole body in one message: the usual case
            else:
                body = await _read_rest_of_body(receive, message)
        except _Disconnected:
            return
        except KmsError as error:
            body = error
        request_id, status, payload = await self._answer(scope, headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    _CONTENT_TYPE_HEADER,
                    (b"content-length", b"%d" % len(payload)),
                    (b"x-amzn-requestid", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def answer_now(self, scope, body: bytes,
                   respond: Callable[[int, bytes, str], None]) -> Coroutine[Any, Any, None] | None:
        """Answer a KMS request whose whole body has arrived (api.http_protocol), calling
        ``respond(status, payload, request_id)`` on the event loop once its record is durable.

        A hot operation (served from memory) in a Region whose store is open is answered here
        and now, with no coroutine of its own: what it waits for, its audit record, calls back
        when durable; None is returned. An operation whose handler is a coroutine (it may await
        a crypto helper) runs here too until it has to wait, as an eager task would: a
        symmetric Decrypt never does; one that waits goes on in the coroutine returned. Every
        other request (and one that turns out to need a Region opened first, before anything
        of it happened) is answered as :meth:`__call__` answers it, by the coroutine returned.
        The caller runs a returned coroutine as a task (which a shutdown waits for).
        ``scope`` needs ``headers``, ``query_string``, ``client`` and ``scheme`` only."""
        headers = _request_headers(scope["headers"])
        route = self._routes.get(headers.get(b"x-amz-target", b""))
        if route is None or not route.hot:
            return self._answer_later(scope, headers, body, respond)
        request_id = _request_id()
        context = params = result = failure = None
        try:  # as _answer does for a hot operation
            route = self._route(headers)  # (its content type and declared length)
            if len(body) > MAX_BODY_BYTES:
                raise Protocol.TOO_LARGE(limit=MAX_BODY_BYTES)
            context = self._authenticated(scope, headers, request_id, body)
            if not self.service.has_region(context.region):  # (nothing was done yet)
                return self._answer_later(scope, headers, body, respond)
            params = self._parameters(route, body)
            result = route.handler(context, params)
            if route.awaits:
                running, result = result, None
                try:
                    waiting = running.send(None)  # it runs until it has to wait, if it does
                except StopIteration as done:
                    result = done.value
                else:
                    return self._answer_after(running, waiting, scope, headers, request_id,
                                              route, context, params, respond)
            status, payload = 200, encode_response(result)
        except Exception as error:
            failure, status, payload = self._failed(error, request_id)
        try:
            region, rows = self._rows(scope, headers, request_id, route.operation, context,
                                      params, result, failure, None, None)
        except Exception as error:
            respond(*self._unaudited(request_id, error), request_id)
            return None
        if not self.service.has_region(region):  # (not even authenticated: nothing was done)
            return self._answer_later(scope, headers, body, respond)
        self._store_then_respond(region, rows, request_id, status, payload, respond)
        return None

    async def _answer_after(self, running, waiting, scope, headers, request_id: str,
                            route: _Route, context: RequestContext, params, respond) -> None:
        """The rest of a request whose operation had to wait (:meth:`answer_now`)."""
        result = failure = None
        try:
            result = await _run_on(running, waiting)
            status, payload = 200, encode_response(result)
        except Exception as error:
            failure, status, payload = self._failed(error, request_id)
        except BaseException:  # (cancelled): answered, as _answer_later answers
            respond(500, encode_error(_INTERNAL.code, _INTERNAL.message), request_id)
            raise
        try:
            region, rows = self._rows(scope, headers, request_id, route.operation, context,
                                      params, result, failure, None, None)
        except Exception as error:
            respond(*self._unaudited(request_id, error), request_id)
            return
        stored = self._store_then_respond(region, rows, request_id, status, payload, respond)
        if stored is not None:
            await asyncio.wait([stored])  # (a shutdown waits for the task: for the record too)

    def _store_then_respond(self, region: str, rows: list[AuditRow], request_id: str,
                            status: int, payload: bytes, respond) -> asyncio.Future | None:
        """Hand the records to the (open) Region's audit log; respond once they are durable
        (500 if they cannot be stored). The records' future, unless they failed at once."""
        try:
            stored = self._submit(region, rows, False)
        except Exception as error:
            respond(*self._unaudited(request_id, error), request_id)
            return None

        def durable(stored: asyncio.Future) -> None:
            error = asyncio.CancelledError() if stored.cancelled() else stored.exception()
            if error is None:
                respond(status, payload, request_id)
            else:
                respond(*self._unaudited(request_id, error), request_id)

        stored.add_done_callback(durable)
        return stored

    async def _answer_later(self, scope, headers, body: bytes, respond) -> None:
        try:
            request_id, status, payload = await self._answer(scope, headers, body)
        except BaseException:  # (cancelled): answered, as uvicorn answers an ASGI task that ends so
            respond(500, encode_error(_INTERNAL.code, _INTERNAL.message), _request_id())
            raise
        respond(status, payload, request_id)

    async def _answer(self, scope, headers, body: bytes | KmsError) -> tuple[str, int, bytes]:
        """(request id, status, payload) of a KMS request, once its record is durable.
        ``body``: the error that refused it before its body was read, if it was."""
        request_id = _request_id()
        operation = context = params = result = failure = written = stamp = None
        try:
            route = self._route(headers)
            operation = route.operation
            if isinstance(body, KmsError):
                raise body
            if len(body) > MAX_BODY_BYTES:
                raise Protocol.TOO_LARGE(limit=MAX_BODY_BYTES)
            context = self._authenticated(scope, headers, request_id, body)
            params = self._parameters(route, body)
            if route.hot:
                if not self.service.has_region(context.region):  # its store opens on a thread
                    await anyio.to_thread.run_sync(self.service.region, context.region)
                result = route.handler(context, params)
                if route.awaits:
                    result = await result
            else:
                written = []  # the ledger events this request writes (its audit record names them)
                stamp = _RecordStamp()
                token = WRITTEN.set(written)
                noting = NOTE_RECORDS.set(
                    lambda events: self._rows(scope, headers, request_id, operation, context,
                                              params, None, None, events, stamp, recovered=True))
                try:
                    result = await anyio.to_thread.run_sync(route.handler, context, params)
                finally:
                    NOTE_RECORDS.reset(noting)
                    WRITTEN.reset(token)
            status, payload = 200, encode_response(result)
        except Exception as error:
            failure, status, payload = self._failed(error, request_id)
        try:  # the request's record is durable before its answer leaves: no unaudited use
            region, rows = self._rows(scope, headers, request_id, operation, context, params,
                                      result, failure, written, stamp)
            if not self.service.has_region(region):
                await anyio.to_thread.run_sync(self.service.region, region)
            await self._submit(region, rows, bool(written))  # (changed the ledger: kept)
        except Exception as error:
            status, payload = self._unaudited(request_id, error)
        return request_id, status, payload

    def _authenticated(self, scope, headers, request_id: str, body: bytes) -> RequestContext:
        """The request's caller and Region (its signature checked): what its record names,
        whatever else refuses it."""
        caller, region = self.authenticator.authenticate(
            "POST", "/", scope["query_string"], scope["headers"], body
        )
        return self._context(scope, headers, request_id, caller, region)

    @staticmethod
    def _parameters(route: _Route, body: bytes) -> dict[str, Any]:
        """The request's parameters, validated against the operation's model."""
        if route.handler is None:
            raise Unsupported.OPERATION(operation=route.operation)
        return parse_body(route.rules, body)

    @staticmethod
    def _failed(error: Exception, request_id: str) -> tuple[KmsError, int, bytes]:
        """(the failure, status, payload) a request that raised ``error`` is answered with."""
        if isinstance(error, KmsError):
            return error, error.status, encode_error(error.code, error.message)
        # a bug of ours: log it, never leak a stack trace to the caller
        log.error("internal error in request %s", request_id, exc_info=error)
        return _INTERNAL, 500, encode_error(_INTERNAL.code, _INTERNAL.message)

    @staticmethod
    def _unaudited(request_id: str, error: BaseException) -> tuple[int, bytes]:
        log.error("request %s answered KMSInternalException: its audit record could not be "
                  "stored", request_id, exc_info=error)
        return 500, encode_error(_INTERNAL.code, _INTERNAL.message)

    def _submit(self, region: str, rows: list[AuditRow], kept: bool) -> asyncio.Future:
        """The request's records handed to its (open) Region's audit log: done once durable."""
        audit = self.service.region(region).audit
        if len(rows) == 1:
            return audit.submit(rows[0], kept)
        return asyncio.gather(*(audit.submit(row, kept) for row in rows))

    def _rows(self, scope, headers, request_id: str, operation: str | None,
              context: RequestContext | None, params, result, failure: KmsError | None,
              written: list | None, stamp: _RecordStamp | None,
              recovered: bool = False) -> tuple[str, list[AuditRow]]:
        """The request's Region and its records, stored form: one, or one per account that
        logs it. ``stamp``: a management request's eventTime and eventIDs, the same in its
        ledger note (``recovered``: the note's records, which no answer has filled) as in
        what it stores."""
        if context is None:  # not authenticated (or not even a KMS request): the Region it claimed
            principal, resources, material_id, extra = None, (), None, None
            access_key_id, region, account = self.authenticator.claimed(scope["headers"],
                                                                        self.service.has_region)
            client = scope.get("client")
            source_ip = client[0] if client else ""
            agent = headers.get(b"user-agent")
            user_agent = agent.decode("latin-1") if agent else ""
            tls = scope.get("scheme") == "https"
        else:
            principal = context.caller.principal
            access_key_id, account, region = context.access_key_id, context.account_id, context.region
            resources, material_id = context.resources, context.key_material_id
            source_ip, user_agent, tls = context.source_ip, context.user_agent, context.secure_transport
            extra = context.additional
        if operation is None:
            operation = headers.get(b"x-amz-target", b"").decode("latin-1")
            operation = operation[len(TARGET_PREFIX):] if operation.startswith(TARGET_PREFIX) else operation
        now, event_id = (datetime.now(UTC), new_event_id()) if stamp is None else (stamp.now, stamp.event_id(0))
        additional = {"keyMaterialId": material_id} if material_id is not None else extra
        if recovered:
            additional = {**(additional or {}), "recoveredFromLedger": True}
        record = api_call_record(
            principal=principal, access_key_id=access_key_id, account=account, region=region,
            operation=operation, params=params, result=result,
            error_code=failure.code if failure is not None else None,
            error_message=failure.logged_message if failure is not None else None,
            event_time=now, event_id=event_id, request_id=request_id, source_ip=source_ip,
            user_agent=user_agent, resources=resources, additional=additional,
            ledger_events=written or (), tls=tls,
            host=headers.get(b"host", b"").decode("latin-1")[:_HOST_LIMIT] if tls else "",
        )
        caller_arn = principal.arn if principal else None
        owners = _owners_elsewhere(resources, account, failure)
        if not owners:
            return region, [audit_row(record, now, account, resources, caller_arn, request_id)]
        # A cross-account call is logged in the caller's account and in the key owner's, one
        # copy each sharing a sharedEventID (DG logging-using-cloudtrail), unless access was
        # denied: then in the caller's only.
        record["sharedEventID"] = new_event_id() if stamp is None else stamp.event_id(1)
        copies = [record] + [
            {**record, "eventID": new_event_id() if stamp is None else stamp.event_id(2 + n),
             "recipientAccountId": owner} for n, owner in enumerate(owners)]
        return region, [audit_row(copy, now, copy["recipientAccountId"], resources, caller_arn,
                                  request_id) for copy in copies]

    def _route(self, headers: dict[bytes, bytes]) -> _Route:
        """The operation named by X-Amz-Target, once the headers say the request is well formed."""
        route = self._routes.get(headers.get(b"x-amz-target", b""))
        if route is None:
            target = headers.get(b"x-amz-target", b"").decode("latin-1")
            if not target.startswith(TARGET_PREFIX):
                raise Protocol.UNKNOWN_TARGET()
            raise Protocol.UNKNOWN_OPERATION(operation=target[len(TARGET_PREFIX):])
        if headers.get(b"content-type") != _JSON_CONTENT_TYPE:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            content_type = content_type.split(";")[0].strip().lower()
            if content_type not in ACCEPTED_CONTENT_TYPES:
                raise Protocol.MEDIA_TYPE(expected=JSON_CONTENT_TYPE, content_type=content_type)
        declared = headers.get(b"content-length", b"")
        # refuse a declared oversize body before reading it (bodies within the limit skip the parse)
        if len(declared) >= _MAX_BODY_DIGITS and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise Protocol.TOO_LARGE(limit=MAX_BODY_BYTES)
        return route

    @staticmethod
    def _context(scope, headers: dict[bytes, bytes], request_id: str, caller, region: str) -> RequestContext:
        client = scope.get("client")
        user_agent = headers.get(b"user-agent")
        return RequestContext(
            caller.principal.account,
            region,
            request_id,
            caller,
            caller.access_key_id,
            client[0] if client else "",
            user_agent.decode("latin-1") if user_agent else "",
            scope.get("scheme") == "https",
        )


_INTERNAL = Requests.INTERNAL()


async def _run_on(coroutine: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """The value of ``coroutine``, which ran outside a task until it yielded ``waiting`` (the
    asyncio future it waits for, or None to let the loop come round), run on in this task as
    a task runs it: the future is taken (no longer "blocking", as ``Task`` marks it), and once
    it is done the coroutine is sent None and reads its outcome itself. A cancellation of
    this task cancels the future the coroutine waits for (or, with none to cancel, is thrown
    into it), as a task's cancellation does."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                await asyncio.wait([waiting])
        except asyncio.CancelledError as cancelled:
            if waiting is None or not waiting.cancel():
                step = functools.partial(coroutine.throw, cancelled)
            else:
                step = functools.partial(coroutine.send, None)
        else:
            step = functools.partial(coroutine.send, None)
        try:
            waiting = step()
        except StopIteration as done:
            return done.value


def _request_headers(pairs: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """A request's headers by (lower-case) name; a repeated one's values joined with commas,
    as HTTP reads a repeated field (RFC 9110 5.3) and SigV4 signs it: two X-Amz-Target
    headers name no one operation (the last of them ran before)."""
    headers = dict(pairs)
    if len(headers) != len(pairs):
        headers = {}
        for name, value in pairs:
            headers[name] = headers[name] + b"," + value if name in headers else value
    return headers


async def _read_rest_of_body(receive, message) -> bytes:
    """The body of a request that arrives in several messages (or a disconnect)."""
    chunks, size = [], 0
    while True:
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Protocol.TOO_LARGE(limit=MAX_BODY_BYTES)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
        message = await receive()


class LedgerEvent(BaseModel):
    Version: int
    Type: str
    Timestamp: datetime
    Actor: dict[str, str] | None
    Details: dict[str, Any]


class KeyHistory(BaseModel):
    KeyId: str
    Region: str
    Events: list[LedgerEvent]


class ClockAdvance(BaseModel):
    advance_seconds: float


_MAX_CLOCK_ADVANCE = 100 * 366 * 86400.0  # seconds (dates stay within datetime's years,
# rotation and deletion dates after the clock's included: not past the year 9000 either)


class MaintenancePass(BaseModel):
    checkpoint: bool = False  # sign a checkpoint over everything chained
    prune: bool = False  # apply audit retention now (otherwise once an hour)


class Maintenance:
    """Background work of one server process: follow the ledger, run scheduled changes."""

    FOLLOW_INTERVAL = 0.2
    #: how often replica Regions read the other Regions' ledgers (a peer's feed over HTTP)
    REPLICATION_INTERVAL = 0.05

    PRUNE_INTERVAL = 3600.0

    def __init__(self, service: KeyManagementService, interval: float,
                 chainer: LedgerChainer | None = None, retention_days: int = 365) -> None:
        self.service = service
        self.interval = interval
        self.chainer = chainer  # tamper evidence: chains new events and audit records each pass
        self.retention = retention_days * 86400.0
        self._pruned_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyledger-maintenance", daemon=True)
        self._replication = threading.Thread(target=self._replicate, name="keyledger-replication",
                                             daemon=True)

    def start(self) -> None:
        if self.chainer is not None:  # the start's retention pass, before the first request:
            self._prune()  # then once an hour (a pass racing requests made its reach timing-bound)
        self._thread.start()
        self._replication.start()
        name_os_threads()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._replication.join(timeout=10)
        if self.chainer is not None:  # on the way out, chain and checkpoint what is left
            self.chainer.run((region.name for region in self.service.regions), final=True)
            self.chainer.close()

    def _run(self) -> None:
        since_scheduled = self.interval
        while not self._stop.wait(self.FOLLOW_INTERVAL):
            try:
                self.service.follow()
                since_scheduled += self.FOLLOW_INTERVAL
                if since_scheduled >= self.interval:
                    since_scheduled = 0.0
                    self.service.run_scheduled()
            except Exception:
                log.exception("maintenance pass failed; retrying")
            if self.chainer is not None:  # never raises; idle cost: two max() reads per region
                self.chainer.run(region.name for region in self.service.regions)
                self._prune()
            name_os_threads()  # threads started since (a Region opened, a worker thread)

    def _replicate(self) -> None:
        """Multi-Region replicas follow the other Regions (docs/regions.md); the lag this
        bounds is what `GET /ledger/v1/replication` reports."""
        while not self._stop.wait(self.REPLICATION_INTERVAL):
            try:
                self.service.replicate()
            except Exception:
                log.exception("replication pass failed; retrying")

    def _prune(self) -> None:
        """Audit retention, once an hour (and at the start, before the first request)."""
        now = time.time()
        if now - self._pruned_at < self.PRUNE_INTERVAL:
            return
        self._pruned_at = now
        try:
            self.prune()
        except Exception:
            log.exception("audit retention pass failed; retrying in an hour")

    def prune(self) -> dict[str, int]:
        """Audit retention now: records older than --audit-retention-days go, but only as
        whole prefixes ending at a checkpoint (verify still passes). Age is measured on the
        service clock, as deletion windows are: the wall clock, or the test clock under
        --enable-test-control. Returns the records deleted per region; raises on failure."""
        cutoff = self.service.clock.now().timestamp() - self.retention
        pruned = self.chainer.prune_before(cutoff, [region.name for region in self.service.regions])
        if any(pruned.values()):
            log.warning("audit retention: pruned %s", pruned)
        return pruned

    def run_now(self, checkpoint: bool = False, prune: bool = False) -> dict[str, Any]:
        """TEST ONLY (``POST /_test/maintenance``): one pass now, raising on failure: follow
        the ledger, run due changes, chain what is new (``checkpoint``: and sign a checkpoint
        over everything chained), and (``prune``) apply audit retention."""
        self.service.follow()
        self.service.run_scheduled()
        for region in self.service.regions:
            self.chainer.chain(region.name, final=checkpoint)
        return {"pruned": self.prune() if prune else {}}


#: the ledger API's actions (identity policies; an account's root needs none for its own keys)
READ_HISTORY = Operation("ReadHistory", "keyledger:ReadHistory", Kind.READ_ONLY)
READ_KEY_STATE = Operation("ReadKeyState", "keyledger:ReadHistory", Kind.READ_ONLY)
READ_KEY_ACCESS = Operation("ReadKeyAccess", "keyledger:ReadHistory", Kind.READ_ONLY)
READ_KEY_MATERIALS = Operation("ReadMaterials", "keyledger:ReadHistory", Kind.READ_ONLY)
READ_AUDIT = Operation("ReadAudit", "keyledger:ReadAudit", Kind.READ_ONLY)
READ_REPLICATION = Operation("ReadReplication", "keyledger:ReadReplication", Kind.READ_ONLY)
LEDGER_REQUEST_ID = "x-amzn-RequestId"  # the header naming a ledger API answer's request id
#: the nodes' replication routes: not API calls, not audited (docs/regions.md)
_NODE_ROUTES = frozenset({"/ledger/v1/feed", "/ledger/v1/authorize", "/ledger/v1/transport-key"})
#: the event name of a request for a path or method the ledger API does not have
NO_SUCH_ROUTE = "LedgerApi"
_LEDGER_EVENTS = {"events": "ReadHistory", "state": "ReadKeyState", "access": "ReadKeyAccess",
                  "materials": "ReadMaterials", "audit": "ReadAudit", "replication": "ReadReplication"}


class _RecordStamp:
    """A management request's eventTime (when it is first asked for: the request's first save,
    or its record) and eventIDs: the same in the note of its records that each save carries
    (application.region.NOTE_RECORDS) as in the records it stores."""

    __slots__ = ("_ids", "_now")

    def __init__(self) -> None:
        self._now: datetime | None = None
        self._ids: list[str] = []

    @property
    def now(self) -> datetime:
        if self._now is None:
            self._now = datetime.now(UTC)
        return self._now

    def event_id(self, n: int) -> str:
        while len(self._ids) <= n:
            self._ids.append(new_event_id())
        return self._ids[n]


def _owners_elsewhere(resources, account: str, failure: KmsError | None) -> list[str]:
    """The accounts, other than the caller's, that own the keys a request used and get a copy
    of its record (none when access was denied)."""
    marker = f":{account}:"  # (the account field of an ARN: a Region never has 12 digits)
    others = [arn for arn in resources if marker not in arn]  # (the usual request: none)
    if not others or (failure is not None and failure.code == "AccessDeniedException"):
        return []
    return sorted({arn.split(":", 5)[4] for arn in others})


#: tlsDetails.clientProvidedHostHeader, at most (a DNS name is at most 253 characters, a port 6)
_HOST_LIMIT = 260


def _signed_path(request: Request) -> str:
    """The path as the client sent and signed it (percent escapes kept, as
    infrastructure.sigv4.canonical_uri expects): a key ARN may come URL-encoded."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if raw else request.url.path


def _ledger_event_name(path: str) -> str:
    """The event name of a ledger API path (for the record of a refused request)."""
    return _LEDGER_EVENTS.get(path.rstrip("/").rsplit("/", 1)[-1], NO_SUCH_ROUTE)


def create_app(settings: Settings | None = None) -> KmsFrontend:
    end_with_supervisor()  # a worker of `serve --workers N` does not outlive the supervisor
    settings = settings or Settings.from_env()
    regions_served = settings.served_regions or (kms_regions() | {settings.default_region})
    authenticator = Authenticator(
        settings.auth, settings.identities_path, settings.account_id, settings.default_region,
        regions_served,
    )
    service = build_service(
        settings, authenticator.principal_exists if settings.auth == "sigv4" else None
    )
    authenticator.on_change = lambda digest, changes: service.record_identities(
        settings.default_region, digest, changes
    )
    if settings.default_region in regions_served:
        service.region(settings.default_region)
    for region in service.known_regions():
        if region in regions_served:
            service.region(region)
    service.serve_regions(settings.served_regions, peers_of(settings, authenticator))
    prepare_audit_records()  # before the first request, and before gc.freeze()
    maintenance = Maintenance(service, settings.maintenance_interval, LedgerChainer.for_store(
        settings.data_path, settings.store, settings.root_key_file), settings.audit_retention_days)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Everything built so far (the botocore model, the application) lives as long as the
        # process: keep it out of the garbage collector's full scans.
        gc.collect()
        gc.freeze()
        serve_crypto_helpers_on(asyncio.get_running_loop())
        authenticator.start()
        maintenance.start()
        try:
            yield
        finally:
            maintenance.stop()
            authenticator.stop()
            stop_crypto_helpers()
            service.close()

    ledger_api = FastAPI(
        title="keyledger",
        description="The ledger's own API. The AWS KMS API (JSON 1.1) is served on POST /.",
        lifespan=lifespan,
    )

    @ledger_api.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def ledger_audit(request: Request, principal, access_key_id: str, account: str, region: str,
                     event_name: str, params: dict[str, Any], resources: tuple[str, ...],
                     failure: KmsError | None, request_id: str,
                     additional: dict[str, Any] | None = None) -> Any:
        """The audit row of one ledger API request (ledger_api_record)."""
        now = datetime.now(UTC)
        client = request.client
        record = ledger_api_record(
            principal=principal, access_key_id=access_key_id, account=account, region=region,
            event_name=event_name, params=params,
            error_code=failure.code if failure is not None else None,
            error_message=failure.logged_message if failure is not None else None, event_time=now,
            event_id=new_event_id(), request_id=request_id,
            source_ip=client.host if client else "", user_agent=request.headers.get("user-agent", ""),
            resources=resources, additional=additional, tls=request.url.scheme == "https",
            host=request.headers.get("host", "")[:_HOST_LIMIT],
        )
        return audit_row(record, now, account, resources, principal.arn if principal else None,
                         request_id)

    async def kept(region: str, row: Any, request_id: str) -> bool:
        """Store a ledger API request's record before its answer leaves; False (logged: the
        request is answered 500) when it could not be stored."""
        try:
            await service.region(region).audit.record(row)
            return True
        except Exception:
            log.exception("ledger API request %s answered 500: its audit record could not be "
                          "stored", request_id)
            return False

    async def authenticated(request: Request, event_name: str) -> Caller:
        """The ledger API is authenticated as the KMS API is (SigV4, service ``kms``); a
        refused request is audited too (as ``event_name``), then answered 403."""
        request_id = request.state.request_id
        body = await request.body()
        try:
            return authenticator.authenticate(
                request.method, _signed_path(request), request.scope["query_string"],
                request.scope["headers"], body,
            )[0]
        except KmsError as error:
            access_key_id, region, account = authenticator.claimed(request.scope["headers"],
                                                                   service.has_region)
            # (no parameter of a request no one is proven to have made: as a KMS request's)
            row = ledger_audit(request, None, access_key_id, account, region, event_name, None,
                               (), error, request_id)
            status, detail = ((403, f"{error.code}: {error.message}")
                              if await kept(region, row, request_id) else (500, _INTERNAL.message))
            raise HTTPException(status_code=status, detail=detail,
                                headers={LEDGER_REQUEST_ID: request_id}) from None

    async def caller(request: Request, response: Response) -> Caller:
        """A route's caller (:func:`authenticated`). Each request gets its request id here:
        every answer carries it (``x-amzn-RequestId``), as its audit record does."""
        request_id = request.state.request_id = _request_id()
        response.headers[LEDGER_REQUEST_ID] = request_id  # the successful answer's
        return await authenticated(request, _ledger_event_name(request.url.path))

    def ledger_read(request: Request, caller: Caller, operation: Operation, region: str | None,
                    key: str | None, read, audited_key: str | None = None) -> Any:
        """``read(region, account, key_id)`` for the caller's account, authorized by
        ``operation``'s identity-policy action (on the key ARN, or "*"; an account's root needs
        none), and audited before the answer leaves, whatever the answer: 400 for a malformed
        parameter (a Region not served included: recorded in the default Region), 403
        refused, 404 no such key (then), 500 a bug of ours or an audit record that could not
        be stored. ``key`` (a key route's; else None) is a key id or key ARN (key_reference,
        which refuses an alias): a key ARN's Region is the one read (a ``region`` given too
        must match it), and a key ARN of another account names no key of the caller's.
        ``audited_key``: the key whose records a ReadAudit reads (a key id or ARN): the
        action is authorized on its ARN. A key of the caller's that is read about is
        refused, too, by an explicit Deny of the action in its key policy."""
        account = caller.principal.account
        asked, key_id, resources = region or settings.default_region, None, ()
        failure: KmsError | None = None
        request_id = request.state.request_id
        try:
            owner = account
            if key is not None:
                named = key_reference(key, "This route", "this route")
                key_id = named.key_id
                owner = account if named.account is None else named.account
                asked = named.region_read(region, settings.default_region)
            if asked not in regions_served:
                raise ValidationException(f"invalid region {asked[:64]!r}")
            if key_id:
                resources = (key_arn(asked, owner, key_id),)
            resource, known = (resources[0] if resources else "*"), None
            if audited_key:
                audited = key_reference(audited_key)
                # (a Region is opened for a key id only if it has a ledger: never made here)
                mine = service.region(asked).ledger.get_key(audited.key_id) if (
                    KEY_ID_PATTERN.fullmatch(audited.key_id) and (
                        service.has_region(asked) or asked in service.known_regions())) else None
                if mine is not None and mine.account == account:  # however its ARN is spelled
                    resource, known = mine.arn, mine
                else:
                    resource = key_arn(audited.region or asked, audited.account or account,
                                       audited.key_id)
            context = RequestContext(account, asked, request_id, caller, caller.access_key_id)
            service.authorizer.check_request(context, operation, {}, resource=resource)
            if owner != account:  # as a key id of no key of the caller's account is answered
                raise NotFoundException(f"Key '{key_id[:64]}' does not exist in {asked}")
            if key_id and KEY_ID_PATTERN.fullmatch(key_id):  # (a key route's key)
                known = service.region(asked).ledger.get_key(key_id)
            if known is not None and known.account == account:
                service.authorizer.check_key_policy_deny(context, operation, known)
            answer, status = read(asked, account, key_id), 200
        except AccessDeniedException as error:
            failure, status = error, 403
        except KmsError as error:
            failure = error
            status = 400 if error.code in ("ValidationException", "InvalidMarkerException") else 404
        except Exception:  # a bug of ours: log it, never leak a stack trace to the caller
            log.exception("internal error in ledger API request %s", request_id)
            failure, status = _INTERNAL, 500
        region = asked if asked in regions_served else settings.default_region
        if failure is not None and not service.has_region(region):
            region = settings.default_region  # (a refused request opens no Region's store)
        params = {**request.query_params, **request.path_params}  # (the path's own win)
        try:
            service.region(region).audit.record_blocking(ledger_audit(
                request, caller.principal, caller.access_key_id, account, region,
                operation.name, params, resources, failure, request_id))
        except Exception:
            log.exception("ledger API request %s answered 500: its audit record could not be "
                          "stored", request_id)
            failure, status = _INTERNAL, 500
        if failure is not None:  # a refusal names its code, as an authentication failure does
            detail = f"{failure.code}: {failure.message}" if status == 403 else failure.message
            raise HTTPException(status_code=status, detail=detail,
                                headers={LEDGER_REQUEST_ID: request_id})
        return answer

    # -- the deployment's other nodes: ledger feeds (docs/regions.md) --------------------------

    def node(request: Request, region: str, body: bytes = b"") -> None:
        """A request of another node of the deployment (its "nodes" key, signed for
        ``region``, which this node serves), or 403. Feed reads are replication traffic, not
        API calls: they are not audited (what they carry is in the ledger already)."""
        try:
            signed_for = authenticator.authenticate_node(
                request.method, _signed_path(request), request.scope["query_string"],
                request.scope["headers"], body)
        except KmsError as error:
            raise HTTPException(status_code=403, detail=f"{error.code}: {error.message}") from None
        if signed_for != region or region not in regions_served:
            raise HTTPException(status_code=404, detail=f"this node does not serve {region[:64]!r}")

    def _whole(text: str) -> int | None:
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None

    @ledger_api.get("/ledger/v1/feed")
    def feed(request: Request, region: str = "", after: str = "0",
             limit: str = "500") -> dict[str, Any]:
        """The Region's ledger after position ``after`` (at most ``limit`` ≤ 1000 events, oldest
        first), as stored: what another node's replicators read. The signature is checked
        before the parameters: a caller that is no node learns nothing of them."""
        node(request, region)
        position, size = _whole(after), _whole(limit)
        if position is None or size is None or not (
                position < 2**63 and 1 <= size <= 1000):  # (positions are 64-bit)
            raise HTTPException(status_code=400, detail="0 ≤ after < 2^63 and 1 ≤ limit ≤ 1000")
        return {"Region": region, "Events": service.feed(region, position, size)}

    @ledger_api.post("/ledger/v1/authorize")
    async def authorize(request: Request) -> dict[str, Any]:
        """Another node asks this one to authorize its caller on this node's key of a
        multi-Region set (UpdatePrimaryRegion is authorized in the replica's Region too):
        ``{"Allowed": true}`` or ``{"Error": {"Code", "Message"}}``."""
        body = await request.body()
        try:
            asked = orjson.loads(body)  # (a nesting too deep for json is a ValueError here)
            region = str(asked["Region"])
        except (ValueError, KeyError, TypeError):
            raise HTTPException(status_code=400, detail="expected a JSON object with Region") from None
        node(request, region, body)
        if asked.get("Operation") != "UpdatePrimaryRegion":  # the one a node may ask about
            raise HTTPException(status_code=400, detail="only UpdatePrimaryRegion is authorized here")
        account = str(asked.get("Account", ""))
        caller = authenticator.caller_by_access_key(str(asked.get("AccessKeyId", "")), account)
        if caller is None:
            return {"Error": {"Code": "AccessDeniedException",
                              "Message": "The access key is not known in this Region."}}
        context = RequestContext(account, region, _request_id(), caller, caller.access_key_id,
                                 str(asked.get("SourceIp", "")), str(asked.get("UserAgent", "")))
        params = asked.get("Params") if isinstance(asked.get("Params"), dict) else {}
        try:
            await anyio.to_thread.run_sync(service.authorize_here, context, str(asked["KeyId"]),
                                           "UpdatePrimaryRegion", params)
        except KmsError as error:
            return {"Error": {"Code": error.code, "Message": error.message}}
        except KeyError:
            raise HTTPException(status_code=400, detail="expected KeyId") from None
        return {"Allowed": True}

    @ledger_api.get("/ledger/v1/transport-key")
    def transport_key(request: Request, region: str = "") -> dict[str, Any]:
        """The Region's transport public key: what a primary elsewhere seals material to."""
        node(request, region)
        return {"Region": region, "PublicKey": base64.b64encode(
            service.region(region).hierarchy.transport_public_key()).decode()}

    @ledger_api.get("/ledger/v1/replication")
    def replication(request: Request, caller: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
        """How far each Region this node serves has followed each other Region: position, events
        applied and their lag (commit there to commit here, p50/p99/max of the last 1,000, ms).
        Authorized by ``keyledger:ReadReplication`` (an account's root needs none), for the
        deployment's own account only: the positions and counts are every account's events."""
        def read(r: str, account: str, _: None) -> dict[str, Any]:
            if account != settings.account_id:
                raise AccessDeniedException(
                    f"User: {caller.principal.arn} is not authorized to perform: "
                    f"{READ_REPLICATION.action} on resource: * because the deployment's "
                    f"replication is read by its own account ({settings.account_id})")
            return {"Replication": service.replication_status()}

        return ledger_read(request, caller, READ_REPLICATION, None, None, read)

    # The key routes take a key id or a key ARN, whose "/" the path converter lets through
    # (``.../keys/arn:aws:kms:REGION:ACCOUNT:key/ID/state``); never an alias (ledger_read).

    @ledger_api.get("/ledger/v1/keys/{key_id:path}/events", response_model=KeyHistory)
    def key_events(request: Request, key_id: str, region: str | None = None,
                   caller: Caller = Depends(caller)) -> KeyHistory:  # noqa: B008
        """Every event of a key (a key id or key ARN), oldest first: the key's audit trail.
        Authorized by ``keyledger:ReadHistory`` (an account's root reads its own account's
        keys)."""
        return ledger_read(request, caller, READ_HISTORY, region, key_id, lambda r, account, key: KeyHistory(
            KeyId=key, Region=r, Events=service.key_history(r, key, account)))

    # -- forensics: a key as of any instant, who could use it, its material versions --------
    forensics = Forensics(service, settings.default_region)

    def instant(at: str | None) -> datetime:
        return past_instant(at, datetime.now(UTC))  # the clock events are stamped by

    @ledger_api.get("/ledger/v1/keys/{key_id:path}/state")
    def key_state(request: Request, key_id: str, at: str | None = None, region: str | None = None,
                  caller: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
        """The key as it was at ``at`` (ISO 8601 or epoch seconds; default now): KeyMetadata
        (DescribeKey's shape), Policy, Tags, Aliases, Grants, KeyRotationStatus, Version,
        Deleted. 404 before the key existed."""
        return ledger_read(request, caller, READ_KEY_STATE, region, key_id,
                           lambda r, account, key: forensics.key_state(r, key, instant(at), account))

    @ledger_api.get("/ledger/v1/keys/{key_id:path}/access")
    def key_access(request: Request, key_id: str, action: str | None = None, at: str | None = None,
                   region: str | None = None,
                   caller: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
        """Every principal that could perform ``action`` (e.g. kms:Decrypt) on the key at
        ``at``, and how: key policy statement, identity policy, or grant, with the request
        conditions it would need (docs/audit.md, access review)."""
        def read(r: str, account: str, key: str) -> dict[str, Any]:
            if not action:
                raise ValidationException("action is required, e.g. action=kms:Decrypt.")
            return forensics.who_can(r, key, action, instant(at), account)

        return ledger_read(request, caller, READ_KEY_ACCESS, region, key_id, read)

    @ledger_api.get("/ledger/v1/keys/{key_id:path}/materials")
    def key_materials(request: Request, key_id: str, days: str = "30", region: str | None = None,
                      caller: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
        """Each backing-material version of the key: lineage, what it produced and decrypted
        (from the audit records), first and last use; for imported material whether anything
        under it was decrypted in the last ``days`` days (default 30)."""
        def read(r: str, account: str, key: str) -> dict[str, Any]:
            if not (days.isascii() and days.isdigit()):  # (isdigit() takes "²", int() not)
                raise ValidationException("days must be a whole number of days.")
            # (a number of thousands of digits would not convert: out of range all the same)
            return forensics.materials(r, key, int(days) if len(days) < 10 else 0, account)

        return ledger_read(request, caller, READ_KEY_MATERIALS, region, key_id, read)

    @ledger_api.get("/ledger/v1/audit")
    def audit_records(request: Request, region: str | None = None, key_id: str | None = None,
                      principal: str | None = None, event_name: str | None = None,
                      start: str | None = None, end: str | None = None,
                      errors_only: str | None = None, limit: str | None = None,
                      next_token: str | None = None,
                      caller: Caller = Depends(caller)) -> dict[str, Any]:  # noqa: B008
        """The caller's account's audit records, newest first: ``{"Records": [...],
        "NextToken": "…"}``; ``limit`` ≤ 1000 (default 50); times ISO 8601 or epoch seconds
        (an ``end`` to the whole second takes in that second); ``key_id`` a key id or key
        ARN. Authorized by ``keyledger:ReadAudit`` (an account's root reads its own)."""
        def read(r: str, account: str, _: None) -> dict[str, Any]:
            named = key_reference(key_id) if key_id else None
            if named is not None and named.region not in (None, r):  # (one Region per page)
                raise ValidationException(
                    f"The key ARN names Region {named.region[:64]!r}: read it with "
                    f"region={named.region[:64]}.")
            wanted = AuditFilter(account=account, key_id=key_id, principal=principal,
                                 event_name=event_name, start=parse_time(start, "start"),
                                 end=parse_time(end, "end"),
                                 errors_only=parse_flag(errors_only, "errors_only"))
            return read_page(service.region(r).audit.store, AuditQuery, wanted,
                             check_limit(limit), next_token)

        return ledger_read(request, caller, READ_AUDIT, region, None, read, audited_key=key_id)

    if settings.enable_test_control:

        @ledger_api.post("/_test/clock", include_in_schema=False)
        def advance_clock(body: ClockAdvance) -> dict[str, float]:
            """TEST ONLY (``--enable-test-control``): move the clock, run due changes."""
            if not 0 <= body.advance_seconds <= _MAX_CLOCK_ADVANCE or (  # (NaN is neither)
                    service.clock.now().year + body.advance_seconds / (366 * 86400) > 9000):
                raise HTTPException(status_code=400, detail="the clock only moves forward, by "
                                    "at most 100 years at a time, and not past the year 9000")
            now = service.clock.advance(timedelta(seconds=body.advance_seconds))
            service.follow()
            service.run_scheduled()
            return {"now": now.timestamp()}

        @ledger_api.post("/_test/maintenance", include_in_schema=False)
        def maintenance_pass(body: MaintenancePass) -> dict[str, Any]:
            """TEST ONLY (``--enable-test-control``): a maintenance pass now, checkpoint and
            audit retention included on request (retention otherwise runs once an hour)."""
            return maintenance.run_now(checkpoint=body.checkpoint, prune=body.prune)

    # -- a path under /ledger/v1/ the API does not have (the router's 404), or a method its
    # route does not take (405, with Allow): answered and audited as any ledger API request;
    # a path with a slash too many or too few is redirected to its route, audited too (the
    # router's own redirect would answer it unaudited, with no request id)
    ledger_api.router.redirect_slashes = False

    def slash_variant(request: Request) -> str | None:
        """The path of the route the path names but for a trailing slash (None: none)."""
        path = request.url.path
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        scope = {**request.scope, "path": other}
        if any(route.matches(scope)[0] is not Match.NONE for route in ledger_api.router.routes):
            return other
        return None

    @ledger_api.exception_handler(StarletteHTTPException)
    async def no_such_route(request: Request, error: StarletteHTTPException) -> Response:
        path = request.url.path
        if (error.status_code not in (404, 405) or LEDGER_REQUEST_ID in (error.headers or {})
                or not path.startswith("/ledger/v1/") or path in _NODE_ROUTES):
            return await http_exception_handler(request, error)
        request_id = request.state.request_id = _request_id()
        try:
            caller = await authenticated(request, NO_SUCH_ROUTE)
        except HTTPException as refused:
            return await http_exception_handler(request, refused)
        moved = slash_variant(request) if error.status_code == 404 else None
        failure = None if moved else UnknownOperationException(
            f"The ledger API has no {request.method} {path[:256]}.")
        row = ledger_audit(request, caller.principal, caller.access_key_id,
                           caller.principal.account, settings.default_region, NO_SUCH_ROUTE,
                           dict(request.query_params), (), failure, request_id,
                           {"redirectedTo": moved[:256]} if moved else None)  # (the query
        if not await kept(settings.default_region, row, request_id):  # is requestParameters)
            error = HTTPException(status_code=500, detail=_INTERNAL.message)
        elif moved:
            return RedirectResponse(str(request.url.replace(path=moved)),
                                    headers={LEDGER_REQUEST_ID: request_id})
        return await http_exception_handler(request, StarletteHTTPException(
            error.status_code, error.detail, {**(error.headers or {}), LEDGER_REQUEST_ID: request_id}))

    return KmsFrontend(service, settings, ledger_api, authenticator)
