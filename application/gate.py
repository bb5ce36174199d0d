"""The gate every operation on a key passes through.

For each request member that names a key (domain.operations): resolve the reference (key id,
key ARN, alias name, alias ARN; account and Region), check that the key exists for the caller,
authorize the member's IAM action on it (key policy, identity policies, grants), and apply the
key-state table — in that order, as AWS answers — before the handler touches the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from application.context import RequestContext
from application.region import Region
from domain import errors
from domain.alias import alias_aggregate_id
from domain.key import KmsKey
from domain.messages import InvalidArn, NotFound
from domain.operations import KeyMember, Operation
from domain.values import alias_arn, key_arn

KEY_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}")
ALIAS_NAME_PATTERN = re.compile(r"alias/[a-zA-Z0-9/_-]+")


class Gate:
    def __init__(self, authorizer) -> None:
        #: application.authorization.Authorizer: decides kms:<Action> on a key for a caller
        self.authorizer = authorizer

    # -- resolving references ---------------------------------------------------------------

    def not_found(self, ctx: RequestContext, key_id: str, account: str | None = None) -> errors.KmsError:
        """A key id that names no key: ``Invalid keyId '…'`` when it cannot be a key id at all
        (AWS: anything but a UUID or mrk- and 32 hex digits), else ``Key '<ARN>' does not
        exist``."""
        if not KEY_ID_PATTERN.fullmatch(key_id):
            return NotFound.INVALID_KEY_ID(key_id=key_id)
        return NotFound.KEY(arn=key_arn(ctx.region, ctx.account_id if account is None else account,
                                        key_id))

    def reference(self, ctx: RequestContext, region: Region, key_ref: str, aliases: bool = True,
                  cross_account: bool = False,
                  invalid_arn: bool = True) -> tuple[str, str, str | None]:
        """(account, key id, alias name) named by a key id, key ARN, alias name or alias ARN.

        A key ARN or alias ARN of another account names that account's key only where the
        operation allows cross-account use; of another Region, never (NotFoundException
        ``Invalid arn <region>``, as AWS answers a key ARN of another Region). An alias ARN
        where only keys may be named: InvalidArnException, as AWS answers CreateGrant. An
        operation whose model has no InvalidArnException (``invalid_arn`` false: Encrypt ...)
        answers a malformed ARN as any other string that is no key id: ``Invalid keyId``.
        """
        try:
            return self._reference(ctx, region, key_ref, aliases, cross_account)
        except errors.InvalidArnException:
            if invalid_arn:
                raise
            raise NotFound.INVALID_KEY_ID(key_id=key_ref) from None

    def _reference(self, ctx: RequestContext, region: Region, key_ref: str, aliases: bool,
                   cross_account: bool) -> tuple[str, str, str | None]:
        if key_ref[0] != "a":  # neither "arn:" nor "alias/": a key id as it is
            return ctx.account_id, key_ref, None
        if key_ref.startswith("arn:"):
            parts = key_ref.split(":", 5)
            if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms":
                raise InvalidArn.MALFORMED(arn=key_ref)
            _, _, _, arn_region, account, resource = parts
            if resource.startswith("key/"):
                if arn_region != ctx.region:
                    raise NotFound.INVALID_ARN_REGION(region=arn_region)
                if account != ctx.account_id and not cross_account:
                    raise NotFound.KEY(arn=key_ref)
                return account, resource[4:], None
            if resource.startswith("alias/"):
                if not aliases:
                    raise InvalidArn.ALIAS_NOT_SUPPORTED()
                if arn_region != ctx.region or (account != ctx.account_id and not cross_account):
                    raise NotFound.ALIAS(alias_arn=key_ref)
                return account, self.alias_target(ctx, region, resource, account), resource
            raise InvalidArn.MALFORMED(arn=key_ref)
        if key_ref.startswith("alias/"):
            if not aliases:
                raise self.not_found(ctx, key_ref)
            return ctx.account_id, self.alias_target(ctx, region, key_ref), key_ref
        return ctx.account_id, key_ref, None

    def key_id(self, ctx: RequestContext, region: Region, key_ref: str, aliases: bool = True) -> str:
        """The key id a reference names (in the caller's account)."""
        return self.reference(ctx, region, key_ref, aliases)[1]

    def alias_target(self, ctx: RequestContext, region: Region, alias_name: str,
                     account: str | None = None) -> str:
        account = account or ctx.account_id
        alias = (
            region.live.alias(alias_aggregate_id(account, alias_name))
            if ALIAS_NAME_PATTERN.fullmatch(alias_name)
            else None
        )
        if alias is None or not alias.exists:
            raise NotFound.ALIAS(alias_arn=alias_arn(ctx.region, account, alias_name))
        return alias.target_key_id

    def known_key(self, region: Region, account: str | None, key_id: str) -> KmsKey | None:
        """The live key of ``account`` (of any account: None), if ``key_id`` can be a key id
        at all (no store lookups for garbage)."""
        key = region.live.key(key_id, KEY_ID_PATTERN.fullmatch)
        if key is None or key.deleted or (account is not None and key.account != account):
            return None
        return key

    # -- the gate -----------------------------------------------------------------------------

    def use(self, ctx: RequestContext, region: Region, key_ref: str, operation: Operation,
            member: KeyMember, params: dict[str, Any]) -> KmsKey:
        """The in-memory key a request member names, authorized and in a usable state."""
        account, key_id, alias = self.reference(ctx, region, key_ref, member.aliases,
                                                operation.cross_account,
                                                operation.answers_invalid_arn)
        key = region.live.key(key_id, KEY_ID_PATTERN.fullmatch)
        if key is None or key.account != account or key.deleted:
            raise self.not_found(ctx, key_id, account)
        ctx.resources.append(key.arn)
        self.authorizer.check_key(ctx, key, operation, member.action, params, alias)
        key.check(operation.name)
        return key

    def use_named(self, ctx: RequestContext, region: Region, key: KmsKey, operation: Operation,
                  member: KeyMember, params: dict[str, Any], alias: str | None = None) -> KmsKey:
        """A key named by a ciphertext rather than the request: authorize, apply the table.
        ``alias``: the alias the request named it by too (its KeyId), for kms:RequestAlias."""
        ctx.resources.append(key.arn)
        self.authorizer.check_key(ctx, key, operation, member.action, params, alias)
        key.check(operation.name)
        return key

    def change(self, ctx: RequestContext, region: Region, key_ref: str, operation: Operation,
               params: dict[str, Any], change: Callable[[KmsKey], Any],
               data_keys: tuple[tuple[str, bytes], ...] = ()) -> KmsKey:
        """Load the key from the ledger, authorize, apply ``change`` (which applies the
        key-state table) and save — retried on a concurrent write."""
        member = operation.keys[0]
        account, key_id, alias = self.reference(ctx, region, key_ref, member.aliases,
                                                operation.cross_account,
                                                operation.answers_invalid_arn)
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise self.not_found(ctx, key_id, account)

        def load() -> KmsKey:
            key = region.ledger.get_key(key_id)
            if key is None or key.account != account or key.deleted:
                raise self.not_found(ctx, key_id, account)
            if key.arn not in ctx.resources:
                ctx.resources.append(key.arn)
            self.authorizer.check_key(ctx, key, operation, member.action, params, alias)
            return key

        return region.change(key_id, load, change, data_keys)
