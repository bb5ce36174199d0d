"""Paging of KMS listings: the opaque Marker codec, page cuts and Limit checks."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from domain.messages import Requests, Validation


def marker(value: str) -> str:
    """An opaque NextMarker for a position in a listing."""
    return base64.urlsafe_b64encode(("kl1:" + value).encode()).decode()


def unmarker(value: str | None) -> str | None:
    """The position a Marker names (None when there is none); InvalidMarkerException if forged."""
    if value is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    if not decoded.startswith("kl1:"):
        raise Requests.INVALID_MARKER()
    return decoded[4:]


def page(items: list[Any], limit: int, marker_of: Callable[[Any], str]) -> tuple[list, dict]:
    """Cut a page (items holds up to limit+1 entries) and build Truncated/NextMarker."""
    cut = items[:limit]
    if len(items) > limit:
        return cut, {"Truncated": True, "NextMarker": marker(marker_of(cut[-1]))}
    return cut, {"Truncated": False}


def limit(params: dict[str, Any], default: int, maximum: int) -> int:
    """Page size: AWS documents tighter maxima for some operations than the model's 1000."""
    value = params.get("Limit")
    if value is None:
        return default
    if value > maximum:
        raise Validation.CONSTRAINT(value=value, member="limit",
                                    bound=f"less than or equal to {maximum}")
    return value
