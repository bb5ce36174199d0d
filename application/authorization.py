"""Authorization of every request, as AWS KMS does it (domain.authorization decides).

The gate asks :class:`Authorizer` once per key a request names (twice for ReEncrypt, three
times for UpdateAlias); operations on no key are authorized by identity policies alone.
Policies are compiled once per text (``compiled``), and allow decisions that consulted no
condition and no grant are cached per caller, keyed by the key's ARN, its policy text and the
action: a new policy text, a new identities file (new callers) or a grant change cannot hit a
stale entry. Everything else is evaluated per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from application.context import RequestContext
from domain import errors
from domain.authorization import AuthorizationRequest, Decision, Outcome, authorize, lockout_check
from domain.grants import parse_grant_tokens
from domain.key import KmsKey
from domain.operations import Operation
from domain.policy import Policy, identity_policies
from domain.principals import Principal, PrincipalKind

_MAX_CACHED_DECISIONS = 4096


@lru_cache(maxsize=4096)
def compiled(policy_text: str) -> Policy:
    """A stored key policy, compiled (it was validated when it was stored)."""
    return Policy.parse(policy_text, principal_exists=None, kind="key")


@dataclass(eq=False)
class Caller:
    """An authenticated principal as the authorizer sees it: its compiled identity policies
    and the allow decisions it may reuse."""

    principal: Principal
    access_key_id: str = ""
    identity_policies: tuple[Policy, ...] = ()
    allowed: dict[tuple[str, str, str], bool] = field(default_factory=dict)

    @classmethod
    def of(cls, principal: Principal, access_key_id: str = "") -> Caller:
        """A caller with its identity policies compiled (once per loaded identities file)."""
        return cls(principal, access_key_id, identity_policies(principal))


#: the operations kms:PolicyName is set for (their PolicyName, "default" when not given)
_POLICY_NAME_OPERATIONS = frozenset({"GetKeyPolicy", "PutKeyPolicy"})
_ENCRYPTION_ALGORITHM_OPERATIONS = frozenset({
    "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
})
_CONTEXT_MEMBERS = {  # operation (or action) -> the member holding its encryption context
    "kms:ReEncryptFrom": "SourceEncryptionContext",
    "kms:ReEncryptTo": "DestinationEncryptionContext",
}


#: the operations whose requests carry kms:GrantIsForAWSResource: false on keyledger (no AWS
#: service calls it); and aws:ViaAWSService is false on every request
GRANT_IS_FOR_AWS_RESOURCE_OPERATIONS = frozenset({"CreateGrant", "ListGrants", "RevokeGrant"})


class RequestConditions(Mapping[str, Any]):
    """The condition keys of one request, computed only when a policy condition names one.
    Keys are lower-case (condition key names are case-insensitive)."""

    def __init__(self, ctx: RequestContext, operation: Operation, action: str,
                 params: Mapping[str, Any], key: KmsKey | None, alias: str | None,
                 aliases_of: Callable[[KmsKey], list[str]] | None = None) -> None:
        self.ctx, self.operation, self.action, self.params = ctx, operation, action, params
        self.key, self.alias, self._aliases_of = key, alias, aliases_of

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __getitem__(self, name: str) -> Any:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def encryption_context(self) -> Mapping[str, str] | None:
        member = _CONTEXT_MEMBERS.get(self.action, "EncryptionContext")
        if self.operation.name == "CreateGrant":
            constraints = self.params.get("Constraints") or {}
            return constraints.get("EncryptionContextEquals") or constraints.get("EncryptionContextSubset")
        return self.params.get(member)

    def get(self, name: str, default: Any = None) -> Any:  # noqa: C901 - one branch per key
        ctx, params, key, principal = self.ctx, self.params, self.key, self.ctx.caller.principal
        op = self.operation.name
        if name.startswith("kms:encryptioncontext:"):
            context = self.encryption_context()
            if not context:
                return default
            wanted = name[len("kms:encryptioncontext:"):]
            for k, v in context.items():
                if k.lower() == wanted:
                    return v
            return default
        if name.startswith("aws:resourcetag/"):
            if key is None:
                return default
            wanted = name[len("aws:resourcetag/"):]
            return next((v for k, v in key.tags.items() if k.lower() == wanted), default)
        if name.startswith("aws:requesttag/"):
            wanted = name[len("aws:requesttag/"):]
            tags = params.get("Tags") or []
            return next((t["TagValue"] for t in tags if t["TagKey"].lower() == wanted), default)
        if name.startswith("aws:principaltag/"):
            wanted = name[len("aws:principaltag/"):]
            return next((v for k, v in principal.tags.items() if k.lower() == wanted), default)
        value = self._simple(name, ctx, params, key, principal, op)
        return default if value is None else value

    def _simple(self, name, ctx, params, key, principal, op):  # noqa: C901
        if name == "aws:principalarn":
            return principal.principal_arn
        if name == "aws:principalaccount":
            return principal.account
        if name == "aws:principaltype":
            return principal.kind.value
        if name == "aws:username":
            return principal.name if principal.kind is PrincipalKind.USER else None
        if name == "aws:userid":
            return principal.user_id
        if name == "aws:sourceip":
            return ctx.source_ip or None
        if name in ("aws:currenttime", "aws:epochtime"):
            now = datetime.now(UTC)
            return now if name == "aws:currenttime" else int(now.timestamp())
        if name == "aws:securetransport":
            return ctx.secure_transport
        if name == "aws:requestedregion":
            return ctx.region
        if name == "aws:viaawsservice":
            return False
        if name == "aws:useragent":
            return ctx.user_agent or None
        if name == "aws:tagkeys":
            if op == "UntagResource":
                return list(params.get("TagKeys") or [])
            tags = params.get("Tags")
            return [t["TagKey"] for t in tags] if tags else None
        if name == "kms:calleraccount":
            return principal.account
        if name == "kms:encryptioncontextkeys":
            context = self.encryption_context()
            return list(context) if context else None
        if name == "kms:encryptionalgorithm":
            if op not in _ENCRYPTION_ALGORITHM_OPERATIONS:
                return None
            if op == "ReEncrypt":
                member = ("SourceEncryptionAlgorithm" if self.action == "kms:ReEncryptFrom"
                          else "DestinationEncryptionAlgorithm")
                return params.get(member, "SYMMETRIC_DEFAULT")
            return params.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        if name == "kms:signingalgorithm":
            return params.get("SigningAlgorithm")
        if name == "kms:messagetype":
            return params.get("MessageType", "RAW") if op in ("Sign", "Verify") else None
        if name == "kms:macalgorithm":
            return params.get("MacAlgorithm")
        if name == "kms:keyagreementalgorithm":
            return params.get("KeyAgreementAlgorithm")
        if name == "kms:datakeypairspec":
            return params.get("KeyPairSpec")
        if name in ("kms:keyspec", "kms:customermasterkeyspec"):
            if key is not None:
                return key.key_spec
            if op == "CreateKey":
                return params.get("KeySpec") or params.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
            return None
        if name in ("kms:keyusage", "kms:customermasterkeyusage"):
            if key is not None:
                return key.key_usage
            return params.get("KeyUsage", "ENCRYPT_DECRYPT") if op == "CreateKey" else None
        if name == "kms:keyorigin":
            if key is not None:
                return key.origin
            return params.get("Origin", "AWS_KMS") if op == "CreateKey" else None
        if name == "kms:multiregion":
            if key is not None:
                return key.multi_region
            return bool(params.get("MultiRegion", False)) if op == "CreateKey" else None
        if name == "kms:multiregionkeytype":  # absent for single-Region keys
            if key is not None:
                return key.multi_region_key_type
            return "PRIMARY" if op == "CreateKey" and params.get("MultiRegion") else None
        if name == "kms:requestalias":
            return self.alias
        if name == "kms:policyname":  # ("If the request doesn't include PolicyName, ... default")
            return params.get("PolicyName", "default") if op in _POLICY_NAME_OPERATIONS else None
        if name == "kms:replicaregion":
            return params.get("ReplicaRegion") if op == "ReplicateKey" else None
        if name == "kms:primaryregion":
            return params.get("PrimaryRegion") if op == "UpdatePrimaryRegion" else None
        if name == "kms:resourcealiases":
            if key is None or self._aliases_of is None:
                return None
            return self._aliases_of(key)
        if name == "kms:bypasspolicylockoutsafetycheck":
            return params.get("BypassPolicyLockoutSafetyCheck")
        if name == "kms:schedulekeydeletionpendingwindowindays":
            return params.get("PendingWindowInDays", 30) if op == "ScheduleKeyDeletion" else None
        if name == "kms:rotationperiodindays":
            return params.get("RotationPeriodInDays", 365) if op == "EnableKeyRotation" else None
        if name == "kms:wrappingalgorithm":
            return params.get("WrappingAlgorithm")
        if name == "kms:wrappingkeyspec":
            return params.get("WrappingKeySpec")
        if name == "kms:expirationmodel":
            return params.get("ExpirationModel") if op == "ImportKeyMaterial" else None
        if name == "kms:validto":
            valid_to = params.get("ValidTo") if op == "ImportKeyMaterial" else None
            return int(valid_to.timestamp()) if valid_to is not None else None
        if name == "kms:reencryptonsamekey":
            if op != "ReEncrypt":
                return None
            return params.get("SourceKeyId") == params.get("DestinationKeyId")
        if op == "CreateGrant":
            if name == "kms:grantoperations":
                return list(params.get("Operations") or [])
            if name == "kms:granteeprincipal":
                return params.get("GranteePrincipal")
            if name == "kms:retiringprincipal":
                return params.get("RetiringPrincipal")
            if name == "kms:grantconstrainttype":
                constraints = params.get("Constraints") or {}
                return next((t for t in ("EncryptionContextEquals", "EncryptionContextSubset")
                             if constraints.get(t)), None)  # an empty map is not specified
        if name == "kms:grantisforawsresource":
            return False if op in GRANT_IS_FOR_AWS_RESOURCE_OPERATIONS else None
        return None


class Authorizer:
    """Decides whether the caller of a request may perform an action on a key or resource."""

    def __init__(self, principal_exists: Callable[[str], bool] | None = None,
                 aliases_of: Callable[[KmsKey], list[str]] | None = None) -> None:
        #: sigv4 mode: does a principal ARN named in a policy or grant exist? None (open
        #: mode): any well-formed principal ARN is accepted
        self.principal_exists = principal_exists
        self.aliases_of = aliases_of

    def check_key(self, ctx: RequestContext, key: KmsKey, operation: Operation, action: str,
                  params: Mapping[str, Any], alias: str | None) -> None:
        """Raise AccessDeniedException unless the caller may perform ``action`` on ``key``."""
        caller = ctx.caller
        grant_tokens = params.get("GrantTokens")
        if grant_tokens:  # checked on every request, a decision cached or not
            parse_grant_tokens(grant_tokens)  # InvalidGrantTokenException for a malformed one
        cache_key = (key.arn, key.policy, action)
        if cache_key in caller.allowed:
            return
        conditions = RequestConditions(ctx, operation, action, params, key, alias, self.aliases_of)
        decision = authorize(AuthorizationRequest(
            principal=caller.principal,
            action=action,
            resource=key.arn,
            resource_account=key.account,
            key_policy=compiled(key.policy),
            identity_policies=caller.identity_policies,
            context=conditions,
            grants=getattr(key, "grants", {}).values(),
            grant_operation=action[4:],  # grants name operations (ReEncryptFrom, not ReEncrypt)
            encryption_context=conditions.encryption_context(),
        ))
        if decision.outcome is Outcome.ALLOWED:
            if decision.cacheable:
                if len(caller.allowed) >= _MAX_CACHED_DECISIONS:
                    caller.allowed.clear()
                caller.allowed[cache_key] = True
            return
        raise errors.AccessDeniedException(decision.message(caller.principal.arn, action, key.arn))

    def allowed_by_policy(self, ctx: RequestContext, key: KmsKey, operation: Operation, action: str,
                          params: Mapping[str, Any]) -> bool:
        """Whether the key policy (with identity policies) allows ``action`` without any grant:
        a caller allowed only by a grant may create only narrower grants."""
        conditions = RequestConditions(ctx, operation, action, params, key, None, self.aliases_of)
        return authorize(AuthorizationRequest(
            principal=ctx.caller.principal, action=action, resource=key.arn,
            resource_account=key.account, key_policy=compiled(key.policy),
            identity_policies=ctx.caller.identity_policies, context=conditions,
        )).allowed

    def decide_request(self, ctx: RequestContext, operation: Operation, params: Mapping[str, Any],
                       resource: str = "*", key: KmsKey | None = None) -> Decision:
        """The identity policies' decision on an operation on no key (or on an alias, or
        RetireGrant's delegation through IAM). ``key``: the key it makes, whose properties
        the kms: condition keys read (ReplicateKey's replica)."""
        return authorize(AuthorizationRequest(
            principal=ctx.caller.principal,
            action=operation.action,
            resource=resource,
            resource_account=None,
            key_policy=None,
            identity_policies=ctx.caller.identity_policies,
            context=RequestConditions(ctx, operation, operation.action, params, key, None),
        ))

    def check_request(self, ctx: RequestContext, operation: Operation, params: Mapping[str, Any],
                      resource: str = "*", key: KmsKey | None = None) -> None:
        """Authorize an operation on no key (or on an alias) by identity policies alone
        (``key``: decide_request)."""
        caller = ctx.caller
        cache_key = (resource, "", operation.action)
        if cache_key in caller.allowed:
            return
        decision = self.decide_request(ctx, operation, params, resource, key)
        if decision.outcome is Outcome.ALLOWED:
            if decision.cacheable:
                caller.allowed[cache_key] = True
            return
        raise errors.AccessDeniedException(
            decision.message(caller.principal.arn, operation.action, resource)
        )

    def check_key_policy_deny(self, ctx: RequestContext, operation: Operation,
                              key: KmsKey) -> None:
        """A read of the ledger about ``key`` (keyledger:ReadHistory, keyledger:ReadAudit),
        allowed by identity policies (check_request): the key's policy refuses it too when
        one of its statements denies the action explicitly, as it refuses every other
        request on the key. Its allows do not grant these actions."""
        decision = authorize(AuthorizationRequest(
            principal=ctx.caller.principal, action=operation.action, resource=key.arn,
            resource_account=key.account, key_policy=compiled(key.policy),
            identity_policies=(),
            context=RequestConditions(ctx, operation, operation.action, {}, key, None),
        ))
        if decision.outcome is Outcome.EXPLICIT_DENY_RESOURCE:
            raise errors.AccessDeniedException(
                decision.message(ctx.caller.principal.arn, operation.action, key.arn))

    def new_key_policy(self, ctx: RequestContext, text: str | None, bypass_lockout_check: bool,
                       key_arn: str, operation: Operation, params: Mapping[str, Any]) -> str | None:
        """Validate a key policy a caller sets (CreateKey, PutKeyPolicy) as AWS does: grammar,
        principals that exist, size; then the lockout safety check unless bypassed."""
        if text is None:
            return None
        policy = Policy.parse(text, principal_exists=self.principal_exists, kind="key")
        conditions = RequestConditions(ctx, operation, operation.action, params, None, None)
        if not bypass_lockout_check and not lockout_check(
            policy, ctx.caller.principal, resource=key_arn, resource_account=ctx.account_id,
            context=conditions,
        ):
            raise errors.MalformedPolicyDocumentException(
                "The new key policy will not allow you to update the key policy in the future."
            )
        return text
