"""The composition root: wires infrastructure adapters into the application."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from api.settings import Settings
from application.authorization import Authorizer
from application.clock import AdjustableClock, Clock
from application.service import KeyManagementService, RegionResources
from infrastructure import ciphertext, key_material
from infrastructure.audit_spool import FILE_NAME as SPOOL_FILE_NAME
from infrastructure.audit_spool import AuditSpool
from infrastructure.key_hierarchy import KeyHierarchy
from infrastructure.persistence import StoreConfig, schema_name
from infrastructure.root_key import RootKey
from infrastructure.transcoding import TRANSCODINGS


class NoStore(Exception):
    """A command that only reads was pointed at a data dir or database holding no keyledger
    store, at a Region with no ledger in it, or at no root key: it creates none of them."""


def existing_regions(settings: Settings, regions: Iterable[str] = ()) -> list[str]:
    """The Regions that have a ledger in the settings' store, found without creating anything
    (no data dir, root key, Region folder or schema). NoStore if the store has none, or if one
    of ``regions`` (those a command names) has none."""
    store = StoreConfig(settings.data_path, settings.store)
    known = store.known_regions()
    if store.is_postgres:
        if known:  # a schema with the ledger's events table (not one made by a failed start)
            import psycopg

            with psycopg.connect(**store.postgres_conninfo(), autocommit=True) as conn:
                schemas = {row[0] for row in conn.execute(
                    "SELECT table_schema FROM information_schema.tables"
                    " WHERE table_name = 'keyledger_events'").fetchall()}
            known = [r for r in known if schema_name(r) in schemas]
        where = store.describe()
    else:
        known = [r for r in known if (store.region_folder(r) / "ledger.db").is_file()]
        where = str(settings.data_path)
    if not known:
        raise NoStore(f"no keyledger store in {where}")
    for region in regions:
        if region not in known:
            raise NoStore(f"region {region} has no ledger in this store")
    return known


def check_root_key(settings: Settings) -> None:
    """The root key opens the data keys already in the store (one of each Region the server
    serves: nodes sharing a database may serve Regions apart, each under its own key); a
    server started with another one would look healthy and fail every use of a stored key,
    and chaining and replication on every pass. RootKeyError if it does not, or if there is
    none where one is looked for (none is created then: a mistyped --root-key-file, or a lost
    root.key, gets no new key beside a store that needs the old one)."""
    from cryptography.exceptions import InvalidTag

    from infrastructure.root_key import RootKeyError

    store = StoreConfig(settings.data_path, settings.store)
    served = settings.served_regions
    samples = [(region, sample) for region in store.known_regions()
               if (served is None or region in served)
               and (sample := store.sample_data_key(region)) is not None]
    if not samples:
        return
    where = store.describe() if store.is_postgres else settings.data_path
    try:
        root_key = existing_root_key(settings)
    except NoStore as error:
        raise RootKeyError(f"{error}, and the data keys of Region {samples[0][0]} in {where} "
                           "were sealed under one; start with it (--root-key-file or "
                           "KEYLEDGER_ROOT_KEY)") from None
    for region, sample in samples:
        try:
            root_key.unwrap(*sample)
        except InvalidTag:
            raise RootKeyError(
                f"the root key does not open the data keys of Region {region} in {where}: they "
                "were sealed under another root key; start with that one (--root-key-file or "
                "KEYLEDGER_ROOT_KEY)") from None


def existing_root_key(settings: Settings) -> RootKey:
    """The root key, as RootKey.load finds it, but never created: NoStore if there is none."""
    path = Path(settings.root_key_file) if settings.root_key_file else (
        settings.data_path / "root.key")
    if not os.environ.get("KEYLEDGER_ROOT_KEY") and not path.exists():
        raise NoStore(f"no root key at {path}")
    return RootKey.load(settings.data_path, settings.root_key_file)


class _RootKeyWhenUsed:
    """A read-only service's root key: read the first time something is unwrapped (reading the
    ledger or the audit needs none), never created."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key: RootKey | None = None

    def _root(self) -> RootKey:
        if self._key is None:
            self._key = existing_root_key(self._settings)
        return self._key

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        return self._root().wrap(key_id, data_key)

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return self._root().unwrap(key_id, wrapped)


def build_service(settings: Settings,
                  principal_exists: Callable[[str], bool] | None = None, *,
                  read_only: bool = False) -> KeyManagementService:
    """The application on its stores. ``principal_exists``: sigv4 mode's check that a principal
    named in a policy or grant exists (None: open mode, any well-formed ARN). ``read_only``: for
    the commands that only read (after existing_regions): the data dir and the root key are
    never created, and only Regions that exist are to be opened."""
    data_dir = settings.data_path
    if read_only:
        root_key = _RootKeyWhenUsed(settings)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        root_key = RootKey.load(data_dir, settings.root_key_file)
    store = StoreConfig(data_dir, settings.store)

    def open_region(region: str) -> RegionResources:
        storage = store.open_region(region, read_only=read_only)
        return RegionResources(
            ledger_env=storage.ledger_env,
            directory=storage.directory,
            hierarchy=KeyHierarchy(root_key, storage.keyring),
            close=storage.close,
            audit=storage.audit,
            exclusive=lambda name: store.exclusive(region, name),
            audit_commit_delay=settings.audit_commit_delay_us / 1e6,
            audit_spool=None if read_only else AuditSpool(
                store.region_folder(region) / SPOOL_FILE_NAME),
        )

    key_material.workers.set_niceness(settings.crypto_niceness)
    clock: Clock = (
        AdjustableClock(data_dir / "test-clock-offset") if settings.enable_test_control else Clock()
    )
    authorizer = Authorizer(principal_exists)
    service = KeyManagementService(
        open_region, ciphertext, key_material, TRANSCODINGS, clock, known_regions=store.known_regions,
        authorizer=authorizer,
    )
    authorizer.aliases_of = service.aliases_of  # kms:ResourceAliases, read when a policy names it
    service.scheduler.record_grace = settings.audit_record_grace
    return service


def serve_crypto_helpers_on(loop) -> None:
    """The server's event loop talks to the crypto helper processes itself (no thread hop)."""
    key_material.workers.serve_on(loop)


def stop_crypto_helpers() -> None:
    key_material.workers.close()
