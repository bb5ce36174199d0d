"""Asymmetric keys and HMAC keys: signatures, public keys, MACs, key agreement, ML-KEM."""

from __future__ import annotations

from application.handlers import Handlers, dry_run, no_recipient
from application.presenters import algorithm_fields
from domain.key_specs import KeySpec, KeyUsage, check_signing_message, spec_info
from domain.messages import Ciphertext, Signatures, Unsupported, Validation
from domain.operations import OPERATIONS, Operation

SIGN, VERIFY, GET_PUBLIC_KEY, GENERATE_MAC, VERIFY_MAC, DERIVE_SHARED_SECRET, ENCAPSULATE, \
    DECAPSULATE = (
        OPERATIONS[n] for n in ("Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac",
                                "DeriveSharedSecret", "Encapsulate", "Decapsulate")
    )


class AsymmetricKeys(Handlers):
    def _usable_key(self, ctx, params, operation: Operation, usage: KeyUsage, algorithm: str | None):
        """The key of a request, checked for the usage and algorithm, and its region."""
        region = self.region(ctx.region)
        key = self.gate.use(ctx, region, params["KeyId"], operation, operation.keys[0], params)
        key.check_use(operation.name, usage, algorithm)
        return key, region

    def _signing_key(self, ctx, params, operation: Operation):
        algorithm = params["SigningAlgorithm"]
        message_type = params.get("MessageType", "RAW")
        key, region = self._usable_key(ctx, params, operation, KeyUsage.SIGN_VERIFY, algorithm)
        check_signing_message(key.key_spec, algorithm, message_type, params["Message"])
        dry_run(params)
        return key, self.cipher(region, key, key.current_key_material_id), algorithm, message_type

    async def Sign(self, ctx, params):
        key, private_key, algorithm, message_type = self._signing_key(ctx, params, SIGN)
        signature = await self.crypto.sign(key.key_spec, private_key, algorithm, message_type, params["Message"])
        return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": algorithm}

    async def Verify(self, ctx, params):
        key, private_key, algorithm, message_type = self._signing_key(ctx, params, VERIFY)
        if not await self.crypto.verify(key.key_spec, private_key, algorithm, message_type,
                                        params["Message"], params["Signature"]):
            raise Signatures.INVALID_SIGNATURE()
        return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}

    def GetPublicKey(self, ctx, params):
        region = self.region(ctx.region)
        key = self.gate.use(ctx, region, params["KeyId"], GET_PUBLIC_KEY, GET_PUBLIC_KEY.keys[0], params)
        if not spec_info(key.key_spec).asymmetric:
            raise Unsupported.NO_PUBLIC_KEY(arn=key.arn, key_spec=key.key_spec)
        return {
            "KeyId": key.arn,
            "PublicKey": key.current_material.public_key,
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
            **algorithm_fields(key),
        }

    def GenerateMac(self, ctx, params):
        algorithm = params["MacAlgorithm"]
        key, region = self._usable_key(ctx, params, GENERATE_MAC, KeyUsage.GENERATE_VERIFY_MAC, algorithm)
        dry_run(params)
        hmac_key = self.cipher(region, key, key.current_key_material_id)
        return {"Mac": self.crypto.mac(hmac_key, algorithm, params["Message"]),
                "MacAlgorithm": algorithm, "KeyId": key.arn}

    def VerifyMac(self, ctx, params):
        algorithm = params["MacAlgorithm"]
        key, region = self._usable_key(ctx, params, VERIFY_MAC, KeyUsage.GENERATE_VERIFY_MAC, algorithm)
        dry_run(params)
        hmac_key = self.cipher(region, key, key.current_key_material_id)
        if not self.crypto.verify_mac(hmac_key, algorithm, params["Message"], params["Mac"]):
            raise Signatures.INVALID_MAC()
        return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": algorithm}

    async def DeriveSharedSecret(self, ctx, params):
        no_recipient(params)
        algorithm = params["KeyAgreementAlgorithm"]
        key, region = self._usable_key(ctx, params, DERIVE_SHARED_SECRET, KeyUsage.KEY_AGREEMENT, algorithm)
        dry_run(params)
        private_key = self.cipher(region, key, key.current_key_material_id)
        try:
            secret = await self.crypto.derive_shared_secret(private_key, params["PublicKey"])
        except self.crypto.BadKeyMaterial:
            raise Validation.INVALID_PUBLIC_KEY() from None
        return {"KeyId": key.arn, "SharedSecret": secret, "KeyAgreementAlgorithm": algorithm,
                "KeyOrigin": key.origin}

    def Encapsulate(self, ctx, params):
        algorithm = params["EncapsulationAlgorithm"]
        key, region = self._usable_key(ctx, params, ENCAPSULATE, KeyUsage.ENCAPSULATE_DECAPSULATE, algorithm)
        dry_run(params)
        secret, ciphertext = self.crypto.encapsulate(self.cipher(region, key, key.current_key_material_id))
        return {"KeyId": key.arn, "SharedSecret": secret, "SharedSecretCiphertextBlob": ciphertext,
                "EncapsulationAlgorithm": algorithm}

    async def Decapsulate(self, ctx, params):
        algorithm = params["EncapsulationAlgorithm"]
        key, region = self._usable_key(ctx, params, DECAPSULATE, KeyUsage.ENCAPSULATE_DECAPSULATE, algorithm)
        ciphertext = params["SharedSecretCiphertextBlob"]
        if len(ciphertext) != self.crypto.ML_KEM_CIPHERTEXT_BYTES[KeySpec(key.key_spec)]:
            raise Ciphertext.DECAPSULATION_LENGTH(key_spec=key.key_spec)
        dry_run(params)
        secret = await self.crypto.decapsulate(self.cipher(region, key, key.current_key_material_id),
                                               ciphertext)
        return {"KeyId": key.arn, "SharedSecret": secret, "EncapsulationAlgorithm": algorithm}
