"""Who is calling: SigV4 against the identities file (``--auth sigv4``), or any credentials as
their account's root (``--auth open``). Either way the caller is a principal, and every
operation is authorized (application.authorization)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Container, Sequence
from pathlib import Path

from application.authorization import Caller
from domain.errors import KmsError
from domain.principals import AccessKey, Directory, Principal, PrincipalKind, unique_id_for
from infrastructure.identities import IdentitiesFile, directory_changes, ensure_identities_file
from infrastructure.sigv4 import (
    SigV4Verifier,
    credential_fields,
    keep_no_signature,
    open_mode_identity,
)

log = logging.getLogger("keyledger.auth")

AUTH_MODES = ("sigv4", "open")
_SESSION_ARN = re.compile(r"arn:aws:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/[\w+=,.@-]+")


class Authenticator:
    """Turns a request's headers and body into a :class:`Caller` and the request's Region."""

    def __init__(self, mode: str, identities: Path | None, default_account: str,
                 default_region: str, regions: Container[str],
                 on_change: Callable[[str, list[dict]], None] | None = None) -> None:
        if mode not in AUTH_MODES:
            raise ValueError(f"--auth must be one of {', '.join(AUTH_MODES)}, not {mode!r}")
        self.mode = mode
        self.default_account = default_account
        self.default_region = default_region
        self.regions = regions
        self.on_change = on_change
        self._callers: dict[str, Caller] = {}
        self._callers_of: Directory | None = None
        self.identities: IdentitiesFile | None = None
        self.verifier: SigV4Verifier | None = None
        if mode == "sigv4":
            assert identities is not None
            ensure_identities_file(identities, default_account)  # `keyledger serve` made it already
            self.identities = IdentitiesFile(identities, on_change=self._changed)
            self.verifier = SigV4Verifier(lambda: self.identities.directory, regions)
            # the deployment's other nodes: their own keys, which authenticate nothing else
            self.node_verifier = SigV4Verifier(
                lambda: _NodeKeys(self.identities.directory.node_keys), regions)

    def start(self) -> None:
        """Record the loaded identities in the ledger (once across processes) and watch the file."""
        if self.identities is not None:
            if self.on_change is not None:
                directory = self.identities.directory
                self.on_change(directory_digest(directory), directory_changes(Directory(), directory))
            self.identities.start()

    def stop(self) -> None:
        if self.identities is not None:
            self.identities.stop()

    @property
    def directory(self) -> Directory | None:
        return self.identities.directory if self.identities is not None else None

    def _changed(self, old: Directory, new: Directory) -> None:
        changes = directory_changes(old, new)
        log.warning("identities reloaded: %d change(s)", len(changes))
        if self.on_change is not None and changes:
            self.on_change(directory_digest(new), changes)

    def claimed(self, headers: Sequence[tuple[bytes, bytes]],
                is_open: Callable[[str], bool]) -> tuple[str, str, str]:
        """(access key id, Region, account) a request that failed authentication claimed, for
        its record: its credential scope's Region (awsRegion is the Region the request was
        made to) if that Region's store is open here (``is_open``: an unauthenticated request
        opens none), else the default Region; the account of the access key it named if the
        identities file has it (its owner sees the attempts on it, no other account does),
        else the default account."""
        header = next((value for name, value in headers if name == b"authorization"), b"")
        access_key_id, region = credential_fields(header)
        directory = self.directory
        known = directory.access_key(access_key_id) if directory is not None else None
        account = known.principal.account if known is not None else self.default_account
        return (access_key_id[:128], region if is_open(region) else self.default_region,
                account)

    def authenticate(self, method: str, path: str, query_string: bytes,
                     headers: Sequence[tuple[bytes, bytes]], body: bytes) -> tuple[Caller, str]:
        """(the caller, the request's Region) or the authentication error AWS answers."""
        try:
            if self.verifier is None:
                principal, region, access_key_id = open_mode_identity(
                    headers, self.default_account, self.default_region, self.regions
                )
                return self._caller(principal.account, principal, access_key_id), region
            access_key, region = self.verifier.verify(method, path, query_string, headers, body)
        except KmsError as error:
            keep_no_signature(error)
            raise
        return self._caller_of(access_key), region

    def authenticate_node(self, method: str, path: str, query_string: bytes,
                          headers: Sequence[tuple[bytes, bytes]], body: bytes = b"") -> str:
        """The Region a request of another node of the deployment is signed for, or the
        authentication error AWS answers (open mode: every request passes, as in the rest of
        the API)."""
        if self.verifier is None:
            _, region, _ = open_mode_identity(headers, self.default_account, self.default_region,
                                              self.regions)
            return region
        _, region = self.node_verifier.verify(method, path, query_string, headers, body)
        return region

    def _caller_of(self, access_key: AccessKey) -> Caller:
        directory = self.identities.directory
        if directory is not self._callers_of:  # a reloaded file: callers start afresh
            self._callers = {}
            self._callers_of = directory
        caller = self._callers.get(access_key.access_key_id)
        if caller is None or caller.principal is not access_key.principal:
            caller = self._callers[access_key.access_key_id] = Caller.of(
                access_key.principal, access_key.access_key_id
            )
        return caller

    def _caller(self, account: str, principal: Principal, access_key_id: str) -> Caller:
        caller = self._callers.get(account)
        if caller is None:
            if len(self._callers) > 10_000:
                self._callers.clear()
            caller = self._callers[account] = Caller.of(principal)
        if access_key_id and caller.access_key_id != access_key_id:
            # the access key id is recorded in the audit trail: one Caller per key id would
            # split the decision cache, so share the root's compiled state under a new name
            return Caller(caller.principal, access_key_id, caller.identity_policies, caller.allowed)
        return caller

    def caller_by_access_key(self, access_key_id: str, account: str) -> Caller | None:
        """The caller another node of the deployment authenticated (it names the access key
        the request was signed with; the nodes share the identities file). Open mode: the
        account's root."""
        if self.identities is None:
            return self._caller(account, Principal.root(account), access_key_id)
        key = self.identities.directory.access_key(access_key_id)
        return None if key is None else self._caller_of(key)

    def principal_exists(self, arn: str) -> bool:
        """sigv4 mode: a principal a policy or grant names exists in the identities file (a
        role session exists while its role does)."""
        directory = self.directory
        if directory is None:
            return True
        if arn in directory.principals:
            return True
        session = _SESSION_ARN.fullmatch(arn)
        if session is None:  # a user's or a role's unique id (AIDA…, AROA…), as IAM stores it
            return arn[:4] in ("AIDA", "AROA") and any(
                p.kind is not PrincipalKind.ROOT
                and (p.unique_id or unique_id_for(p.kind, name)) == arn
                for name, p in directory.principals.items())
        account, role = session.groups()
        return any(
            p.kind is PrincipalKind.ASSUMED_ROLE and p.account == account and p.name == role
            for p in directory.principals.values()
        )


def directory_digest(directory: Directory) -> str:
    """A digest of everything a directory says (secrets only as their SHA-256 inside it)."""
    described = directory_changes(Directory(), directory)
    keys = sorted(
        (k.access_key_id, hashlib.sha256(f"{k.secret_access_key}\0{k.session_token}".encode()).hexdigest())
        for k in directory.access_keys.values()
    )
    return hashlib.sha256(json.dumps([described, keys], sort_keys=True, default=str).encode()).hexdigest()


class _NodeKeys:
    """The node keys as the SigV4 verifier looks keys up."""

    def __init__(self, node_keys) -> None:
        self.access_keys = node_keys
