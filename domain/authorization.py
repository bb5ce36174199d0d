"""The authorization decision for one KMS request: key policy, identity policies and grants.

Pure domain code: the caller (the application layer) supplies the compiled policies
(:class:`domain.policy.Policy`, compiled once per policy version), the grants of the key, and a
request context keyed by lower-case condition key names (see :mod:`domain.conditions`).

The algorithm [facts brief §2.2, from KDG:control-access, KDG:key-policies,
KDG:key-policy-default, KDG:determining-access-key-policy, KDG:key-policy-modifying-external-
accounts, KDG:policy-evaluation, KDG:conditions-kms]:

1. **Explicit deny.** A ``Deny`` statement of the key policy that names the caller (``"*"``,
   its ARN, its role for a session, or its account) or of one of its identity policies, whose
   action, resource and condition match, denies the request; grants cannot override it. The key
   policy is consulted first, so when both deny, the message names the resource-based policy
   (AWS "includes only one of those policy types" [IAM:troubleshoot_access-denied]).
2. **IAM-only operations** (``key_policy is None``: CreateKey, ListKeys, ListAliases,
   ListRetirableGrants, GenerateRandom, …): the account's root user is allowed; every other
   principal needs an identity-policy ``Allow``.
3. **Key policy names the caller** (``Allow``; ``"*"``, the user ARN, the role ARN for its
   sessions, the exact session ARN, the unique id): allowed for callers of the key's account;
   a caller of another account also needs an identity-policy ``Allow``
   [KDG:key-policy-modifying-external-accounts].
4. **Key policy allows the caller's account** (root ARN or bare id): the root user is allowed
   (it needs no IAM policy); any other principal needs an identity-policy ``Allow``. The key
   policy limits what IAM can pass on: only actions the account statement covers.
5. **Grant.** When ``grant_operation`` is set, a grant whose ``permits`` is true allows. A
   grant that has ``permits_by_delegation`` (:class:`domain.grants.Grant`: its grantee is the
   caller's account) allows an IAM user or role session of that account whose identity policies
   also allow the action on the key.
6. Otherwise denied: ``NO_IDENTITY_POLICY`` when the key policy (or a grant) names the caller
   or its account (step 3 cross-account, step 4, or a delegating grant) but no identity policy
   allows; ``NO_RESOURCE_POLICY`` when it does neither (the root user included: it "can access
   a CMK only when the key policy explicitly allows it" [KDG:key-policies]).

``resource_account`` must be set whenever ``key_policy`` is: a caller whose account differs
from it (None included) is treated as a caller from another account.

Choices not confirmed against AWS (wording for docs/compatibility.md)
---------------------------------------------------------------------
* A grantee of another account needs no identity-policy Allow: the grant alone suffices (the
  "key trust" text of KDG:policy-evaluation treats "a grant or IAM policy" as sufficient).
* A grant whose grantee is an account (``arn:aws:iam::ACCT:root``) allows that account's root
  user, and its IAM users and role sessions only with an identity-policy Allow for the action on
  the key (``Grant.permits_by_delegation``); without one the refusal reads "no identity-based
  policy allows".
* Which clause a refusal carries follows the facts brief's §3 heuristic: "identity-based" when
  the key policy names the caller's account (or names a caller of another account), else
  "resource-based". One AWS report (an AWS managed key whose policy lets the account read key
  metadata, elastic/cloudbeat#1749) answered "resource-based" where this rule says
  "identity-based"; AWS's precedence is not documented.
* When a key policy and an identity policy both deny, the message names the resource-based
  policy.
* IAM-only operations with no identity-policy Allow answer ``because no identity-based policy
  allows`` (the message of the operations on no key).
* Message wording for explicit denies follows IAM's generic page:
  ``… with an explicit deny in a resource-based policy`` / ``… in an identity-based policy``.
* A decision after grants were consulted (and none allowed) is not cacheable: a new grant could
  change it. A cache of cacheable decisions must key on (key policy version, identity policy
  versions, principal, action, resource).
* :func:`lockout_check`: without identity policies, the key policy alone decides: the check
  passes when it allows the caller kms:PutKeyPolicy directly, or allows the caller's account
  (delegation to IAM is assumed to work, as for the root user), and no key-policy Deny applies.
  With ``identity_policies`` given, they are weighed as in :func:`authorize`. Conditions are
  evaluated against the current request's context without ``kms:BypassPolicyLockoutSafetyCheck``
  (a later PutKeyPolicy that does not bypass the check).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from domain.policy import IDENTITY, Caller, Policy, PrincipalMatch, Statement
from domain.principals import Principal, PrincipalKind


class GrantLike(Protocol):
    def permits(self, principal: Principal, operation: str,
                encryption_context: Mapping[str, str] | None) -> bool: ...


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    principal: Principal
    action: str  # "kms:Encrypt"
    resource: str  # key ARN, alias ARN, or "*"
    resource_account: str | None  # the key's account; None for operations on no key
    key_policy: Policy | None  # None: an IAM-only operation
    identity_policies: Sequence[Policy]
    context: Mapping[str, Any]
    grants: Iterable[GrantLike] = ()
    grant_operation: str | None = None  # the KMS operation a grant may allow ("Encrypt")
    encryption_context: Mapping[str, str] | None = None


class Outcome(Enum):
    ALLOWED = "allowed"
    EXPLICIT_DENY_RESOURCE = "explicit deny in a resource-based policy"
    EXPLICIT_DENY_IDENTITY = "explicit deny in an identity-based policy"
    NO_RESOURCE_POLICY = "no resource-based policy allows"
    NO_IDENTITY_POLICY = "no identity-based policy allows"


ALLOWED = Outcome.ALLOWED
DENY_RESOURCE = Outcome.EXPLICIT_DENY_RESOURCE
DENY_IDENTITY = Outcome.EXPLICIT_DENY_IDENTITY
NO_RESOURCE = Outcome.NO_RESOURCE_POLICY
NO_IDENTITY = Outcome.NO_IDENTITY_POLICY
NONE = PrincipalMatch.NONE
DIRECT = PrincipalMatch.DIRECT

_USER = "User: {principal} is not authorized to perform: {action} on resource: {resource}"
_MESSAGES = {
    Outcome.EXPLICIT_DENY_RESOURCE: _USER + " with an explicit deny in a resource-based policy",
    Outcome.EXPLICIT_DENY_IDENTITY: _USER + " with an explicit deny in an identity-based policy",
    Outcome.NO_RESOURCE_POLICY: _USER + " because no resource-based policy allows the {action} "
                                        "action",
    Outcome.NO_IDENTITY_POLICY: _USER + " because no identity-based policy allows the {action} "
                                        "action",
}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    #: the Sid of the statement that allowed or denied, "grant <id>" for a grant, "" otherwise
    via: str = ""
    #: True when no statement with a Condition (or a policy variable) was consulted and no grant
    #: was: the same (policy versions, principal, action, resource) always gets this answer
    cacheable: bool = True

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    @property
    def explicit_deny(self) -> bool:
        return self.outcome in (Outcome.EXPLICIT_DENY_RESOURCE, Outcome.EXPLICIT_DENY_IDENTITY)

    def message(self, principal_arn: str, action: str, resource: str) -> str:
        """AWS's AccessDeniedException text (no trailing period); "" when allowed."""
        template = _MESSAGES.get(self.outcome)
        if template is None:
            return ""
        return template.format(principal=principal_arn, action=action, resource=resource)


_DECISIONS: dict[tuple[Outcome, str, bool], Decision] = {}


def _decision(outcome: Outcome, via: str, cacheable: bool) -> Decision:
    """Decisions are immutable: the common ones are shared rather than built per request."""
    key = (outcome, via, cacheable)
    decision = _DECISIONS.get(key)
    if decision is None:
        decision = Decision(outcome, via, cacheable)
        if len(_DECISIONS) < 4096:
            _DECISIONS[key] = decision
    return decision


def _identity_allow(request: AuthorizationRequest) -> tuple[Statement | None, bool]:
    """The first identity-policy Allow that holds, and whether the context was consulted."""
    consulted = False
    action, resource, context = request.action, request.resource, request.context
    for policy in request.identity_policies:
        for statement in policy.applicable(action)[1]:
            holds = statement.holds(resource, context)
            if holds & 2:
                consulted = True
            if holds & 1:
                return statement, consulted
    return None, consulted


def authorize(request: AuthorizationRequest) -> Decision:
    """Decide one request (see the module docstring for the algorithm)."""
    principal = request.principal
    action = request.action
    resource = request.resource
    context = request.context
    key_policy = request.key_policy
    consulted = False  # a Condition or policy variable was evaluated
    root = principal.kind is PrincipalKind.ROOT

    # 1. explicit deny: key policy, then identity policies
    allows: tuple[Statement, ...] = ()
    caller: Caller | None = None
    if key_policy is not None:
        denies, allows = key_policy.applicable(action)
        if denies or allows:
            caller = Caller(principal)
        for statement in denies:
            if statement.principals.match(caller) is NONE:  # type: ignore[union-attr,arg-type]
                continue
            holds = statement.holds(resource, context)
            if holds & 2:
                consulted = True
            if holds & 1:
                return _decision(DENY_RESOURCE, statement.sid, not consulted)
    for policy in request.identity_policies:
        for statement in policy.applicable(action)[0]:
            holds = statement.holds(resource, context)
            if holds & 2:
                consulted = True
            if holds & 1:
                return _decision(DENY_IDENTITY, statement.sid, not consulted)

    # 2. operations on no key: identity policies alone (the root user needs none)
    if key_policy is None:
        if root:
            return _decision(ALLOWED, "", not consulted)
        statement, used = _identity_allow(request)
        consulted = consulted or used
        if statement is not None:
            return _decision(ALLOWED, statement.sid, not consulted)
        return _decision(NO_IDENTITY, "", not consulted)

    # 3./4. the key policy names the caller, or delegates to the caller's account
    direct: Statement | None = None
    account: Statement | None = None
    for statement in allows:
        match = statement.principals.match(caller)  # type: ignore[union-attr,arg-type]
        if match is NONE:
            continue
        holds = statement.holds(resource, context)
        if holds & 2:
            consulted = True
        if not holds & 1:
            continue
        if match is DIRECT:
            direct = statement
            break
        if account is None:
            account = statement

    identity_checked = False
    identity: Statement | None = None
    if direct is not None or account is not None:
        if root:
            chosen = direct if direct is not None else account
            return _decision(ALLOWED, chosen.sid, not consulted)  # type: ignore[union-attr]
        if direct is not None and principal.account == request.resource_account:
            return _decision(ALLOWED, direct.sid, not consulted)
        identity, used = _identity_allow(request)
        identity_checked = True
        consulted = consulted or used
        if identity is not None:
            return _decision(ALLOWED, identity.sid, not consulted)
        refusal = NO_IDENTITY
    else:
        refusal = NO_RESOURCE

    # 5. grants
    operation = request.grant_operation
    if operation is not None:
        encryption_context = request.encryption_context
        delegating: GrantLike | None = None
        for grant in request.grants:
            if grant.permits(principal, operation, encryption_context):
                return _decision(ALLOWED, _grant_via(grant), False)
            if delegating is None:
                by_delegation = getattr(grant, "permits_by_delegation", None)
                if by_delegation is not None and by_delegation(principal, operation,
                                                               encryption_context):
                    delegating = grant
        if delegating is not None:
            # a grant to the caller's account: its IAM users and role sessions need an
            # identity-policy Allow as well (domain.grants.Grant.permits_by_delegation)
            if not identity_checked:
                identity, _ = _identity_allow(request)
            if identity is not None:
                return _decision(ALLOWED, _grant_via(delegating), False)
            refusal = NO_IDENTITY
        consulted = True  # a grant created later could change this answer
    return _decision(refusal, "", not consulted)


def _grant_via(grant: GrantLike) -> str:
    grant_id = getattr(grant, "grant_id", "")
    return f"grant {grant_id}" if grant_id else "grant"


# -- the lockout safety check -------------------------------------------------------------------

_ALLOW_EVERYTHING = Policy.from_document(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    kind=IDENTITY,
)
BYPASS_KEY = "kms:bypasspolicylockoutsafetycheck"


class _LaterPutKeyPolicy(Mapping[str, Any]):
    """The current request's context as a later PutKeyPolicy without the bypass would see it."""

    __slots__ = ("_base",)

    def __init__(self, base: Mapping[str, Any]) -> None:
        self._base = base

    def get(self, key: str, default: Any = None) -> Any:
        if key == BYPASS_KEY:
            return default
        return self._base.get(key, default)

    def __getitem__(self, key: str) -> Any:
        if key == BYPASS_KEY:
            raise KeyError(key)
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._base if k != BYPASS_KEY)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def lockout_check(policy: Policy, principal: Principal, *, resource: str,
                  resource_account: str | None = None,
                  context: Mapping[str, Any] | None = None,
                  identity_policies: Sequence[Policy] | None = None) -> bool:
    """Would ``policy`` let ``principal`` call kms:PutKeyPolicy on the key later?

    False means CreateKey/PutKeyPolicy (without BypassPolicyLockoutSafetyCheck) must fail with
    ``The new key policy will not allow you to update the key policy in the future.``
    ``identity_policies=None``: the key policy alone decides (naming the caller's account is
    enough, as delegation to IAM is assumed); a sequence: they are weighed as in
    :func:`authorize`.
    """
    decision = authorize(AuthorizationRequest(
        principal=principal,
        action="kms:PutKeyPolicy",
        resource=resource,
        resource_account=resource_account if resource_account is not None else principal.account,
        key_policy=policy,
        identity_policies=(_ALLOW_EVERYTHING,) if identity_policies is None
        else tuple(identity_policies),
        context=_LaterPutKeyPolicy(context if context is not None else {}),
    ))
    return decision.allowed


# -- the caller's part of the request context -----------------------------------------------------


def principal_context(principal: Principal) -> dict[str, Any]:
    """The global condition keys that describe the caller, keyed in lower case
    [IAM:reference_policies_condition-keys; IAM:reference_policies_variables principal table]:
    aws:PrincipalArn (the role ARN for a session), aws:PrincipalAccount, aws:PrincipalType,
    aws:userid, aws:username (IAM users only), aws:PrincipalTag/<k>."""
    context: dict[str, Any] = {
        "aws:principalarn": principal.principal_arn,
        "aws:principalaccount": principal.account,
        "aws:principaltype": principal.kind.value,
        "aws:userid": principal.user_id,
    }
    if principal.kind is PrincipalKind.USER:
        context["aws:username"] = principal.name
    for key, value in principal.tags.items():
        context["aws:principaltag/" + key.lower()] = value
    return context
