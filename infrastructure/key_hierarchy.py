"""Root key -> per-key data-encryption key (DEK) -> backing key material.

Material is sealed under its KMS key's DEK (AES-256-GCM, AAD binds key id and material id)
before it goes into an event; the DEK lives wrapped by the root key in the keyring.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from infrastructure.keyring import Keyring
from infrastructure.root_key import RootKey

_NONCE = 12
#: the keyring entry of the Region's transport key: the X25519 private key that material
#: shared by a multi-Region primary in another Region is sealed to (docs/regions.md)
TRANSPORT_ENTRY = "keyledger:transport"
_TRANSPORT_INFO = b"keyledger/transport/v1"


class TransportSealError(ValueError):
    """A transported blob that does not open with this Region's transport key."""


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

    def wrapped_data_keys(self) -> list[tuple[str, bytes]]:
        """Every data key of the Region, as stored (wrapped by the root key): what a fork of the
        ledger needs beside the events (keys shredded since are gone for good)."""
        return self._keyring.entries()

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

    def data_key_of(self, entry: str) -> AESGCM:
        """The entry's DEK: the stored one, or a new one stored now (the first writer wins)."""
        if self._keyring.get(entry) is None:
            self._keyring.put_many([(entry, self.new_data_key(entry)[1])])
        return self._data_key(entry)

    # -- transport of multi-Region key material between Regions ---------------------------------

    def _transport_key(self) -> X25519PrivateKey:
        wrapped = self._keyring.get(TRANSPORT_ENTRY)
        if wrapped is None:  # the Region's first: made once, kept wrapped by the root key
            private = X25519PrivateKey.generate().private_bytes_raw()
            self._keyring.put_many([(TRANSPORT_ENTRY, self._root.wrap(TRANSPORT_ENTRY, private))])
            wrapped = self._keyring.get(TRANSPORT_ENTRY)
            assert wrapped is not None
        return X25519PrivateKey.from_private_bytes(self._root.unwrap(TRANSPORT_ENTRY, wrapped))

    def transport_public_key(self) -> bytes:
        """This Region's transport public key (raw X25519), which other Regions seal to."""
        return self._transport_key().public_key().public_bytes_raw()

    @staticmethod
    def _transport_cipher(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
        return AESGCM(HKDF(hashes.SHA256(), 32, salt=None,
                           info=_TRANSPORT_INFO + ephemeral + recipient).derive(shared))

    @staticmethod
    def _transport_aad(region: str, key_id: str, key_material_id: str) -> bytes:
        return f"keyledger-transport:{region}:{key_id}:{key_material_id}".encode()

    def seal_for_region(self, recipient: bytes, region: str, key_id: str, key_material_id: str,
                        sealed: bytes, own_data_key: bool = False) -> bytes:
        """Material sealed here, re-sealed to another Region's transport key (X25519, HKDF-SHA256,
        AES-256-GCM; the AAD binds Region, key id and material id). Never in clear outside."""
        material = self.unseal(key_id, key_material_id, sealed, own_data_key)
        ephemeral = X25519PrivateKey.generate()
        ephemeral_public = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
        nonce = os.urandom(_NONCE)
        return ephemeral_public + nonce + self._transport_cipher(
            shared, ephemeral_public, recipient).encrypt(
            nonce, material, self._transport_aad(region, key_id, key_material_id))

    def reseal_transported(self, region: str, key_id: str, key_material_id: str,
                           blob: bytes) -> bytes:
        """A blob sealed to this Region's transport key, opened and sealed under the key's DEK."""
        private = self._transport_key()
        recipient = private.public_key().public_bytes_raw()
        ephemeral_public, nonce, body = blob[:32], blob[32:32 + _NONCE], blob[32 + _NONCE:]
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
            material = self._transport_cipher(shared, ephemeral_public, recipient).decrypt(
                nonce, body, self._transport_aad(region, key_id, key_material_id))
        except Exception as error:  # InvalidTag, a malformed public key
            raise TransportSealError(f"material {key_material_id} of {key_id} does not open "
                                     f"with the transport key of {region}") from error
        return self.seal(key_id, key_material_id, material, self.data_key_of(key_id))

    def shred(self, key_id: str) -> None:
        """Destroy a key's DEK: all material sealed under it is gone for good."""
        self._keyring.destroy(key_id)

    def shred_material(self, key_id: str, key_material_id: str) -> None:
        """Destroy the DEK of one material version that has its own (imported material)."""
        self._keyring.destroy(material_entry(key_id, key_material_id))

    def close(self) -> None:
        self._keyring.close()
