"""The composition root: wires infrastructure adapters into the application."""

from __future__ import annotations

from collections.abc import Callable

from api.settings import Settings
from application.authorization import Authorizer
from application.clock import AdjustableClock, Clock
from application.service import KeyManagementService, RegionResources
from infrastructure import ciphertext, key_material
from infrastructure.key_hierarchy import KeyHierarchy
from infrastructure.persistence import StoreConfig
from infrastructure.root_key import RootKey
from infrastructure.transcoding import TRANSCODINGS


def build_service(settings: Settings,
                  principal_exists: Callable[[str], bool] | None = None) -> KeyManagementService:
    """The application on its stores. ``principal_exists``: sigv4 mode's check that a principal
    named in a policy or grant exists (None: open mode, any well-formed ARN)."""
    data_dir = settings.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    root_key = RootKey.load(data_dir, settings.root_key_file)
    store = StoreConfig(data_dir, settings.store)

    def open_region(region: str) -> RegionResources:
        storage = store.open_region(region)
        return RegionResources(
            ledger_env=storage.ledger_env,
            directory=storage.directory,
            hierarchy=KeyHierarchy(root_key, storage.keyring),
            close=storage.close,
            audit=storage.audit,
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
    return service


def serve_crypto_helpers_on(loop) -> None:
    """The server's event loop talks to the crypto helper processes itself (no thread hop)."""
    key_material.workers.serve_on(loop)


def stop_crypto_helpers() -> None:
    key_material.workers.close()
