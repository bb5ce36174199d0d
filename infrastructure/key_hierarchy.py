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


def material_entry(key_id: str, key_material_id: str) -> str:
    """The keyring entry of material with a data key of its own (imported material)."""
    return f"{key_id}/{key_material_id}"


class MaterialShredded(LookupError):
    """The key's data-encryption key was destroyed: its material is gone for good."""


class KeyHierarchy:
    def __init__(self, root_key: RootKey, keyring: Keyring) -> None:
        self._root = root_key
        self._keyring = keyring

    def new_data_key(self, entry: str) -> tuple[AESGCM, bytes]:
        """A new DEK for a keyring entry (a key id, or a material_entry) and its wrapped
        form to store."""
        data_key = AESGCM.generate_key(256)
        return AESGCM(data_key), self._root.wrap(entry, data_key)

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

    def unseal(self, key_id: str, key_material_id: str, sealed: bytes, own_data_key: bool = False) -> bytes:
        entry = material_entry(key_id, key_material_id) if own_data_key else key_id
        return self._data_key(entry).decrypt(
            sealed[:_NONCE], sealed[_NONCE:], self._aad(key_id, key_material_id)
        )

    material_entry = staticmethod(material_entry)

    def material_data_key(self, key_id: str, key_material_id: str) -> tuple[AESGCM, bytes | None]:
        """The DEK of one material version's own (imported material): the stored one when the
        version is present (re-import), else a new one with its wrapped form to store."""
        try:
            return self._data_key(material_entry(key_id, key_material_id)), None
        except MaterialShredded:
            return self.new_data_key(material_entry(key_id, key_material_id))

    def shred(self, key_id: str) -> None:
        """Destroy a key's DEK: all material sealed under it is gone for good."""
        self._keyring.destroy(key_id)

    def shred_material(self, key_id: str, key_material_id: str) -> None:
        """Destroy the DEK of one material version that has its own (imported material)."""
        self._keyring.destroy(material_entry(key_id, key_material_id))

    def close(self) -> None:
        self._keyring.close()
