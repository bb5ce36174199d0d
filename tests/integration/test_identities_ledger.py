"""The identities a server loads are recorded in the ledger once per change, never a secret."""

from __future__ import annotations

import json

from api.auth import directory_digest
from domain.identity import IDENTITY_DIRECTORY_ID
from domain.principals import Directory
from infrastructure.identities import directory_changes, parse_directory


def _directory(users: dict) -> Directory:
    return parse_directory(json.dumps({"accounts": {"111122223333": {
        "root": {"access_keys": [{"access_key_id": "AKIAROOT", "secret_access_key": "root-secret"}]},
        "users": users,
    }}}))


ALICE = {"alice": {"access_keys": [{"access_key_id": "AKIAALICE", "secret_access_key": "alice-secret"}],
                   "policies": {"p": {"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}}}}


def _record(kms, old: Directory, new: Directory) -> None:
    kms.service.record_identities("us-east-1", directory_digest(new), directory_changes(old, new))


def _events(kms):
    store = kms.service.region("us-east-1").ledger.repository.event_store
    return list(store.get(IDENTITY_DIRECTORY_ID))


def test_each_change_is_recorded_once_across_processes(kms):
    first, second = _directory({}), _directory(ALICE)
    _record(kms, Directory(), first)
    _record(kms.other_process(), Directory(), first)  # another worker loads the same file
    _record(kms, first, second)
    _record(kms.other_process(), first, second)
    events = _events(kms)
    assert [type(e).__name__ for e in events] == ["IdentitiesRecorded", "IdentitiesChanged"]
    assert [c["arn"] for c in events[0].changes] == ["arn:aws:iam::111122223333:root"]
    assert [(c["change"], c["arn"]) for c in events[1].changes] == [
        ("added", "arn:aws:iam::111122223333:user/alice")
    ]
    assert events[1].changes[0]["access_key_ids"] == ["AKIAALICE"]


def test_secrets_never_reach_the_ledger(kms):
    first = _directory(ALICE)
    rotated = _directory({"alice": {**ALICE["alice"], "access_keys": [
        {"access_key_id": "AKIAALICE", "secret_access_key": "rotated-secret"}]}})
    _record(kms, Directory(), first)
    _record(kms, first, rotated)  # only the secret changed: still a change, recorded
    events = _events(kms)
    assert len(events) == 2
    recorded = json.dumps([e.changes for e in events], default=str)
    for secret in ("root-secret", "alice-secret", "rotated-secret"):
        assert secret not in recorded
