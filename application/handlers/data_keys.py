"""Data keys and data key pairs, encrypted under a symmetric KMS key."""

from __future__ import annotations

import os

from application.handlers import Handlers, dry_run, no_recipient
from domain.key import KmsKey
from domain.key_specs import DATA_KEY_PAIR_SPECS, KeySpec, KeyUsage, spec_info
from domain.messages import KeyUsage as Usage
from domain.messages import Unsupported, Validation
from domain.operations import OPERATIONS, Operation

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}
GENERATE_DATA_KEY, GENERATE_DATA_KEY_WITHOUT_PLAINTEXT, GENERATE_DATA_KEY_PAIR, \
    GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT = (
        OPERATIONS[n] for n in ("GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                                "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext")
    )


class DataKeys(Handlers):
    def _symmetric_key(self, ctx, region, params, operation: Operation) -> KmsKey:
        key = self.gate.use(ctx, region, params["KeyId"], operation, operation.keys[0], params)
        key.check_use(operation.name, KeyUsage.ENCRYPT_DECRYPT)
        if key.key_spec != SYMMETRIC_DEFAULT:
            raise Usage.NOT_SYMMETRIC(arn=key.arn, key_spec=key.key_spec, operation=operation.name)
        return key

    def _data_key(self, ctx, params, operation: Operation):
        no_recipient(params)
        number, spec = params.get("NumberOfBytes"), params.get("KeySpec")
        if (number is None) == (spec is None):
            raise (Validation.DATA_KEY_SIZE_MISSING() if number is None
                   else Validation.DATA_KEY_SIZE_TWICE())
        region = self.region(ctx.region)
        key = self._symmetric_key(ctx, region, params, operation)
        dry_run(params)
        plaintext = os.urandom(number if number is not None else DATA_KEY_BYTES[spec])
        blob = self.seal(region, key, plaintext, params.get("EncryptionContext"))
        return key, plaintext, blob

    def GenerateDataKey(self, ctx, params):
        key, plaintext, blob = self._data_key(ctx, params, GENERATE_DATA_KEY)
        return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": key.arn,
                "KeyMaterialId": key.current_key_material_id}

    def GenerateDataKeyWithoutPlaintext(self, ctx, params):
        key, _, blob = self._data_key(ctx, params, GENERATE_DATA_KEY_WITHOUT_PLAINTEXT)
        return {"CiphertextBlob": blob, "KeyId": key.arn, "KeyMaterialId": key.current_key_material_id}

    def _data_key_pair(self, ctx, params, operation: Operation):
        no_recipient(params)
        pair_spec = params["KeyPairSpec"]
        region = self.region(ctx.region)
        key = self._symmetric_key(ctx, region, params, operation)
        if KeySpec(pair_spec) not in DATA_KEY_PAIR_SPECS or not spec_info(pair_spec).supported:
            raise Unsupported.KEY_PAIR_SPEC(key_pair_spec=pair_spec)
        dry_run(params)
        private_key, public_key = self.crypto.generate_key_pair(pair_spec)
        blob = self.seal(region, key, private_key, params.get("EncryptionContext"))
        result = {"PrivateKeyCiphertextBlob": blob, "PublicKey": public_key, "KeyId": key.arn,
                  "KeyPairSpec": pair_spec, "KeyMaterialId": key.current_key_material_id}
        return result, private_key

    def GenerateDataKeyPair(self, ctx, params):
        result, private_key = self._data_key_pair(ctx, params, GENERATE_DATA_KEY_PAIR)
        return {**result, "PrivateKeyPlaintext": private_key}

    def GenerateDataKeyPairWithoutPlaintext(self, ctx, params):
        return self._data_key_pair(ctx, params, GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT)[0]
