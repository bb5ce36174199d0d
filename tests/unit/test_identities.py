"""infrastructure.identities: the identities file, its errors, its creation and its reloads."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import stat
import threading
import time

import pytest

from domain.principals import AccessKey, Directory, Principal, PrincipalKind, unique_id_for
from infrastructure.identities import (
    IdentitiesError,
    IdentitiesFile,
    directory_changes,
    ensure_identities_file,
    load_directory,
    parse_directory,
)

A = "111122223333"
B = "444455556666"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}],
}


def good_document() -> dict:
    return {
        "accounts": {
            A: {
                "root": {
                    "access_keys": [{"access_key_id": "AKIAROOTA", "secret_access_key": "sa"}]
                },
                "users": {
                    "alice": {
                        "access_keys": [{"access_key_id": "AKIAALICE", "secret_access_key": "s1"}],
                        "policies": {"EncryptOnly": POLICY},
                        "tags": {"team": "blue"},
                    },
                    "bob": {"path": "/eng/ops/"},
                },
                "roles": {
                    "deployer": {
                        "access_keys": [
                            {
                                "access_key_id": "ASIACI",
                                "secret_access_key": "s2",
                                "session_name": "ci",
                                "session_token": "token-ci",
                            },
                            {"access_key_id": "ASIADEFAULT", "secret_access_key": "s3"},
                            {
                                "access_key_id": "ASIAEXPIRING",
                                "secret_access_key": "s4",
                                "session_token": "token-x",
                                "expiration": "2030-01-01T00:00:00Z",
                            },
                        ],
                        "policies": {"Deploy": POLICY},
                        "tags": {"env": "prod"},
                        "path": "/service/",
                    }
                },
            },
            B: {},
        }
    }


def write(path, document) -> None:
    path.write_text(document if isinstance(document, str) else json.dumps(document))


# -- a good file ----------------------------------------------------------------------------------


def test_a_good_file_loads_every_principal_and_key(tmp_path):
    path = tmp_path / "identities.json"
    write(path, good_document())
    directory = load_directory(path)

    assert directory.accounts == frozenset({A, B})
    assert set(directory.principals) == {
        f"arn:aws:iam::{A}:root",
        f"arn:aws:iam::{B}:root",
        f"arn:aws:iam::{A}:user/alice",
        f"arn:aws:iam::{A}:user/eng/ops/bob",
        f"arn:aws:iam::{A}:role/service/deployer",
    }
    assert directory.principals[f"arn:aws:iam::{B}:root"] == Principal.root(B)

    root = directory.access_key("AKIAROOTA")
    assert root == AccessKey("AKIAROOTA", "sa", Principal.root(A))

    alice = directory.access_key("AKIAALICE")
    assert alice.principal.arn == f"arn:aws:iam::{A}:user/alice"
    assert alice.principal.kind is PrincipalKind.USER
    assert alice.principal.policies == {"EncryptOnly": POLICY}
    assert type(alice.principal.policies["EncryptOnly"]) is dict
    assert alice.principal.tags == {"team": "blue"}
    assert alice.principal.unique_id == unique_id_for(PrincipalKind.USER, alice.principal.arn)
    assert directory.principals[alice.principal.arn] == alice.principal
    assert alice.session_token is None

    ci = directory.access_key("ASIACI")
    assert ci.principal.kind is PrincipalKind.ASSUMED_ROLE
    assert ci.principal.arn == f"arn:aws:sts::{A}:assumed-role/deployer/ci"
    assert ci.principal.principal_arn == f"arn:aws:iam::{A}:role/service/deployer"
    assert ci.principal.policies == {"Deploy": POLICY}
    assert ci.principal.tags == {"env": "prod"}
    assert ci.session_token == "token-ci"
    assert ci.expiration is None
    default = directory.access_key("ASIADEFAULT")
    assert default.principal.session_name == "keyledger"
    assert default.session_token is None
    assert directory.access_key("ASIAEXPIRING").expiration == 1893456000.0

    # a session began when the file says (audit records show no creationDate without it)
    assert ci.principal.session_created is None
    document = good_document()
    document["accounts"][A]["roles"]["deployer"]["access_keys"][0]["session_created"] = (
        "2029-12-31T00:00:00Z")
    write(path, document)
    assert load_directory(path).access_key("ASIACI").principal.session_created == 1893369600.0

    template = directory.principals[f"arn:aws:iam::{A}:role/service/deployer"]
    assert template.session_name == ""
    assert template.unique_id == ci.principal.unique_id
    assert ci.principal.user_id == f"{template.unique_id}:ci"


def test_unique_ids_are_derived_from_the_arn():
    directory = parse_directory(json.dumps(good_document()))
    alice = directory.principals[f"arn:aws:iam::{A}:user/alice"]
    role = directory.principals[f"arn:aws:iam::{A}:role/service/deployer"]
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", alice.unique_id)
    assert re.fullmatch(r"AROA[A-Z2-7]{17}", role.unique_id)
    assert parse_directory(json.dumps(good_document())) == directory  # deterministic
    assert alice.unique_id == unique_id_for(PrincipalKind.USER, f"arn:aws:iam::{A}:user/alice")
    assert unique_id_for(PrincipalKind.USER, f"arn:aws:iam::{A}:user/alice2") != alice.unique_id


def test_an_empty_accounts_object_is_a_directory_with_nobody():
    assert parse_directory('{"accounts": {}}') == Directory(accounts=frozenset())


# -- malformed files ------------------------------------------------------------------------------


def mutate(change) -> str:
    document = good_document()
    change(document)
    return json.dumps(document)


ALICE = f"accounts.{A}.users.alice"
ROLE = f"accounts.{A}.roles.deployer"


def _set(path: str, value):
    def change(document):
        *parents, last = path.split("/")
        target = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        index = int(last) if isinstance(target, list) else last
        if value is _DELETE:
            del target[index]
        else:
            target[index] = value

    return change


_DELETE = object()
_ALICE = f"accounts/{A}/users/alice"
_ROLE = f"accounts/{A}/roles/deployer"

MALFORMED = [
    (
        '{"accounts": {',
        "line 1 column 15: not valid JSON: Expecting property name enclosed in double quotes",
    ),
    ('{"accounts":' + "[" * 5000 + "]" * 5000 + "}", "not valid JSON: nested too deeply"),
    ("[]", "(top level): expected an object, got an array"),
    ("{}", '(top level): missing "accounts"'),
    (
        '{"accounts": {}, "users": {}}',
        '(top level): unknown field "users" (expected one of "accounts", "nodes")',
    ),
    ('{"accounts": []}', "accounts: expected an object, got an array"),
    ('{"accounts": {"12345": {}}}', "accounts.12345: an account id is 12 digits"),
    ('{"accounts": {"1111222233334": {}}}', "accounts.1111222233334: an account id is 12 digits"),
    (f'{{"accounts": {{"{A}": {{}}, "{A}": {{}}}}}}', f'accounts: "{A}" appears more than once'),
    (f'{{"accounts": {{"{A}": null}}}}', f"accounts.{A}: expected an object, got null"),
    (
        mutate(_set(f"accounts/{A}/groups", {})),
        f'accounts.{A}: unknown field "groups" (expected one of "root", "users", "roles")',
    ),
    (
        mutate(_set(f"accounts/{A}/root/policies", {})),
        f'accounts.{A}.root: unknown field "policies" (expected one of "access_keys")',
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/secret_access_key", _DELETE)),
        f'{ALICE}.access_keys[0]: missing "secret_access_key"',
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/access_key_id", _DELETE)),
        f'{ALICE}.access_keys[0]: missing "access_key_id"',
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/secret_access_key", 12)),
        f'{ALICE}.access_keys[0]: "secret_access_key" must be a string, got a number',
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/secret_access_key", "")),
        f'{ALICE}.access_keys[0]: "secret_access_key" must not be empty',
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/access_key_id", "AKIA/ALICE")),
        f'{ALICE}.access_keys[0]: "access_key_id" may only hold letters, digits and "_.-" '
        "(1 to 128 of them)",
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/session_token", "t")),
        f'{ALICE}.access_keys[0]: unknown field "session_token" (expected one of '
        '"access_key_id", "secret_access_key")',
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys", {})),
        f"{ALICE}.access_keys: expected an array, got an object",
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0", "AKIAALICE")),
        f"{ALICE}.access_keys[0]: expected an object, got a string",
    ),
    (
        mutate(_set(f"{_ALICE}/access_keys/0/access_key_id", "AKIAROOTA")),
        f'{ALICE}.access_keys[0]: access key id "AKIAROOTA" is already used at '
        f"accounts.{A}.root.access_keys[0]",
    ),
    (
        mutate(
            _set(
                f"accounts/{B}/users",
                {"carol": {"access_keys": [{"access_key_id": "ASIACI", "secret_access_key": "x"}]}},
            )
        ),
        f'accounts.{B}.users.carol.access_keys[0]: access key id "ASIACI" is already used at '
        f"{ROLE}.access_keys[0]",
    ),
    (
        mutate(_set(f"{_ALICE}/policies/EncryptOnly", "allow everything")),
        f"{ALICE}.policies.EncryptOnly: a policy document must be an object, got a string",
    ),
    (mutate(_set(f"{_ALICE}/policies", [])), f"{ALICE}.policies: expected an object, got an array"),
    (
        mutate(_set(f"{_ALICE}/policies/bad name", POLICY)),
        f"{ALICE}.policies.bad name: a policy name is 1 to 128 letters, digits and +=,.@_- "
        "characters",
    ),
    (
        mutate(_set(f"{_ALICE}/tags/team", 7)),
        f"{ALICE}.tags.team: a tag value must be a string, got a number",
    ),
    (
        mutate(_set(f"{_ALICE}/tags/aws:owner", "x")),
        f'{ALICE}.tags.aws:owner: tag keys starting with "aws:" are reserved',
    ),
    (
        mutate(_set(f"{_ALICE}/tags/long", "v" * 257)),
        f"{ALICE}.tags.long: a tag value is at most 256 characters",
    ),
    (
        mutate(_set(f"{_ALICE}/path", "eng")),
        f'{ALICE}: "path" must be "/" or start and end with "/" (at most 512 printable ASCII '
        "characters)",
    ),
    (
        mutate(_set(f"{_ALICE}/polices", {})),
        f'{ALICE}: unknown field "polices" (expected one of "access_keys", "policies", "tags", '
        '"path")',
    ),
    (
        mutate(_set(f"accounts/{A}/users/al ice", {})),
        f"accounts.{A}.users.al ice: a user name is 1 to 64 letters, digits and +=,.@_- characters",
    ),
    (
        mutate(_set(f"accounts/{A}/users/Alice", {})),
        f'accounts.{A}.users.Alice: the user name differs only in case from "alice"',
    ),
    (
        mutate(_set(f"{_ROLE}/access_keys/0/session_name", "c")),
        f'{ROLE}.access_keys[0]: "session_name" is 2 to 64 letters, digits and +=,.@_- characters',
    ),
    (
        mutate(_set(f"{_ROLE}/access_keys/1/expiration", "2030-01-01T00:00:00Z")),
        f'{ROLE}.access_keys[1]: "expiration" needs a "session_token"',
    ),
    (
        mutate(_set(f"{_ROLE}/access_keys/2/expiration", "2030-01-01T00:00:00")),
        f'{ROLE}.access_keys[2]: "expiration" must be an ISO 8601 date and time with a time zone, '
        'like "2030-01-01T00:00:00Z"',
    ),
    (
        mutate(_set(f"{_ROLE}/access_keys/2/expiration", "soon")),
        f'{ROLE}.access_keys[2]: "expiration" must be an ISO 8601 date and time with a time zone, '
        'like "2030-01-01T00:00:00Z"',
    ),
    (  # the keys of one session agree on when it began (ASIADEFAULT and ASIAEXPIRING)
        mutate(_set(f"{_ROLE}/access_keys/2/session_created", "2029-12-31T00:00:00Z")),
        f'{ROLE}.access_keys[2]: "session_created" differs from that of the other keys of '
        'session "keyledger"',
    ),
    (
        mutate(_set(f"{_ROLE}/access_keys/0/session_created", "yesterday")),
        f'{ROLE}.access_keys[0]: "session_created" must be an ISO 8601 date and time with a time '
        'zone, like "2030-01-01T00:00:00Z"',
    ),
    (
        mutate(_set(f"{_ROLE}/access_keys/0/session_token", None)),
        f'{ROLE}.access_keys[0]: "session_token" must be a string, got null',
    ),
    (
        json.dumps(good_document()).replace(
            '"EncryptOnly": {', '"EncryptOnly": {"Version": "1", ', 1
        ),
        f'{ALICE}.policies.EncryptOnly: "Version" appears more than once',
    ),
]


@pytest.mark.parametrize(
    ("text", "message"),
    MALFORMED,
    ids=[message.split(":")[0] + f"#{i}" for i, (_, message) in enumerate(MALFORMED)],
)
def test_a_malformed_file_is_refused_with_what_and_where(tmp_path, text, message):
    path = tmp_path / "identities.json"
    path.write_text(text)
    with pytest.raises(IdentitiesError) as caught:
        load_directory(path)
    assert caught.value.message == message
    assert str(caught.value) == message


def test_a_missing_file(tmp_path):
    path = tmp_path / "none.json"
    with pytest.raises(IdentitiesError) as caught:
        load_directory(path)
    assert caught.value.message == f"cannot read {path}: No such file or directory"


def test_a_file_that_is_not_utf_8(tmp_path):
    path = tmp_path / "identities.json"
    path.write_bytes(b'{"accounts": {"\xff": {}}}')
    with pytest.raises(IdentitiesError) as caught:
        load_directory(path)
    assert caught.value.message == "not UTF-8 text: invalid start byte"


# -- creating the first file ----------------------------------------------------------------------


def test_ensure_creates_a_private_file_with_a_root_key(tmp_path):
    path = tmp_path / "new" / "dir" / "identities.json"
    key = ensure_identities_file(path, A)

    assert key is not None
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", key.access_key_id)
    assert len(key.secret_access_key) == 40
    assert key.principal == Principal.root(A)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["identities.json"]  # no temporary left
    directory = load_directory(path)
    assert directory.access_keys == {key.access_key_id: key}
    assert directory.accounts == frozenset({A})


def test_ensure_leaves_an_existing_file_alone(tmp_path):
    path = tmp_path / "identities.json"
    write(path, good_document())
    before = path.read_bytes()
    assert ensure_identities_file(path, B) is None
    assert path.read_bytes() == before


def test_ensure_generates_a_new_key_each_time(tmp_path):
    first = ensure_identities_file(tmp_path / "one.json", A)
    second = ensure_identities_file(tmp_path / "two.json", A)
    assert first.access_key_id != second.access_key_id
    assert first.secret_access_key != second.secret_access_key


def test_ensure_wants_a_twelve_digit_account(tmp_path):
    with pytest.raises(ValueError):
        ensure_identities_file(tmp_path / "identities.json", "1234")
    assert not (tmp_path / "identities.json").exists()


# -- reloading ------------------------------------------------------------------------------------


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def replace_file(path, document) -> None:
    """Write a new version the way an editor or a config manager would: beside it, then rename."""
    temporary = path.with_name(path.name + ".new")
    write(temporary, document)
    os.replace(temporary, path)


def test_reload_keeps_the_previous_directory_when_the_file_goes_bad(tmp_path, caplog):
    path = tmp_path / "identities.json"
    write(path, good_document())
    identities = IdentitiesFile(path)
    before = identities.directory

    write(path, '{"accounts": {"12": {}}}')
    with caplog.at_level(logging.WARNING, logger="infrastructure.identities"):
        assert identities.reload() is False
    assert identities.directory is before
    assert "accounts.12: an account id is 12 digits" in caplog.text

    path.unlink()
    assert identities.reload() is False
    assert identities.directory is before


def test_reload_reports_whether_anything_changed(tmp_path):
    path = tmp_path / "identities.json"
    write(path, good_document())
    seen = []
    identities = IdentitiesFile(path, on_change=lambda old, new: seen.append((old, new)))
    first = identities.directory
    assert identities.reload() is False  # same content
    assert identities.directory is first
    assert seen == []

    document = good_document()
    document["accounts"][A]["users"]["alice"]["tags"]["team"] = "red"
    write(path, document)
    assert identities.reload() is True
    assert identities.directory.access_key("AKIAALICE").principal.tags == {"team": "red"}
    assert seen == [(first, identities.directory)]


def test_the_constructor_refuses_a_malformed_file(tmp_path):
    path = tmp_path / "identities.json"
    write(path, "{}")
    with pytest.raises(IdentitiesError):
        IdentitiesFile(path)


def test_a_changed_file_is_picked_up_by_the_poller(tmp_path):
    path = tmp_path / "identities.json"
    write(path, good_document())
    changes = []
    identities = IdentitiesFile(
        path, on_change=lambda old, new: changes.append(new), poll_interval=0.02
    )
    identities.start()
    try:
        document = good_document()
        document["accounts"][B]["root"] = {
            "access_keys": [{"access_key_id": "AKIAROOTB", "secret_access_key": "sb"}]
        }
        replace_file(path, document)
        wait_for(lambda: identities.directory.access_key("AKIAROOTB") is not None)
        assert changes == [identities.directory]

        replace_file(path, "not json")  # a bad version is skipped ...
        time.sleep(0.2)
        assert identities.directory is changes[-1]
        del document["accounts"][A]["users"]["alice"]
        replace_file(path, document)  # ... and the next good one is read
        wait_for(lambda: identities.directory.access_key("AKIAALICE") is None)
        assert len(changes) == 2
    finally:
        identities.stop()


def test_sighup_reloads_from_the_main_thread(tmp_path):
    path = tmp_path / "identities.json"
    write(path, good_document())
    identities = IdentitiesFile(path, poll_interval=3600)  # only the signal can wake it
    previous = signal.getsignal(signal.SIGHUP)
    identities.start()
    try:
        assert signal.getsignal(signal.SIGHUP) != previous
        document = good_document()
        document["accounts"][A]["users"]["alice"]["access_keys"] = []
        write(path, document)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: identities.directory.access_key("AKIAALICE") is None)
    finally:
        identities.stop()
    assert signal.getsignal(signal.SIGHUP) == previous


def test_start_outside_the_main_thread_skips_the_signal_handler(tmp_path):
    path = tmp_path / "identities.json"
    write(path, good_document())
    identities = IdentitiesFile(path, poll_interval=0.02)
    previous = signal.getsignal(signal.SIGHUP)
    thread = threading.Thread(target=identities.start)
    thread.start()
    thread.join()
    try:
        assert signal.getsignal(signal.SIGHUP) == previous
        document = good_document()
        document["accounts"][A]["users"]["alice"]["access_keys"] = []
        replace_file(path, document)
        wait_for(lambda: identities.directory.access_key("AKIAALICE") is None)
    finally:
        identities.stop()


# -- describing changes ---------------------------------------------------------------------------

SECRETS = (
    "sa",
    "s1",
    "s2",
    "s3",
    "s4",
    "token-ci",
    "token-x",
    "new-secret",
    "new-token",
    "sb",
    "s5",
)


def test_directory_changes_describes_additions_removals_and_changes():
    old = parse_directory(json.dumps(good_document()))
    document = good_document()
    accounts = document["accounts"]
    alice = accounts[A]["users"]["alice"]
    alice["access_keys"].append({"access_key_id": "AKIAALICE2", "secret_access_key": "s5"})
    alice["policies"]["Extra"] = POLICY
    alice["policies"]["EncryptOnly"] = {"Version": "2012-10-17", "Statement": []}
    alice["tags"] = {"team": "red"}
    del accounts[A]["users"]["bob"]
    deployer = accounts[A]["roles"]["deployer"]
    deployer["access_keys"][0]["secret_access_key"] = "new-secret"
    deployer["access_keys"][0]["session_token"] = "new-token"
    deployer["access_keys"][0]["session_created"] = "2029-12-31T00:00:00Z"
    del deployer["access_keys"][2]
    del deployer["policies"]["Deploy"]
    accounts[B]["root"] = {
        "access_keys": [{"access_key_id": "AKIAROOTB", "secret_access_key": "sb"}]
    }
    accounts["777788889999"] = {}
    new = parse_directory(json.dumps(document))

    assert directory_changes(old, new) == [
        {
            "change": "changed",
            "arn": f"arn:aws:iam::{A}:role/service/deployer",
            "account": A,
            "kind": "role",
            "access_keys_removed": ["ASIAEXPIRING"],
            "access_keys_changed": [
                {"access_key_id": "ASIACI",
                 "fields": ["secret_access_key", "session_token", "session_created"]}
            ],
            "policies_removed": ["Deploy"],
        },
        {
            "change": "changed",
            "arn": f"arn:aws:iam::{A}:user/alice",
            "account": A,
            "kind": "user",
            "access_keys_added": ["AKIAALICE2"],
            "policies_added": {"Extra": POLICY},
            "policies_changed": {"EncryptOnly": {"Version": "2012-10-17", "Statement": []}},
            "tags": {"old": {"team": "blue"}, "new": {"team": "red"}},
        },
        {
            "change": "removed",
            "arn": f"arn:aws:iam::{A}:user/eng/ops/bob",
            "account": A,
            "kind": "user",
            "access_key_ids": [],
        },
        {
            "change": "changed",
            "arn": f"arn:aws:iam::{B}:root",
            "account": B,
            "kind": "root",
            "access_keys_added": ["AKIAROOTB"],
        },
        {
            "change": "added",
            "arn": "arn:aws:iam::777788889999:root",
            "account": "777788889999",
            "kind": "root",
            "access_key_ids": [],
            "policies": {},
            "tags": {},
        },
    ]
    assert directory_changes(old, old) == []


def test_directory_changes_never_holds_a_secret_or_a_token():
    empty = parse_directory('{"accounts": {}}')
    full = parse_directory(json.dumps(good_document()))
    document = good_document()
    for key in document["accounts"][A]["roles"]["deployer"]["access_keys"]:
        key["secret_access_key"] = "new-secret"
        if "session_token" in key:
            key["session_token"] = "new-token"
    rotated = parse_directory(json.dumps(document))
    for old, new in ((empty, full), (full, empty), (full, rotated), (rotated, full)):
        changes = directory_changes(old, new)
        assert changes
        text = json.dumps(changes)
        for secret in SECRETS:
            assert f'"{secret}"' not in text
