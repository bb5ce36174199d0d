"""``verify`` checks every stored snapshot against the chained events (snapshot_check).

Snapshots are not chained, yet a server loads a key from its newest snapshot and the events
after it. Keys with 50 events or more get real snapshots from the ledger; each tampering test
then changes the snapshot table the way someone with the files or the database would, behind
keyledger's back, and checks that ``verify`` names the snapshot (region, key, version) and what
was done. Both stores (``kms`` runs on SQLite, and on PostgreSQL when
KEYLEDGER_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import dataclasses
import os
import uuid

import eventsourcing.domain
import eventsourcing.persistence
import pytest
from eventsourcing.persistence import StoredEvent

from api import cli
from infrastructure.ledger_chain import LedgerChainer, verify
from infrastructure.persistence import StoreConfig, schema_name
from infrastructure.root_key import RootKey
from tests.integration.test_key_types_ledger import _import, _parameters
from tests.integration.test_ledger_chain import REGION, Clock, Store

GRANTEE = "arn:aws:iam::111122223333:role/verify-snapshots"


class Snapshots:
    """The region's snapshot rows, reached directly, decoded and encoded with the ledger's own
    mapper (as the ledger writes them)."""

    def __init__(self, kms, store: Store) -> None:
        self.store = store
        self.table = (f'"{schema_name(REGION)}".keyledger_snapshots' if store.postgres
                      else "stored_snapshots")
        self.mapper = kms.service.region(REGION).ledger.mapper

    def _sql(self, template: str, args: tuple = ()) -> list[tuple]:
        return self.store.events(template.replace("{snapshots}", self.table), args)

    def versions(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for key_id, version in self._sql("SELECT originator_id, originator_version FROM "
                                         "{snapshots} ORDER BY originator_id, originator_version"):
            found.setdefault(key_id, []).append(version)
        return found

    def row(self, key_id: str, version: int) -> tuple[str, bytes]:
        (topic, state), = self._sql("SELECT topic, state FROM {snapshots} WHERE originator_id = ? "
                                    "AND originator_version = ?", (key_id, version))
        return topic, bytes(state)

    def decoded(self, key_id: str, version: int):
        topic, state = self.row(key_id, version)
        return self.mapper.to_domain_event(StoredEvent(key_id, version, topic, state))

    def write(self, key_id: str, version: int, topic: str, state: bytes) -> None:
        self._sql("UPDATE {snapshots} SET topic = ?, state = ? WHERE originator_id = ? AND "
                  "originator_version = ?", (topic, state, key_id, version))

    def insert(self, snapshot) -> None:
        stored = self.mapper.to_stored_event(snapshot)
        self._sql("INSERT INTO {snapshots} (originator_id, originator_version, topic, state) "
                  "VALUES (?, ?, ?, ?)", (stored.originator_id, stored.originator_version,
                                          stored.topic, stored.state))

    def edit_state(self, key_id: str, version: int, **changes) -> None:
        """Decode the stored snapshot, change attributes of the key it holds, encode it back."""
        snapshot = self.decoded(key_id, version)
        forged = dataclasses.replace(snapshot, state={**snapshot.state, **changes})
        stored = self.mapper.to_stored_event(forged)
        self.write(key_id, version, stored.topic, stored.state)


@pytest.fixture
def store(kms):
    kms.service.region(REGION)  # its store is created on first use
    s = Store(kms.settings)
    yield s
    s.close()


@pytest.fixture
def chainer(kms):
    c = LedgerChainer(StoreConfig(kms.settings.data_path, kms.settings.store),
                      RootKey.load(kms.settings.data_path), clock=Clock(),
                      pass_budget=600.0)  # (everything new at each call, however slow the machine)
    yield c
    c.close()


@pytest.fixture
def snapshots(kms, store) -> Snapshots:
    return Snapshots(kms, store)


def _create(kms, **params) -> str:
    return kms.call("CreateKey", **params)["KeyMetadata"]["KeyId"]


def _version(kms, key_id: str) -> int:
    return len(kms.service.key_history(REGION, key_id))


def _pad(kms, key_id: str, version: int) -> None:
    """One event per call until the key is at ``version``."""
    for n in range(version - _version(kms, key_id)):
        kms.call("UpdateKeyDescription", KeyId=key_id, Description=f"pad {n}")
    assert _version(kms, key_id) == version


def _chain_and_checkpoint(chainer) -> None:
    while chainer.chain(REGION):
        pass
    chainer.chain(REGION, final=True)


def _verify(kms, chainer):
    return verify(StoreConfig(kms.settings.data_path, kms.settings.store),
                  chainer.public_key_pem(REGION), [REGION])


def _problem(kms, chainer) -> tuple[str, str, str]:
    result = _verify(kms, chainer)
    assert not result.ok, result.lines()
    region, found = result.first_problem
    assert region == REGION
    return found.kind, found.where, found.detail


def _disabled_key(kms, version: int = 55) -> str:
    """A key disabled at version 2, then at ``version``: its snapshot at 50 says Disabled."""
    key_id = _create(kms, Description="disabled")
    kms.call("DisableKey", KeyId=key_id)
    _pad(kms, key_id, version)
    return key_id


def _busy_keys(kms) -> dict[str, str]:
    """Keys of several kinds whose snapshots hold grants, rotations, imported material, tags,
    a policy, a deletion scheduled and cancelled, a multi-Region key (each operation one event)."""
    symmetric = _create(kms, Description="symmetric", Tags=[{"TagKey": "a", "TagValue": "1"}])
    grant = kms.call("CreateGrant", KeyId=symmetric, GranteePrincipal=GRANTEE,
                     Operations=["Encrypt", "Decrypt"],
                     Constraints={"EncryptionContextSubset": {"team": "red"}})["GrantId"]
    kms.call("CreateGrant", KeyId=symmetric, GranteePrincipal=GRANTEE, Operations=["Decrypt"])
    kms.call("EnableKeyRotation", KeyId=symmetric, RotationPeriodInDays=90)
    kms.call("RotateKeyOnDemand", KeyId=symmetric)
    kms.call("TagResource", KeyId=symmetric, Tags=[{"TagKey": "b", "TagValue": "2"}])
    kms.call("UntagResource", KeyId=symmetric, TagKeys=["a"])
    kms.call("RevokeGrant", KeyId=symmetric, GrantId=grant)
    kms.call("DisableKey", KeyId=symmetric)
    kms.call("EnableKey", KeyId=symmetric)
    kms.call("ScheduleKeyDeletion", KeyId=symmetric, PendingWindowInDays=7)
    kms.call("CancelKeyDeletion", KeyId=symmetric)
    kms.call("EnableKey", KeyId=symmetric)
    _pad(kms, symmetric, 120)  # snapshots at 50 and 100

    signing = _create(kms, Description="signing", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    kms.call("DisableKey", KeyId=signing)
    _pad(kms, signing, 60)  # a snapshot at 50, of a disabled key

    imported = _create(kms, Description="imported", Origin="EXTERNAL")
    _import(kms, imported, os.urandom(32), _parameters(kms, imported))
    _pad(kms, imported, 51)  # a snapshot at 50

    multi = _create(kms, Description="multi-Region", MultiRegion=True)
    _pad(kms, multi, 50)  # a snapshot at 50, its last event
    return {"symmetric": symmetric, "signing": signing, "imported": imported, "multi": multi}


def test_an_untouched_store_with_snapshots_verifies(kms, store, chainer, snapshots):
    keys = _busy_keys(kms)
    kms.restart()  # (a fresh process loads them from the snapshots: they are real ones)
    assert kms.call("DescribeKey", KeyId=keys["symmetric"])["KeyMetadata"]["KeyState"] == "Enabled"
    _chain_and_checkpoint(chainer)
    assert snapshots.versions() == {keys["symmetric"]: [50, 100], keys["signing"]: [50],
                                    keys["imported"]: [50], keys["multi"]: [50]}

    result = _verify(kms, chainer)
    assert result.ok, result.lines()
    (region,) = result.regions
    assert region.snapshots == 5
    assert "5 snapshots checked" in region.summary()


def test_a_snapshot_edited_to_enable_a_disabled_key_is_edited(kms, store, chainer, snapshots):
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    assert _verify(kms, chainer).ok
    assert snapshots.decoded(key_id, 50).state["key_state"] == "Disabled"

    snapshots.edit_state(key_id, 50, key_state="Enabled")
    kms.restart()  # what the forgery does: a server loads the key usable
    assert kms.call("DescribeKey", KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"

    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", f"snapshot of aggregate {key_id} at version 50")
    assert detail.endswith("in: key_state"), detail


def test_a_snapshot_inserted_past_the_last_event_is_inserted(kms, store, chainer, snapshots):
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    genuine = snapshots.decoded(key_id, 50)
    snapshots.insert(dataclasses.replace(genuine, originator_version=60,
                                         state={**genuine.state, "_version": 60,
                                                "key_state": "Enabled"}))

    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("inserted", f"snapshot of aggregate {key_id} at version 60")
    assert "events end at version 55" in detail


def test_a_snapshot_of_an_aggregate_with_no_events_is_inserted(kms, store, chainer, snapshots):
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    genuine = snapshots.decoded(key_id, 50)
    ghost = str(uuid.uuid4())
    snapshots.insert(dataclasses.replace(genuine, originator_id=ghost,
                                         state={**genuine.state, "_id": ghost}))

    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("inserted", f"snapshot of aggregate {ghost} at version 50")
    assert "no stored event" in detail


def test_garbage_in_a_snapshot_is_edited_and_exits_1(kms, store, chainer, snapshots, tmp_path,
                                                     capsys):
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    topic, _ = snapshots.row(key_id, 50)
    snapshots.write(key_id, 50, topic, b"\x00\xff not JSON {")

    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", f"snapshot of aggregate {key_id} at version 50")
    assert "does not decode" in detail

    # the command: a verdict (exit 1) naming region, key and version; no traceback
    pem = tmp_path / "ledger.pub"
    pem.write_bytes(chainer.public_key_pem(REGION))
    store_args = (["--store", kms.settings.store] if store.postgres
                  else ["--data-dir", str(kms.settings.data_path)])
    capsys.readouterr()
    assert cli.main(["verify", *store_args, "--public-key", str(pem)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"FAILED: region {REGION}, snapshot of aggregate {key_id} at version 50: "
                          "edited ("), out
    assert "Traceback" not in out + err


def test_a_snapshot_naming_another_class_is_edited_and_nothing_it_names_is_imported(
        kms, store, chainer, snapshots, monkeypatch):
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    _, state = snapshots.row(key_id, 50)
    resolved = []
    real = eventsourcing.persistence.resolve_topic

    def resolve(topic: str):
        resolved.append(topic)
        return real(topic)

    for module in (eventsourcing.persistence, eventsourcing.domain):  # (the mapper's, mutate's)
        monkeypatch.setattr(module, "resolve_topic", resolve)
    snapshots.write(key_id, 50, "tests.integration.no_such_module:Snapshot", state)
    assert _problem(kms, chainer)[:2] == ("edited", f"snapshot of aggregate {key_id} at version 50")

    snapshots.write(key_id, 50, "domain.key:KmsKey.Snapshot",
                    state.replace(b'"topic":"domain.key:KmsKey"', b'"topic":"domain.alias:Alias"'))
    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", f"snapshot of aggregate {key_id} at version 50")
    assert "not the aggregate's class" in detail
    assert not [t for t in resolved if "no_such_module" in t or "alias" in t], resolved
    assert resolved  # (the patched function is the one used)


def test_the_snapshots_are_checked_only_once_the_chain_verified(kms, store, chainer, snapshots):
    """An edited event is the failure reported, not the snapshot built on it (this one passes
    without the snapshot check too: it pins the order)."""
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    topic, _ = snapshots.row(key_id, 50)
    snapshots.write(key_id, 50, topic, b"garbage")
    store.events("UPDATE {events} SET state = ? WHERE originator_id = ? AND originator_version = 3",
                 (b"{}", key_id))
    kind, where, _ = _problem(kms, chainer)
    assert kind == "edited" and where.startswith("event at notification id"), where
    assert _verify(kms, chainer).regions[0].snapshots == 0


@pytest.mark.parametrize("change", [
    "state = NULL", "topic = NULL", "state = ?", "originator_version = 0",
    "originator_version = 'fifty'", "originator_id = CAST(originator_id AS BLOB)",
])
def test_snapshot_fields_a_ledger_never_writes_are_edited_or_inserted(
        kms, store, chainer, snapshots, change):
    if store.postgres and ("'" in change or "BLOB" in change):
        pytest.skip("PostgreSQL columns keep their types")
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    deep = b'{"state":' * 100_000  # (nesting deeper than a decoder recurses)
    snapshots._sql(f"UPDATE {{snapshots}} SET {change} WHERE originator_id = ? AND "
                   "originator_version = 50", ((deep,) if "?" in change else ()) + (key_id,))
    kind, where, _ = _problem(kms, chainer)
    if change == "originator_version = 0":
        assert (kind, where) == ("inserted", f"snapshot of aggregate {key_id} at version 0")
    else:
        assert kind == "edited" and where.startswith("snapshot of aggregate "), (kind, where)
        assert key_id in where or "BLOB" in change, where


def test_a_snapshot_with_an_attribute_added_is_edited(kms, store, chainer, snapshots):
    key_id = _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    snapshots.edit_state(key_id, 50, bypass_policy_lockout=True)
    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", f"snapshot of aggregate {key_id} at version 50")
    assert detail.endswith("in: bypass_policy_lockout"), detail


def test_a_snapshot_written_in_another_attribute_order_verifies(kms, store, chainer, snapshots):
    """The same state in other bytes is the same snapshot: states are compared, not bytes
    (without the snapshot check only the count fails)."""
    key_id = _create(kms, Tags=[{"TagKey": "z", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}])
    _pad(kms, key_id, 50)
    _chain_and_checkpoint(chainer)
    genuine = snapshots.decoded(key_id, 50)
    topic, before = snapshots.row(key_id, 50)
    reordered = {name: genuine.state[name] for name in reversed(list(genuine.state))}
    stored = snapshots.mapper.to_stored_event(dataclasses.replace(genuine, state=reordered))
    assert stored.state != before
    snapshots.write(key_id, 50, topic, stored.state)

    result = _verify(kms, chainer)
    assert result.ok, result.lines()
    assert result.regions[0].snapshots == 1


@pytest.mark.parametrize("attribute", ["materials", "tags"])
def test_a_snapshot_whose_mappings_are_reordered_is_edited(kms, store, chainer, snapshots,
                                                          attribute):
    """The order within a key's mappings is what the server lists them in (ListKeyRotations
    names material versions oldest first, ListResourceTags the tags as they came): a snapshot
    that only reorders one loads a key that answers otherwise than its events (found in an
    adversarial review: it verified)."""
    key_id = _create(kms, Tags=[{"TagKey": "z", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}])
    kms.call("RotateKeyOnDemand", KeyId=key_id)
    _pad(kms, key_id, 50)
    _chain_and_checkpoint(chainer)
    genuine = snapshots.decoded(key_id, 50)
    topic, _ = snapshots.row(key_id, 50)
    assert len(genuine.state[attribute]) == 2
    reordered = {**genuine.state,
                 attribute: dict(reversed(list(genuine.state[attribute].items())))}
    stored = snapshots.mapper.to_stored_event(dataclasses.replace(genuine, state=reordered))
    snapshots.write(key_id, 50, topic, stored.state)
    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", f"snapshot of aggregate {key_id} at version 50")
    assert detail.endswith(f"in: {attribute}"), detail


def test_row_security_on_the_snapshot_table_is_an_edit(kms, store, chainer, snapshots):
    if not store.postgres:
        pytest.skip("PostgreSQL's row security")
    _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    snapshots._sql("ALTER TABLE {snapshots} ENABLE ROW LEVEL SECURITY")
    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", "the store's structure")
    assert "keyledger_snapshots is not a plain table" in detail


def test_a_column_dropped_from_the_snapshot_table_is_an_edit(kms, store, chainer, snapshots):
    _disabled_key(kms)
    _chain_and_checkpoint(chainer)
    snapshots._sql("ALTER TABLE {snapshots} DROP COLUMN topic")
    kind, where, detail = _problem(kms, chainer)
    assert (kind, where) == ("edited", "the store's structure")
    assert detail.endswith("snapshots has no column topic: a column the verifier reads was "
                           "dropped"), detail
