"""Root key -> per-key data-encryption key (DEK) -> backing key material.

Material is sealed under its KMS key's DEK (AES-256-GCM, AAD binds key id and material id)
before it goes into an event; the DEK lives wrapped by the root key in the keyring.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infrastructure.keyring import Keyring
from infrastructure.root_key import RootKey

_NONCE = 12


class MaterialShredded(LookupError):
    """The key's data-encryption key was destroyed: its material is gone for good."""


class KeyHierarchy:
    def __init__(self, root_key: RootKey, keyring: Keyring) -> None:
        self._root = root_key
        self._keyring = keyring

    def new_data_key(self, key_id: str) -> tuple[AESGCM, bytes]:
        """A new key's DEK (for sealing its first material) and its wrapped form to store."""
        data_key = AESGCM.generate_key(256)
        return AESGCM(data_key), self._root.wrap(key_id, data_key)

    def store_data_keys(self, rows: list[tuple[str, bytes]]) -> None:
        """Store wrapped DEKs (key id, wrapped) in one transaction; idempotent."""
        self._keyring.put_many(rows)

    def _data_key(self, key_id: str) -> AESGCM:
        wrapped = self._keyring.get(key_id)
        if wrapped is None:
            raise MaterialShredded(key_id)
        return AESGCM(self._root.unwrap(key_id, wrapped))

    @staticmethod
    def _aad(key_id: str, key_material_id: str) -> bytes:
        return f"keyledger-material:{key_id}:{key_material_id}".encode()

    def seal(
        self, key_id: str, key_material_id: str, material: bytes, data_key: AESGCM | None = None
    ) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + (data_key or self._data_key(key_id)).encrypt(
            nonce, material, self._aad(key_id, key_material_id)
        )

    def unseal(self, key_id: str, key_material_id: str, sealed: bytes) -> bytes:
        return self._data_key(key_id).decrypt(
            sealed[:_NONCE], sealed[_NONCE:], self._aad(key_id, key_material_id)
        )

    def shred(self, key_id: str) -> None:
        self._keyring.destroy(key_id)

    def close(self) -> None:
        self._keyring.close()
