"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

What a grant is and the rules of creating, retiring and revoking one are the domain's
(:mod:`domain.grants` and the grant methods of :class:`~domain.key.KmsKey`). Here: which
request members name what, who may act (with the authorizer), principal checks, paging and
DryRun. Choices where AWS documents nothing are marked *keyledger's choice* and listed in
docs/compatibility.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from application.context import RequestContext
from application.gate import KEY_ID_PATTERN
from application.handlers import Handlers, dry_run
from application.paging import limit, page, unmarker
from application.region import Region
from domain import errors
from domain.grants import (
    Grant,
    GrantConstraints,
    check_child_grant,
    check_grant_id,
    new_grant_id,
    new_grant_token,
    parse_grant_token,
)
from domain.key import KmsKey
from domain.messages import Grants as GrantTexts
from domain.messages import InvalidArn, Requests, Unsupported, Validation
from domain.operations import OPERATIONS
from domain.principals import Principal, root_arn

CREATE_GRANT, LIST_GRANTS, LIST_RETIRABLE_GRANTS, RETIRE_GRANT, REVOKE_GRANT = (
    OPERATIONS[n] for n in ("CreateGrant", "ListGrants", "ListRetirableGrants", "RetireGrant",
                            "RevokeGrant")
)

#: ListGrants and ListRetirableGrants: "it must be between 1 and 100, inclusive. If you do
#: not include a value, it defaults to 50" (the model's LimitType allows up to 1000)
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
#: keys read per listing-view query while ListRetirableGrants walks the account's keys
_KEYS_PER_QUERY = 1000

# Principals a grant may name (GranteePrincipal, RetiringPrincipal): an account (bare id or
# root ARN), an IAM user or role, a role session or a federated user (IAM ARNs), or an AWS
# service principal. The model's PrincipalIdType pattern has already limited the characters.
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_IAM_PRINCIPAL = re.compile(r"arn:aws:iam::([0-9]{12}):(?:root|(?:user|role)(?:/[^/]+)+)")
_STS_PRINCIPAL = re.compile(
    r"arn:aws:sts::([0-9]{12}):(?:assumed-role/[^/]+/[^/]+|federated-user/[^/]+)"
)
_SERVICE_PRINCIPAL = re.compile(r"[A-Za-z0-9-]+\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")

# Listing positions inside a Marker: a grant's (creation time, grant id); ListRetirableGrants
# adds its key's position in the listing view.
_GRANT_POSITION = re.compile(r"([0-9]+\.[0-9]+) ([0-9a-f]{64})")
_RETIRABLE_POSITION = re.compile(r"([0-9]{1,18}) ([0-9]+\.[0-9]+) ([0-9a-f]{64})")

def _invalid_principal(value: str) -> errors.KmsError:
    # AWS's text, relayed by Lambda when CreateGrant meets a role that does not exist (yet):
    # "KMS Exception: InvalidArnException KMS Message: ARN does not refer to a valid
    # principal: arn:aws:sts::…:assumed-role/…"
    return InvalidArn.PRINCIPAL(principal=value)


def principal_account(value: str) -> str | None:
    """The account of a principal a grant names (None for an AWS service principal);
    InvalidArnException when ``value`` is not a principal at all."""
    if _ACCOUNT_ID.fullmatch(value):
        return value
    match = _IAM_PRINCIPAL.fullmatch(value) or _STS_PRINCIPAL.fullmatch(value)
    if match is not None:
        return match.group(1)
    if _SERVICE_PRINCIPAL.fullmatch(value):
        return None
    raise _invalid_principal(value)


def _order(grant: Grant) -> tuple[float, str]:
    """Listing order: oldest first, then by grant id (stable when grants come and go)."""
    return grant.creation_date.timestamp(), grant.grant_id


def _grant_position(grant: Grant) -> str:
    seconds, grant_id = _order(grant)
    return f"{seconds!r} {grant_id}"


def _after_grant(marker: str | None) -> tuple[float, str] | None:
    position = unmarker(marker)
    if position is None:
        return None
    match = _GRANT_POSITION.fullmatch(position)
    if match is None:
        raise Requests.INVALID_MARKER()
    return float(match.group(1)), match.group(2)


def _after_retirable(marker: str | None) -> tuple[int, tuple[float, str]] | None:
    position = unmarker(marker)
    if position is None:
        return None
    match = _RETIRABLE_POSITION.fullmatch(position)
    if match is None or int(match.group(1)) < 1:
        raise Requests.INVALID_MARKER()
    return int(match.group(1)), (float(match.group(2)), match.group(3))


def _not_authorized(principal: Principal, action: str, resource: str) -> errors.KmsError:
    return GrantTexts.NOT_AUTHORIZED(principal=principal.arn, action=action, resource=resource)


class Grants(Handlers):
    # -- CreateGrant ----------------------------------------------------------------------------

    def CreateGrant(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        for member in ("GranteeServicePrincipal", "RetiringServicePrincipal"):
            if params.get(member) is not None:
                raise Unsupported.SERVICE_PRINCIPAL(member=member)
        constraints = GrantConstraints.from_request(params.get("Constraints"))
        operations = list(params["Operations"])
        grantee = params.get("GranteePrincipal")
        retiring = params.get("RetiringPrincipal")
        region = self.region(ctx.region)
        grant_id = new_grant_id(os.urandom(32))
        now = self.clock.now()
        created: list[Grant] = []

        def create(key: KmsKey) -> None:
            # the gate has authorized kms:CreateGrant; a grantee's own grant may limit it
            self._check_parent_grant(ctx, key, params, operations, constraints)
            key.check(CREATE_GRANT.name)
            # after authorization: whether a principal exists is not told to just anyone
            for principal in (grantee, retiring):
                if principal:
                    self._check_principal(principal)
            grant = key.create_grant(
                grant_id=grant_id, grantee_principal=grantee, operations=operations,
                issuing_account=ctx.account_id, now=now, actor=ctx.actor,
                retiring_principal=retiring, constraints=constraints, name=params.get("Name"),
            )
            dry_run(params)  # every check has passed; raising here records nothing
            created[:] = [grant]

        key = self.gate.change(ctx, region, params["KeyId"], CREATE_GRANT, params, create)
        grant_id = created[0].grant_id
        return {"GrantToken": new_grant_token(key.id, grant_id), "GrantId": grant_id}

    def _check_principal(self, value: str) -> None:
        """A principal a new grant names: well formed and, when the server knows its
        principals (sigv4 mode), one that exists. AWS service principals are not checked
        for existence (keyledger has no service callers: such a grant never matches)."""
        account = principal_account(value)
        exists = self.authorizer.principal_exists
        if exists is None or account is None:
            return
        if not exists(root_arn(value) if _ACCOUNT_ID.fullmatch(value) else value):
            raise _invalid_principal(value)

    def _check_parent_grant(self, ctx: RequestContext, key: KmsKey, params: dict[str, Any],
                            operations: Iterable[str],
                            constraints: GrantConstraints | None) -> None:
        """A caller whose kms:CreateGrant comes from a grant rather than from the key policy
        (or IAM policies it delegates to) may create only a grant that one of its grants
        allows as a child (:func:`domain.grants.check_child_grant`)."""
        if self.authorizer.allowed_by_policy(ctx, key, CREATE_GRANT, CREATE_GRANT.action, params):
            return
        principal = ctx.caller.principal
        parents = [
            g for g in key.grants.values()
            if g.permits(principal, CREATE_GRANT.name)
            or g.permits_by_delegation(principal, CREATE_GRANT.name)
        ]
        if not parents:  # neither a policy nor a grant allows it: fail closed
            raise _not_authorized(principal, CREATE_GRANT.action, key.arn)
        operations = list(operations)
        if not any(g.allows_child(operations, constraints) for g in parents):
            check_child_grant(parents[0], operations, constraints)

    # -- ListGrants -----------------------------------------------------------------------------

    def ListGrants(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        grant_id = params.get("GrantId")
        if grant_id is not None:
            check_grant_id(grant_id)  # InvalidGrantIdException
        size = limit(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
        after = _after_grant(params.get("Marker"))
        key = self.gate.use(ctx, self.region(ctx.region), params["KeyId"], LIST_GRANTS,
                            LIST_GRANTS.keys[0], params)
        if params.get("GranteeServicePrincipal") is not None:
            grants: list[Grant] = []  # keyledger's grants never have a grantee service principal
        else:
            grants = sorted(key.list_grants(grant_id, params.get("GranteePrincipal")), key=_order)
        if after is not None:
            grants = [g for g in grants if _order(g) > after]
        grants, paging = page(grants, size, _grant_position)
        return {"Grants": [g.to_list_entry(key.arn) for g in grants], **paging}

    # -- ListRetirableGrants --------------------------------------------------------------------

    def ListRetirableGrants(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        retiring = params.get("RetiringPrincipal")
        service = params.get("RetiringServicePrincipal")
        if retiring is not None and service is not None:
            raise GrantTexts.RETIRING_BOTH()
        if retiring is None and service is None:
            raise Validation.MISSING(member="retiringPrincipal")
        size = limit(params, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
        after = _after_retirable(params.get("Marker"))
        if retiring is not None and principal_account(retiring) != ctx.account_id:
            raise InvalidArn.NOT_IN_ACCOUNT(principal=retiring, account=ctx.account_id)
        # "The authorized resource in ListRetirableGrants calls is the retiring principal
        # specified in the request" (identity policies only)
        resource = retiring if retiring is not None else service
        if _ACCOUNT_ID.fullmatch(resource):
            resource = root_arn(resource)
        self.authorizer.check_request(ctx, LIST_RETIRABLE_GRANTS, params, resource=resource)
        if retiring is None:
            return {"Grants": [], "Truncated": False}  # no grant names a service principal
        region = self.region(ctx.region)
        found = self._retirable(region, ctx.account_id, retiring, after, size + 1)
        found, paging = page(found, size, lambda f: f"{f[0]} {_grant_position(f[2])}")
        return {"Grants": [g.to_list_entry(key.arn) for _, key, g in found], **paging}

    def _retirable(self, region: Region, account: str, retiring: str,
                   after: tuple[int, tuple[float, str]] | None,
                   wanted: int) -> list[tuple[int, KmsKey, Grant]]:
        """Up to ``wanted`` grants whose retiring principal is ``retiring`` on the account's
        keys, in listing order (keys as ListKeys lists them, each key's grants oldest first),
        after the ``after`` position."""
        region.projection.catch_up()
        found: list[tuple[int, KmsKey, Grant]] = []
        position = after[0] - 1 if after is not None else 0  # the marker's key is listed again
        while len(found) < wanted:
            rows = region.directory.list_keys(account, position, _KEYS_PER_QUERY)
            for key_id, key_position in rows:
                key = self.gate.known_key(region, account, key_id)
                if key is None:
                    continue
                grants = sorted(
                    (g for g in key.grants.values() if g.retiring_principal == retiring),
                    key=_order,
                )
                if after is not None and key_position == after[0]:
                    grants = [g for g in grants if _order(g) > after[1]]
                found.extend((key_position, key, g) for g in grants)
                if len(found) >= wanted:
                    break
            if len(rows) < _KEYS_PER_QUERY:
                break
            position = rows[-1][1]
        return found[:wanted]

    # -- RetireGrant ----------------------------------------------------------------------------

    def RetireGrant(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        region = self.region(ctx.region)
        key_id, grant_id, account = self._named_grant(ctx, region, params)

        def load() -> KmsKey:
            key = region.ledger.get_key(key_id)
            if key is None or key.deleted or (account is not None and key.account != account):
                raise self.gate.not_found(
                    ctx, key_id, account or (key.account if key is not None else None)
                )
            self._authorize_retirement(ctx, key, key.get_grant(grant_id), params)
            if key.arn not in ctx.resources:  # the audit record names the key and the grant
                ctx.resources.append(key.arn)
            ctx.additional = {"grantId": grant_id}
            return key

        def retire(key: KmsKey) -> None:
            key.retire_grant(grant_id, ctx.actor)
            dry_run(params)  # every check has passed; raising here records nothing

        region.change(key_id, load, retire)
        return {}

    def _named_grant(self, ctx: RequestContext, region: Region,
                     params: dict[str, Any]) -> tuple[str, str, str | None]:
        """(key id, grant id, the key's account or None when a token named it) of the grant
        RetireGrant names: by GrantToken, or by KeyId (key id or key ARN, another account's
        key ARN too) and GrantId."""
        token, key_ref, grant_id = (
            params.get("GrantToken"), params.get("KeyId"), params.get("GrantId")
        )
        if grant_id is not None:
            check_grant_id(grant_id)  # InvalidGrantIdException
        account = key_id = None
        if key_ref is not None:
            account, key_id, _ = self.gate.reference(ctx, region, key_ref, aliases=False,
                                                     cross_account=True)
        if token is not None:
            token_key_id, token_grant_id = parse_grant_token(token)  # InvalidGrantTokenException
            if (key_id is not None and key_id != token_key_id) or (
                grant_id is not None and grant_id != token_grant_id
            ):
                raise GrantTexts.RETIRE_MISMATCH()
            return token_key_id, token_grant_id, account
        if key_id is None or grant_id is None:
            raise GrantTexts.RETIRE_WHICH()
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise self.gate.not_found(ctx, key_id, account)
        return key_id, grant_id, account

    def _authorize_retirement(self, ctx: RequestContext, key: KmsKey, grant: Grant,
                              params: dict[str, Any]) -> None:
        """RetireGrant as AWS authorizes it: the grant itself allows its retiring principal,
        its grantee when it allows RetireGrant, and the root user of the account that
        issued it; that account's other principals need an identity policy allowing
        kms:RetireGrant on the key (delegation). kms:RetireGrant in a key policy has no
        effect, but an identity-policy Deny refuses even whom the grant allows."""
        principal = ctx.caller.principal
        decision = self.authorizer.decide_request(ctx, RETIRE_GRANT, params, resource=key.arn)
        if not decision.explicit_deny and grant.may_retire(principal):
            return  # the grant allows it, whatever else identity policies say
        if not decision.allowed:  # an explicit deny, or no identity policy allows it
            raise errors.AccessDeniedException(
                decision.message(principal.arn, RETIRE_GRANT.action, key.arn)
            )
        if principal.account == grant.issuing_account:
            return  # the issuing account delegates retiring through IAM
        raise _not_authorized(principal, RETIRE_GRANT.action, key.arn)

    # -- RevokeGrant ----------------------------------------------------------------------------

    def RevokeGrant(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        grant_id = params["GrantId"]
        check_grant_id(grant_id)  # InvalidGrantIdException, before the key is looked up

        def revoke(key: KmsKey) -> None:
            key.revoke_grant(grant_id, ctx.actor)
            dry_run(params)  # every check has passed; raising here records nothing

        self.gate.change(ctx, self.region(ctx.region), params["KeyId"], REVOKE_GRANT, params,
                         revoke)
        return {}
