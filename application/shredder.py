"""Crypto-shredding: the one sequence every deletion path uses.

The deletion is recorded first (version-checked, so a concurrent change such as
CancelKeyDeletion wins and nothing is destroyed), then the data-encryption key is destroyed,
then its destruction is recorded. A crash in between leaves the key listing what is still
pending, and the next scheduler pass finishes it.
"""

from __future__ import annotations

from application.region import Region
from domain.key import KmsKey
from domain.values import Actor


def finish_shredding(region: Region, key: KmsKey, actor: Actor) -> bool:
    """Destroy the data keys the key's recorded deletions left pending, then record that on
    ``key`` (the caller saves it). Returns whether there was anything to do."""
    done = False
    for material_id in list(key.material_shred_pending):  # deleted or expired imported material
        region.hierarchy.shred_material(key.id, material_id)
        key.record_material_shredded(material_id, actor)
        done = True
    if key.shred_pending:  # the key itself was deleted
        for material_id in key.imports:
            region.hierarchy.shred_material(key.id, material_id)
        region.hierarchy.shred(key.id)
        key.record_shredded(actor)
        done = True
    return done
