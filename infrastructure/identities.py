"""The identities file: the accounts, IAM users, roles and access keys keyledger authenticates.

Format (JSON; every field not shown is refused, so that a misspelt name is an error, not a
silently missing key)::

    {"accounts": {
       "111122223333": {
         "root": {"access_keys": [{"access_key_id": "AKIA…", "secret_access_key": "…"}]},
         "users": {"alice": {"access_keys": [{"access_key_id": "…", "secret_access_key": "…"}],
                             "policies": {"PolicyName": {"Version": "2012-10-17", "Statement": […]}},
                             "tags": {"team": "blue"},
                             "path": "/"}},
         "roles": {"deployer": {"access_keys": [{"access_key_id": "…", "secret_access_key": "…",
                                                 "session_name": "ci", "session_token": "…",
                                                 "session_created": "2029-12-31T00:00:00Z",
                                                 "expiration": "2030-01-01T00:00:00Z"}],
                                "policies": {…}, "tags": {…}, "path": "/"}}}}}

A top-level ``"nodes": {"access_keys": [...]}`` holds the keys the nodes of one deployment sign
their requests to each other with (ledger feeds, docs/regions.md); they authenticate nothing else.

Optional: ``root``, ``users``, ``roles``, and in a user or role ``access_keys``, ``policies``,
``tags`` and ``path`` (default ``/``). A role's access key acts as a session of that role
(``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``); its ``session_name`` defaults to
``keyledger``, its ``session_token`` is optional (when set, requests must carry it) and
``expiration`` (ISO 8601, needs a ``session_token``) ends the session. ``session_created``
(ISO 8601) is when the session began, as audit records show it (CloudTrail's
``sessionContext.attributes.creationDate``; without it they show none); the keys of one
session must agree on it. Users' and roles'
unique ids (``AIDA…``/``AROA…``) are derived from their ARNs
(:func:`domain.principals.unique_id_for`).

:func:`load_directory` reads the file into a :class:`~domain.principals.Directory`;
:func:`ensure_identities_file` creates a first one; :class:`IdentitiesFile` keeps the current
directory and reloads it when the file changes or on SIGHUP; :func:`directory_changes`
describes a reload for the audit ledger without any secret.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from domain.principals import (
    DEFAULT_SESSION_NAME,
    NODE,
    AccessKey,
    Directory,
    Principal,
    PrincipalKind,
    root_arn,
    unique_id_for,
)

__all__ = [
    "IdentitiesError",
    "IdentitiesFile",
    "directory_changes",
    "ensure_identities_file",
    "generate_access_key",
    "load_directory",
    "parse_directory",
]

log = logging.getLogger(__name__)


class IdentitiesError(Exception):
    """The identities file cannot be used; the message names the problem and where it is
    (a JSON path such as ``accounts.111122223333.users.alice.access_keys[0]``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# IAM's own patterns (IAM API Reference: CreateUser, CreateRole, PutUserPolicy, TagUser,
# AssumeRole's RoleSessionName); access key ids are limited to characters that cannot break
# an Authorization header's Credential.
_ACCOUNT_ID = re.compile(r"\d{12}")
_IAM_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_PATH = re.compile(r"/|/[\x21-\x7e]{1,510}/")
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_TAG_KEY_MAX, _TAG_VALUE_MAX = 128, 256

_ACCOUNT_FIELDS = ("root", "users", "roles")
_ROOT_FIELDS = ("access_keys",)
_ENTITY_FIELDS = ("access_keys", "policies", "tags", "path")
_KEY_FIELDS = ("access_key_id", "secret_access_key")
_SESSION_FIELDS = ("session_name", "session_token", "session_created", "expiration")

_KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


# -- reading ------------------------------------------------------------------------------------


class _Object(dict):
    """A JSON object that remembers the names it saw more than once."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for name, value in pairs:
        if name in obj:
            obj.duplicates.append(name)
        obj[name] = value
    return obj


_TYPE_NAMES = {
    dict: "an object",
    _Object: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _describe(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _object(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise IdentitiesError(f"{where}: expected an object, got {_describe(value)}")
    duplicates = getattr(value, "duplicates", None)
    if duplicates:
        raise IdentitiesError(f"{where}: {json.dumps(duplicates[0])} appears more than once")
    if allowed is not None:
        for name in value:
            if name not in allowed:
                raise IdentitiesError(
                    f"{where}: unknown field {json.dumps(name)} (expected one of "
                    f"{', '.join(json.dumps(a) for a in allowed)})"
                )
    return value


def _string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str):
        raise IdentitiesError(f'{where}: "{name}" must be a string, got {_describe(value)}')
    if not value:
        raise IdentitiesError(f'{where}: "{name}" must not be empty')
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


class _Loader:
    """One pass over a parsed identities document."""

    def __init__(self) -> None:
        self.access_keys: dict[str, AccessKey] = {}
        self.key_places: dict[str, str] = {}
        self.principals: dict[str, Principal] = {}

    def load(self, document: Any) -> Directory:
        top = _object(document, "(top level)", ("accounts", "nodes"))
        if "accounts" not in top:
            raise IdentitiesError('(top level): missing "accounts"')
        accounts = _object(top["accounts"], "accounts")
        for account, body in accounts.items():
            where = _join("accounts", account)
            if not _ACCOUNT_ID.fullmatch(account):
                raise IdentitiesError(f"{where}: an account id is 12 digits")
            self.account(account, _object(body, where, _ACCOUNT_FIELDS), where)
        node_keys: dict[str, AccessKey] = {}
        if "nodes" in top:  # the keys the deployment's nodes sign their feed requests with
            nodes = _object(top["nodes"], "nodes", ("access_keys",))
            self.keys(nodes, "nodes", lambda _index, _key: NODE, session=False, into=node_keys)
        return Directory(
            access_keys=self.access_keys,
            principals=self.principals,
            accounts=frozenset(accounts),
            node_keys=node_keys,
        )

    def account(self, account: str, body: Mapping[str, Any], where: str) -> None:
        root = Principal.root(account)
        self.principals[root_arn(account)] = root
        if "root" in body:
            root_where = _join(where, "root")
            root_body = _object(body["root"], root_where, _ROOT_FIELDS)
            self.keys(root_body, root_where, lambda _index, _key: root, session=False)
        for section, kind in (("users", PrincipalKind.USER), ("roles", PrincipalKind.ASSUMED_ROLE)):
            if section not in body:
                continue
            section_where = _join(where, section)
            seen: dict[str, str] = {}  # IAM names are unique regardless of case
            for name, entity in _object(body[section], section_where).items():
                entity_where = _join(section_where, name)
                if not _IAM_NAME.fullmatch(name):
                    raise IdentitiesError(
                        f"{entity_where}: a {section[:-1]} name is 1 to 64 letters, digits and "
                        "+=,.@_- characters"
                    )
                if name.lower() in seen:
                    raise IdentitiesError(
                        f"{entity_where}: the {section[:-1]} name differs only in case from "
                        f"{json.dumps(seen[name.lower()])}"
                    )
                seen[name.lower()] = name
                self.entity(
                    account, kind, name, _object(entity, entity_where, _ENTITY_FIELDS), entity_where
                )

    def entity(
        self, account: str, kind: PrincipalKind, name: str, body: Mapping[str, Any], where: str
    ) -> None:
        path = "/"
        if "path" in body:
            path = _string(body["path"], where, "path")
            if not _PATH.fullmatch(path):
                raise IdentitiesError(
                    f'{where}: "path" must be "/" or start and end with "/" (at most 512 '
                    "printable ASCII characters)"
                )
        policies = self.policies(body.get("policies", {}), _join(where, "policies"))
        tags = self.tags(body.get("tags", {}), _join(where, "tags"))
        template = Principal(
            account=account, kind=kind, name=name, path=path, tags=tags, policies=policies
        )
        arn = template.principal_arn  # the role's (not a session's) ARN for a role
        template = Principal(
            account=account,
            kind=kind,
            name=name,
            path=path,
            tags=tags,
            policies=policies,
            unique_id=unique_id_for(kind, arn),
        )
        self.principals[arn] = template
        if kind is PrincipalKind.USER:
            self.keys(body, where, lambda _index, _key: template, session=False)
            return
        sessions: dict[str, Principal] = {}

        def session(_index: int, key: Mapping[str, Any]) -> Principal:
            session_name = key.get("session_name", DEFAULT_SESSION_NAME)
            key_where = f"{_join(where, 'access_keys')}[{_index}]"
            created = (_timestamp(key["session_created"], key_where, "session_created")
                       if "session_created" in key else None)
            if session_name in sessions:
                if sessions[session_name].session_created != created:
                    raise IdentitiesError(
                        f'{key_where}: "session_created" differs from that of the other keys of '
                        f"session {json.dumps(session_name)}")
            else:
                sessions[session_name] = Principal(
                    account=account,
                    kind=kind,
                    name=name,
                    path=path,
                    session_name=session_name,
                    tags=tags,
                    policies=policies,
                    unique_id=template.unique_id,
                    session_created=created,
                )
            return sessions[session_name]

        self.keys(body, where, session, session=True)

    def keys(
        self,
        body: Mapping[str, Any],
        where: str,
        principal_of: Callable[[int, Mapping[str, Any]], Principal],
        *,
        session: bool,
        into: dict[str, AccessKey] | None = None,
    ) -> None:
        if "access_keys" not in body:
            return
        keys_where = _join(where, "access_keys")
        keys = body["access_keys"]
        if not isinstance(keys, list):
            raise IdentitiesError(f"{keys_where}: expected an array, got {_describe(keys)}")
        allowed = _KEY_FIELDS + _SESSION_FIELDS if session else _KEY_FIELDS
        for index, entry in enumerate(keys):
            key_where = f"{keys_where}[{index}]"
            entry = _object(entry, key_where, allowed)
            for name in _KEY_FIELDS:
                if name not in entry:
                    raise IdentitiesError(f"{key_where}: missing {json.dumps(name)}")
            key_id = _string(entry["access_key_id"], key_where, "access_key_id")
            if not _ACCESS_KEY_ID.fullmatch(key_id):
                raise IdentitiesError(
                    f'{key_where}: "access_key_id" may only hold letters, digits and "_.-" '
                    "(1 to 128 of them)"
                )
            if key_id in self.key_places:
                raise IdentitiesError(
                    f"{key_where}: access key id {json.dumps(key_id)} is already used at "
                    f"{self.key_places[key_id]}"
                )
            secret = _string(entry["secret_access_key"], key_where, "secret_access_key")
            token = expiration = None
            if session:
                if "session_name" in entry:
                    name = _string(entry["session_name"], key_where, "session_name")
                    if not _SESSION_NAME.fullmatch(name):
                        raise IdentitiesError(
                            f'{key_where}: "session_name" is 2 to 64 letters, digits and '
                            "+=,.@_- characters"
                        )
                if "session_token" in entry:
                    token = _string(entry["session_token"], key_where, "session_token")
                if "expiration" in entry:
                    if token is None:
                        raise IdentitiesError(f'{key_where}: "expiration" needs a "session_token"')
                    expiration = _timestamp(entry["expiration"], key_where, "expiration")
            self.key_places[key_id] = key_where
            (self.access_keys if into is None else into)[key_id] = AccessKey(
                access_key_id=key_id,
                secret_access_key=secret,
                principal=principal_of(index, entry),
                session_token=token,
                expiration=expiration,
            )

    @staticmethod
    def policies(value: Any, where: str) -> dict[str, Any]:
        policies = {}
        for name, document in _object(value, where).items():
            policy_where = _join(where, name)
            if not _POLICY_NAME.fullmatch(name):
                raise IdentitiesError(
                    f"{policy_where}: a policy name is 1 to 128 letters, digits and +=,.@_- "
                    "characters"
                )
            if not isinstance(document, dict):
                raise IdentitiesError(
                    f"{policy_where}: a policy document must be an object, got "
                    f"{_describe(document)}"
                )
            _object(document, policy_where)  # no name twice
            policies[name] = _plain(document)
        return policies

    @staticmethod
    def tags(value: Any, where: str) -> dict[str, str]:
        tags = {}
        for key, tag_value in _object(value, where).items():
            tag_where = _join(where, key)
            if not key or len(key) > _TAG_KEY_MAX:
                raise IdentitiesError(f"{tag_where}: a tag key is 1 to 128 characters")
            if key.lower().startswith("aws:"):
                raise IdentitiesError(f'{tag_where}: tag keys starting with "aws:" are reserved')
            if not isinstance(tag_value, str):
                raise IdentitiesError(
                    f"{tag_where}: a tag value must be a string, got {_describe(tag_value)}"
                )
            if len(tag_value) > _TAG_VALUE_MAX:
                raise IdentitiesError(f"{tag_where}: a tag value is at most 256 characters")
            tags[key] = tag_value
        return tags


def _plain(value: Any) -> Any:
    """``value`` with every :class:`_Object` turned back into a plain dict."""
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _timestamp(value: Any, where: str, name: str) -> float:
    message = (
        f'{where}: "{name}" must be an ISO 8601 date and time with a time zone, like '
        '"2030-01-01T00:00:00Z"'
    )
    if not isinstance(value, str):
        raise IdentitiesError(message)
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise IdentitiesError(message) from None
    if when.tzinfo is None:
        raise IdentitiesError(message)
    return when.timestamp()


def parse_directory(text: str | bytes) -> Directory:
    """The :class:`Directory` an identities document describes, or :class:`IdentitiesError`."""
    try:
        document = json.loads(text, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as error:
        raise IdentitiesError(
            f"line {error.lineno} column {error.colno}: not valid JSON: {error.msg}"
        ) from None
    except UnicodeDecodeError as error:
        raise IdentitiesError(f"not UTF-8 text: {error.reason}") from None
    except RecursionError:
        raise IdentitiesError("not valid JSON: nested too deeply") from None
    return _Loader().load(document)


def load_directory(path: str | os.PathLike[str]) -> Directory:
    """Read the identities file at ``path``; :class:`IdentitiesError` says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise IdentitiesError(f"cannot read {os.fspath(path)}: {error.strerror or error}") from None
    return parse_directory(data)


# -- creating -----------------------------------------------------------------------------------


def generate_access_key(principal: Principal) -> AccessKey:
    """A new random key pair: id ``AKIA`` + 16 of ``A-Z2-7``, a 40-character secret."""
    key_id = "AKIA" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return AccessKey(access_key_id=key_id, secret_access_key=secret, principal=principal)


def ensure_identities_file(path: str | os.PathLike[str], account_id: str) -> AccessKey | None:
    """Create the identities file if there is none: the root of ``account_id`` with one new
    access key, which is returned (to be shown once); return None if the file existed.

    The file is written to a temporary file (mode 0600) in the same directory, flushed, then
    linked into place, so no reader ever sees it half-written and an existing file is never
    replaced. The parent directory is created (mode 0700) if missing.
    """
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(f"an account id is 12 digits, not {account_id!r}")
    target = Path(path)
    if target.exists():
        return None
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_access_key(Principal.root(account_id))
    document = {
        "accounts": {
            account_id: {
                "root": {
                    "access_keys": [
                        {
                            "access_key_id": key.access_key_id,
                            "secret_access_key": key.secret_access_key,
                        }
                    ]
                }
            }
        }
    }
    data = (json.dumps(document, indent=2) + "\n").encode()
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, target)
        except FileExistsError:  # created meanwhile by someone else: theirs stands
            return None
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(target.parent)
    return key


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- watching -----------------------------------------------------------------------------------


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class IdentitiesFile:
    """The identities file and the :class:`Directory` last read from it.

    The constructor reads the file (raising :class:`IdentitiesError` if it cannot be used).
    :meth:`reload` reads it again; a file that has become malformed is ignored (the previous
    directory stays, and a warning says why). :meth:`start` reloads when the file's
    (mtime, size, inode) changes, checked every ``poll_interval`` seconds by a daemon thread,
    and on SIGHUP. ``on_change(old, new)`` is called after every reload that changed the
    directory.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_change: Callable[[Directory, Directory], None] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.on_change = on_change
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._signature = _file_signature(self.path)
        #: the current directory: read on every request, replaced whole by a reload
        self.directory: Directory = load_directory(self.path)
        self._wake = threading.Event()
        self._stopping = False
        self._hangup = False
        self._thread: threading.Thread | None = None
        self._previous_handler: Any = None
        self._installed_handler = False

    def reload(self) -> bool:
        """Read the file again; return whether the directory changed.

        A missing or malformed file keeps the previous directory and logs a warning with the
        reason.
        """
        with self._lock:
            self._signature = _file_signature(self.path)
            try:
                new = load_directory(self.path)
            except IdentitiesError as error:
                log.warning(
                    "identities file %s not reloaded, keeping the previous identities: %s",
                    self.path,
                    error.message,
                )
                return False
            old = self.directory
            if new == old:
                return False
            self.directory = new
            log.info("identities file %s reloaded", self.path)
            if self.on_change is not None:  # under the lock: callbacks see changes in order
                try:
                    self.on_change(old, new)
                except Exception:
                    log.exception("identities change callback failed")
        return True

    def start(self) -> None:
        """Start the polling thread, and the SIGHUP handler if called from the main thread."""
        if self._thread is not None:
            return
        self._stopping = False
        self._wake.clear()
        self._thread = threading.Thread(
            target=self._poll, name=f"identities-{self.path.name}", daemon=True
        )
        self._thread.start()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            try:
                self._previous_handler = signal.signal(signal.SIGHUP, self._on_hangup)
            except (ValueError, OSError):
                return
            self._installed_handler = True

    def stop(self) -> None:
        """Stop polling and restore the previous SIGHUP handler."""
        if self._installed_handler and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGHUP) == self._on_hangup:
                signal.signal(signal.SIGHUP, self._previous_handler or signal.SIG_DFL)
            self._installed_handler = False
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join()

    def _on_hangup(self, signum: int, frame: Any) -> None:
        # Only wake the polling thread: a reload in a signal handler could meet its own lock.
        self._hangup = True
        self._wake.set()
        previous = self._previous_handler
        if callable(previous):
            previous(signum, frame)

    def _poll(self) -> None:
        while True:
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self._hangup:
                    self._hangup = False
                    self.reload()
                elif _file_signature(self.path) != self._signature:
                    self.reload()
            except Exception:  # the thread must outlive any surprise
                log.exception("identities file %s: reload failed", self.path)


# -- describing a change ------------------------------------------------------------------------


def _keys_by_principal(directory: Directory) -> dict[str, dict[str, AccessKey]]:
    keys: dict[str, dict[str, AccessKey]] = {}
    for key in directory.access_keys.values():
        keys.setdefault(key.principal.principal_arn, {})[key.access_key_id] = key
    return keys


def _key_fields(key: AccessKey) -> dict[str, Any]:
    return {
        "secret_access_key": key.secret_access_key,
        "session_token": key.session_token,
        "session_name": key.principal.session_name,
        "session_created": key.principal.session_created,
        "expiration": key.expiration,
    }


_KINDS = {
    PrincipalKind.ROOT: "root",
    PrincipalKind.USER: "user",
    PrincipalKind.ASSUMED_ROLE: "role",
}


def directory_changes(old: Directory, new: Directory) -> list[dict[str, Any]]:
    """What changed between two directories, for the audit ledger: one entry per principal
    added, removed or changed, in ARN order. Never a secret key or session token: a changed
    secret shows as the name of the field that changed.

    Entries: ``{"change": "added"|"removed"|"changed", "arn", "account", "kind": "root"|"user"|
    "role", ...}``; added: ``access_key_ids``, ``policies`` (name ->
    document), ``tags``; removed: ``access_key_ids``; changed: only what changed among
    ``access_keys_added``, ``access_keys_removed``, ``access_keys_changed`` (``[{"access_key_id",
    "fields": [...]}]``), ``policies_added``/``policies_changed`` (name -> new document),
    ``policies_removed`` (names), ``tags`` (``{"old": ..., "new": ...}``).
    """
    old_keys, new_keys = _keys_by_principal(old), _keys_by_principal(new)
    changes: list[dict[str, Any]] = []
    for arn in sorted(set(old.principals) | set(new.principals)):
        before, after = old.principals.get(arn), new.principals.get(arn)
        keys_before, keys_after = old_keys.get(arn, {}), new_keys.get(arn, {})
        principal = after or before
        assert principal is not None
        entry: dict[str, Any] = {
            "change": "",
            "arn": arn,
            "account": principal.account,
            "kind": _KINDS[principal.kind],
        }
        if before is None:
            entry["change"] = "added"
            entry["access_key_ids"] = sorted(keys_after)
            entry["policies"] = dict(principal.policies)
            entry["tags"] = dict(principal.tags)
        elif after is None:
            entry["change"] = "removed"
            entry["access_key_ids"] = sorted(keys_before)
        else:
            entry["change"] = "changed"
            added = sorted(set(keys_after) - set(keys_before))
            removed = sorted(set(keys_before) - set(keys_after))
            changed = []
            for key_id in sorted(set(keys_after) & set(keys_before)):
                fields_before = _key_fields(keys_before[key_id])
                fields_after = _key_fields(keys_after[key_id])
                differing = [
                    name for name in fields_after if fields_before[name] != fields_after[name]
                ]
                if differing:
                    changed.append({"access_key_id": key_id, "fields": differing})
            policies_added = {
                name: document
                for name, document in after.policies.items()
                if name not in before.policies
            }
            policies_changed = {
                name: document
                for name, document in after.policies.items()
                if name in before.policies and before.policies[name] != document
            }
            policies_removed = sorted(set(before.policies) - set(after.policies))
            for name, value in (
                ("access_keys_added", added),
                ("access_keys_removed", removed),
                ("access_keys_changed", changed),
                ("policies_added", policies_added),
                ("policies_changed", policies_changed),
                ("policies_removed", policies_removed),
            ):
                if value:
                    entry[name] = value
            if dict(before.tags) != dict(after.tags):
                entry["tags"] = {"old": dict(before.tags), "new": dict(after.tags)}
            if len(entry) == 4:  # nothing but arn, account, kind, change
                continue
        changes.append(entry)
    return changes
