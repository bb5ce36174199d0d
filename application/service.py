"""The KMS use cases, one method per operation, over per-region ledgers.

Methods take a :class:`RequestContext` and the operation's validated parameters (names as
in the KMS API; blobs as bytes) and return the operation's result in the same terms.
Cryptographic operations read only in-memory state (:class:`LiveKeys`); every change to a
key or alias is an event saved to the region's ledger.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import IntegrityError

from application.clock import Clock
from application.context import RequestContext
from application.region import Region, RegionResources
from domain import errors
from domain.alias import MAX_ALIASES_PER_KEY, Alias, alias_aggregate_id, check_alias_name
from domain.key import KmsKey, check_policy_name, pending_window_days, rotation_period_days
from domain.key_specs import (
    ALGORITHM_FIELDS,
    DATA_KEY_PAIR_SPECS,
    KeySpec,
    KeyUsage,
    algorithms,
    check_creatable,
    check_rsa_plaintext,
    check_signing_message,
    rotatable,
    spec_info,
)
from domain.policy import DEFAULT_POLICY_NAME, default_key_policy
from domain.values import Actor, BackingKey, Origin, RotationType, alias_arn, key_arn

log = logging.getLogger("keyledger.service")

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}
_WRITE_ATTEMPTS = 50
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}")
ALIAS_NAME_PATTERN = re.compile(r"alias/[a-zA-Z0-9/_-]+")


def _new_material_id() -> str:
    return os.urandom(32).hex()


def _marker(value: str) -> str:
    return base64.urlsafe_b64encode(("kl1:" + value).encode()).decode()


def _unmarker(marker: str | None) -> str | None:
    if marker is None:
        return None
    try:
        decoded = base64.urlsafe_b64decode(marker.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        decoded = ""
    if not decoded.startswith("kl1:"):
        raise errors.InvalidMarkerException("Invalid marker")
    return decoded[4:]


def _page(items: list[Any], limit: int, marker_of: Callable[[Any], str]) -> tuple[list, dict]:
    """Cut a page (items holds up to limit+1 entries) and build Truncated/NextMarker."""
    page = items[:limit]
    if len(items) > limit:
        return page, {"Truncated": True, "NextMarker": _marker(marker_of(page[-1]))}
    return page, {"Truncated": False}


def _limit(params: dict[str, Any], default: int, maximum: int) -> int:
    """Page size: AWS documents tighter maxima for some operations than the model's 1000."""
    limit = params.get("Limit")
    if limit is None:
        return default
    if limit > maximum:
        raise errors.ValidationException(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
            f"constraint: Member must have value less than or equal to {maximum}"
        )
    return limit


def _write(region: Region, aggregate_id: str, load: Callable[[], Any], change: Callable[[Any], Any],
           data_keys: tuple[tuple[str, bytes], ...] = ()):
    """Load an aggregate, apply ``change``, save; on a concurrent write, load again and retry.

    Writers in this process take turns per aggregate; writers in other processes are
    detected by optimistic concurrency and retried with a jittered backoff.
    """
    with region.writer_lock(aggregate_id):
        for attempt in range(_WRITE_ATTEMPTS):
            aggregate = load()
            change(aggregate)
            try:
                region.save(aggregate, data_keys=data_keys)
            except IntegrityError:
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            return aggregate
    raise errors.ConflictException("The resource was changed concurrently; retry the request.")


def _dry_run(params: dict[str, Any]) -> None:
    if params.get("DryRun"):
        raise errors.DryRunOperationException(
            "The request would have succeeded, but the DryRun option is set."
        )


class KeyManagementService:
    """The AWS KMS API, symmetric keys, on event-sourced per-region ledgers."""

    def __init__(
        self,
        open_region: Callable[[str], RegionResources],
        ciphertext_format,
        key_material,
        transcodings=(),
        clock: Clock | None = None,
        known_regions: Callable[[], list[str]] = list,
    ) -> None:
        self.known_regions = known_regions  # regions that already have a ledger in the store
        self._open_region = open_region
        #: the ciphertext blob adapter: seal(), parse_header(), open_sealed(), MalformedCiphertext
        self._format = ciphertext_format
        #: the key material adapter: generate(), load(), sign(), verify(), ... per key spec
        self._crypto = key_material
        self._transcodings = tuple(transcodings)
        self.clock = clock or Clock()
        self._regions: dict[str, Region] = {}
        self._regions_lock = threading.Lock()

    # -- regions ------------------------------------------------------------------------------

    def region(self, name: str) -> Region:
        region = self._regions.get(name)
        if region is None:
            with self._regions_lock:
                region = self._regions.get(name)
                if region is None:
                    region = Region(name, self._open_region(name), self._transcodings, self._crypto.load)
                    self._regions[name] = region
        return region

    def has_region(self, name: str) -> bool:
        return name in self._regions

    @property
    def regions(self) -> list[Region]:
        return list(self._regions.values())

    def close(self) -> None:
        for region in self.regions:
            region.close()
        self._regions.clear()

    def follow(self) -> None:
        for region in self.regions:
            region.follow()

    def run_scheduled(self) -> int:
        """Complete due deletions and rotations in every open region; returns how many."""
        done = 0
        for region in self.regions:
            region.projection.catch_up()
            now = self.clock.now()
            for key_id in region.directory.due_key_ids(now.timestamp()):
                try:
                    done += self._run_due(region, key_id, now)
                except IntegrityError:
                    log.info("scheduled change of %s raced another process", key_id)
            region.projection.catch_up()
        return done

    def _run_due(self, region: Region, key_id: str, now: datetime) -> int:
        with region.writer_lock(key_id):
            key = region.ledger.get_key(key_id)
            if key is None:
                return 0
            actor = Actor.service()
            done = 0
            if key.expired_materials(now) and not key.deleted:
                key.expire_imported_material(now, actor)
                region.save(key)
                done = 1
            for material_id in list(key.material_shred_pending):
                region.hierarchy.shred_material(key.id, material_id)
                key.record_material_shredded(material_id, actor)
                region.save(key)
                done = 1
            if key.deletion_due(now):
                # First the deletion, version-checked: a concurrent change wins and nothing is
                # destroyed. The key's aliases go with it, in the same transaction.
                key.complete_deletion(now, actor)
                aliases = [
                    region.ledger.get_alias(alias_aggregate_id(key.account, row.alias_name))
                    for row in region.directory.list_aliases(key.account, key.id, "", 10_000)
                ]
                aliases = [a for a in aliases if a is not None and a.target_key_id == key.id]
                for alias in aliases:
                    alias.delete(actor)
                region.save(key, *aliases)
            if key.shred_pending:
                # Then destroy the data-encryption key, and record that it is gone. If the
                # process dies in between, the next pass finds the key still pending here.
                for material_id in key.imports:
                    region.hierarchy.shred_material(key.id, material_id)
                region.hierarchy.shred(key.id)
                key.record_shredded(actor)
                region.save(key)
                return 1
            if key.rotation_due(now):
                material = self._new_material(region, key.id, key.key_spec, now, RotationType.AUTOMATIC)
                key.rotate_automatically(material, now, actor)
                region.save(key)
                return 1
            return done

    # -- helpers ------------------------------------------------------------------------------

    def _new_material(
        self, region: Region, key_id: str, key_spec: str, now: datetime,
        rotation_type: RotationType | None, data_key=None,
    ) -> BackingKey:
        """Generate material for a key, sealed under its data-encryption key."""
        material_id = _new_material_id()
        material = self._crypto.generate(key_spec)
        sealed = region.hierarchy.seal(key_id, material_id, material, data_key)
        return BackingKey(
            material_id, sealed, now, rotation_type, public_key=self._crypto.public_key(key_spec, material)
        )

    def _not_found(self, ctx: RequestContext, key_id: str) -> errors.KmsError:
        return errors.NotFoundException(
            f"Key '{key_arn(ctx.region, ctx.account_id, key_id)}' does not exist"
        )

    def _key_id(self, ctx: RequestContext, region: Region, key_ref: str, allow_alias=True) -> str:
        """Resolve a key id, key ARN, alias name or alias ARN to a key id."""
        if key_ref[0] != "a":  # neither "arn:" nor "alias/": a key id as it is
            return key_ref
        if key_ref.startswith("arn:"):
            parts = key_ref.split(":", 5)
            if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms":
                raise errors.InvalidArnException(f"Invalid arn {key_ref}")
            _, _, _, arn_region, account, resource = parts
            if resource.startswith("key/"):
                if arn_region != ctx.region or account != ctx.account_id:
                    raise errors.NotFoundException(f"Key '{key_ref}' does not exist")
                return resource[4:]
            if resource.startswith("alias/") and allow_alias:
                if arn_region != ctx.region or account != ctx.account_id:
                    raise errors.NotFoundException(f"Alias {key_ref} is not found.")
                return self._alias_target(ctx, region, resource)
            raise errors.InvalidArnException(f"Invalid arn {key_ref}")
        if key_ref.startswith("alias/"):
            if not allow_alias:
                raise self._not_found(ctx, key_ref)
            return self._alias_target(ctx, region, key_ref)
        return key_ref

    def _known_key(self, ctx: RequestContext, region: Region, key_id: str) -> KmsKey | None:
        """The live key, if ``key_id`` can be a key id at all (no store lookups for garbage)."""
        key = region.live.key(key_id, KEY_ID_PATTERN.fullmatch)
        if key is None or key.account != ctx.account_id or key.deleted:
            return None
        return key

    def _alias_target(self, ctx: RequestContext, region: Region, alias_name: str) -> str:
        alias = (
            region.live.alias(alias_aggregate_id(ctx.account_id, alias_name))
            if ALIAS_NAME_PATTERN.fullmatch(alias_name)
            else None
        )
        if alias is None or not alias.exists:
            raise errors.NotFoundException(
                f"Alias {alias_arn(ctx.region, ctx.account_id, alias_name)} is not found."
            )
        return alias.target_key_id

    def _live_key(self, ctx: RequestContext, region: Region, key_ref: str, operation: str,
                  allow_alias=True) -> KmsKey:
        key_id = self._key_id(ctx, region, key_ref, allow_alias)
        key = region.live.key(key_id, KEY_ID_PATTERN.fullmatch)
        if key is None or key.account != ctx.account_id or key.deleted:
            raise self._not_found(ctx, key_id)
        key.check(operation)
        return key

    def _change_key(
        self, ctx: RequestContext, key_ref: str, change: Callable[[KmsKey], Any], allow_alias=True,
        data_keys: tuple[tuple[str, bytes], ...] = (),
    ) -> KmsKey:
        """Read the key, apply ``change``, save (retried on a concurrent write)."""
        region = self.region(ctx.region)
        key_id = self._key_id(ctx, region, key_ref, allow_alias)
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise self._not_found(ctx, key_id)

        def load() -> KmsKey:
            key = region.ledger.get_key(key_id)
            if key is None or key.account != ctx.account_id or key.deleted:
                raise self._not_found(ctx, key_id)
            return key

        return _write(region, key_id, load, change, data_keys)

    def _cipher(self, region: Region, key: KmsKey, material_id: str | None):
        """A material version of the key, loaded (AES-GCM object, private key, HMAC key)."""
        try:
            cipher = region.live.material(key, material_id)
        except LookupError:  # the key's data-encryption key is gone (it is being deleted)
            raise errors.KeyUnavailableException(f"{key.arn} is unavailable.") from None
        if cipher is None:
            if material_id is not None and material_id in key.imports:
                raise errors.KMSInvalidStateException(
                    f"{key.arn} key material {material_id} was deleted or has expired; "
                    "reimport it to use this ciphertext."
                )
            raise errors.InvalidCiphertextException("The ciphertext refers to key material that does not exist.")
        return cipher


    # -- key lifecycle --------------------------------------------------------------------------

    @staticmethod
    def _algorithm_fields(key: KmsKey) -> dict[str, Any]:
        """The algorithm lists of a key (DescribeKey, GetPublicKey)."""
        field = ALGORITHM_FIELDS[key.key_usage]  # type: ignore[index]  # KeyUsage is a StrEnum
        return {field: list(algorithms(key.key_spec, key.key_usage))}

    def key_metadata(self, key: KmsKey) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "AWSAccountId": key.account,
            "KeyId": key.id,
            "Arn": key.arn,
            "CreationDate": key.creation_date,
            "Enabled": key.enabled,
            "Description": key.description,
            "KeyUsage": key.key_usage,
            "KeyState": key.key_state.value,
            "Origin": key.origin,
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            **self._algorithm_fields(key),
            "MultiRegion": False,
        }
        if key.current_key_material_id is not None and rotatable(key.key_spec):
            # "present for symmetric encryption keys ... [that] support ... key rotation"
            metadata["CurrentKeyMaterialId"] = key.current_key_material_id
        if key.imported:
            current = key.imports.get(key.current_key_material_id or "")
            if current is not None and current.imported:
                metadata["ExpirationModel"] = current.expiration_model.value
                if current.valid_to is not None:
                    metadata["ValidTo"] = current.valid_to
        if key.deletion_date is not None:
            # (PendingDeletionWindowInDays belongs to PendingReplicaDeletion, multi-Region only)
            metadata["DeletionDate"] = key.deletion_date
        return metadata

    def CreateKey(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        spec = params.get("KeySpec") or params.get("CustomerMasterKeySpec") or SYMMETRIC_DEFAULT
        usage = params.get("KeyUsage", "ENCRYPT_DECRYPT")
        if "KeySpec" in params and "CustomerMasterKeySpec" in params:
            raise errors.ValidationException(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request."
            )
        origin = params.get("Origin", Origin.AWS_KMS)
        if origin not in (Origin.AWS_KMS, Origin.EXTERNAL):
            raise errors.UnsupportedOperationException(
                f"Origin {origin} (custom key stores) is not supported."
            )
        if params.get("CustomKeyStoreId") or params.get("XksKeyId"):
            raise errors.UnsupportedOperationException("Custom key stores are not supported.")
        if params.get("MultiRegion"):
            raise errors.UnsupportedOperationException("Multi-Region keys are not supported yet.")
        region = self.region(ctx.region)
        now = self.clock.now()
        key_id = str(uuid.uuid4())
        data_key, wrapped_data_key = region.hierarchy.new_data_key(key_id)
        check_creatable(spec, usage)  # before generating material (RSA 4096 takes a while)
        key = KmsKey.create(
            key_id=key_id,
            account=ctx.account_id,
            region=ctx.region,
            description=params.get("Description", ""),
            key_spec=spec,
            key_usage=usage,
            origin=origin,
            policy=params.get("Policy") or default_key_policy(ctx.account_id),
            tags=_tags(params.get("Tags", [])),
            material=(
                None if origin == Origin.EXTERNAL
                else self._new_material(region, key_id, spec, now, None, data_key)
            ),
            now=now,
            actor=ctx.actor,
        )
        region.save(key, data_keys=((key_id, wrapped_data_key),))
        return {"KeyMetadata": self.key_metadata(key)}

    def DescribeKey(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        key = self._live_key(ctx, self.region(ctx.region), params["KeyId"], "DescribeKey")
        return {"KeyMetadata": self.key_metadata(key)}

    def ListKeys(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        region = self.region(ctx.region)
        after = _unmarker(params.get("Marker"))
        position = int(after) if after is not None and after.isascii() and after.isdigit() else (
            -1 if after else 0
        )
        if not 0 <= position < 2**63:
            raise errors.InvalidMarkerException("Invalid marker")
        limit = _limit(params, default=100, maximum=1000)
        region.projection.catch_up()
        rows = region.directory.list_keys(ctx.account_id, position, limit + 1)
        page, paging = _page(rows, limit, lambda row: str(row[1]))
        keys = [{"KeyId": k, "KeyArn": key_arn(ctx.region, ctx.account_id, k)} for k, _ in page]
        return {"Keys": keys, **paging}

    def UpdateKeyDescription(self, ctx, params):
        self._change_key(ctx, params["KeyId"], lambda k: k.update_description(params["Description"], ctx.actor), allow_alias=False)
        return {}

    def EnableKey(self, ctx, params):
        self._change_key(ctx, params["KeyId"], lambda k: k.enable(ctx.actor), allow_alias=False)
        return {}

    def DisableKey(self, ctx, params):
        self._change_key(ctx, params["KeyId"], lambda k: k.disable(ctx.actor), allow_alias=False)
        return {}

    def ScheduleKeyDeletion(self, ctx, params):
        days = pending_window_days(params.get("PendingWindowInDays"))  # validated before lookup
        key = self._change_key(
            ctx, params["KeyId"],
            lambda k: k.schedule_deletion(days, self.clock.now(), ctx.actor),
            allow_alias=False,
        )
        return {
            "KeyId": key.arn,
            "DeletionDate": key.deletion_date,
            "KeyState": key.key_state.value,
            "PendingWindowInDays": key.pending_window_days,
        }

    def CancelKeyDeletion(self, ctx, params):
        key = self._change_key(ctx, params["KeyId"], lambda k: k.cancel_deletion(self.clock.now(), ctx.actor),
                               allow_alias=False)
        return {"KeyId": key.arn}

    # -- rotation -------------------------------------------------------------------------------

    def EnableKeyRotation(self, ctx, params):
        days = rotation_period_days(params.get("RotationPeriodInDays"))  # validated before lookup
        self._change_key(
            ctx, params["KeyId"],
            lambda k: k.enable_rotation(days, self.clock.now(), ctx.actor),
            allow_alias=False,
        )
        return {}

    def DisableKeyRotation(self, ctx, params):
        self._change_key(ctx, params["KeyId"], lambda k: k.disable_rotation(ctx.actor), allow_alias=False)
        return {}

    def _rotation_key(self, ctx, params, operation: str) -> KmsKey:
        key = self._live_key(ctx, self.region(ctx.region), params["KeyId"], operation, allow_alias=False)
        if not rotatable(key.key_spec):
            raise errors.UnsupportedOperationException(
                f"{key.arn} key spec {key.key_spec} does not support key rotation."
            )
        return key

    def GetKeyRotationStatus(self, ctx, params):
        key = self._rotation_key(ctx, params, "GetKeyRotationStatus")
        result: dict[str, Any] = {"KeyRotationEnabled": key.rotation_is_enabled(), "KeyId": key.arn}
        if key.rotation_is_enabled():
            result["RotationPeriodInDays"] = key.rotation_period_days
            result["NextRotationDate"] = key.next_rotation_date
        return result

    def RotateKeyOnDemand(self, ctx, params):
        region = self.region(ctx.region)
        now = self.clock.now()

        def rotate(key: KmsKey) -> None:
            key.check_on_demand_rotation()  # before generating material
            material = (
                None if key.imported
                else self._new_material(region, key.id, key.key_spec, now, RotationType.ON_DEMAND)
            )
            key.rotate_on_demand(material, now, ctx.actor)

        key = self._change_key(ctx, params["KeyId"], rotate, allow_alias=False)
        return {"KeyId": key.arn}

    def ListKeyRotations(self, ctx, params):
        key = self._live_key(ctx, self.region(ctx.region), params["KeyId"], "ListKeyRotations", allow_alias=False)
        everything = params.get("IncludeKeyMaterial") == "ALL_KEY_MATERIAL"
        if everything and not rotatable(key.key_spec):
            # "can only be used with KMS keys that support automatic or on-demand key rotation"
            raise errors.UnsupportedOperationException(
                f"{key.arn} is a {key.key_spec} key, which does not support key rotation: "
                "IncludeKeyMaterial=ALL_KEY_MATERIAL is not valid for it."
            )
        ids = list(key.imports) if key.imported else list(key.materials)
        ids = [i for i in ids if everything or key.rotation_of(i) is not None]
        start = _unmarker(params.get("Marker"))
        if start is not None:
            if start not in ids:
                raise errors.InvalidMarkerException("Invalid marker")
            ids = ids[ids.index(start) + 1 :]
        limit = _limit(params, default=100, maximum=1000)
        page, paging = _page(ids, limit, lambda i: i)
        rotations = []
        for material_id in page:
            entry: dict[str, Any] = {
                "KeyId": key.id,
                "KeyMaterialId": material_id,
                "KeyMaterialState": key.material_state(material_id).value,
            }
            rotation = key.rotation_of(material_id)
            if rotation is not None:
                entry["RotationDate"] = rotation.created
                entry["RotationType"] = rotation.rotation_type.value
            imported = key.imports.get(material_id)
            if imported is not None:
                entry["ImportState"] = "IMPORTED" if imported.imported else "PENDING_IMPORT"
                entry["ExpirationModel"] = imported.expiration_model.value
                if imported.description:
                    entry["KeyMaterialDescription"] = imported.description
                if imported.valid_to is not None:
                    entry["ValidTo"] = imported.valid_to
            rotations.append(entry)
        return {"Rotations": rotations, **paging}

    # -- imported key material --------------------------------------------------------------------

    def GetParametersForImport(self, ctx, params):
        wrapping_spec, algorithm = params["WrappingKeySpec"], params["WrappingAlgorithm"]
        if wrapping_spec == "SM2" or algorithm == "SM2PKE":
            raise errors.UnsupportedOperationException("SM2 wrapping keys are available only in China Regions.")
        if algorithm == "RSAES_PKCS1_V1_5":
            raise errors.UnsupportedOperationException(
                "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported; use "
                "RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256."
            )
        region = self.region(ctx.region)
        # fail fast (and without generating an RSA key) for keys that cannot import
        self._live_key(ctx, region, params["KeyId"], "DescribeKey", allow_alias=False).check_importable(
            "GetParametersForImport"
        )
        wrapping_key, public_key = self._crypto.generate_key_pair(wrapping_spec)
        token = os.urandom(32)
        issued = {}

        def issue(key: KmsKey) -> None:
            sealed = region.hierarchy.seal(key.id, _import_token_id(token), wrapping_key)
            issued["parameters"] = key.issue_import_parameters(
                _token_digest(token), wrapping_spec, algorithm, sealed, self.clock.now(), ctx.actor
            )

        key = self._change_key(ctx, params["KeyId"], issue, allow_alias=False)
        return {"KeyId": key.arn, "ImportToken": token, "PublicKey": public_key,
                "ParametersValidTo": issued["parameters"].valid_to}

    def ImportKeyMaterial(self, ctx, params):
        region = self.region(ctx.region)
        now = self.clock.now()
        key = self._live_key(ctx, region, params["KeyId"], "DescribeKey", allow_alias=False)
        token = params["ImportToken"]
        parameters = key.import_parameters_for(_token_digest(token), now)
        wrapping_key = region.hierarchy.unseal(key.id, _import_token_id(token), parameters.sealed_wrapping_key)
        try:
            material = self._crypto.unwrap(wrapping_key, parameters.wrapping_algorithm,
                                           params["EncryptedKeyMaterial"])
        except ValueError:
            raise errors.InvalidCiphertextException(
                "The EncryptedKeyMaterial could not be decrypted with the import parameters."
            ) from None
        try:
            self._crypto.check_import(key.key_spec, material)
        except self._crypto.BadKeyMaterial as error:
            raise errors.IncorrectKeyMaterialException(str(error)) from None
        material_id = self._crypto.imported_material_id(key.id, material)
        data_key, wrapped = region.hierarchy.material_data_key(key.id, material_id)
        backing = BackingKey(
            material_id, region.hierarchy.seal(key.id, material_id, material, data_key), now,
            public_key=self._crypto.public_key(key.key_spec, material), own_data_key=True,
        )
        key = self._change_key(
            ctx, params["KeyId"],
            lambda k: k.import_material(
                backing, import_type=params.get("ImportType"),
                key_material_id=params.get("KeyMaterialId"),
                description=params.get("KeyMaterialDescription"),
                expiration_model=params.get("ExpirationModel"), valid_to=params.get("ValidTo"),
                now=now, actor=ctx.actor,
            ),
            allow_alias=False,
            data_keys=() if wrapped is None else ((region.hierarchy.material_entry(key.id, material_id), wrapped),),
        )
        return {"KeyId": key.arn, "KeyMaterialId": material_id}

    def DeleteImportedKeyMaterial(self, ctx, params):
        deleted = {}

        def delete(key: KmsKey) -> None:
            deleted["id"] = key.delete_imported_material(params.get("KeyMaterialId"), ctx.actor)

        key = self._change_key(ctx, params["KeyId"], delete, allow_alias=False)
        material_id = deleted["id"]
        if material_id in key.material_shred_pending:
            # The deletion is recorded; now destroy the material's own data key, and record that.
            region = self.region(ctx.region)
            region.hierarchy.shred_material(key.id, material_id)
            self._change_key(ctx, key.id, lambda k: k.record_material_shredded(material_id, ctx.actor)
                             if material_id in k.material_shred_pending else None, allow_alias=False)
        return {"KeyId": key.arn, "KeyMaterialId": material_id}

    # -- cryptographic operations (in-memory state only) ----------------------------------------

    def Encrypt(self, ctx, params):
        region = self.region(ctx.region)
        key = self._live_key(ctx, region, params["KeyId"], "Encrypt")
        if "EncryptionAlgorithm" in params or key.key_spec != SYMMETRIC_DEFAULT:
            algorithm = self._encryption_algorithm(key, params.get("EncryptionAlgorithm"), "Encrypt")
            _dry_run(params)
            blob = self._encrypt(region, key, algorithm, params["Plaintext"], params.get("EncryptionContext"))
            return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": algorithm}
        _dry_run(params)
        blob = self._seal(region, key, params["Plaintext"], params.get("EncryptionContext"))
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_DEFAULT}

    @staticmethod
    def _encryption_algorithm(key: KmsKey, algorithm: str | None, operation: str) -> str:
        """The encryption algorithm of a request, checked against the key."""
        algorithm = algorithm or SYMMETRIC_DEFAULT
        key.check_use(operation, KeyUsage.ENCRYPT_DECRYPT, algorithm)
        return algorithm

    def _encrypt(self, region: Region, key: KmsKey, algorithm: str, plaintext: bytes, context) -> bytes:
        if algorithm == SYMMETRIC_DEFAULT:
            return self._seal(region, key, plaintext, context)
        check_rsa_plaintext(key.key_spec, algorithm, plaintext)
        private_key = self._cipher(region, key, key.current_key_material_id)
        return self._crypto.rsa_encrypt(private_key, algorithm, plaintext)

    async def _open_asymmetric(self, ctx, region: Region, params: dict[str, Any], key_param: str,
                         algorithm: str, operation: str) -> tuple[KmsKey, str, bytes]:
        """Decrypt RSA ciphertext: the request names the key and the algorithm."""
        if key_param not in params:
            raise errors.InvalidCiphertextException(
                f"{key_param} is required to decrypt ciphertext of algorithm {algorithm}."
            )
        key = self._live_key(ctx, region, params[key_param], operation)
        self._encryption_algorithm(key, algorithm, operation)
        material_id = key.current_key_material_id
        try:
            plaintext = await self._crypto.rsa_decrypt(self._cipher(region, key, material_id), algorithm,
                                                       params["CiphertextBlob"])
        except ValueError:
            raise errors.InvalidCiphertextException("The ciphertext is invalid.") from None
        return key, material_id, plaintext

    def _seal(self, region: Region, key: KmsKey, plaintext: bytes, context) -> bytes:
        """Encrypt under the key's current material version."""
        material_id = key.current_key_material_id
        cipher = self._cipher(region, key, material_id)
        return self._format.seal(cipher, key.id, material_id, plaintext, context)

    def _open(self, ctx, region: Region, params: dict[str, Any], key_param: str, context_param: str,
              operation: str) -> tuple[KmsKey, str, bytes]:
        blob = params["CiphertextBlob"]
        try:
            header = self._format.parse_header(blob)
        except self._format.MalformedCiphertext:
            if key_param in params:  # asymmetric key named without its algorithm?
                named = self._known_key(ctx, region, self._key_id(ctx, region, params[key_param]))
                if named is not None and named.key_spec != SYMMETRIC_DEFAULT:
                    self._encryption_algorithm(named, SYMMETRIC_DEFAULT, operation)
            raise errors.InvalidCiphertextException("The ciphertext is invalid.") from None
        if key_param in params:
            requested = self._key_id(ctx, region, params[key_param])
            if requested != header.key_id:
                raise errors.IncorrectKeyException(
                    "The key ID in the request does not identify a CMK that can perform this operation."
                )
        key = self._known_key(ctx, region, header.key_id)
        if key is None:
            raise errors.AccessDeniedException(
                "The ciphertext refers to a customer master key that does not exist, does not "
                "exist in this region, or you are not allowed to access."
            )
        key.check(operation)
        try:
            plaintext = self._format.open_sealed(
                self._cipher(region, key, header.key_material_id), header, blob, params.get(context_param)
            )
        except InvalidTag:
            raise errors.InvalidCiphertextException("The ciphertext is invalid.") from None
        return key, header.key_material_id, plaintext

    @staticmethod
    def _no_recipient(params: dict[str, Any]) -> None:
        if params.get("Recipient"):
            raise errors.UnsupportedOperationException(
                "Nitro Enclaves recipients (Recipient) are not supported."
            )

    async def Decrypt(self, ctx, params):
        self._no_recipient(params)
        if "CiphertextBlob" not in params:
            raise errors.ValidationException(
                "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy "
                "constraint: Member must not be null"
            )
        region = self.region(ctx.region)
        algorithm = params.get("EncryptionAlgorithm", SYMMETRIC_DEFAULT)
        if algorithm == SYMMETRIC_DEFAULT:
            key, material_id, plaintext = self._open(ctx, region, params, "KeyId", "EncryptionContext", "Decrypt")
        else:
            key, material_id, plaintext = await self._open_asymmetric(
                ctx, region, params, "KeyId", algorithm, "Decrypt"
            )
        _dry_run(params)
        result = {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}
        if algorithm == SYMMETRIC_DEFAULT:  # "present only when ... a symmetric encryption key"
            result["KeyMaterialId"] = material_id
        return result

    async def ReEncrypt(self, ctx, params):
        if "CiphertextBlob" not in params:
            raise errors.ValidationException(
                "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy "
                "constraint: Member must not be null"
            )
        region = self.region(ctx.region)
        source_algorithm = params.get("SourceEncryptionAlgorithm", SYMMETRIC_DEFAULT)
        if source_algorithm == SYMMETRIC_DEFAULT:
            source, source_material, plaintext = self._open(
                ctx, region, params, "SourceKeyId", "SourceEncryptionContext", "ReEncrypt"
            )
        else:
            source, source_material, plaintext = await self._open_asymmetric(
                ctx, region, params, "SourceKeyId", source_algorithm, "ReEncrypt"
            )
        destination = self._live_key(ctx, region, params["DestinationKeyId"], "ReEncrypt")
        algorithm = self._encryption_algorithm(
            destination, params.get("DestinationEncryptionAlgorithm"), "ReEncrypt"
        )
        _dry_run(params)
        blob = self._encrypt(region, destination, algorithm, plaintext, params.get("DestinationEncryptionContext"))
        result = {
            "CiphertextBlob": blob,
            "SourceKeyId": source.arn,
            "KeyId": destination.arn,
            "SourceEncryptionAlgorithm": source_algorithm,
            "DestinationEncryptionAlgorithm": algorithm,
        }
        # material ids are "present only when" that side used a symmetric encryption key
        if source_algorithm == SYMMETRIC_DEFAULT:
            result["SourceKeyMaterialId"] = source_material
        if algorithm == SYMMETRIC_DEFAULT:
            result["DestinationKeyMaterialId"] = destination.current_key_material_id
        return result

    def _data_key(self, ctx, params, operation):
        self._no_recipient(params)
        number, spec = params.get("NumberOfBytes"), params.get("KeySpec")
        if (number is None) == (spec is None):
            raise errors.ValidationException(
                "Please specify either number of bytes or key spec." if number is None
                else "You cannot specify both KeySpec and NumberOfBytes."
            )
        region = self.region(ctx.region)
        key = self._symmetric_key(ctx, region, params["KeyId"], operation)
        _dry_run(params)
        plaintext = os.urandom(number if number is not None else DATA_KEY_BYTES[spec])
        blob = self._seal(region, key, plaintext, params.get("EncryptionContext"))
        return key, plaintext, blob

    def GenerateDataKey(self, ctx, params):
        key, plaintext, blob = self._data_key(ctx, params, "GenerateDataKey")
        return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": key.arn,
                "KeyMaterialId": key.current_key_material_id}

    def GenerateDataKeyWithoutPlaintext(self, ctx, params):
        key, _, blob = self._data_key(ctx, params, "GenerateDataKeyWithoutPlaintext")
        return {"CiphertextBlob": blob, "KeyId": key.arn, "KeyMaterialId": key.current_key_material_id}

    def _symmetric_key(self, ctx, region: Region, key_ref: str, operation: str) -> KmsKey:
        key = self._live_key(ctx, region, key_ref, operation)
        if key.key_spec != SYMMETRIC_DEFAULT:
            raise errors.InvalidKeyUsageException(
                f"{key.arn} key spec {key.key_spec} is not valid for {operation}; it needs a "
                "symmetric encryption KMS key."
            )
        return key

    def _data_key_pair(self, ctx, params, operation):
        self._no_recipient(params)
        pair_spec = params["KeyPairSpec"]
        region = self.region(ctx.region)
        key = self._symmetric_key(ctx, region, params["KeyId"], operation)
        if KeySpec(pair_spec) not in DATA_KEY_PAIR_SPECS or not spec_info(pair_spec).supported:
            raise errors.UnsupportedOperationException(
                f"KeyPairSpec {pair_spec} is not supported by keyledger (see docs/compatibility.md)."
            )
        _dry_run(params)
        private_key, public_key = self._crypto.generate_key_pair(pair_spec)
        blob = self._seal(region, key, private_key, params.get("EncryptionContext"))
        result = {"PrivateKeyCiphertextBlob": blob, "PublicKey": public_key, "KeyId": key.arn,
                  "KeyPairSpec": pair_spec, "KeyMaterialId": key.current_key_material_id}
        return result, private_key

    def GenerateDataKeyPair(self, ctx, params):
        result, private_key = self._data_key_pair(ctx, params, "GenerateDataKeyPair")
        return {**result, "PrivateKeyPlaintext": private_key}

    def GenerateDataKeyPairWithoutPlaintext(self, ctx, params):
        return self._data_key_pair(ctx, params, "GenerateDataKeyPairWithoutPlaintext")[0]

    # -- signatures, MACs, key agreement, encapsulation ------------------------------------------

    def _usable_key(self, ctx, params, operation: str, usage: KeyUsage, algorithm: str | None):
        """The key of a request, checked for the usage and algorithm, and its region."""
        region = self.region(ctx.region)
        key = self._live_key(ctx, region, params["KeyId"], operation)
        key.check_use(operation, usage, algorithm)
        return key, region

    def _signing_key(self, ctx, params, operation):
        algorithm = params["SigningAlgorithm"]
        message_type = params.get("MessageType", "RAW")
        key, region = self._usable_key(ctx, params, operation, KeyUsage.SIGN_VERIFY, algorithm)
        check_signing_message(key.key_spec, algorithm, message_type, params["Message"])
        _dry_run(params)
        return key, self._cipher(region, key, key.current_key_material_id), algorithm, message_type

    async def Sign(self, ctx, params):
        key, private_key, algorithm, message_type = self._signing_key(ctx, params, "Sign")
        signature = await self._crypto.sign(key.key_spec, private_key, algorithm, message_type, params["Message"])
        return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": algorithm}

    async def Verify(self, ctx, params):
        key, private_key, algorithm, message_type = self._signing_key(ctx, params, "Verify")
        if not await self._crypto.verify(key.key_spec, private_key, algorithm, message_type,
                                         params["Message"], params["Signature"]):
            raise errors.KMSInvalidSignatureException("The signature is not valid.")
        return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}

    def GetPublicKey(self, ctx, params):
        region = self.region(ctx.region)
        key = self._live_key(ctx, region, params["KeyId"], "GetPublicKey")
        if not spec_info(key.key_spec).asymmetric:
            raise errors.UnsupportedOperationException(
                f"{key.arn} is a {key.key_spec} key, which has no public key."
            )
        return {
            "KeyId": key.arn,
            "PublicKey": key.current_material.public_key,
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
            **self._algorithm_fields(key),
        }

    def GenerateMac(self, ctx, params):
        algorithm = params["MacAlgorithm"]
        key, region = self._usable_key(ctx, params, "GenerateMac", KeyUsage.GENERATE_VERIFY_MAC, algorithm)
        _dry_run(params)
        hmac_key = self._cipher(region, key, key.current_key_material_id)
        return {"Mac": self._crypto.mac(hmac_key, algorithm, params["Message"]),
                "MacAlgorithm": algorithm, "KeyId": key.arn}

    def VerifyMac(self, ctx, params):
        algorithm = params["MacAlgorithm"]
        key, region = self._usable_key(ctx, params, "VerifyMac", KeyUsage.GENERATE_VERIFY_MAC, algorithm)
        _dry_run(params)
        hmac_key = self._cipher(region, key, key.current_key_material_id)
        if not self._crypto.verify_mac(hmac_key, algorithm, params["Message"], params["Mac"]):
            raise errors.KMSInvalidMacException("The MAC is not valid.")
        return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": algorithm}

    async def DeriveSharedSecret(self, ctx, params):
        self._no_recipient(params)
        algorithm = params["KeyAgreementAlgorithm"]
        key, region = self._usable_key(ctx, params, "DeriveSharedSecret", KeyUsage.KEY_AGREEMENT, algorithm)
        _dry_run(params)
        private_key = self._cipher(region, key, key.current_key_material_id)
        try:
            secret = await self._crypto.derive_shared_secret(private_key, params["PublicKey"])
        except self._crypto.BadKeyMaterial as error:
            raise errors.ValidationException(str(error)) from None
        return {"KeyId": key.arn, "SharedSecret": secret, "KeyAgreementAlgorithm": algorithm,
                "KeyOrigin": key.origin}

    def Encapsulate(self, ctx, params):
        algorithm = params["EncapsulationAlgorithm"]
        key, region = self._usable_key(ctx, params, "Encapsulate", KeyUsage.ENCAPSULATE_DECAPSULATE, algorithm)
        _dry_run(params)
        secret, ciphertext = self._crypto.encapsulate(self._cipher(region, key, key.current_key_material_id))
        return {"KeyId": key.arn, "SharedSecret": secret, "SharedSecretCiphertextBlob": ciphertext,
                "EncapsulationAlgorithm": algorithm}

    async def Decapsulate(self, ctx, params):
        algorithm = params["EncapsulationAlgorithm"]
        key, region = self._usable_key(ctx, params, "Decapsulate", KeyUsage.ENCAPSULATE_DECAPSULATE, algorithm)
        ciphertext = params["SharedSecretCiphertextBlob"]
        if len(ciphertext) != self._crypto.ML_KEM_CIPHERTEXT_BYTES[KeySpec(key.key_spec)]:
            raise errors.InvalidCiphertextException(
                f"The ciphertext length does not match key spec {key.key_spec}."
            )
        _dry_run(params)
        secret = await self._crypto.decapsulate(self._cipher(region, key, key.current_key_material_id),
                                                ciphertext)
        return {"KeyId": key.arn, "SharedSecret": secret, "EncapsulationAlgorithm": algorithm}

    def GenerateRandom(self, ctx, params):
        if params.get("CustomKeyStoreId"):
            raise errors.UnsupportedOperationException("Custom key stores are not supported.")
        self._no_recipient(params)
        number = params.get("NumberOfBytes")
        if number is None:
            raise errors.ValidationException(
                "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy "
                "constraint: Member must not be null"
            )
        return {"Plaintext": os.urandom(number)}

    # -- aliases --------------------------------------------------------------------------------

    def _alias_target_key(self, ctx, region: Region, target_ref: str, operation: str) -> KmsKey:
        if target_ref.startswith("alias/") or target_ref.startswith("arn:") and ":alias/" in target_ref:
            raise errors.ValidationException(
                "Aliases must refer to keys. Not aliases"
            )
        return self._live_key(ctx, region, target_ref, operation, allow_alias=False)

    def CreateAlias(self, ctx, params):
        region = self.region(ctx.region)
        alias_name = params["AliasName"]
        check_alias_name(alias_name)
        key = self._alias_target_key(ctx, region, params["TargetKeyId"], "CreateAlias")
        self._check_alias_count(ctx, region, key)
        now = self.clock.now()
        alias = region.ledger.get_alias(alias_aggregate_id(ctx.account_id, alias_name))
        if alias is None:
            alias = Alias.create(account=ctx.account_id, region=ctx.region, alias_name=alias_name,
                                 target_key_id=key.id, now=now, actor=ctx.actor)
        else:
            alias.recreate(key.id, now, ctx.actor)
        try:
            region.save(alias)
        except IntegrityError:
            raise errors.AlreadyExistsException(
                f"An alias with the name {alias_arn(ctx.region, ctx.account_id, alias_name)} already exists"
            ) from None
        return {}

    def _check_alias_count(self, ctx, region: Region, key: KmsKey) -> None:
        region.projection.catch_up()
        if len(region.directory.list_aliases(ctx.account_id, key.id, "", MAX_ALIASES_PER_KEY + 1)) >= MAX_ALIASES_PER_KEY:
            raise errors.LimitExceededException(
                f"A KMS key can have at most {MAX_ALIASES_PER_KEY} aliases."
            )

    def UpdateAlias(self, ctx, params):
        region = self.region(ctx.region)
        alias_name = params["AliasName"]
        check_alias_name(alias_name)
        key = self._alias_target_key(ctx, region, params["TargetKeyId"], "UpdateAlias")

        def retarget(alias: Alias) -> None:
            if alias.target_key_id != key.id:
                self._check_alias_count(ctx, region, key)
            alias.retarget(key.id, self.clock.now(), ctx.actor)

        self._change_alias(ctx, region, alias_name, retarget)
        return {}

    def DeleteAlias(self, ctx, params):
        region = self.region(ctx.region)
        self._change_alias(ctx, region, params["AliasName"], lambda a: a.delete(ctx.actor))
        return {}

    def _change_alias(self, ctx, region: Region, alias_name: str, change: Callable[[Alias], Any]):
        """Read the alias, apply ``change``, save (retried on a concurrent write)."""
        alias_id = alias_aggregate_id(ctx.account_id, alias_name)

        def load() -> Alias:
            alias = (
                region.ledger.get_alias(alias_id) if ALIAS_NAME_PATTERN.fullmatch(alias_name) else None
            )
            if alias is None:
                raise errors.NotFoundException(
                    f"Alias {alias_arn(ctx.region, ctx.account_id, alias_name)} is not found."
                )
            return alias

        _write(region, alias_id, load, change)

    def ListAliases(self, ctx, params):
        region = self.region(ctx.region)
        key_id = None
        if "KeyId" in params:
            key_id = self._live_key(ctx, region, params["KeyId"], "ListAliases", allow_alias=False).id
        after = _unmarker(params.get("Marker")) or ""
        limit = _limit(params, default=50, maximum=100)
        region.projection.catch_up()
        rows = region.directory.list_aliases(ctx.account_id, key_id, after, limit + 1)
        page, paging = _page(rows, limit, lambda row: row.alias_name)
        aliases = [
            {
                "AliasName": row.alias_name,
                "AliasArn": alias_arn(ctx.region, ctx.account_id, row.alias_name),
                "TargetKeyId": row.target_key_id,
                "CreationDate": datetime.fromtimestamp(row.creation_date, UTC),
                "LastUpdatedDate": datetime.fromtimestamp(row.last_updated_date, UTC),
            }
            for row in page
        ]
        return {"Aliases": aliases, **paging}

    # -- tags and policies ------------------------------------------------------------------------

    def TagResource(self, ctx, params):
        self._change_key(ctx, params["KeyId"], lambda k: k.tag(_tags(params["Tags"]), ctx.actor), allow_alias=False)
        return {}

    def UntagResource(self, ctx, params):
        self._change_key(ctx, params["KeyId"], lambda k: k.untag(params["TagKeys"], ctx.actor), allow_alias=False)
        return {}

    def ListResourceTags(self, ctx, params):
        key = self._live_key(ctx, self.region(ctx.region), params["KeyId"], "ListResourceTags", allow_alias=False)
        tag_keys = sorted(key.tags)
        start = _unmarker(params.get("Marker"))
        if start is not None:
            tag_keys = [k for k in tag_keys if k > start]
        limit = _limit(params, default=50, maximum=50)
        page, paging = _page(tag_keys, limit, lambda k: k)
        return {"Tags": [{"TagKey": k, "TagValue": key.tags[k]} for k in page], **paging}

    def GetKeyPolicy(self, ctx, params):
        key = self._live_key(ctx, self.region(ctx.region), params["KeyId"], "GetKeyPolicy", allow_alias=False)
        policy_name = params.get("PolicyName", DEFAULT_POLICY_NAME)
        check_policy_name(policy_name)
        return {"Policy": key.policy, "PolicyName": policy_name}

    def PutKeyPolicy(self, ctx, params):
        self._change_key(
            ctx, params["KeyId"],
            lambda k: k.put_policy(params.get("PolicyName", DEFAULT_POLICY_NAME), params["Policy"], ctx.actor),
            allow_alias=False,
        )
        return {}

    def ListKeyPolicies(self, ctx, params):
        self._live_key(ctx, self.region(ctx.region), params["KeyId"], "ListKeyPolicies", allow_alias=False)
        if params.get("Marker") is not None:
            _unmarker(params["Marker"])
            return {"PolicyNames": [], "Truncated": False}
        return {"PolicyNames": [DEFAULT_POLICY_NAME], "Truncated": False}

    # -- the ledger's own API ---------------------------------------------------------------------

    def key_history(self, region_name: str, key_id: str) -> list[dict[str, Any]]:
        """Every event of a key, oldest first, as plain data (no sealed material)."""
        if not KEY_ID_PATTERN.fullmatch(key_id) or (
            not self.has_region(region_name) and region_name not in self.known_regions()
        ):
            raise errors.NotFoundException(f"Key '{key_id[:64]}' does not exist in {region_name}")
        region = self.region(region_name)
        if region.ledger.get_key(key_id) is None:
            raise errors.NotFoundException(f"Key '{key_id}' does not exist in {region_name}")
        return [describe_event(e) for e in region.ledger.repository.event_store.get(key_id)]


def _token_digest(token: bytes) -> str:
    """How the ledger knows an import token: its SHA-256, so the audit trail never holds a
    usable token."""
    return hashlib.sha256(token).hexdigest()


def _import_token_id(token: bytes) -> str:
    """The id the wrapping key of an import token is sealed under (its AAD)."""
    return "import-token:" + _token_digest(token)


def describe_event(event: Any) -> dict[str, Any]:
    """A ledger event as audit data: type, version, time, actor and its non-secret fields."""
    details: dict[str, Any] = {}
    for name, value in vars(event).items():
        if name in ("originator_id", "originator_version", "timestamp", "originator_topic", "actor"):
            continue
        if isinstance(value, BackingKey):
            value = {"KeyMaterialId": value.key_material_id, "Created": value.created,
                     "RotationType": value.rotation_type.value if value.rotation_type else None,
                     "Imported": value.own_data_key}
        elif isinstance(value, bytes):
            continue
        elif dataclasses.is_dataclass(value):  # e.g. import parameters: never the sealed key
            value = {k: v for k, v in vars(value).items() if not isinstance(v, bytes)}
        details[name] = value
    actor = getattr(event, "actor", None)
    return {
        "Version": event.originator_version,
        "Type": type(event).__name__,
        "Timestamp": event.timestamp,
        "Actor": dict(vars(actor)) if actor is not None else None,
        "Details": details,
    }


def _tags(tags: list[dict[str, str]]) -> dict[str, str]:
    return {tag["TagKey"]: tag["TagValue"] for tag in tags}


#: Operations served on the event loop, from in-memory state, in microseconds. The coroutines
#: among them (Decrypt, ReEncrypt, Sign, Verify, DeriveSharedSecret, Decapsulate) await a crypto
#: helper process when a private key's work is costly (RSA, ML-DSA, ECDH, ML-KEM); the loop
#: serves other requests meanwhile. Every other operation reads or writes the store, or
#: generates keys, and runs on a thread.
HOT_OPERATIONS = frozenset(
    {"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
     "GenerateRandom", "DescribeKey", "GenerateMac", "VerifyMac", "GetPublicKey", "Sign", "Verify",
     "DeriveSharedSecret", "Encapsulate", "Decapsulate"}
)


IMPLEMENTED_OPERATIONS = frozenset(
    name for name, value in vars(KeyManagementService).items()
    if name[:1].isupper() and callable(value)
)
