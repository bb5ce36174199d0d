"""AWS JSON 1.1 for KMS: request validation against botocore's model, wire encodings.

The model is botocore's ``kms/2014-11-01/service-2.json``, loaded from the installed
botocore rather than re-typed. Validation produces AWS's own messages, e.g.
``1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member
must have length less than or equal to 4096``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import botocore.session
import orjson
from botocore.model import Shape

from domain.errors import KmsError, ValidationException

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "TrentService."


class SerializationException(KmsError):
    code = "SerializationException"


class UnknownOperationException(KmsError):
    code = "UnknownOperationException"


@lru_cache(maxsize=1)
def service_model():
    return botocore.session.get_session().get_service_model("kms")


@lru_cache(maxsize=1)
def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


def _member_path(parent: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _java_style(value: Any) -> str:
    """Values as AWS's (Java) validation messages print them: [a, b], {k=v}."""
    if isinstance(value, list):
        return "[" + ", ".join(_java_style(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_style(v)}" for k, v in value.items()) + "}"
    return str(value)


class _Validator:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def constraint(self, value: Any, path: str, shape: Shape, rule: str) -> None:
        if value is None:
            shown = "Value null"
        elif shape.type_name == "blob" or shape.metadata.get("sensitive"):
            shown = "Value"
        else:
            shown = f"Value '{_java_style(value)}'"
        self.errors.append(f"{shown} at '{path}' failed to satisfy constraint: Member must {rule}")

    def convert(self, value: Any, shape: Shape, path: str) -> Any:
        """Check the JSON type (SerializationException) and constraints (collected)."""
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            if not isinstance(value, dict):
                raise SerializationException(f"Expected an object at '{path or 'body'}'")
            out = {}
            for name, member in shape.members.items():
                member_path = _member_path(path, name)
                if value.get(name) is None:
                    if name in shape.required_members:
                        self.constraint(None, member_path, member, "not be null")
                    continue
                out[name] = self.convert(value[name], member, member_path)
            return out
        if kind == "list":
            if not isinstance(value, list):
                raise SerializationException(f"Expected a list at '{path}'")
            self._length(value, len(value), path, shape)
            return [
                self.convert(item, shape.member, f"{path}.{i}.member") for i, item in enumerate(value, 1)
            ]
        if kind == "map":
            if not isinstance(value, dict):
                raise SerializationException(f"Expected a map at '{path}'")
            self._length(value, len(value), path, shape)
            return {
                self.convert(k, shape.key, f"{path}.key"): self.convert(v, shape.value, f"{path}.value")
                for k, v in value.items()
            }
        if kind == "string":
            if not isinstance(value, str):
                raise SerializationException(
                    f"{type(value).__name__.upper()}_VALUE can not be converted to a String"
                )
            self._length(value, len(value), path, shape)
            if "enum" in meta and value not in meta["enum"]:
                self.constraint(value, path, shape, f"satisfy enum value set: [{', '.join(meta['enum'])}]")
            if "pattern" in meta and not _compiled(meta["pattern"]).fullmatch(value):
                self.constraint(value, path, shape, f"satisfy regular expression pattern: {meta['pattern']}")
            return value
        if kind == "blob":
            if not isinstance(value, str):
                raise SerializationException(f"Expected a base64-encoded blob at '{path}'")
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise SerializationException(f"Invalid base64 at '{path}'") from None
            self._length(data, len(data), path, shape)
            return data
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SerializationException(
                    f"{type(value).__name__.upper()}_VALUE can not be converted to an Integer"
                )
            if "min" in meta and value < meta["min"]:
                self.constraint(value, path, shape, f"have value greater than or equal to {meta['min']}")
            if "max" in meta and value > meta["max"]:
                self.constraint(value, path, shape, f"have value less than or equal to {meta['max']}")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise SerializationException(
                    f"{type(value).__name__.upper()}_VALUE can not be converted to a Boolean"
                )
            return value
        if kind == "timestamp":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SerializationException(f"Expected epoch seconds at '{path}'")
            return value
        return value

    def _length(self, value: Any, length: int, path: str, shape: Shape) -> None:
        meta = shape.metadata
        if "min" in meta and length < meta["min"]:
            self.constraint(value, path, shape, f"have length greater than or equal to {meta['min']}")
        if "max" in meta and length > meta["max"]:
            self.constraint(value, path, shape, f"have length less than or equal to {meta['max']}")


def parse_request(operation: str, body: bytes) -> dict[str, Any]:
    """Decode and validate one request body for ``operation``."""
    if body.strip():
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SerializationException("The request body is not valid JSON.") from None
    else:
        document = {}
    if not isinstance(document, dict):
        raise SerializationException("The request body must be a JSON object.")
    input_shape = service_model().operation_model(operation).input_shape
    if input_shape is None:
        return {}
    validator = _Validator()
    params = validator.convert(document, input_shape, "")
    if validator.errors:
        count = len(validator.errors)
        noun = "error" if count == 1 else "errors"
        raise ValidationException(f"{count} validation {noun} detected: " + "; ".join(validator.errors))
    return params


def _wire_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode_response(result: dict[str, Any]) -> bytes:
    return orjson.dumps(result, default=_wire_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def encode_error(code: str, message: str) -> bytes:
    return orjson.dumps({"__type": code, "message": message})


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/kms/aws4_request")


def parse_credential_scope(authorization: str | None) -> tuple[str, str] | None:
    """(access key id, region) from a SigV4 ``Authorization`` header, if it has one."""
    if not authorization:
        return None
    match = _CREDENTIAL.search(authorization)
    return (match.group(1), match.group(2)) if match else None
