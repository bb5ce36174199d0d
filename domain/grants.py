"""Grants: who else may use a KMS key, for which operations, under which constraints.

Pure values and rules; the :class:`~domain.key.KmsKey` aggregate records grants with its
``GrantCreated`` / ``GrantRetired`` / ``GrantRevoked`` events and keeps them in
``KmsKey.grants``. Authorization (key policy, IAM policies, then grants) is the
application's: it asks :meth:`Grant.permits` here.

Where AWS does not document a behaviour or an error text, the choice made is marked
*keyledger's choice* (docs/compatibility.md lists them).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.key_specs import Family, KeyUsage, spec_info
from domain.messages import Grants, Unsupported, Validation
from domain.principals import Principal, root_arn

MAX_GRANTS_PER_KEY = 50_000
MAX_GRANT_TOKENS = 10  # GrantTokenList: 0..10 items
MAX_GRANT_TOKEN_LENGTH = 8192  # GrantTokenType: 1..8192 characters
MAX_CONSTRAINT_PAIRS = 8  # per constraint (EncryptionContextEquals / EncryptionContextSubset)
MAX_CONSTRAINT_VALUE_LENGTH = 384

#: botocore's GrantOperation enum, in the model's order
GRANT_OPERATIONS: tuple[str, ...] = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
    "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
    "DeriveSharedSecret", "Encapsulate", "Decapsulate",
)
_KNOWN_OPERATIONS = frozenset(GRANT_OPERATIONS)

#: the operations that take an EncryptionContext: the only ones a constraint applies to
#: (ReEncrypt is authorized as ReEncryptFrom on its source key and ReEncryptTo on its
#: destination key: the caller asks with those names)
CONTEXT_OPERATIONS = frozenset({
    "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext",
})

#: what a grant may allow on any key
_ANY_KEY = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
#: symmetric encryption keys: the symmetric cryptographic operations (data key pairs are
#: encrypted under a symmetric key); never Sign, Verify or GetPublicKey
_SYMMETRIC = _ANY_KEY | CONTEXT_OPERATIONS
#: other keys, by key usage: no data keys or data key pairs for asymmetric keys
_BY_USAGE: dict[KeyUsage, frozenset[str]] = {
    KeyUsage.ENCRYPT_DECRYPT: frozenset(
        {"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"}
    ),
    KeyUsage.SIGN_VERIFY: frozenset({"Sign", "Verify", "GetPublicKey"}),
    KeyUsage.GENERATE_VERIFY_MAC: frozenset({"GenerateMac", "VerifyMac"}),
    KeyUsage.KEY_AGREEMENT: frozenset({"DeriveSharedSecret", "GetPublicKey"}),
    KeyUsage.ENCAPSULATE_DECAPSULATE: frozenset({"Encapsulate", "Decapsulate", "GetPublicKey"}),
}

_GRANT_ID = re.compile(r"[0-9a-f]{64}")
_ACCOUNT = re.compile(r"[0-9]{12}")
# keyledger's key ids: a UUID (single-Region) or mrk-<32 hex> (multi-Region)
_KEY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


# -- constraints ---------------------------------------------------------------------------------


def _fold(context: Mapping[str, str]) -> Counter[tuple[str, str]]:
    """A context's pairs as a grant constraint compares them: keys case-insensitive, values
    case-sensitive. A multiset, so two keys differing only in case stay two pairs."""
    return Counter((key.lower(), value) for key, value in context.items())


def _contains(outer: Mapping[str, str], inner: Mapping[str, str]) -> bool:
    return set(_fold(inner)) <= set(_fold(outer))


@dataclass(frozen=True)
class GrantConstraints:
    """A grant's encryption context constraints (either or both may be set).

    Keys compare case-insensitively, values case-sensitively (the MODEL's GrantConstraints
    doc). The maps are copied on construction; do not mutate them.
    """

    encryption_context_equals: Mapping[str, str] | None = None
    encryption_context_subset: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        for name in ("encryption_context_equals", "encryption_context_subset"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, dict(value))

    def __copy__(self) -> GrantConstraints:
        return self  # immutable: copies (LiveKeys deep-copies keys per event) share it

    def __deepcopy__(self, memo: dict[int, Any]) -> GrantConstraints:
        return self

    def __hash__(self) -> int:
        return hash(tuple(
            None if m is None else frozenset(m.items())
            for m in (self.encryption_context_equals, self.encryption_context_subset)
        ))

    @classmethod
    def from_request(cls, constraints: Mapping[str, Any] | None) -> GrantConstraints | None:
        """CreateGrant's ``Constraints`` (validated by shape): None when it sets no
        encryption context constraint. SourceArn is not supported (keyledger has no AWS
        service callers to check it against)."""
        if not constraints:
            return None
        if constraints.get("SourceArn") is not None:
            raise Unsupported.SOURCE_ARN()
        # An empty map is treated as not specified (IAM Access Analyzer's KmsGrantConstraints):
        # Terraform's aws_kms_grant sends the constraint it does not use as {}.
        equals = constraints.get("EncryptionContextEquals") or None
        subset = constraints.get("EncryptionContextSubset") or None
        if equals is None and subset is None:
            return None
        return cls(equals, subset)

    def _members(self) -> list[tuple[str, Mapping[str, str]]]:
        return [
            (name, value)
            for name, value in (("EncryptionContextEquals", self.encryption_context_equals),
                                ("EncryptionContextSubset", self.encryption_context_subset))
            if value is not None
        ]

    def check(self) -> None:
        """AWS's documented limits: at most 8 pairs per constraint, values ≤ 384 characters
        (not model limits: keyledger's own messages)."""
        for name, context in self._members():
            if len(context) > MAX_CONSTRAINT_PAIRS:
                raise Grants.CONSTRAINT_PAIRS(name=name, limit=MAX_CONSTRAINT_PAIRS)
            if any(len(value) > MAX_CONSTRAINT_VALUE_LENGTH for value in context.values()):
                raise Grants.CONSTRAINT_VALUE(name=name, limit=MAX_CONSTRAINT_VALUE_LENGTH)

    def matches(self, context: Mapping[str, str] | None) -> bool:
        """Whether a request's encryption context (None: no context) satisfies the
        constraints: Equals — the same pairs, no more; Subset — at least these pairs."""
        request = _fold(context or {})
        equals, subset = self.encryption_context_equals, self.encryption_context_subset
        if equals is not None and request != _fold(equals):
            return False
        return subset is None or set(_fold(subset)) <= set(request)

    def at_least_as_strict_as(self, parent: GrantConstraints | None) -> bool:
        """A child grant's constraints are equally strict or stricter than its parent's: a
        Subset may gain pairs or become an Equals that contains it; an Equals must stay the
        same Equals (it cannot become a Subset)."""
        if parent is None:
            return True
        mine_equals, mine_subset = self.encryption_context_equals, self.encryption_context_subset
        if parent.encryption_context_equals is not None and (
            mine_equals is None or _fold(mine_equals) != _fold(parent.encryption_context_equals)
        ):
            return False
        required = parent.encryption_context_subset
        if required is not None and not (
            (mine_equals is not None and _contains(mine_equals, required))
            or (mine_subset is not None and _contains(mine_subset, required))
        ):
            return False
        return True

    def to_wire(self) -> dict[str, dict[str, str]]:
        """The GrantConstraints shape: only the members that are set."""
        return {name: dict(context) for name, context in self._members()}


# -- grants --------------------------------------------------------------------------------------


def _principal_matches(named: str, principal: Principal) -> bool:
    """A grant's grantee or retiring principal names the caller: its own ARN, its role's
    ARN for a role session (a role covers all its sessions), or — named as
    ``arn:aws:iam::ACCT:root`` or the bare account id — the account's root user."""
    if _ACCOUNT.fullmatch(named):
        named = root_arn(named)
    return named == principal.arn or named == principal.principal_arn


@dataclass(frozen=True)
class Grant:
    """One grant on one KMS key."""

    grant_id: str  # 64 lowercase hex digits
    key_id: str
    name: str  # "" when the request gave none (as AWS's ListGrants examples show)
    grantee_principal: str
    retiring_principal: str | None
    operations: tuple[str, ...]  # GrantOperation names, in request order
    constraints: GrantConstraints | None
    issuing_account: str  # 12 digits: the account in which the grant was created
    creation_date: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))

    def __copy__(self) -> Grant:
        return self  # immutable: a deep copy of a key with 50,000 grants stays cheap

    def __deepcopy__(self, memo: dict[int, Any]) -> Grant:
        return self

    # -- what the grant allows ------------------------------------------------------------------

    def allows(self, operation: str, encryption_context: Mapping[str, str] | None = None) -> bool:
        """The grant lists ``operation`` and, for an operation that takes an encryption
        context, its constraints hold (they never apply to DescribeKey, CreateGrant, …)."""
        if operation not in self.operations:
            return False
        if self.constraints is None or operation not in CONTEXT_OPERATIONS:
            return True
        return self.constraints.matches(encryption_context)

    def grantee_is(self, principal: Principal) -> bool:
        """The grantee names the caller: its ARN, its role (for a session), or its account
        when the caller is that account's root user."""
        return _principal_matches(self.grantee_principal, principal)

    def delegates_to(self, principal: Principal) -> bool:
        """The grantee is the caller's account and the caller is one of its IAM users or
        role sessions (not the root user)."""
        return not principal.is_root and _principal_matches(
            self.grantee_principal, Principal.root(principal.account)
        )

    def permits(
        self, principal: Principal, operation: str,
        encryption_context: Mapping[str, str] | None = None,
    ) -> bool:
        """The grant alone allows ``principal`` to call ``operation`` with this context.

        An account grantee (``arn:aws:iam::ACCT:root``) is treated like an account principal
        in a key policy (keyledger's choice; AWS does not say): it covers the account's root
        user here, and its IAM users and role sessions only through delegation — see
        :meth:`permits_by_delegation`.
        """
        return self.grantee_is(principal) and self.allows(operation, encryption_context)

    def permits_by_delegation(
        self, principal: Principal, operation: str,
        encryption_context: Mapping[str, str] | None = None,
    ) -> bool:
        """The grant's grantee is the caller's account: the caller (an IAM user or role
        session of it) may call ``operation`` if an identity-based policy in its account
        also allows the action on the key (the authorizer checks that part)."""
        return self.delegates_to(principal) and self.allows(operation, encryption_context)

    def may_retire(self, principal: Principal) -> bool:
        """RetireGrant as the grant itself authorizes it: the retiring principal, the
        grantee when the grant allows RetireGrant, or the root user of the account in which
        the grant was created. (Delegation to other principals of that account by an IAM
        policy is the authorizer's.)"""
        if self.retiring_principal and _principal_matches(self.retiring_principal, principal):
            return True
        if "RetireGrant" in self.operations and self.grantee_is(principal):
            return True
        return principal.is_root and principal.account == self.issuing_account

    def allows_child(
        self, operations: Iterable[str], constraints: GrantConstraints | None
    ) -> bool:
        """A grant created with this grant's CreateGrant permission may allow only a subset
        of its operations, with equally strict or stricter constraints."""
        if "CreateGrant" not in self.operations or not set(operations) <= set(self.operations):
            return False
        if self.constraints is None:
            return True
        return constraints is not None and constraints.at_least_as_strict_as(self.constraints)

    def same_request(
        self, *, grantee_principal: str, retiring_principal: str | None,
        operations: Iterable[str], constraints: GrantConstraints | None, name: str,
        issuing_account: str,
    ) -> bool:
        """A named CreateGrant retry "with identical parameters" (operations compared as a
        set; constraints exactly)."""
        return (
            self.name == name
            and self.grantee_principal == grantee_principal
            and self.retiring_principal == (retiring_principal or None)
            and set(self.operations) == set(operations)
            and self.constraints == constraints
            and self.issuing_account == issuing_account
        )

    def to_list_entry(self, key_arn: str) -> dict[str, Any]:
        """The GrantListEntry shape (ListGrants, ListRetirableGrants)."""
        entry: dict[str, Any] = {
            "KeyId": key_arn,
            "GrantId": self.grant_id,
            "Name": self.name,
            "CreationDate": self.creation_date,
            "GranteePrincipal": self.grantee_principal,
        }
        if self.retiring_principal:
            entry["RetiringPrincipal"] = self.retiring_principal
        entry["IssuingAccount"] = root_arn(self.issuing_account)
        entry["Operations"] = list(self.operations)
        if self.constraints is not None:
            entry["Constraints"] = self.constraints.to_wire()
        return entry


# -- CreateGrant's rules -------------------------------------------------------------------------


def grant_operations_for(key_spec: str, key_usage: str) -> frozenset[str]:
    """The operations a grant on a key of this spec and usage may allow."""
    if spec_info(key_spec).family is Family.SYMMETRIC:
        return _SYMMETRIC
    return _ANY_KEY | _BY_USAGE[KeyUsage(key_usage)]


def supports_encryption_context(key_spec: str) -> bool:
    """Encryption context constraints: symmetric encryption keys only (asymmetric and HMAC
    keys take no encryption context)."""
    return spec_info(key_spec).family is Family.SYMMETRIC


def check_grant_operations(
    key_spec: str, key_usage: str, operations: Iterable[str]
) -> tuple[str, ...]:
    """CreateGrant's Operations for a key: at least one, each a grant operation the key
    supports (ValidationException otherwise). Returns them in request order, repeats
    dropped."""
    named = tuple(dict.fromkeys(operations))
    if not named:
        raise Grants.NO_OPERATIONS()
    unknown = [op for op in named if op not in _KNOWN_OPERATIONS]
    if unknown:
        raise Grants.UNKNOWN_OPERATION(operation=unknown[0])
    allowed = grant_operations_for(key_spec, key_usage)
    refused = [op for op in named if op not in allowed]
    if refused:
        noun = "operation" if len(refused) == 1 else "operations"
        verb = "is" if len(refused) == 1 else "are"
        raise Grants.OPERATIONS_REFUSED(noun=noun, operations=", ".join(refused), verb=verb,
                                        key_spec=key_spec, key_usage=key_usage)
    return named


def check_grant_constraints(
    key_spec: str, key_usage: str, constraints: GrantConstraints | None
) -> None:
    """Encryption context constraints: within AWS's limits, and only on symmetric
    encryption keys (ValidationException otherwise)."""
    if constraints is None:
        return
    if not supports_encryption_context(key_spec):
        raise Grants.CONSTRAINTS_REFUSED(key_spec=key_spec, key_usage=key_usage)
    constraints.check()


def check_child_grant(
    parent: Grant, operations: Iterable[str], constraints: GrantConstraints | None
) -> None:
    """A grantee whose CreateGrant permission comes from ``parent`` may create only grants
    with a subset of its operations and equally strict or stricter constraints
    (AccessDeniedException otherwise: the grant does not authorize the request)."""
    if not parent.allows_child(operations, constraints):
        raise Grants.CHILD_GRANT(grant_id=parent.grant_id, operations=", ".join(parent.operations))


def check_grantee(grantee_principal: str | None) -> str:
    """GranteePrincipal is required (the model made it optional only for
    GranteeServicePrincipal, which keyledger does not support)."""
    if not grantee_principal:
        raise Validation.MISSING(member="granteePrincipal")
    return grantee_principal


# -- identifiers and tokens ----------------------------------------------------------------------


def new_grant_id(random_bytes: bytes) -> str:
    """A grant id: 64 hex digits ("a 64 character unique identifier") from 32 random bytes."""
    if len(random_bytes) != 32:
        raise ValueError("a grant id is made of exactly 32 random bytes")
    return random_bytes.hex()


def is_grant_id(grant_id: str) -> bool:
    return _GRANT_ID.fullmatch(grant_id) is not None


def check_grant_id(grant_id: str) -> None:
    if not is_grant_id(grant_id):
        raise Grants.INVALID_GRANT_ID(grant_id=grant_id)


_TOKEN_VERSION = 1
_NONCE_BYTES = 16


def new_grant_token(key_id: str, grant_id: str, nonce: bytes | None = None) -> str:
    """A grant token for the grant: unique per call (16 random bytes), base64url.

    Layout: version (1 byte), nonce (16), grant id (32 bytes), key id (ASCII). The token
    only names the grant; it grants nothing by itself (the grant must still exist and name
    the caller), so it is not signed.
    """
    if not is_grant_id(grant_id) or not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"not a key id and grant id: {key_id!r}, {grant_id!r}")
    nonce = os.urandom(_NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != _NONCE_BYTES:
        raise ValueError(f"a grant token's nonce is {_NONCE_BYTES} bytes")
    raw = bytes([_TOKEN_VERSION]) + nonce + bytes.fromhex(grant_id) + key_id.encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_grant_token(token: str) -> tuple[str, str]:
    """(key id, grant id) a token names; InvalidGrantTokenException if it is not one of
    keyledger's tokens."""
    if (
        not isinstance(token, str)
        or not 1 <= len(token) <= MAX_GRANT_TOKEN_LENGTH
        or not _BASE64URL.fullmatch(token)
    ):
        raise Grants.INVALID_GRANT_TOKEN()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise Grants.INVALID_GRANT_TOKEN() from None
    head = 1 + _NONCE_BYTES + 32
    if len(raw) <= head or raw[0] != _TOKEN_VERSION:
        raise Grants.INVALID_GRANT_TOKEN()
    try:
        key_id = raw[head:].decode("ascii")
    except UnicodeDecodeError:
        raise Grants.INVALID_GRANT_TOKEN() from None
    if not _KEY_ID.fullmatch(key_id):
        raise Grants.INVALID_GRANT_TOKEN()
    return key_id, raw[1 + _NONCE_BYTES:head].hex()


def parse_grant_tokens(tokens: Iterable[str] | None) -> list[tuple[str, str]]:
    """A request's GrantTokens (at most 10): the (key id, grant id) each names."""
    tokens = list(tokens or ())
    if len(tokens) > MAX_GRANT_TOKENS:
        raise Validation.MODEL(
            count=1, noun="error",
            details=f"Value '[{', '.join(tokens)}]' at 'grantTokens' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_GRANT_TOKENS}",
        )
    return [parse_grant_token(token) for token in tokens]
