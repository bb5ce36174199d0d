"""AWS JSON 1.1 for KMS: request validation against botocore's model, wire encodings.

The model is botocore's ``kms/2014-11-01/service-2.json``, loaded from the installed
botocore rather than re-typed. Validation produces AWS's own messages, e.g.
``1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member
must have length less than or equal to 4096``.
"""

from __future__ import annotations

import binascii
import math
import re
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

import orjson
import pybase64
from botocore.model import Shape

from application.audit_records import TOKEN_SHAPES
from application.kms_model import service_model
from domain.errors import SerializationException, UnknownOperationException  # noqa: F401
from domain.messages import Protocol, Validation

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "TrentService."

#: enum values in the order AWS lists them in a validation message, where a recorded AWS
#: response shows it differs from the model's order (localstack's test_kms.snapshot.json:
#: test_invalid_generate_mac[HMAC_256-INVALID]); every other enum is listed in model order
AWS_ENUM_ORDER = {
    "MacAlgorithmSpec": ("HMAC_SHA_384", "HMAC_SHA_256", "HMAC_SHA_224", "HMAC_SHA_512"),
}


@lru_cache(maxsize=1)
def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


def _java_style(value: Any) -> str:
    """Values as AWS's (Java) validation messages print them: [a, b], {k=v}."""
    if isinstance(value, list):
        return "[" + ", ".join(_java_style(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_style(v)}" for k, v in value.items()) + "}"
    return str(value)


class _Rules:
    """One shape's constraints, read from the model once (the hot path reuses them)."""


    def __init__(self, shape: Shape) -> None:
        meta = shape.metadata
        self.kind = shape.type_name
        self.min = meta.get("min")
        self.max = meta.get("max")
        # the allowed range as a closed interval, for one comparison on the hot path
        self.lo = self.min if self.min is not None else -math.inf
        self.hi = self.max if self.max is not None else math.inf
        # (allowed values, their listing for messages)
        self.enum = (
            (frozenset(meta["enum"]), ", ".join(AWS_ENUM_ORDER.get(shape.name, meta["enum"])))
            if "enum" in meta else None
        )
        self.pattern_text = meta.get("pattern")
        self.pattern = re.compile(self.pattern_text) if self.pattern_text else None
        self.secret = self.kind == "blob" or bool(meta.get("sensitive"))
        #: shown in the answer, but not in the audit record (a grant token: audit_records)
        self.unlogged = not self.secret and shape.name in TOKEN_SHAPES
        #: a string whose only constraints are its length
        self.plain = self.kind == "string" and self.enum is None and self.pattern is None
        if self.kind == "structure":
            self.members = {
                name: (_rules(m), name[:1].lower() + name[1:]) for name, m in shape.members.items()
            }
            self.required = tuple(shape.required_members)
        elif self.kind == "list":
            self.member = _rules(shape.member)
        elif self.kind == "map":
            self.key, self.value = _rules(shape.key), _rules(shape.value)


_RULES: dict[str, _Rules] = {}


def _rules(shape: Shape) -> _Rules:
    rules = _RULES.get(shape.name)
    if rules is None:
        # registered before its members are built, so recursive shapes terminate
        rules = _RULES[shape.name] = _Rules.__new__(_Rules)
        rules.__init__(shape)
    return rules


def _b64decode(value: str, path: str) -> bytes:
    """Strict base64 (pybase64's SIMD decoder: the standard library's is ~10x slower)."""
    try:
        # b64decode(s, altchars, validate): positional, as keyword parsing costs more than the
        # decoding of a 1 KiB plaintext
        return pybase64.b64decode(value, None, True)
    except (binascii.Error, ValueError):
        raise Protocol.BAD_BASE64(path=path) from None


class _Quoting(str):
    """A validation detail that quotes what the audit record leaves out; ``logged`` is the
    detail without it."""

    logged: str


def _constraint(errors: list[str], value: Any, path: str, rules: _Rules, rule: str) -> None:
    if value is None:
        shown = "Value null"
    elif rules.secret:
        shown = "Value"
    else:
        shown = f"Value '{_java_style(value)}'"
    detail = f"{shown} at '{path}' failed to satisfy constraint: Member must {rule}"
    if rules.unlogged and value is not None:
        detail = _Quoting(detail)
        detail.logged = f"Value at '{path}' failed to satisfy constraint: Member must {rule}"
    errors.append(detail)


def _convert(value: Any, rules: _Rules, path: str, errors: list[str]) -> Any:
    """Check JSON types (SerializationException at once) and constraints (collected in errors)."""
    kind = rules.kind
    if kind == "structure":
        if not isinstance(value, dict):
            raise Protocol.WRONG_TYPE(detail=f"Expected an object at '{path or 'body'}'")
        members = rules.members
        for name in rules.required:
            if value.get(name) is None:
                member, camel = members[name]
                _constraint(errors, None, f"{path}.{camel}" if path else camel, member, "not be null")
        out = {}
        for name, item in value.items():
            entry = members.get(name)
            if entry is None or item is None:
                continue  # members the model does not know are ignored, as AWS does
            member, camel = entry
            # Fast accept of the common valid scalars; anything else takes the full path.
            if type(item) is str:
                if member.plain:
                    if member.lo <= len(item) <= member.hi:
                        out[name] = item
                        continue
                elif member.kind == "blob":
                    data = _b64decode(item, camel)
                    if member.lo <= len(data) <= member.hi:
                        out[name] = data
                        continue
            out[name] = _convert(item, member, f"{path}.{camel}" if path else camel, errors)
        return out
    if kind == "string":
        if not isinstance(value, str):
            raise Protocol.WRONG_TYPE(
                detail=f"{type(value).__name__.upper()}_VALUE can not be converted to a String"
            )
        if not rules.lo <= len(value) <= rules.hi:
            _length(errors, value, len(value), path, rules)
        if rules.enum is not None and value not in rules.enum[0]:
            _constraint(errors, value, path, rules, f"satisfy enum value set: [{rules.enum[1]}]")
        if rules.pattern is not None and not rules.pattern.fullmatch(value):
            _constraint(
                errors, value, path, rules, f"satisfy regular expression pattern: {rules.pattern_text}"
            )
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise Protocol.WRONG_TYPE(detail=f"Expected a base64-encoded blob at '{path}'")
        data = _b64decode(value, path)
        if not rules.lo <= len(data) <= rules.hi:
            _length(errors, data, len(data), path, rules)
        return data
    if kind == "list":
        if not isinstance(value, list):
            raise Protocol.WRONG_TYPE(detail=f"Expected a list at '{path}'")
        _length(errors, value, len(value), path, rules)
        # Loops, not comprehensions, here and for maps: a comprehension would close over
        # rules, path and errors, and every call of _convert would pay for their cells.
        items = []
        for i, item in enumerate(value, 1):
            items.append(_convert(item, rules.member, f"{path}.{i}.member", errors))
        return items
    if kind == "map":
        if not isinstance(value, dict):
            raise Protocol.WRONG_TYPE(detail=f"Expected a map at '{path}'")
        _length(errors, value, len(value), path, rules)
        entries = {}
        for k, v in value.items():
            key = _convert(k, rules.key, f"{path}.key", errors)  # the key's errors first
            entries[key] = _convert(v, rules.value, f"{path}.value", errors)
        return entries
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Protocol.WRONG_TYPE(
                detail=f"{type(value).__name__.upper()}_VALUE can not be converted to an Integer"
            )
        if rules.min is not None and value < rules.min:
            _constraint(errors, value, path, rules, f"have value greater than or equal to {rules.min}")
        if rules.max is not None and value > rules.max:
            _constraint(errors, value, path, rules, f"have value less than or equal to {rules.max}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise Protocol.WRONG_TYPE(
                detail=f"{type(value).__name__.upper()}_VALUE can not be converted to a Boolean"
            )
        return value
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Protocol.WRONG_TYPE(detail=f"Expected epoch seconds at '{path}'")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise Protocol.WRONG_TYPE(detail=f"Epoch seconds out of range at '{path}'") from None
    return value


def _length(errors: list[str], value: Any, length: int, path: str, rules: _Rules) -> None:
    if rules.min is not None and length < rules.min:
        _constraint(errors, value, path, rules, f"have length greater than or equal to {rules.min}")
    if rules.max is not None and length > rules.max:
        _constraint(errors, value, path, rules, f"have length less than or equal to {rules.max}")


@cache
def input_rules(operation: str) -> _Rules | None:
    """The validation rules of an operation's input, read from the model once."""
    shape = service_model().operation_model(operation).input_shape
    return None if shape is None else _rules(shape)


def parse_request(operation: str, body: bytes) -> dict[str, Any]:
    """Decode and validate one request body for ``operation``."""
    return parse_body(input_rules(operation), body)


def parse_body(rules: _Rules | None, body: bytes) -> dict[str, Any]:
    """Decode one request body and validate it against an operation's input rules."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        if body and not body.isspace():
            raise Protocol.NOT_JSON() from None
        document = {}  # an empty (or all-blank) body is an empty request
    if not isinstance(document, dict):
        raise Protocol.NOT_AN_OBJECT()
    if rules is None:
        return {}
    errors: list[str] = []
    params = _convert(document, rules, "", errors)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        error = Validation.MODEL(count=count, noun=noun, details="; ".join(errors))
        if any(isinstance(detail, _Quoting) for detail in errors):
            error.logged = Validation.MODEL(count=count, noun=noun, details="; ".join(
                getattr(detail, "logged", detail) for detail in errors)).message
        raise error
    return params


def _wire_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return pybase64.b64encode_as_string(value)
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_response(result: dict[str, Any]) -> bytes:
    return orjson.dumps(result, default=_wire_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def encode_error(code: str, message: str | None) -> bytes:
    """An AWS JSON 1.1 error body; no ``message`` member when the error has none (AWS sends
    InvalidCiphertextException, KMSInvalidSignatureException and others without one)."""
    if message is None:
        return orjson.dumps({"__type": code})
    return orjson.dumps({"__type": code, "message": message})


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/kms/aws4_request")


def parse_credential_scope(authorization: str | None) -> tuple[str, str] | None:
    """(access key id, region) from a SigV4 ``Authorization`` header, if it has one."""
    if not authorization:
        return None
    match = _CREDENTIAL.search(authorization)
    return (match.group(1), match.group(2)) if match else None
