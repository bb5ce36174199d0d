"""Imported key material: import parameters, import, deletion of imported material."""

from __future__ import annotations

import hashlib
import os

from application.handlers import Handlers
from application.shredder import finish_shredding
from domain.key import KmsKey
from domain.messages import Import
from domain.operations import OPERATIONS
from domain.values import BackingKey

GET_PARAMETERS_FOR_IMPORT, IMPORT_KEY_MATERIAL, DELETE_IMPORTED_KEY_MATERIAL = (
    OPERATIONS[n] for n in ("GetParametersForImport", "ImportKeyMaterial", "DeleteImportedKeyMaterial")
)


def token_digest(token: bytes) -> str:
    """How the ledger knows an import token: its SHA-256, so the audit trail never holds a
    usable token."""
    return hashlib.sha256(token).hexdigest()


def import_token_id(token: bytes) -> str:
    """The id the wrapping key of an import token is sealed under (its AAD)."""
    return "import-token:" + token_digest(token)


class ImportedMaterial(Handlers):
    def GetParametersForImport(self, ctx, params):
        wrapping_spec, algorithm = params["WrappingKeySpec"], params["WrappingAlgorithm"]
        if wrapping_spec == "SM2" or algorithm == "SM2PKE":
            raise Import.SM2_WRAPPING()
        if algorithm == "RSAES_PKCS1_V1_5":
            raise Import.PKCS1_WRAPPING()
        region = self.region(ctx.region)
        operation = GET_PARAMETERS_FOR_IMPORT
        # fail fast (and without generating an RSA key) for keys that cannot import
        self.gate.use(ctx, region, params["KeyId"], operation, operation.keys[0], params).check_importable(
            operation.name
        )
        wrapping_key, public_key = self.crypto.generate_key_pair(wrapping_spec)
        token = os.urandom(32)
        issued = {}

        def issue(key: KmsKey) -> None:
            sealed = region.hierarchy.seal(key.id, import_token_id(token), wrapping_key)
            issued["parameters"] = key.issue_import_parameters(
                token_digest(token), wrapping_spec, algorithm, sealed, self.clock.now(), ctx.actor
            )

        key = self.gate.change(ctx, region, params["KeyId"], operation, params, issue)
        return {"KeyId": key.arn, "ImportToken": token, "PublicKey": public_key,
                "ParametersValidTo": issued["parameters"].valid_to}

    def ImportKeyMaterial(self, ctx, params):
        region = self.region(ctx.region)
        now = self.clock.now()
        operation = IMPORT_KEY_MATERIAL
        key = self.gate.use(ctx, region, params["KeyId"], operation, operation.keys[0], params)
        token = params["ImportToken"]
        parameters = key.import_parameters_for(token_digest(token), now)
        wrapping_key = region.hierarchy.unseal(key.id, import_token_id(token), parameters.sealed_wrapping_key)
        try:
            material = self.crypto.unwrap(wrapping_key, parameters.wrapping_algorithm,
                                          params["EncryptedKeyMaterial"])
        except ValueError:
            raise Import.UNWRAP_FAILED() from None
        try:
            self.crypto.check_import(key.key_spec, material)
        except self.crypto.BadKeyMaterial as error:
            raise Import.BAD_MATERIAL(detail=str(error)) from None
        material_id = self.crypto.imported_material_id(key.id, material)
        data_key, wrapped = region.hierarchy.material_data_key(key.id, material_id)
        backing = BackingKey(
            material_id, region.hierarchy.seal(key.id, material_id, material, data_key), now,
            public_key=self.crypto.public_key(key.key_spec, material), own_data_key=True,
        )
        key = self.gate.change(
            ctx, region, params["KeyId"], operation, params,
            lambda k: (k.import_material(
                backing, import_type=params.get("ImportType"),
                key_material_id=params.get("KeyMaterialId"),
                description=params.get("KeyMaterialDescription"),
                expiration_model=params.get("ExpirationModel"), valid_to=params.get("ValidTo"),
                now=now, actor=ctx.actor,
            ), self.share_with_replicas(region, k, ctx.actor)),  # a set's replicas learn its id
            data_keys=() if wrapped is None else ((region.hierarchy.material_entry(key.id, material_id), wrapped),),
        )
        return {"KeyId": key.arn, "KeyMaterialId": material_id}

    def DeleteImportedKeyMaterial(self, ctx, params):
        region = self.region(ctx.region)
        deleted = {}

        def delete(key: KmsKey) -> None:
            deleted["id"] = key.delete_imported_material(params.get("KeyMaterialId"), ctx.actor)

        key = self.gate.change(ctx, region, params["KeyId"], DELETE_IMPORTED_KEY_MATERIAL, params, delete)
        if key.material_shred_pending:
            # The deletion is recorded; now destroy the material's own data key, and record that.
            region.change(key.id, lambda: region.ledger.get_key(key.id),
                          lambda k: finish_shredding(region, k, ctx.actor))
        if deleted["id"] is None:  # a key that never had material: no effect
            return {"KeyId": key.arn}
        return {"KeyId": key.arn, "KeyMaterialId": deleted["id"]}
