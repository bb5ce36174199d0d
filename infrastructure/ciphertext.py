"""keyledger's symmetric ciphertext blob (format version 1). See docs/architecture.md.

    offset  size  field
    0       2     magic b"KL"
    2       1     format version (1)
    3       1     n = length of the key id
    4       n     key id (ASCII)
    4+n     32    key material id (raw bytes; the 64-hex KeyMaterialId)
    36+n    12    AES-GCM nonce
    48+n    ...   AES-256-GCM ciphertext followed by its 16-byte tag

The whole header (bytes 0 .. 48+n) is authenticated as AAD together with the canonical
encoding of the encryption context, so changing any header byte, the context, or the
ciphertext makes decryption fail.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"KL"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MATERIAL_ID_BYTES = 32


class MalformedCiphertext(ValueError):
    """The blob is not a keyledger ciphertext (or is truncated)."""


@dataclass(frozen=True)
class CiphertextHeader:
    key_id: str
    key_material_id: str
    nonce: bytes
    raw: bytes  # the header bytes, authenticated as AAD


EMPTY_CONTEXT = b"\x00\x00\x00\x00"


def canonical_encryption_context(context: dict[str, str] | None) -> bytes:
    """Order-independent, unambiguous encoding: sorted UTF-8 pairs, each length-prefixed."""
    if not context:
        return EMPTY_CONTEXT
    pairs = sorted((k.encode(), v.encode()) for k, v in context.items())
    out = [struct.pack(">I", len(pairs))]
    for k, v in pairs:
        out.append(struct.pack(">I", len(k)) + k + struct.pack(">I", len(v)) + v)
    return b"".join(out)


@lru_cache(maxsize=65536)
def _header_prefix(key_id: str, key_material_id: str) -> bytes:
    kid = key_id.encode("ascii")
    return MAGIC + bytes((VERSION, len(kid))) + kid + bytes.fromhex(key_material_id)


def seal(
    aead: AESGCM, key_id: str, key_material_id: str, plaintext: bytes,
    context: dict[str, str] | None,
) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    header = _header_prefix(key_id, key_material_id) + nonce
    aad = header + (canonical_encryption_context(context) if context else EMPTY_CONTEXT)
    return header + aead.encrypt(nonce, plaintext, aad)


def parse_header(blob: bytes) -> CiphertextHeader:
    if len(blob) < 4 or blob[:2] != MAGIC or blob[2] != VERSION:
        raise MalformedCiphertext("not a keyledger ciphertext")
    n = blob[3]
    end = 4 + n + MATERIAL_ID_BYTES + NONCE_BYTES
    if len(blob) < end + TAG_BYTES:
        raise MalformedCiphertext("truncated ciphertext")
    try:
        key_id = blob[4 : 4 + n].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedCiphertext("bad key id") from None
    material = blob[4 + n : 4 + n + MATERIAL_ID_BYTES].hex()
    return CiphertextHeader(key_id, material, blob[end - NONCE_BYTES : end], blob[:end])


def open_sealed(
    aead: AESGCM, header: CiphertextHeader, blob: bytes, context: dict[str, str] | None
) -> bytes:
    """Decrypt; raises ``cryptography.exceptions.InvalidTag`` on any mismatch."""
    return aead.decrypt(
        header.nonce, blob[len(header.raw) :], header.raw + canonical_encryption_context(context)
    )
