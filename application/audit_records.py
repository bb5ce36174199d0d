"""Audit records: one CloudTrail-shaped record per KMS request, ledger-API request and
service event. Pure: builds dicts, does no I/O, keeps no state but two small caches.

Envelope (CloudTrail record contents, eventVersion ``1.11``): ``eventVersion``,
``userIdentity``, ``eventTime`` (``YYYY-MM-DDTHH:MM:SSZ``), ``eventSource``
(``kms.amazonaws.com``), ``eventName``, ``awsRegion``, ``sourceIPAddress``, ``userAgent``
(at most 1 KB, truncated), ``requestParameters`` (null when nothing is logged),
``responseElements``, ``additionalEventData`` (only when there is some), ``requestID``,
``eventID``, ``readOnly``, ``resources`` (``[{"accountId", "type", "ARN"}]``), ``eventType``,
``managementEvent`` (true), ``recipientAccountId``, ``eventCategory`` (``Management``),
``errorCode`` / ``errorMessage`` on failures (``errorMessage`` omitted when the error has
none; both at most 1 KB) and ``tlsDetails`` only for a request that came over TLS.

userIdentity:

* root: ``{"type": "Root", "principalId": ACCOUNT, "arn": "arn:aws:iam::ACCOUNT:root",
  "accountId", "accessKeyId"}``;
* IAM user: ``{"type": "IAMUser", "principalId": "AIDA…", "arn", "accountId",
  "accessKeyId", "userName"}``;
* role session: ``{"type": "AssumedRole", "principalId": "AROA…:SESSION", "arn":
  "arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION", "accountId", "accessKeyId",
  "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROA…", "arn":
  "arn:aws:iam::ACCOUNT:role/PATH/ROLE", "accountId", "userName": ROLE}, "attributes":
  {"creationDate", "mfaAuthenticated": "false"}}}`` (``creationDate``: when the session began,
  the principal's ``session_created``; left out when not known);
* authentication failed (no principal): ``{"type": "Unknown", "accessKeyId": …}`` — the
  access key id the request claimed (omitted when it named none); no account, ARN or
  principal id, since none was proven. ``recipientAccountId`` is the ``account`` passed.
* service events (scheduled deletion, automatic rotation, expiry of imported material):
  ``{"accountId", "invokedBy": "AWS Internal"}`` with ``sourceIPAddress`` / ``userAgent``
  ``"AWS Internal"``, ``eventType`` ``AwsServiceEvent`` and no ``requestID``, as AWS writes
  them.

``accessKeyId`` is omitted when empty (an unsigned request in ``--auth open`` mode).

requestParameters / responseElements: member names in camelCase (the model's name with its
first letter lowered: ``KeyId`` → ``keyId``, ``AWSAccountId`` → ``aWSAccountId`` as in AWS's
own CreateKey examples); map keys (encryption context) unchanged. Only the members of the
operation's botocore model are read (anything else in ``params`` is ignored) and a member is
**never** logged, at any depth, when its shape is a blob (plaintext, ciphertext, message,
signature, MAC, public key, imported material, import token, attestation document), is
marked ``sensitive`` (custom key store passwords and proxy credentials), or is a token
(``GrantTokens``, ``GrantToken``, ``ImportToken``, any member named ``…Token(s)``). The
rule is derived from the model's shapes when this module is imported, so a member a newer
botocore adds is covered by it. Key policies *are* logged in CreateKey / PutKeyPolicy
requests, as AWS logs them; GetKeyPolicy's response is not (no read-only operation has
responseElements).

* requestParameters: every other request member present, e.g. Encrypt ``{keyId,
  encryptionContext, encryptionAlgorithm}``; Encrypt and Decrypt always have
  ``encryptionAlgorithm`` (``SYMMETRIC_DEFAULT`` when the request named none), as AWS's
  examples show, and ReEncrypt both its algorithms; ReEncrypt
  ``{sourceKeyId, destinationKeyId, sourceEncryptionContext, destinationEncryptionContext,
  sourceEncryptionAlgorithm, destinationEncryptionAlgorithm}``; CreateGrant ``{keyId,
  granteePrincipal, retiringPrincipal, operations, constraints, name}``; RetireGrant by token
  alone logs null (the token never), as AWS does.
* responseElements: null for cryptographic and read-only operations (and for
  GetParametersForImport, which AWS logs as read-only); for the other (management) operations
  every non-secret response member: CreateKey ``{keyMetadata}``, ScheduleKeyDeletion ``{keyId,
  deletionDate, keyState, pendingWindowInDays}``, CancelKeyDeletion / RotateKeyOnDemand
  ``{keyId}``, CreateGrant ``{grantId}`` (never the grant token), ImportKeyMaterial /
  DeleteImportedKeyMaterial ``{keyId, keyMaterialId}``; ``{keyId: KEY_ARN}`` for the operations
  that return nothing but whose AWS records carry it (CreateAlias, UpdateAlias, DeleteAlias,
  EnableKey, DisableKey, EnableKeyRotation, UntagResource: AWS's entries since December 2022);
  null for the others that return nothing (PutKeyPolicy, TagResource, …) and on failures.
* readOnly: true for cryptographic and read-only operations (domain.operations.Kind) and
  GetParametersForImport (as AWS logs it); false for the others.
* additionalEventData: for cryptographic operations the key material ids the result names
  (``keyMaterialId``; ReEncrypt ``sourceKeyMaterialId`` / ``destinationKeyMaterialId``), then
  the caller's ``additional`` (e.g. Encrypt's ``{"keyMaterialId": …}``, RetireGrant's
  ``{"grantId": …}``), then keyledger's own ``ledgerEvents``.

Datetimes (in requestParameters, responseElements, serviceEventDetails) are written as ISO
8601 UTC with second precision, ``2021-04-12T18:58:30Z``, like ``eventTime``. AWS's examples
show human strings (``"Apr 12, 2021 18:58:30 PM"``, ``"Jun 30, 2020 2:34:07 AM"``); keyledger
does not reproduce them: they are ambiguous and do not sort.

keyledger's additions (not in CloudTrail):

* ``additionalEventData.ledgerEvents``: ``[{"aggregateId", "version"}]``, the ledger events
  a management request (or a service event) wrote, in order — the link from an audit record
  to the key history it changed;
* ledger REST API requests (``GET /ledger/v1/...``) are recorded in the same envelope with
  ``eventSource`` ``keyledger.ledger`` and eventName ``ReadHistory``, ``ReadAudit``,
  ``ReadKeyState``, ``ReadKeyAccess``, ``ReadMaterials`` …; their requestParameters are the
  request's path and query parameters in camelCase (``key_id`` → ``keyId``).

Records hold only str, int, bool, None, lists and dicts, in a fixed key order;
:func:`canonical_bytes` is what the tamper-evidence chain hashes. A record, and the dicts in
it, must not be changed once built: parts of it (userIdentity, resources entries, encryption
context maps) are shared with other records or with the request's params.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from application.kms_model import service_model
from domain.operations import OPERATIONS, Kind
from domain.principals import Principal, PrincipalKind, unique_id_for

EVENT_VERSION = "1.11"
EVENT_SOURCE = "kms.amazonaws.com"
LEDGER_EVENT_SOURCE = "keyledger.ledger"
AWS_INTERNAL = "AWS Internal"
RESOURCE_TYPE_KEY = "AWS::KMS::Key"
#: AWS's alias entries in resources carry the key's type too (ct-createalias, ct-updatealias)
RESOURCE_TYPE_ALIAS = RESOURCE_TYPE_KEY
SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
#: CloudTrail's limits on userAgent, errorCode and errorMessage (bytes of UTF-8)
FIELD_LIMIT = 1024

Converter = Callable[[Any], Any]
_CACHE_LIMIT = 4096  # entries of each of the small caches below


# --- what may be logged: derived from the botocore model --------------------------------

#: token shapes that are strings in the model (the grant token); ImportToken is a blob
TOKEN_SHAPES = frozenset({"GrantTokenType", "GrantTokenList"})


def is_secret(member_name: str, shape: Any) -> bool:
    """A member that is never logged: a blob, a ``sensitive`` shape, or a token."""
    return (
        shape.type_name == "blob"
        or bool(shape.metadata.get("sensitive"))
        or shape.name in TOKEN_SHAPES
        or member_name.endswith(("Token", "Tokens"))
    )


def camel(name: str) -> str:
    """CloudTrail's member name: the model's with its first letter lowered."""
    return name[:1].lower() + name[1:]


_ISO: dict[tuple[int, ...], str] = {}  # second -> its text: most records share their second


def _iso(t: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC (a naive datetime is taken as UTC)."""
    if t.tzinfo is not None and t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    second = (t.year, t.month, t.day, t.hour, t.minute, t.second)
    text = _ISO.get(second)
    if text is None:
        if len(_ISO) >= _CACHE_LIMIT:
            _ISO.clear()
        text = _ISO[second] = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*second)
    return text


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _iso(datetime.fromtimestamp(value, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    return value if isinstance(value, str) else None


def _structure(members: tuple[tuple[str, str, Converter | None], ...]) -> Converter:
    def convert(value: Any) -> dict[str, Any] | None:
        # (the exact-type test first: an ABC's isinstance costs more than this whole loop's
        # share of a record)
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        out: dict[str, Any] = {}
        for name, logged_name, member in members:
            item = value.get(name)
            if item is not None:
                if member is not None:
                    item = member(item)
                    if item is None:
                        continue
                out[logged_name] = item
        return out or None

    convert.members = members  # type: ignore[attr-defined]  # for describe()
    return convert


def _list(element: Converter | None) -> Converter:
    def convert(value: Any) -> list[Any] | None:
        if not isinstance(value, list | tuple):
            return None
        if element is None:
            return value if isinstance(value, list) else list(value)
        out = []
        for item in value:
            item = element(item)
            if item is not None:
                out.append(item)
        return out

    return convert


def _map(element: Converter | None) -> Converter:
    def convert(value: Any) -> dict[str, Any] | None:
        if type(value) is dict and element is None:
            return value
        if not isinstance(value, Mapping):
            return None
        if element is None:
            return value if isinstance(value, dict) else dict(value)
        out = {}
        for key, item in value.items():
            item = element(item)
            if item is not None:
                out[key] = item
        return out

    return convert


class _Drop:
    """The converter of a member that is never logged."""


_DROP: Any = _Drop()


def compile_shape(shape: Any, _active: frozenset[str] = frozenset()) -> Converter | None | Any:
    """The converter of a (non-secret) shape: None when its values are logged as they are,
    ``_DROP`` when nothing of it may be logged, else a function returning the logged form
    (None: omit). Recursion through a shape already being compiled is dropped."""
    kind = shape.type_name
    if kind == "structure":
        if shape.name in _active:
            return _DROP
        active = _active | {shape.name}
        members = []
        for name, member_shape in shape.members.items():
            if is_secret(name, member_shape):
                continue
            converter = compile_shape(member_shape, active)
            if converter is not _DROP:
                members.append((name, camel(name), converter))
        return _structure(tuple(members)) if members else _DROP
    if kind == "list":
        member = shape.member
        if is_secret("", member):
            return _DROP
        element = compile_shape(member, _active)
        return _DROP if element is _DROP else _list(element)
    if kind == "map":
        value = shape.value
        if is_secret("", value) or is_secret("", shape.key):
            return _DROP
        element = compile_shape(value, _active)
        return _DROP if element is _DROP else _map(element)
    if kind == "timestamp":
        return _timestamp
    if kind == "blob":  # reached only through a secret-free path: still never logged
        return _DROP
    return None  # string, boolean, integer, long, float, double


#: operations AWS logs with readOnly true although they are not of a read-only kind here
_READ_ONLY_OVERRIDES = {"GetParametersForImport": True}
#: operations that return nothing but whose records (AWS's since December 2022) carry the key
#: ARN as responseElements.keyId: each one's CloudTrail example says so (developerguide
#: ct-createalias, ct-updatealias, ct-deletealias, ct-enablekey, ct-disablekey,
#: ct-enablekeyrotation, ct-untagresource). Those of PutKeyPolicy, TagResource,
#: UpdateKeyDescription, DisableKeyRotation and RetireGrant predate it and say nothing: null.
_KEY_IN_RESPONSE = frozenset({"CreateAlias", "UpdateAlias", "DeleteAlias", "EnableKey",
                              "DisableKey", "EnableKeyRotation", "UntagResource"})
#: request members logged with a default when the request omits them
_REQUEST_DEFAULTS: dict[str, tuple[tuple[str, Any], ...]] = {
    # AWS's Encrypt and Decrypt records show the algorithm even when it was defaulted
    # (ct-encrypt, ct-decrypt); ReEncrypt's show both (ct-reencrypt)
    "Encrypt": (("encryptionAlgorithm", SYMMETRIC_DEFAULT),),
    "Decrypt": (("encryptionAlgorithm", SYMMETRIC_DEFAULT),),
    "ReEncrypt": (("sourceEncryptionAlgorithm", SYMMETRIC_DEFAULT),
                  ("destinationEncryptionAlgorithm", SYMMETRIC_DEFAULT)),
}


def _is_read_only(operation: str) -> bool:
    if operation in _READ_ONLY_OVERRIDES:
        return _READ_ONLY_OVERRIDES[operation]
    op = OPERATIONS.get(operation)
    if op is not None:
        return op.kind is not Kind.MANAGEMENT
    # operations of the model keyledger does not implement (yet): by their name
    return operation.startswith(("Get", "Describe", "List"))


class _Plan:
    """What one operation's record takes from its request and result."""

    __slots__ = ("request", "response", "material_ids", "defaults", "read_only", "key_in_response")

    def __init__(self, operation: str, model: Any) -> None:
        op_model = model.operation_model(operation)
        self.read_only = _is_read_only(operation)
        self.request = self._converter(op_model.input_shape)
        self.response = None if self.read_only else self._converter(op_model.output_shape)
        output = op_model.output_shape
        # key material ids of a cryptographic result: additionalEventData (as AWS logs them)
        self.material_ids: tuple[tuple[str, str], ...] = ()
        if self.read_only and output is not None:
            self.material_ids = tuple(
                (name, camel(name)) for name in output.members if name.endswith("KeyMaterialId")
            )
        self.defaults = _REQUEST_DEFAULTS.get(operation, ())
        self.key_in_response = operation in _KEY_IN_RESPONSE

    @staticmethod
    def _converter(shape: Any) -> Converter | None:
        if shape is None:
            return None
        converter = compile_shape(shape)
        return None if converter is _DROP or converter is None else converter


@cache
def _plans() -> dict[str, _Plan]:
    """Each operation's plan, made from the model when first asked for (a server asks before
    it serves: :func:`prepare`)."""
    model = service_model()
    return {name: _Plan(name, model) for name in model.operation_names}


def prepare() -> None:
    """Make the plans now (~9 ms), not while the first request's record is built."""
    _plans()


def describe(operation: str) -> dict[str, Any]:
    """The table for docs and tests: the top-level members an operation's record logs."""
    plan = _plans()[operation]

    def names(converter: Converter | None) -> list[str] | None:
        return None if converter is None else [m[1] for m in converter.members]  # type: ignore[attr-defined]

    return {
        "requestParameters": names(plan.request),
        "responseElements": names(plan.response),
        "additionalEventData": [m[1] for m in plan.material_ids],
        "readOnly": plan.read_only,
    }


# --- the parts of the envelope ----------------------------------------------------------

def _clip(text: str, limit: int = FIELD_LIMIT) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    if len(text) <= limit and (text.isascii() or len(text.encode("utf-8")) <= limit):
        return text
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


_IDENTITIES: dict[tuple[int, str], tuple[Principal, dict[str, Any]]] = {}
_RESOURCES: dict[str, dict[str, str]] = {}


def user_identity(principal: Principal | None, access_key_id: str) -> dict[str, Any]:
    """The userIdentity of a caller (see the module docstring); shared between records of the
    same principal and access key (principals live as long as their identities file)."""
    if principal is None:
        return {"type": "Unknown", "accessKeyId": access_key_id} if access_key_id else {"type": "Unknown"}
    cache_key = (id(principal), access_key_id)
    hit = _IDENTITIES.get(cache_key)
    if hit is not None and hit[0] is principal:  # holding it, its id is not reused
        return hit[1]
    identity = _build_identity(principal, access_key_id)
    if len(_IDENTITIES) >= _CACHE_LIMIT:
        _IDENTITIES.clear()
    _IDENTITIES[cache_key] = (principal, identity)
    return identity


def _build_identity(principal: Principal, access_key_id: str) -> dict[str, Any]:
    account = principal.account
    kind = principal.kind
    if kind is PrincipalKind.ROOT:
        identity: dict[str, Any] = {"type": "Root", "principalId": account, "arn": principal.arn,
                                    "accountId": account}
        if access_key_id:
            identity["accessKeyId"] = access_key_id
        return identity
    unique_id = principal.unique_id or unique_id_for(kind, principal.principal_arn)
    if kind is PrincipalKind.USER:
        identity = {"type": "IAMUser", "principalId": unique_id, "arn": principal.arn,
                    "accountId": account}
        if access_key_id:
            identity["accessKeyId"] = access_key_id
        identity["userName"] = principal.name
        return identity
    identity = {"type": "AssumedRole", "principalId": f"{unique_id}:{principal.session_name}",
                "arn": principal.arn, "accountId": account}
    if access_key_id:
        identity["accessKeyId"] = access_key_id
    session: dict[str, Any] = {
        "sessionIssuer": {"type": "Role", "principalId": unique_id,
                          "arn": principal.principal_arn, "accountId": account,
                          "userName": principal.name},
    }
    attributes = {"mfaAuthenticated": "false"}  # (keyledger knows no MFA)
    if principal.session_created is not None:
        attributes["creationDate"] = _iso(datetime.fromtimestamp(principal.session_created, UTC))
    session["attributes"] = attributes
    identity["sessionContext"] = session
    return identity


def _resource(arn: str) -> dict[str, str]:
    entry = _RESOURCES.get(arn)
    if entry is None:
        parts = arn.split(":", 5)
        entry = {
            "accountId": parts[4] if len(parts) > 4 else "",
            "type": RESOURCE_TYPE_ALIAS if ":alias/" in arn else RESOURCE_TYPE_KEY,
            "ARN": arn,
        }
        if len(_RESOURCES) >= _CACHE_LIMIT:
            _RESOURCES.clear()
        _RESOURCES[arn] = entry
    return entry


def _ledger_events(events: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"aggregateId": str(aggregate), "version": version} for aggregate, version in events]


def _tls_details(tls_version: str, cipher_suite: str, host: str) -> dict[str, str]:
    details = {}
    if tls_version:
        details["tlsVersion"] = tls_version
    if cipher_suite:
        details["cipherSuite"] = cipher_suite
    if host:
        details["clientProvidedHostHeader"] = host
    return details


def _plain(value: Any) -> Any:
    """Caller-built data (service event details, ledger API parameters) as JSON values:
    datetimes as ISO 8601, bytes dropped (None), mappings and sequences copied."""
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            item = _plain(item)
            if item is not None:
                out[str(key)] = item
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [x for x in map(_plain, value) if x is not None]
    return str(value)


# --- the records -------------------------------------------------------------------------

def api_call_record(*, principal: Principal | None, access_key_id: str, account: str, region: str,
                    operation: str, params: Mapping[str, Any] | None,
                    result: Mapping[str, Any] | None, error_code: str | None,
                    error_message: str | None, event_time: datetime, event_id: str,
                    request_id: str, source_ip: str, user_agent: str, resources: Sequence[str],
                    additional: Mapping[str, Any] | None = None,
                    ledger_events: Sequence[tuple[str, int]] = (), tls: bool = False,
                    tls_version: str = "", cipher_suite: str = "", host: str = "") -> dict[str, Any]:
    """The record of one KMS request (success or failure).

    ``params``: the request as the protocol parsed it (model member names, blobs as bytes,
    timestamps as datetimes), or None when it was not parsed (e.g. authentication failed);
    ``result``: the operation's response, None on failure; ``resources``: the key ARNs the
    request touched, in order (ReEncrypt: source then destination); ``tls_version``,
    ``cipher_suite``, ``host`` fill tlsDetails when ``tls``.
    """
    plan = _plans().get(operation)
    if plan is None:  # not a KMS operation: nothing of the request is logged
        request_parameters = response_elements = None
        read_only = False
        event_name = _clip(operation, 128)
        extra: dict[str, Any] | None = None
    else:
        event_name = operation
        read_only = plan.read_only
        request_parameters = None
        if params is not None:
            if plan.request is not None:
                request_parameters = plan.request(params)
            if plan.defaults:
                if request_parameters is None:
                    request_parameters = {}
                for name, default in plan.defaults:
                    if name not in request_parameters:
                        request_parameters[name] = default
        response_elements = None
        extra = None
        if result is not None and not error_code:
            if plan.response is not None:
                response_elements = plan.response(result)
            elif plan.key_in_response:
                key = next((arn for arn in resources if ":key/" in arn), None)
                response_elements = {"keyId": key} if key is not None else None
            for name, logged_name in plan.material_ids:
                material = result.get(name)
                if material is not None:
                    if extra is None:
                        extra = {}
                    extra[logged_name] = material
    if additional:
        extra = {**extra, **additional} if extra else dict(additional)
    if ledger_events:
        if extra is None:
            extra = {}
        extra["ledgerEvents"] = _ledger_events(ledger_events)

    if len(user_agent) > FIELD_LIMIT or not user_agent.isascii():
        user_agent = _clip(user_agent)
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(principal, access_key_id),
        "eventTime": _iso(event_time),
        "eventSource": EVENT_SOURCE,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
    }
    return _api_call_tail(record, error_code, error_message, request_parameters, response_elements, extra,
                          request_id, event_id, read_only, resources, account, tls, tls_version,
                          cipher_suite, host)


def _api_call_tail(record: dict[str, Any], error_code: str | None, error_message: str | None,
                   request_parameters: Any, response_elements: Any, extra: Any,
                   request_id: str, event_id: str, read_only: bool, resources: Sequence[str],
                   account: str, tls: bool, tls_version: str, cipher_suite: str,
                   host: str) -> dict[str, Any]:
    """The fields of an AwsApiCall record after userAgent, in CloudTrail's order (a KMS request
    or a ledger API request)."""
    if error_code:
        record["errorCode"] = _clip(error_code)
        if error_message:
            record["errorMessage"] = _clip(error_message)
    record["requestParameters"] = request_parameters
    record["responseElements"] = response_elements
    if extra is not None:
        record["additionalEventData"] = extra
    record["requestID"] = request_id
    record["eventID"] = event_id
    record["readOnly"] = read_only
    record["resources"] = [_resource(arn) for arn in resources]
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = True
    record["recipientAccountId"] = account
    record["eventCategory"] = "Management"
    if tls:
        record["tlsDetails"] = _tls_details(tls_version, cipher_suite, host)
    return record


def _invoked_envelope(event_name: str, account: str, region: str, event_time: datetime,
                      invoked_by: str) -> dict[str, Any]:
    """The head of a record KMS itself wrote (no caller): userIdentity ``{"accountId",
    "invokedBy"}``, and ``invoked_by`` as the source address and user agent."""
    return {
        "eventVersion": EVENT_VERSION,
        "userIdentity": {"accountId": account, "invokedBy": invoked_by},
        "eventTime": _iso(event_time),
        "eventSource": EVENT_SOURCE,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": invoked_by,
        "userAgent": invoked_by,
    }


def service_event_record(*, event_name: str, account: str, region: str, key_arn: str,
                         event_time: datetime, event_id: str,
                         service_event_details: Mapping[str, Any] | None = None,
                         response_elements: Mapping[str, Any] | None = None,
                         ledger_events: Sequence[tuple[str, int]] = (),
                         additional: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of something keyledger did on its own: ``DeleteKey`` (a scheduled deletion),
    ``RotateKey`` (an automatic rotation), ``DeleteExpiredKeyMaterial`` …

    ``service_event_details`` defaults to ``{"keyId": KEY_ID}``; ``response_elements`` of
    DeleteKey defaults to ``{"keyId": KEY_ARN}`` (AWS's entries since December 2022), of
    the others to null. Both are written in the form given (camelCase names), datetimes as
    ISO 8601, bytes never.
    """
    if service_event_details is None:
        details: Any = {"keyId": key_arn.rsplit("/", 1)[-1]}
    else:
        details = _plain(service_event_details)
    if response_elements is None:
        elements: Any = {"keyId": key_arn} if event_name == "DeleteKey" else None
    else:
        elements = _plain(response_elements)
    record = _invoked_envelope(event_name, account, region, event_time, AWS_INTERNAL)
    record["requestParameters"] = None
    record["responseElements"] = elements
    extra = _plain(additional) if additional else None
    if ledger_events:
        extra = extra or {}
        extra["ledgerEvents"] = _ledger_events(ledger_events)
    if extra:
        record["additionalEventData"] = extra
    record["eventID"] = event_id
    record["readOnly"] = False
    record["resources"] = [_resource(key_arn)]
    record["eventType"] = "AwsServiceEvent"
    record["managementEvent"] = True
    record["recipientAccountId"] = account
    record["eventCategory"] = "Management"
    record["serviceEventDetails"] = details
    return record


#: who a replica Region's own entries name as their caller (DG ct-update-primary-region)
KMS_SERVICE = "kms.amazonaws.com"
#: who invoked the record ``keyledger promote`` writes (replica_region_record)
PROMOTE_COMMAND = "keyledger promote"


def replica_region_record(*, event_name: str, account: str, region: str, key_arn: str,
                          event_time: datetime, event_id: str, request_id: str,
                          invoked_by: str,
                          request_parameters: Mapping[str, Any] | None = None,
                          with_resources: bool = True,
                          ledger_events: Sequence[tuple[str, int]] = ()) -> dict[str, Any]:
    """An entry a multi-Region key's replica Region writes when it applies what another Region
    did (application.replication): ``CreateKey`` for a replica ReplicateKey made,
    ``UpdatePrimaryRegion`` in the new primary's Region, ``SynchronizeMultiRegionKey`` when
    the shared properties reach a replica. AwsApiCall records whose userIdentity is
    ``{"accountId", "invokedBy"}``; ``request_id`` ties the first two to the request that
    caused them (its own entry, in the primary's Region, names the caller). ``keyledger
    promote`` writes an ``UpdatePrimaryRegion`` of this shape too, invoked by the command,
    naming the ``ledger_events`` it wrote."""
    extra = {"ledgerEvents": _ledger_events(ledger_events)} if ledger_events else None
    record = _api_call_tail(
        _invoked_envelope(event_name, account, region, event_time, invoked_by), None, None,
        dict(request_parameters) if request_parameters else None, None, extra, request_id,
        event_id, False, (key_arn,), account, False, "", "", "")
    if not with_resources:  # (the new primary's UpdatePrimaryRegion entry has none)
        del record["resources"]
    return record


def _camel_snake(name: str) -> str:
    head, *rest = str(name).split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


#: query parameters of a presigned request that are secrets: a signature a reader of the audit
#: could replay while it is valid, a session token (X-Amz-Credential names the access key
#: only, as userIdentity does)
_UNLOGGED_QUERY = frozenset({"x-amz-signature", "x-amz-security-token"})


def ledger_api_record(*, principal: Principal | None, access_key_id: str, account: str,
                      region: str, event_name: str, params: Mapping[str, Any] | None,
                      error_code: str | None, error_message: str | None, event_time: datetime,
                      event_id: str, request_id: str, source_ip: str, user_agent: str,
                      resources: Sequence[str] = (), read_only: bool = True,
                      additional: Mapping[str, Any] | None = None, tls: bool = False,
                      tls_version: str = "", cipher_suite: str = "", host: str = "") -> dict[str, Any]:
    """The record of one ledger REST API request (``GET /ledger/v1/...``): the envelope of an
    API call with ``eventSource`` ``keyledger.ledger``, ``event_name`` e.g. ``ReadHistory`` /
    ``ReadAudit``, requestParameters the path and query parameters (names in camelCase,
    values as given; bytes, signatures and session tokens never), responseElements null."""
    request_parameters = None
    if params:
        request_parameters = {}
        for name, value in params.items():
            value = _plain(value)
            if value is not None and str(name).lower() not in _UNLOGGED_QUERY:
                request_parameters[_camel_snake(name)] = value
        request_parameters = request_parameters or None
    extra = _plain(additional) if additional else None
    record: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": user_identity(principal, access_key_id),
        "eventTime": _iso(event_time),
        "eventSource": LEDGER_EVENT_SOURCE,
        "eventName": _clip(event_name, 128),
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": _clip(user_agent),
    }
    return _api_call_tail(record, error_code, error_message, request_parameters, None, extra or None,
                          request_id, event_id, read_only, resources, account, tls, tls_version,
                          cipher_suite, host)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The bytes the tamper-evidence chain hashes: compact JSON, keys sorted at every depth."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
