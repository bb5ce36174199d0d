"""Encryption: Encrypt, Decrypt, ReEncrypt (symmetric and RSA) and GenerateRandom.

Served from in-memory state only (Region.live): no store access on these paths.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag

from application.handlers import Handlers, dry_run, no_recipient, require_ciphertext
from application.region import Region
from domain.key import KmsKey
from domain.key_specs import KeyUsage, check_rsa_plaintext
from domain.messages import Ciphertext, Unsupported, Validation
from domain.operations import OPERATIONS

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT, DECRYPT, RE_ENCRYPT, GENERATE_RANDOM = (
    OPERATIONS[n] for n in ("Encrypt", "Decrypt", "ReEncrypt", "GenerateRandom")
)
_ENCRYPT_KEY = ENCRYPT.keys[0]


def encryption_algorithm(key: KmsKey, algorithm: str | None, operation: str) -> str:
    """The encryption algorithm of a request, checked against the key."""
    algorithm = algorithm or SYMMETRIC_DEFAULT
    key.check_use(operation, KeyUsage.ENCRYPT_DECRYPT, algorithm)
    return algorithm


class Encryption(Handlers):
    def Encrypt(self, ctx, params):
        region = self.region(ctx.region)
        key = self.gate.use(ctx, region, params["KeyId"], ENCRYPT, _ENCRYPT_KEY, params)
        if "EncryptionAlgorithm" in params or key.key_spec != SYMMETRIC_DEFAULT:
            algorithm = encryption_algorithm(key, params.get("EncryptionAlgorithm"), "Encrypt")
            dry_run(params)
            blob = self.encrypt(region, key, algorithm, params["Plaintext"], params.get("EncryptionContext"))
            if algorithm == SYMMETRIC_DEFAULT:  # named in the request: the record names its material too
                ctx.key_material_id = key.current_key_material_id
            return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": algorithm}
        dry_run(params)
        blob = self.seal(region, key, params["Plaintext"], params.get("EncryptionContext"))
        ctx.key_material_id = key.current_key_material_id
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_DEFAULT}

    def encrypt(self, region: Region, key: KmsKey, algorithm: str, plaintext: bytes, context) -> bytes:
        if algorithm == SYMMETRIC_DEFAULT:
            return self.seal(region, key, plaintext, context)
        check_rsa_plaintext(key.key_spec, algorithm, plaintext)
        private_key = self.cipher(region, key, key.current_key_material_id)
        return self.crypto.rsa_encrypt(private_key, algorithm, plaintext)

    async def _open_asymmetric(self, ctx, region: Region, params: dict[str, Any], member: int,
                               algorithm: str, operation) -> tuple[KmsKey, str, bytes]:
        """Decrypt RSA ciphertext: the request names the key and the algorithm."""
        key_param = operation.keys[member].name
        if key_param not in params:
            raise Ciphertext.KEY_ID_REQUIRED(member=key_param, algorithm=algorithm)
        key = self.gate.use(ctx, region, params[key_param], operation, operation.keys[member], params)
        encryption_algorithm(key, algorithm, operation.name)
        material_id = key.current_key_material_id
        try:
            plaintext = await self.crypto.rsa_decrypt(self.cipher(region, key, material_id), algorithm,
                                                      params["CiphertextBlob"])
        except ValueError:
            raise Ciphertext.INVALID() from None
        return key, material_id, plaintext

    def _open(self, ctx, region: Region, params: dict[str, Any], member: int, context_param: str,
              operation) -> tuple[KmsKey, str, bytes]:
        """Decrypt keyledger's symmetric blob: the blob names the key."""
        key_member = operation.keys[member]
        key_param = key_member.name
        blob = params["CiphertextBlob"]
        gate = self.gate
        try:
            header = self.ciphertext.parse_header(blob)
        except self.ciphertext.MalformedCiphertext:
            if key_param in params:  # asymmetric key named without its algorithm?
                account, key_id, _ = gate.reference(ctx, region, params[key_param],
                                                    cross_account=operation.cross_account,
                                                    invalid_arn=operation.answers_invalid_arn)
                named = _own_key_named(gate, ctx, region, account, key_id)
                if named is not None and named.key_spec != SYMMETRIC_DEFAULT:
                    encryption_algorithm(named, SYMMETRIC_DEFAULT, operation.name)
            raise Ciphertext.INVALID() from None
        alias = None  # (kms:RequestAlias: the alias the request named the key by, if any)
        if key_param in params:
            account, requested, alias = gate.reference(ctx, region, params[key_param],
                                                       cross_account=operation.cross_account,
                                                       invalid_arn=operation.answers_invalid_arn)
            if requested != header.key_id:
                _own_key_named(gate, ctx, region, account, requested)
                raise Ciphertext.INCORRECT_KEY()
        # The blob names the key by id; a key of another account is found too ("Cross-account
        # use: Yes"), and its key policy decides whether this caller may use it.
        key = gate.known_key(region, None, header.key_id)
        if key is None or (key_param in params and params[key_param].startswith("arn:")
                           and key.account != account):
            raise Ciphertext.UNKNOWN_KEY()
        gate.use_named(ctx, region, key, operation, key_member, params, alias)
        try:
            plaintext = self.ciphertext.open_sealed(
                self.cipher(region, key, header.key_material_id), header, blob, params.get(context_param)
            )
        except InvalidTag:
            raise Ciphertext.INVALID() from None
        return key, header.key_material_id, plaintext

    async def Decrypt(self, ctx, params):
        no_recipient(params)
        require_ciphertext(params)
        region = self.region(ctx.region)
        algorithm = params.get("EncryptionAlgorithm", SYMMETRIC_DEFAULT)
        if algorithm == SYMMETRIC_DEFAULT:
            key, material_id, plaintext = self._open(ctx, region, params, 0, "EncryptionContext", DECRYPT)
        else:
            key, material_id, plaintext = await self._open_asymmetric(ctx, region, params, 0, algorithm,
                                                                      DECRYPT)
        dry_run(params)
        result = {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}
        if algorithm == SYMMETRIC_DEFAULT:  # "present only when ... a symmetric encryption key"
            result["KeyMaterialId"] = material_id
        return result

    async def ReEncrypt(self, ctx, params):
        require_ciphertext(params)
        region = self.region(ctx.region)
        source_algorithm = params.get("SourceEncryptionAlgorithm", SYMMETRIC_DEFAULT)
        if source_algorithm == SYMMETRIC_DEFAULT:
            source, source_material, plaintext = self._open(
                ctx, region, params, 0, "SourceEncryptionContext", RE_ENCRYPT
            )
        else:
            source, source_material, plaintext = await self._open_asymmetric(
                ctx, region, params, 0, source_algorithm, RE_ENCRYPT
            )
        destination = self.gate.use(ctx, region, params["DestinationKeyId"], RE_ENCRYPT,
                                    RE_ENCRYPT.keys[1], params)
        algorithm = encryption_algorithm(
            destination, params.get("DestinationEncryptionAlgorithm"), "ReEncrypt"
        )
        dry_run(params)
        blob = self.encrypt(region, destination, algorithm, plaintext, params.get("DestinationEncryptionContext"))
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

    def GenerateRandom(self, ctx, params):
        if params.get("CustomKeyStoreId"):
            raise Unsupported.CUSTOM_KEY_STORE()
        no_recipient(params)
        number = params.get("NumberOfBytes")
        if number is None:
            raise Validation.NUMBER_OF_BYTES_REQUIRED()
        self.authorizer.check_request(ctx, GENERATE_RANDOM, params)
        return {"Plaintext": os.urandom(number)}


def _own_key_named(gate, ctx, region: Region, account: str | None, key_id: str) -> KmsKey | None:
    """The caller's own key that a request refused before using it named, now named in its
    record too (the key's audit lists the attempt); None for no such key or another account's:
    that one is not examined before its policy is, nor named in the record, which would be
    copied into that account's audit by a caller it never allowed."""
    named = gate.known_key(region, account, key_id)
    if named is None or named.account != ctx.account_id:
        return None
    ctx.resources.append(named.arn)
    return named
