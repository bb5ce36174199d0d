"""The KMS operations, one module per KMS concept; each class is a group of handlers.

A handler takes the request context and the operation's validated parameters (names as in
the KMS API; blobs as bytes) and returns the operation's result in the same terms. Every key
a request names passes through the gate (application.gate) first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from application.authorization import Authorizer
from application.clock import Clock
from application.gate import Gate
from application.ports import CiphertextFormat, KeyMaterial
from application.region import Region
from application.replication import share_with_replicas
from domain.key import KmsKey
from domain.messages import Ciphertext, KeyState, Requests, Unsupported, Validation
from domain.values import BackingKey, RotationType


@dataclass
class Core:
    """What every handler group reaches: the regions, the gate and the adapters."""

    region: Callable[[str], Region]
    gate: Gate
    authorizer: Authorizer
    clock: Clock
    crypto: KeyMaterial
    ciphertext: CiphertextFormat
    replicate_soon: Callable[[str], None] = lambda region: None
    #: a Region's transport public key (served here, or by a peer node)
    transport_key_of: Callable[[str], bytes] | None = None
    #: whether a Region is part of the deployment (served here or by a peer)
    reachable: Callable[[str], bool] = lambda region: True
    #: whether this process serves a Region itself
    serves: Callable[[str], bool] = lambda region: True
    #: authorize an operation on a key of the set in a Region a peer node serves
    authorize_elsewhere: Callable[..., None] | None = None
    #: raise unless a multi-Region primary may change what its replicas share: this process
    #: has read each replica Region's ledger since it started (KeyManagementService.fence)
    fence: Callable[[str, KmsKey], None] = lambda region, key: None


class Handlers:
    """Base of the handler groups."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.region = core.region
        self.gate = core.gate
        self.authorizer = core.authorizer
        self.clock = core.clock
        self.crypto = core.crypto
        self.ciphertext = core.ciphertext

    def new_material(self, region: Region, key_id: str, key_spec: str, now: datetime,
                     rotation_type: RotationType | None, data_key=None) -> BackingKey:
        """Generate material for a key, sealed under its data-encryption key."""
        material_id = os.urandom(32).hex()
        material = self.crypto.generate(key_spec)
        sealed = region.hierarchy.seal(key_id, material_id, material, data_key)
        return BackingKey(
            material_id, sealed, now, rotation_type, public_key=self.crypto.public_key(key_spec, material)
        )

    def share_with_replicas(self, region: Region, key: KmsKey, actor) -> None:
        """After a change of a multi-Region primary's shared properties (in the same save):
        record them for its replicas, with new material sealed to each replica Region — once
        this process knows the key is still the set's primary (the fence)."""
        self.core.fence(region.name, key)
        share_with_replicas(region, key, self.core.transport_key_of or (
            lambda name: self.region(name).hierarchy.transport_public_key()), actor)

    def replicate_soon(self, region_name: str) -> None:
        """Ask the Region's replicators to read the other Regions' streams now (not later)."""
        self.core.replicate_soon(region_name)

    @staticmethod
    def cipher(region: Region, key: KmsKey, material_id: str | None):
        """A material version of the key, loaded (AES-GCM object, private key, HMAC key)."""
        try:
            cipher = region.live.material(key, material_id)
        except LookupError:  # the key's data-encryption key is gone (it is being deleted)
            raise KeyState.MATERIAL_GONE(arn=key.arn) from None
        if cipher is None:
            if material_id is not None and material_id in key.imports:
                raise Ciphertext.MATERIAL_DELETED(arn=key.arn, material_id=material_id)
            raise Ciphertext.MATERIAL_UNKNOWN()
        return cipher

    def seal(self, region: Region, key: KmsKey, plaintext: bytes, context) -> bytes:
        """Encrypt under the key's current material version (keyledger's symmetric blob)."""
        material_id = key.current_key_material_id
        cipher = self.cipher(region, key, material_id)
        return self.ciphertext.seal(cipher, key.id, material_id, plaintext, context)


def dry_run(params: dict[str, Any]) -> None:
    if params.get("DryRun"):
        raise Requests.DRY_RUN()


def no_recipient(params: dict[str, Any]) -> None:
    if params.get("Recipient"):
        raise Unsupported.RECIPIENT()


def require_ciphertext(params: dict[str, Any]) -> None:
    if "CiphertextBlob" not in params:
        raise Validation.MISSING(member="ciphertextBlob")
