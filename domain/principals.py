"""Principals: who calls KMS (an account's root, an IAM user, a role session) and the
directory of access keys that authenticates them.

Pure values. The identities file that fills a :class:`Directory` is read by
``infrastructure.identities``; policies are kept here as parsed JSON documents and compiled
by :mod:`domain.policy` where they are evaluated.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PrincipalKind(StrEnum):
    """``aws:PrincipalType`` values (IAM policy-variables table)."""

    ROOT = "Account"
    USER = "User"
    ASSUMED_ROLE = "AssumedRole"
    #: another keyledger node of the deployment (the identities file's "nodes" keys): it may
    #: read this node's ledger feeds, nothing else — it never reaches KMS authorization
    NODE = "KeyledgerNode"


DEFAULT_SESSION_NAME = "keyledger"


def root_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def unique_id_for(kind: PrincipalKind, arn: str) -> str:
    """The stable unique id keyledger gives an IAM user (``AIDA…``) or role (``AROA…``): the prefix
    and 17 upper-case base32 characters of SHA-256 of the user's or role's ARN (21 characters in
    all, like AWS's)."""
    prefix = "AROA" if kind is PrincipalKind.ASSUMED_ROLE else "AIDA"
    return prefix + base64.b32encode(hashlib.sha256(arn.encode("utf-8")).digest()).decode()[:17]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``arn`` is the caller's own ARN, as AWS prints it in AccessDeniedException messages and
    CloudTrail (the *session* ARN for a role session); ``principal_arn`` is
    ``aws:PrincipalArn`` (the *role* ARN for a role session), which is also what a key policy
    or grant naming the role matches.
    """

    account: str
    kind: PrincipalKind
    name: str = ""  # user or role name ("" for root)
    path: str = "/"  # IAM path of the user or role
    session_name: str = ""  # role sessions only
    tags: Mapping[str, str] = field(default_factory=dict)
    #: identity-based policies attached to the user or role: name -> JSON document (parsed)
    policies: Mapping[str, Any] = field(default_factory=dict)
    #: a stable unique id (AIDA… for users, AROA… for roles), derived from the ARN
    unique_id: str = ""
    #: role sessions: when the session began (epoch seconds; None: not known)
    session_created: float | None = None

    @property
    def arn(self) -> str:
        if self.kind is PrincipalKind.ROOT:
            return root_arn(self.account)
        if self.kind is PrincipalKind.NODE:
            return "keyledger:node"
        if self.kind is PrincipalKind.USER:
            return f"arn:aws:iam::{self.account}:user{self.path}{self.name}"
        return f"arn:aws:sts::{self.account}:assumed-role/{self.name}/{self.session_name}"

    @property
    def principal_arn(self) -> str:
        """``aws:PrincipalArn``: the role's ARN for a role session, else the caller's ARN."""
        if self.kind is PrincipalKind.ASSUMED_ROLE:
            return f"arn:aws:iam::{self.account}:role{self.path}{self.name}"
        return self.arn

    @property
    def user_id(self) -> str:
        """``aws:userid``: the account id for root, AIDA… for a user, AROA…:session for a role."""
        if self.kind is PrincipalKind.ROOT:
            return self.account
        if self.kind is PrincipalKind.ASSUMED_ROLE:
            return f"{self.unique_id}:{self.session_name}"
        return self.unique_id

    @property
    def is_root(self) -> bool:
        return self.kind is PrincipalKind.ROOT

    @classmethod
    def root(cls, account: str) -> Principal:
        return cls(account=account, kind=PrincipalKind.ROOT)


@dataclass(frozen=True)
class AccessKey:
    """One access key pair and the principal it authenticates."""

    access_key_id: str
    secret_access_key: str
    principal: Principal
    session_token: str | None = None  # set: requests must carry it (X-Amz-Security-Token)
    #: session keys only: when the session ends (seconds since the epoch); None: never
    expiration: float | None = None

    def __repr__(self) -> str:  # never print the secret or the session token
        return (
            f"AccessKey(access_key_id={self.access_key_id!r}, principal={self.principal!r}, "
            f"session={self.session_token is not None}, expiration={self.expiration!r})"
        )


@dataclass(frozen=True)
class Directory:
    """Every principal and access key of the identities file, as loaded at one moment."""

    access_keys: Mapping[str, AccessKey] = field(default_factory=dict)
    #: IAM ARNs that exist: each account's root, users (arn:aws:iam::A:user/...), roles
    #: (arn:aws:iam::A:role/...) -> the principal (for a role: a session-less template)
    principals: Mapping[str, Principal] = field(default_factory=dict)
    accounts: frozenset[str] = frozenset()
    #: the keys other nodes of the deployment sign their feed requests with (never KMS calls)
    node_keys: Mapping[str, AccessKey] = field(default_factory=dict)

    def access_key(self, access_key_id: str) -> AccessKey | None:
        return self.access_keys.get(access_key_id)


NODE = Principal(account="", kind=PrincipalKind.NODE, name="node")
