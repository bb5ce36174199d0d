"""The identities file as the ledger saw it: each change found at a load is an event.

Principal ARNs, access key ids, policies and tags — never a secret or session token — so the
ledger can answer "who could do what at T". The aggregate keeps the digest of the last
recorded directory, so several server processes that load the same file record it once.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.base import StrAggregate
from domain.values import Actor

IDENTITY_DIRECTORY_ID = "keyledger:identities"


class IdentityDirectory(StrAggregate):
    @event("IdentitiesRecorded")
    def __init__(self, *, id: str, digest: str, changes: list[dict[str, Any]], actor: Actor) -> None:
        self.digest = digest

    @classmethod
    def first(cls, digest: str, changes: list[dict[str, Any]], actor: Actor) -> IdentityDirectory:
        return cls(id=IDENTITY_DIRECTORY_ID, digest=digest, changes=changes, actor=actor)

    def record(self, digest: str, changes: list[dict[str, Any]], actor: Actor, *,
               superseded: bool = False) -> bool:
        """Record a loaded directory's changes, unless this directory is already recorded here
        and no other region has recorded another one since (``superseded``: then the ledger
        would answer "who could ... at T" with that other one, the newer record)."""
        if digest == self.digest and not superseded:
            return False
        self._record(digest=digest, changes=changes, actor=actor)
        return True

    @event("IdentitiesChanged")
    def _record(self, digest: str, changes: list[dict[str, Any]], actor: Actor) -> None:
        self.digest = digest
