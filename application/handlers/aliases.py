"""Aliases: create, retarget, delete, list.

CreateAlias and DeleteAlias are authorized on the alias (identity policies, alias ARN) and on
the key; UpdateAlias on the alias, the key it points at now and the key it will point at.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError

from application.gate import ALIAS_NAME_PATTERN
from application.handlers import Handlers
from application.paging import limit, page, unmarker
from application.region import Region
from domain.alias import MAX_ALIASES_PER_KEY, Alias, alias_aggregate_id, check_alias_name
from domain.key import KmsKey
from domain.messages import Aliases as AliasTexts
from domain.messages import NotFound, Requests
from domain.operations import OPERATIONS
from domain.values import alias_arn

CREATE_ALIAS, UPDATE_ALIAS, DELETE_ALIAS, LIST_ALIASES = (
    OPERATIONS[n] for n in ("CreateAlias", "UpdateAlias", "DeleteAlias", "ListAliases")
)
#: held while an alias is counted onto a key and saved (Region.exclusive): two requests that
#: each found 49 aliases on a key would otherwise both add one
ALIAS_COUNT_LOCK = "alias-count"


class Aliases(Handlers):
    def _target_key(self, ctx, region: Region, params, operation) -> KmsKey:
        target_ref = params["TargetKeyId"]
        if target_ref.startswith("alias/") or target_ref.startswith("arn:") and ":alias/" in target_ref:
            raise AliasTexts.TARGET_IS_ALIAS()
        return self.gate.use(ctx, region, target_ref, operation, operation.keys[0], params)

    def _authorize_alias(self, ctx, operation, params, alias_name: str) -> None:
        self.authorizer.check_request(ctx, operation, params,
                                      resource=alias_arn(ctx.region, ctx.account_id, alias_name))

    def CreateAlias(self, ctx, params):
        region = self.region(ctx.region)
        alias_name = params["AliasName"]
        check_alias_name(alias_name)
        self._authorize_alias(ctx, CREATE_ALIAS, params, alias_name)
        key = self._target_key(ctx, region, params, CREATE_ALIAS)
        # the record's resources, in the order of AWS's entry (ct-createalias): key, alias
        ctx.resources[:] = [key.arn, alias_arn(ctx.region, ctx.account_id, alias_name)]
        with region.exclusive(ALIAS_COUNT_LOCK):
            self._check_alias_count(ctx, region, key)
            now = self.clock.now()
            alias = region.ledger.get_alias(alias_aggregate_id(ctx.account_id, alias_name))
            if alias is None:
                alias = Alias.create(account=ctx.account_id, region=ctx.region,
                                     alias_name=alias_name, target_key_id=key.id, now=now,
                                     actor=ctx.actor)
            else:
                alias.recreate(key.id, now, ctx.actor)
            try:
                region.save(alias)
            except IntegrityError:
                raise AliasTexts.ALREADY_EXISTS(
                    alias_arn=alias_arn(ctx.region, ctx.account_id, alias_name)
                ) from None
        return {}

    def _check_alias_count(self, ctx, region: Region, key: KmsKey) -> None:
        """(Under ALIAS_COUNT_LOCK: every alias another process saved is in the ledger.)"""
        region.projection.catch_up()
        if len(region.directory.list_aliases(ctx.account_id, key.id, "", MAX_ALIASES_PER_KEY + 1)) >= MAX_ALIASES_PER_KEY:
            raise AliasTexts.TOO_MANY(limit=MAX_ALIASES_PER_KEY)

    def _current_key_authorized(self, ctx, region: Region, alias: Alias, operation, params) -> None:
        """The key an alias points at now must allow the operation too."""
        if not alias.exists:
            return  # the alias' own rules answer (NotFoundException)
        current = self.gate.known_key(region, ctx.account_id, alias.target_key_id)
        if current is not None:
            self.authorizer.check_key(ctx, current, operation, operation.action, params, None)

    def UpdateAlias(self, ctx, params):
        region = self.region(ctx.region)
        alias_name = params["AliasName"]
        check_alias_name(alias_name)
        self._authorize_alias(ctx, UPDATE_ALIAS, params, alias_name)
        key = self._target_key(ctx, region, params, UPDATE_ALIAS)
        # the record's resources, in the order of AWS's entry (ct-updatealias): alias, key
        ctx.resources[:] = [alias_arn(ctx.region, ctx.account_id, alias_name), key.arn]

        def retarget(alias: Alias) -> None:
            self._current_key_authorized(ctx, region, alias, UPDATE_ALIAS, params)
            if alias.target_key_id != key.id:
                self._check_alias_count(ctx, region, key)
            alias.retarget(key.id, self.clock.now(), ctx.actor)

        with region.exclusive(ALIAS_COUNT_LOCK):
            self._change_alias(ctx, region, alias_name, retarget)
        return {}

    def DeleteAlias(self, ctx, params):
        region = self.region(ctx.region)
        alias_name = params["AliasName"]
        self._authorize_alias(ctx, DELETE_ALIAS, params, alias_name)

        def delete(alias: Alias) -> None:
            self._current_key_authorized(ctx, region, alias, DELETE_ALIAS, params)
            # the record's resources, as AWS's entry (ct-deletealias): the alias, its key
            if alias.exists:
                target = self.gate.known_key(region, ctx.account_id, alias.target_key_id)
                ctx.resources[:] = [alias_arn(ctx.region, ctx.account_id, alias_name),
                                    *([target.arn] if target is not None else [])]
            alias.delete(ctx.actor)

        self._change_alias(ctx, region, alias_name, delete)
        return {}

    def _change_alias(self, ctx, region: Region, alias_name: str, change: Callable[[Alias], Any]):
        """Read the alias, apply ``change``, save (retried on a concurrent write)."""
        alias_id = alias_aggregate_id(ctx.account_id, alias_name)

        def load() -> Alias:
            alias = (
                region.ledger.get_alias(alias_id) if ALIAS_NAME_PATTERN.fullmatch(alias_name) else None
            )
            if alias is None:
                raise NotFound.ALIAS(alias_arn=alias_arn(ctx.region, ctx.account_id, alias_name))
            return alias

        region.change(alias_id, load, change)

    def ListAliases(self, ctx, params):
        self.authorizer.check_request(ctx, LIST_ALIASES, params)
        region = self.region(ctx.region)
        key_id = None
        if "KeyId" in params:
            account, key_id, _ = self.gate.reference(ctx, region, params["KeyId"], aliases=False)
            key = self.gate.known_key(region, account, key_id)
            if key is None:
                raise self.gate.not_found(ctx, key_id, account)
            key_id = key.id
        after = unmarker(params.get("Marker")) or ""
        if after and not ALIAS_NAME_PATTERN.fullmatch(after):  # no alias's position: forged
            raise Requests.INVALID_MARKER()
        size = limit(params, default=50, maximum=100)
        region.projection.catch_up()
        rows = region.directory.list_aliases(ctx.account_id, key_id, after, size + 1)
        rows, paging = page(rows, size, lambda row: row.alias_name)
        aliases = [
            {
                "AliasName": row.alias_name,
                "AliasArn": alias_arn(ctx.region, ctx.account_id, row.alias_name),
                "TargetKeyId": row.target_key_id,
                "CreationDate": datetime.fromtimestamp(row.creation_date, UTC),
                "LastUpdatedDate": datetime.fromtimestamp(row.last_updated_date, UTC),
            }
            for row in rows
        ]
        return {"Aliases": aliases, **paging}
