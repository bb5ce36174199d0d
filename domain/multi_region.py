"""Multi-Region keys: what a replica Region learns of its primary key from the primary's stream.

A multi-Region key set shares its key id, key material (every version), key spec, key usage,
origin and automatic-rotation settings; each key of the set keeps its own policy, grants,
aliases, tags, description and enabled state (AWS's "shared" and "independent" properties).
The primary Region records every change of the shared properties as an event of its primary
key; each replica Region follows the primary Region's ledger and applies them to its replica.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

MULTI_REGION_KEY_ID = re.compile(r"mrk-[0-9a-f]{32}")


def new_multi_region_key_id() -> str:
    """``mrk-`` and 32 lowercase hex digits, as AWS's multi-Region key ids."""
    return "mrk-" + secrets.token_hex(16)


@dataclass(frozen=True)
class SharedProperties:
    """What a replica is created with: the set's shared properties, from the primary."""

    key_id: str
    account: str
    key_spec: str
    key_usage: str
    origin: str
    primary_region: str
    replica_regions: tuple[str, ...]
