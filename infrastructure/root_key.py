"""The root key: the top of the key hierarchy, held outside the event store.

Resolution order: ``KEYLEDGER_ROOT_KEY`` (base64 of 32 bytes), ``--root-key-file`` /
``KEYLEDGER_ROOT_KEY_FILE``, else ``<data-dir>/root.key`` created on first start with mode
0600. Production deployments keep the root key on other storage than the database (a
secrets manager, a mounted secret, an HSM-backed file) so that a copy of the database
alone never yields key material.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT_KEY_BYTES = 32
_NONCE = 12


def create_root_key_file(path: Path) -> None:
    """A new root key at ``path`` (mode 0600), durable before any key depends on it: written
    and fsynced under a temporary name, then linked into place (a crash leaves no empty or
    partial root key) and the directory fsynced. Another process that created it first wins:
    its key is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(os.urandom(ROOT_KEY_BYTES)) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # (another worker's first start made it: the same for every process)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class RootKeyError(ValueError):
    """The root key cannot be used: a file others may read, or not a base64 key of 32 bytes."""


def _decoded(text: bytes | str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:  # (binascii.Error)
        key = b""
    if len(key) != ROOT_KEY_BYTES:
        raise RootKeyError(f"{where} does not hold a root key (base64 of {ROOT_KEY_BYTES} bytes)")
    return key


class RootKey:
    """Wraps and unwraps per-key data-encryption keys (AES-256-GCM, AAD = key id)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != ROOT_KEY_BYTES:
            raise ValueError("the root key must be 32 bytes")
        self._aead = AESGCM(key)

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data_key, b"keyledger-dek:" + key_id.encode())

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], b"keyledger-dek:" + key_id.encode())

    @classmethod
    def load(cls, data_dir: Path, root_key_file: str | None = None) -> RootKey:
        encoded = os.environ.get("KEYLEDGER_ROOT_KEY")
        if encoded:
            return cls(_decoded(encoded.strip(), "KEYLEDGER_ROOT_KEY"))
        path = Path(root_key_file) if root_key_file else data_dir / "root.key"
        if not path.exists():
            create_root_key_file(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise RootKeyError(f"root key file {path} must not be readable by others (mode "
                               f"{mode:o}; chmod 600 it)")
        return cls(_decoded(path.read_bytes().strip(), f"root key file {path}"))
