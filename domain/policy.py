"""The IAM policy language of key policies and identity policies: parsed and validated once,
compiled into matchers, and evaluated many times by :mod:`domain.authorization`.

``Policy.parse(text, principal_exists=..., kind="key"|"identity")`` reads a JSON document:

* ``Version`` (``2012-10-17``, or ``2008-10-17`` / absent: policy variables are then literal
  text [IAM:reference_policies_variables]), ``Id``, and ``Statement`` (a list, or one object).
* Per statement: ``Sid``, ``Effect`` (``Allow``/``Deny``), ``Principal``/``NotPrincipal`` (key
  policies only; identity policies have none), ``Action``/``NotAction``,
  ``Resource``/``NotResource``, ``Condition`` (:mod:`domain.conditions`).
* Principals: ``"*"``, ``{"AWS": str | list}`` with ``"*"``, a bare 12-digit account id or
  ``arn:aws:iam::ACCT:root`` (the account), user, role, assumed-role session and
  federated-user ARNs, or the unique id (AIDA…/AROA…) IAM stores in their place; and
  ``{"Service": str | list}``. No partial wildcards; IAM groups are not principals
  [IAM:reference_policies_elements_principal; KDG:key-policy-overview].
* Actions: ``"*"`` or ``service:name`` with ``*``/``?`` wildcards in the name, matched
  case-insensitively (``kms:Create*`` covers CreateAlias and CreateGrant [KDG:key-policy-default]).
* Resources: ``"*"`` or an ARN pattern with ``*``/``?`` wildcards, matched case-sensitively over
  the whole ARN; policy variables may appear in it (2012-10-17).

A key policy statement without ``Resource`` is accepted but has no effect [KDG:key-policy-overview
"If the required Resource element is missing … the policy statement has no effect … CreateKey and
PutKeyPolicy APIs succeed"]. A key policy over 32768 bytes raises LimitExceededException
[KDG:key-policy-overview; MODEL CreateKey.Policy]. ``principal_exists(arn)`` is asked about every
AWS principal that is neither ``"*"`` nor an account (root ARN or bare id); a ``False`` answer
gives ``Policy contains a statement with one or more invalid principals.`` [MODEL PutKeyPolicy;
§4 of the facts brief]. ``None`` accepts every well-formed principal (open mode).

Choices / messages not confirmed against AWS
--------------------------------------------
* The size limit counts the UTF-8 bytes of the document. Message:
  ``The key policy exceeds the maximum size of 32768 bytes.``
* Key policies may only hold tab, LF, CR and U+0020..U+00FF [KDG:key-policy-overview]; another
  character: ``The key policy contains a character that is not allowed: U+XXXX.``
* An empty or blank document keeps the text keyledger answered before:
  ``The new key policy will not allow you to update the key policy in the future.``
* Not JSON: ``The policy document is not valid JSON.`` Not an object: ``The policy document
  must be a JSON object.`` A repeated JSON member name anywhere: ``The policy document has a
  duplicate element: <name>.`` NaN/Infinity literals are not JSON.
* Unknown top-level element: ``The policy document has an unsupported element: <name>.``;
  unknown statement element: ``Policy statement has an unsupported element: <name>.``
  (element names are case-sensitive).
* ``Version`` other than 2012-10-17 / 2008-10-17: ``The policy document has an unsupported
  Version: <v>.``; a missing Version is accepted (variables are then not replaced). ``Id`` not
  a string: ``The policy Id must be a string.``
* No statements: ``Policy contains no statements.``; a statement that is not an object:
  ``Policy statement must be a JSON object.``; ``Sid`` not a string: ``Policy statement Sid
  must be a string.``; two statements with the same non-empty Sid: ``Policy contains duplicate
  statement ids: <sid>.``
* ``Effect``: ``Policy statement has an invalid or missing Effect.`` (exact case required).
* Action: missing ``Policy statement is missing an Action.``; both Action and NotAction
  ``Policy statement must have either Action or NotAction, not both.``; an empty list or an
  action that is not ``*`` / ``service:name`` (wildcards only in the name): ``Policy statement
  has an invalid action: <a>.`` Actions of other services are accepted (they never match).
* Key policy statement without Principal/NotPrincipal, with both, an unknown principal type
  (only ``AWS`` and ``Service``; ``Federated``/``CanonicalUser`` are refused), an empty list, a
  partial wildcard, a group ARN, or a principal ``principal_exists`` refuses: the AWS text
  ``Policy contains a statement with one or more invalid principals.``
  ``principal_exists`` receives a session ARN as written (``arn:aws:sts::A:assumed-role/R/S``)
  and unique ids as written; accounts are never asked about.
* Identity policy with Principal/NotPrincipal: ``Identity policies cannot have a Principal or
  NotPrincipal element.``; without Resource/NotResource: ``Policy statement is missing a
  Resource.``; both: ``Policy statement must have either Resource or NotResource, not both.``;
  a resource that is not ``*`` or ``arn:…`` with six components: ``Policy statement has an
  invalid resource: <r>.``
* ``NotPrincipal``: the statement applies when any of the caller's identities is not listed
  (a user: its ARN/unique id and its account; a role session: its session or role ARN and its
  account; root: its account), as IAM describes for NotPrincipal with Deny. A matching
  NotPrincipal Allow counts like ``"*"``.
* In a resource-based (key) policy, a statement naming an account applies to every principal
  of that account for Deny (and delegates for Allow).
* Resource wildcards match across ``:`` (IAM: a ``*`` at the end of a segment may expand past
  the colon); matching is case-sensitive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from domain.conditions import (
    Condition,
    Context,
    compile_condition,
    is_static,
    like_pattern,
    parse_template,
    wildcard_regex,
)
from domain.errors import LimitExceededException, MalformedPolicyDocumentException
from domain.principals import Principal, PrincipalKind

DEFAULT_POLICY_NAME = "default"
KEY_POLICY_MAX_BYTES = 32768
VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"

INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
LOCKOUT = "The new key policy will not allow you to update the key policy in the future."
TOO_LARGE = f"The key policy exceeds the maximum size of {KEY_POLICY_MAX_BYTES} bytes."

KEY = "key"
IDENTITY = "identity"

_TOP_LEVEL = frozenset({"Version", "Id", "Statement"})
_STATEMENT = frozenset({
    "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
    "NotResource", "Condition",
})
_KEY_POLICY_CHARACTERS = re.compile(r"[^\t\n\r\x20-\xff]")
_ACTION = re.compile(r"^[A-Za-z0-9_-]+:[A-Za-z0-9_*?-]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_PARTITION = r"arn:aws(?:-[a-z]+)*"
_ROOT_ARN = re.compile(rf"^{_PARTITION}:iam::(\d{{12}}):root$")
_IAM_ENTITY = re.compile(rf"^{_PARTITION}:iam::\d{{12}}:(?:user|role)/(?:[^/\s]+/)*[^/\s]+$")
_SESSION = re.compile(rf"^{_PARTITION}:sts::\d{{12}}:assumed-role/[^/\s]+/[^/\s]+$")
_FEDERATED = re.compile(rf"^{_PARTITION}:sts::\d{{12}}:federated-user/[^/\s]+$")
_UNIQUE_ID = re.compile(r"^(?:AIDA|AROA)[A-Z0-9]{4,}$")
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.[a-z0-9.-]+$")
_ACTION_CACHE_LIMIT = 512


def _malformed(message: str) -> MalformedPolicyDocumentException:
    return MalformedPolicyDocumentException(message)


def default_key_policy(account: str) -> str:
    """The default key policy CreateKey attaches when it gets none, in GetKeyPolicy's layout
    [KDG GetKeyPolicy example: 2-space indent, ``" : "``, ``[ {``]."""
    return (
        "{\n"
        '  "Version" : "2012-10-17",\n'
        '  "Id" : "key-default-1",\n'
        '  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n'
        '    "Effect" : "Allow",\n'
        '    "Principal" : {\n'
        f'      "AWS" : "arn:aws:iam::{account}:root"\n'
        "    },\n"
        '    "Action" : "kms:*",\n'
        '    "Resource" : "*"\n'
        "  } ]\n"
        "}"
    )


def validate_key_policy(policy: str) -> str:
    """Return ``policy`` unchanged if it is a valid key policy (any well-formed principal)."""
    Policy.parse(policy, kind=KEY)
    return policy


# -- principals -----------------------------------------------------------------------------------


class PrincipalMatch(IntEnum):
    """How a statement's Principal element names a caller."""

    NONE = 0
    ACCOUNT = 1  # the caller's account (root ARN or bare id): delegation to IAM
    DIRECT = 2  # the caller itself: "*", its user ARN, its role (for sessions), its session


class Caller:
    """The identities of one caller, as the Principal elements compare them (computed once per
    decision: a Principal formats its ARNs on every access)."""

    __slots__ = ("account", "root", "arn", "principal_arn", "unique_id")

    def __init__(self, principal: Principal) -> None:
        self.account = principal.account
        self.root = principal.kind is PrincipalKind.ROOT
        if self.root:
            self.arn = self.principal_arn = ""
        else:
            self.arn = principal.arn
            self.principal_arn = principal.principal_arn  # the role ARN for a session
        self.unique_id = principal.unique_id


class PrincipalSet:
    """A compiled Principal (or NotPrincipal) element."""

    __slots__ = ("wildcard", "arns", "unique_ids", "accounts", "services", "negated")

    def __init__(self, wildcard: bool, arns: frozenset[str], unique_ids: frozenset[str],
                 accounts: frozenset[str], services: frozenset[str], negated: bool) -> None:
        self.wildcard = wildcard
        self.arns = arns
        self.unique_ids = unique_ids
        self.accounts = accounts
        self.services = services
        self.negated = negated

    def _names_identity(self, caller: Caller) -> bool:
        if caller.root:
            return False
        arns = self.arns
        if caller.arn in arns or caller.principal_arn in arns:
            return True
        return bool(caller.unique_id) and caller.unique_id in self.unique_ids

    def _excepts(self, caller: Caller) -> bool:
        """Whether a NotPrincipal names every identity of the caller. AWS may check them in
        turn — the account, then the user or role, then the role's session (IAM User Guide,
        reference_policies_elements_notprincipal) — and a Deny applies at the first one not
        named: a session is excepted only with its account, its role (ARN or unique id) and its
        own session ARN named; a user with its account and its ARN or unique id."""
        if caller.account not in self.accounts:
            return False
        if caller.root:
            return True
        arns = self.arns
        if not (caller.principal_arn in arns
                or (bool(caller.unique_id) and caller.unique_id in self.unique_ids)):
            return False
        return caller.arn == caller.principal_arn or caller.arn in arns  # (a session's own)

    def match(self, principal: Principal | Caller) -> PrincipalMatch:
        caller = principal if isinstance(principal, Caller) else Caller(principal)
        if self.negated:
            if self.wildcard or self._excepts(caller):
                return PrincipalMatch.NONE
            return PrincipalMatch.DIRECT
        if self.wildcard or self._names_identity(caller):
            return PrincipalMatch.DIRECT
        if caller.account in self.accounts:
            return PrincipalMatch.ACCOUNT
        return PrincipalMatch.NONE

    def names_service(self, service: str) -> bool:
        return not self.negated and (self.wildcard or service in self.services)


def _principal_set(element: Any, negated: bool,
                   principal_exists: Callable[[str], bool] | None) -> PrincipalSet:
    wildcard = False
    arns: set[str] = set()
    unique_ids: set[str] = set()
    accounts: set[str] = set()
    services: set[str] = set()
    if element == "*":
        wildcard = True
    elif isinstance(element, dict) and element:
        for kind, raw in element.items():
            values = raw if isinstance(raw, list) else [raw]
            if not values or not all(isinstance(v, str) and v for v in values):
                raise _malformed(INVALID_PRINCIPALS)
            if kind == "AWS":
                for value in values:
                    value = value.strip()
                    if value == "*":
                        wildcard = True
                    elif _ACCOUNT_ID.match(value):
                        accounts.add(value)
                    elif "*" in value or "?" in value:
                        raise _malformed(INVALID_PRINCIPALS)
                    elif root := _ROOT_ARN.match(value):
                        accounts.add(root.group(1))
                    elif (_IAM_ENTITY.match(value) or _SESSION.match(value)
                          or _FEDERATED.match(value)):
                        if principal_exists is not None and not principal_exists(value):
                            raise _malformed(INVALID_PRINCIPALS)
                        arns.add(value)
                    elif _UNIQUE_ID.match(value):
                        if principal_exists is not None and not principal_exists(value):
                            raise _malformed(INVALID_PRINCIPALS)
                        unique_ids.add(value)
                    else:
                        raise _malformed(INVALID_PRINCIPALS)
            elif kind == "Service":
                for value in values:
                    if not _SERVICE.match(value.strip()):
                        raise _malformed(INVALID_PRINCIPALS)
                    services.add(value.strip())
            else:
                raise _malformed(INVALID_PRINCIPALS)
    else:
        raise _malformed(INVALID_PRINCIPALS)
    return PrincipalSet(wildcard, frozenset(arns), frozenset(unique_ids), frozenset(accounts),
                        frozenset(services), negated)


# -- actions and resources --------------------------------------------------------------------------


class ActionMatcher:
    """Action/NotAction: exact names in a set, wildcard names in one regex; case-insensitive."""

    __slots__ = ("everything", "exact", "regex", "negated")

    def __init__(self, patterns: list[str], negated: bool) -> None:
        self.negated = negated
        self.everything = "*" in patterns
        self.exact = frozenset(p.lower() for p in patterns if "*" not in p and "?" not in p)
        wild = [wildcard_regex(p.lower()) for p in patterns if p != "*" and ("*" in p or "?" in p)]
        self.regex = (
            re.compile("|".join(f"(?:{w})" for w in wild), re.IGNORECASE | re.DOTALL)
            if wild else None
        )

    def __call__(self, action_lower: str) -> bool:
        hit = (
            self.everything
            or action_lower in self.exact
            or (self.regex is not None and self.regex.fullmatch(action_lower) is not None)
        )
        return hit != self.negated


def _actions(element: Any) -> list[str]:
    values = element if isinstance(element, list) else [element]
    if not values:
        raise _malformed("Policy statement has an invalid action: [].")
    out = []
    for value in values:
        if not isinstance(value, str) or not (value == "*" or _ACTION.match(value)):
            raise _malformed(f"Policy statement has an invalid action: {value}.")
        out.append(value)
    return out


class ResourceMatcher:
    """Resource/NotResource: ``*``, static ARN patterns (one regex), and patterns with policy
    variables (resolved from the request context)."""

    __slots__ = ("everything", "regex", "templates", "negated", "uses_context", "always")

    def __init__(self, patterns: list[str], negated: bool, variables: bool) -> None:
        self.negated = negated
        self.everything = "*" in patterns
        static: list[str] = []
        templates = []
        for pattern in patterns:
            if pattern == "*":
                continue
            template = parse_template(pattern, variables)
            if is_static(template):
                static.append(like_pattern(template, None).pattern)  # type: ignore[union-attr]
            else:
                templates.append(template)
        self.regex = (
            re.compile("|".join(f"(?:{s})" for s in static), re.DOTALL) if static else None
        )
        self.templates = tuple(templates)
        #: the answer depends on the request context (policy variables)
        self.uses_context = bool(self.templates) and not self.everything
        #: ``"*"``: every resource (the usual key policy statement)
        self.always = self.everything and not negated

    def __call__(self, resource: str, context: Context) -> bool:
        hit = self.everything or (
            self.regex is not None and self.regex.fullmatch(resource) is not None
        )
        if not hit:
            for template in self.templates:
                pattern = like_pattern(template, context)
                if pattern is not None and pattern.fullmatch(resource):
                    hit = True
                    break
        return hit != self.negated


def _resources(element: Any) -> list[str]:
    values = element if isinstance(element, list) else [element]
    if not values:
        raise _malformed("Policy statement has an invalid resource: [].")
    for value in values:
        if not isinstance(value, str) or not (
            value == "*" or (value.startswith("arn:") and value.count(":") >= 5)
        ):
            raise _malformed(f"Policy statement has an invalid resource: {value}.")
    return list(values)


# -- statements and policies ------------------------------------------------------------------------


class Statement:
    """One compiled statement."""

    __slots__ = ("sid", "allow", "principals", "actions", "resources", "condition", "index",
                 "context_dependent")

    def __init__(self, sid: str, allow: bool, principals: PrincipalSet | None,
                 actions: ActionMatcher, resources: ResourceMatcher | None,
                 condition: Condition | None, index: int) -> None:
        self.sid = sid
        self.allow = allow
        self.principals = principals  # None in identity policies
        self.actions = actions
        self.resources = resources  # None: a key policy statement without Resource (no effect)
        self.condition = condition
        self.index = index
        #: the statement's answer may depend on the request context (Condition or variables)
        self.context_dependent = condition is not None or (
            resources is not None and resources.uses_context
        )

    def holds(self, resource: str, context: Context) -> int:
        """Resource and Condition against a request: bit 1 set when they hold, bit 2 when the
        request context was consulted (a Condition, or a Resource with policy variables)."""
        resources = self.resources
        if resources is None:  # a key policy statement without Resource has no effect
            return 0
        used = 2 if resources.uses_context else 0
        if not resources.always and not resources(resource, context):
            return used
        condition = self.condition
        if condition is None:
            return 1 | used
        return 3 if condition.evaluate(context) else 2

    def __repr__(self) -> str:
        effect = "Allow" if self.allow else "Deny"
        return f"Statement({self.index}, {effect}, sid={self.sid!r})"


class Policy:
    """A parsed, validated and compiled key policy or identity policy."""

    __slots__ = ("text", "kind", "version", "id", "statements", "_by_action")

    def __init__(self, text: str | None, kind: str, version: str | None, policy_id: str | None,
                 statements: tuple[Statement, ...]) -> None:
        self.text = text
        self.kind = kind
        self.version = version
        self.id = policy_id
        self.statements = statements
        self._by_action: dict[str, tuple[tuple[Statement, ...], tuple[Statement, ...]]] = {}

    def __repr__(self) -> str:
        return f"Policy(kind={self.kind!r}, id={self.id!r}, statements={len(self.statements)})"

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, *, principal_exists: Callable[[str], bool] | None = None,
              kind: str = KEY) -> Policy:
        """Parse and validate a policy document (MalformedPolicyDocumentException,
        LimitExceededException for a key policy over 32768 bytes)."""
        if kind not in (KEY, IDENTITY):
            raise ValueError(f"kind must be {KEY!r} or {IDENTITY!r}")
        if not isinstance(text, str) or not text.strip():
            raise _malformed(LOCKOUT)
        if kind == KEY:
            if len(text.encode("utf-8")) > KEY_POLICY_MAX_BYTES:
                raise LimitExceededException(TOO_LARGE)
            bad = _KEY_POLICY_CHARACTERS.search(text)
            if bad:
                raise _malformed(
                    f"The key policy contains a character that is not allowed: "
                    f"U+{ord(bad.group()):04X}."
                )
        try:
            document = json.loads(text, object_pairs_hook=_no_duplicates,
                                  parse_constant=_no_constant)
        except _Duplicate as duplicate:
            raise _malformed(
                f"The policy document has a duplicate element: {duplicate.args[0]}."
            ) from None
        except (ValueError, RecursionError):  # (nested deeper than Python's stack)
            raise _malformed("The policy document is not valid JSON.") from None
        try:
            return cls.from_document(document, principal_exists=principal_exists, kind=kind,
                                     text=text)
        except RecursionError:
            raise _malformed("The policy document is not valid JSON.") from None

    @classmethod
    def from_document(cls, document: Any, *,
                      principal_exists: Callable[[str], bool] | None = None,
                      kind: str = IDENTITY, text: str | None = None) -> Policy:
        """Validate and compile an already-decoded JSON document (an identity policy from the
        identities file, for instance)."""
        if kind not in (KEY, IDENTITY):
            raise ValueError(f"kind must be {KEY!r} or {IDENTITY!r}")
        if not isinstance(document, dict):
            raise _malformed("The policy document must be a JSON object.")
        for name in document:
            if name not in _TOP_LEVEL:
                raise _malformed(f"The policy document has an unsupported element: {name}.")
        version = document.get("Version")
        if version is not None and version not in (VERSION_2012, VERSION_2008):
            raise _malformed(f"The policy document has an unsupported Version: {version}.")
        policy_id = document.get("Id")
        if policy_id is not None and not isinstance(policy_id, str):
            raise _malformed("The policy Id must be a string.")
        raw = document.get("Statement")
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise _malformed("Policy contains no statements.")
        variables = version == VERSION_2012
        statements: list[Statement] = []
        sids: set[str] = set()
        for index, element in enumerate(raw):
            statement = _statement(element, index, kind, variables, principal_exists)
            if statement.sid:
                if statement.sid in sids:
                    raise _malformed(f"Policy contains duplicate statement ids: {statement.sid}.")
                sids.add(statement.sid)
            statements.append(statement)
        return cls(text, kind, version, policy_id, tuple(statements))

    # -- evaluation support ----------------------------------------------------------------------

    def applicable(self, action: str) -> tuple[tuple[Statement, ...], tuple[Statement, ...]]:
        """The (Deny, Allow) statements whose Action element covers ``action``, cached per
        action name: after the first request for an action this is one dict lookup."""
        hit = self._by_action.get(action)
        if hit is None:
            lowered = action.lower()
            denies = tuple(s for s in self.statements if not s.allow and s.actions(lowered))
            allows = tuple(s for s in self.statements if s.allow and s.actions(lowered))
            hit = (denies, allows)
            if len(self._by_action) < _ACTION_CACHE_LIMIT:
                self._by_action[action] = hit
        return hit


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _Duplicate(name)
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _statement(element: Any, index: int, kind: str, variables: bool,
               principal_exists: Callable[[str], bool] | None) -> Statement:
    if not isinstance(element, dict):
        raise _malformed("Policy statement must be a JSON object.")
    for name in element:
        if name not in _STATEMENT:
            raise _malformed(f"Policy statement has an unsupported element: {name}.")
    sid = element.get("Sid", "")
    if not isinstance(sid, str):
        raise _malformed("Policy statement Sid must be a string.")
    effect = element.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise _malformed("Policy statement has an invalid or missing Effect.")

    has_action, has_not_action = "Action" in element, "NotAction" in element
    if not has_action and not has_not_action:
        raise _malformed("Policy statement is missing an Action.")
    if has_action and has_not_action:
        raise _malformed("Policy statement must have either Action or NotAction, not both.")
    actions = ActionMatcher(
        _actions(element["Action"] if has_action else element["NotAction"]), has_not_action
    )

    principals: PrincipalSet | None = None
    has_principal, has_not_principal = "Principal" in element, "NotPrincipal" in element
    if kind == KEY:
        if has_principal == has_not_principal:
            raise _malformed(INVALID_PRINCIPALS)
        principals = _principal_set(
            element["Principal"] if has_principal else element["NotPrincipal"],
            has_not_principal, principal_exists,
        )
    elif has_principal or has_not_principal:
        raise _malformed("Identity policies cannot have a Principal or NotPrincipal element.")

    has_resource, has_not_resource = "Resource" in element, "NotResource" in element
    if has_resource and has_not_resource:
        raise _malformed("Policy statement must have either Resource or NotResource, not both.")
    resources: ResourceMatcher | None = None
    if has_resource or has_not_resource:
        resources = ResourceMatcher(
            _resources(element["Resource"] if has_resource else element["NotResource"]),
            has_not_resource, variables,
        )
    elif kind == IDENTITY:
        raise _malformed("Policy statement is missing a Resource.")

    condition = None
    if "Condition" in element:
        condition = compile_condition(
            element["Condition"], variables=variables, overly_permissive_check=kind == KEY
        )
    return Statement(sid, effect == "Allow", principals, actions, resources, condition, index)


def identity_policies(principal: Principal) -> tuple[Policy, ...]:
    """Compile the identity policies attached to a principal (its ``policies`` documents, in
    name order). Compile once per loaded directory and reuse: never per request."""
    return tuple(
        Policy.from_document(document, kind=IDENTITY)
        for _, document in sorted(principal.policies.items())
    )

