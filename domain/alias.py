"""Aliases: a friendly name (``alias/...``) that points at one KMS key.

An alias is its own aggregate, identified by account and name, so optimistic concurrency
on that identity makes names unique per account and region.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.domain import event

from domain.base import StrAggregate
from domain.messages import Aliases, NotFound
from domain.values import Actor, alias_arn

ALIAS_PREFIX = "alias/"
RESERVED_PREFIX = "alias/aws/"
MAX_ALIASES_PER_KEY = 50


def alias_aggregate_id(account: str, alias_name: str) -> str:
    return f"{account}/{alias_name}"


def check_alias_name(alias_name: str) -> None:
    """Rules beyond the model's length and pattern constraints, with AWS's errors."""
    if not alias_name.startswith(ALIAS_PREFIX) or alias_name == ALIAS_PREFIX:
        raise Aliases.PREFIX()
    if alias_name.startswith(RESERVED_PREFIX):
        raise Aliases.RESERVED(alias_name=alias_name)
    if ":" in alias_name:
        raise Aliases.INVALID_CHARACTERS(alias_name=alias_name)


class Alias(StrAggregate):
    @event("AliasCreated")
    def __init__(
        self, *, id: str, account: str, region: str, alias_name: str, target_key_id: str,
        created_at: datetime, actor: Actor,
    ) -> None:
        self.account = account
        self.region = region
        self.alias_name = alias_name
        self.target_key_id: str | None = target_key_id
        self.creation_date = created_at
        self.last_updated_date = created_at

    @classmethod
    def create(
        cls, *, account: str, region: str, alias_name: str, target_key_id: str,
        now: datetime, actor: Actor,
    ) -> Alias:
        check_alias_name(alias_name)
        return cls(
            id=alias_aggregate_id(account, alias_name),
            account=account,
            region=region,
            alias_name=alias_name,
            target_key_id=target_key_id,
            created_at=now,
            actor=actor,
        )

    @property
    def exists(self) -> bool:
        return self.target_key_id is not None

    @property
    def arn(self) -> str:
        return alias_arn(self.region, self.account, self.alias_name)

    def recreate(self, target_key_id: str, now: datetime, actor: Actor) -> None:
        if self.exists:
            raise Aliases.ALREADY_EXISTS(alias_arn=self.arn)
        self._recreate(target_key_id=target_key_id, created_at=now, actor=actor)

    @event("AliasRecreated")
    def _recreate(self, target_key_id: str, created_at: datetime, actor: Actor) -> None:
        self.target_key_id = target_key_id
        self.creation_date = created_at
        self.last_updated_date = created_at

    def retarget(self, target_key_id: str, now: datetime, actor: Actor) -> None:
        self._require_exists()
        self._retarget(target_key_id=target_key_id, updated_at=now, actor=actor)

    @event("AliasTargetUpdated")
    def _retarget(self, target_key_id: str, updated_at: datetime, actor: Actor) -> None:
        self.target_key_id = target_key_id
        self.last_updated_date = updated_at

    def delete(self, actor: Actor) -> None:
        self._require_exists()
        self._delete(actor=actor)

    @event("AliasDeleted")
    def _delete(self, actor: Actor) -> None:
        self.target_key_id = None

    def _require_exists(self) -> None:
        if not self.exists:
            raise NotFound.ALIAS(alias_arn=self.arn)
