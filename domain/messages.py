"""The texts of the errors keyledger answers, one table per error family, and where each
was seen coming from AWS KMS.

Every error a KMS operation can answer is made here: ``raise NotFound.KEY(arn=...)``. An entry
names the error shape (its ``code``; the HTTP status is the shape's, domain.errors), the text
AWS sends as a template, or None where AWS sends no ``message`` member at all (the protocol
layer then leaves it out), and the source the text was confirmed against. An entry without a
source is keyledger's own text: docs/compatibility.md lists it under "Messages not confirmed
against AWS" (tests/unit/test_messages.py keeps the two in step), and the fidelity table
(tests/e2e/test_fidelity.py) has a row for every entry.

Not here: the texts of the other families, each kept in one place of its own — SigV4
authentication (infrastructure/sigv4.py), key policy grammar (domain/policy.py) and
authorization refusals (domain/authorization.py, ``Decision.message``).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import ERROR_TYPES, KmsError


def recorded(test: str) -> str:
    """A response recorded from AWS by localstack's snapshot tests (markers.aws.validated)."""
    return f"AWS response recorded in localstack tests/aws/services/kms/test_kms.snapshot.json: {test}"


@dataclass(frozen=True, slots=True)
class Text:
    """One error of the catalogue: shape, message template (None: no message member), source."""

    code: str
    template: str | None
    source: str | None = None  # None: not confirmed against AWS
    #: False: raised inside the service (scheduler, shredder), never answered to a client
    answered: bool = True

    def __call__(self, **fields: object) -> KmsError:
        message = None if self.template is None else self.template.format(**fields)
        return ERROR_TYPES[self.code](message)

    def text(self, **fields: object) -> str | None:
        return None if self.template is None else self.template.format(**fields)


# -- finding keys, aliases, grants ----------------------------------------------------------------


class NotFound:
    KEY = Text("NotFoundException", "Key '{arn}' does not exist",
               recorded("test_get_key_does_not_exist, test_rotate_key_on_demand_raises_error_given_"
                        "key_that_does_not_exist"))
    #: anything that is not a key id (UUID, or mrk- and 32 hex digits) where a key id is expected
    INVALID_KEY_ID = Text("NotFoundException", "Invalid keyId '{key_id}'",
                          recorded("test_get_key_invalid_uuid, test_generate_and_verify_mac"))
    #: a key ARN of another Region
    INVALID_ARN_REGION = Text("NotFoundException", "Invalid arn {region}",
                              recorded("test_get_key_in_different_region"))
    ALIAS = Text("NotFoundException", "Alias {alias_arn} is not found.",
                 "github.com/cloudposse/docs/issues/152, github.com/sigstore/cosign/issues/1474")
    GRANT = Text("NotFoundException", "Grant ID {grant_id} not found for key {arn}.")
    POLICY = Text("NotFoundException", "No such policy exists")
    KEY_MATERIAL = Text("NotFoundException", "Key material {material_id} is not associated with {arn}.")


class InvalidArn:
    MALFORMED = Text("InvalidArnException", "Invalid arn {arn}")
    #: an alias ARN where only a key may be named (CreateGrant, as Lambda relays it)
    ALIAS_NOT_SUPPORTED = Text(
        "InvalidArnException", "Key Aliases are not supported for this operation.",
        "github.com/hashicorp/terraform/issues/20813, "
        "github.com/ministryofjustice/modernisation-platform/pull/8298 (KMS CreateGrant relayed by Lambda)",
    )
    #: AWS's text for a grantee that does not exist (yet), as Lambda relays it
    PRINCIPAL = Text("InvalidArnException", "ARN does not refer to a valid principal: {principal}",
                     "KMS CreateGrant error relayed by Lambda: \"KMS Exception: InvalidArnException "
                     "KMS Message: ARN does not refer to a valid principal: arn:aws:sts::…\"")
    NOT_IN_ACCOUNT = Text(
        "InvalidArnException",
        "{principal} is not a principal in account {account}: ListRetirableGrants lists the "
        "grants of a principal in your account.",
    )


# -- key state ------------------------------------------------------------------------------------


class KeyState:
    DISABLED = Text("DisabledException", "{arn} is disabled.",
                    recorded("test_rotate_key_on_demand_raises_error_given_key_is_disabled"))
    PENDING_DELETION = Text("KMSInvalidStateException", "{arn} is pending deletion.",
                            "github.com/hashicorp/terraform-provider-aws/issues/17889 (ScheduleKeyDeletion)")
    PENDING_IMPORT = Text("KMSInvalidStateException", "{arn} is pending import.",
                          recorded("test_import_key_symmetric (Encrypt before the import)"))
    #: multi-Region keys: a replica waiting for its material, a key whose primary Region changes
    CREATING = Text("KMSInvalidStateException", "{arn} is creating.",
                    "KMS Developer Guide, key-state.html (archived 2023), footnote 14")
    UPDATING = Text("KMSInvalidStateException", "{arn} is updating.",
                    "KMS Developer Guide, key-state.html (archived 2023), footnote 15")
    PENDING_REPLICA_DELETION = Text("KMSInvalidStateException", "{arn} is pending replica deletion.")
    #: KMSInvalidStateException for a state the texts above do not name (Disabled or
    #: Unavailable where the key-state table answers KMSInvalidStateException)
    OTHER = Text("KMSInvalidStateException", "{arn} {state_phrase}.")
    NOT_PENDING_DELETION = Text("KMSInvalidStateException", "{arn} is not pending deletion.")
    UNAVAILABLE = Text("KeyUnavailableException", "{arn} is unavailable.")
    #: the data key is destroyed while the deletion completes
    MATERIAL_GONE = Text("KeyUnavailableException", "{arn} is unavailable.")
    # the scheduler's own checks: never answered to a client
    NOT_DUE_FOR_DELETION = Text("KMSInvalidStateException", "{arn} is not due for deletion.",
                                answered=False)
    NOT_AWAITING_SHRED = Text("KMSInvalidStateException", "{what} is not awaiting shredding.",
                              answered=False)
    NOT_DUE_FOR_ROTATION = Text("KMSInvalidStateException", "{arn} is not due for rotation.",
                                answered=False)


# -- key usage and algorithms ---------------------------------------------------------------------


class KeyUsage:
    WRONG_USAGE = Text("InvalidKeyUsageException",
                       "{arn} key usage is {usage} which is not valid for {operation}.",
                       recorded("test_error_messaging_for_invalid_keys, test_derive_shared_secret"))
    WRONG_ALGORITHM = Text("InvalidKeyUsageException",
                           "Algorithm {algorithm} is incompatible with key spec {key_spec}.",
                           recorded("test_invalid_generate_mac, test_invalid_verify_mac"))
    #: an ENCRYPT_DECRYPT key that is not a symmetric encryption key (data keys need one)
    NOT_SYMMETRIC = Text("InvalidKeyUsageException",
                         "{arn} key spec {key_spec} is not valid for {operation}; it needs a "
                         "symmetric encryption KMS key.")


# -- validation -----------------------------------------------------------------------------------

_VALIDATION_FORMAT = recorded(
    "test_generate_random_invalid_number_of_bytes, test_plaintext_size_for_encrypt, "
    "test_key_with_long_tag_value_raises_error (the model's generic form)"
)


class Validation:
    #: the model's constraints (api/protocol.py builds ``details``)
    MODEL = Text("ValidationException", "{count} validation {noun} detected: {details}",
                 _VALIDATION_FORMAT)
    #: the generic form for rules keyledger checks beyond the model (Limit, PendingWindowInDays,
    #: RotationPeriodInDays, a missing member the model leaves optional): the form is AWS's,
    #: the bound these rules apply is not confirmed
    CONSTRAINT = Text("ValidationException",
                      "1 validation error detected: Value '{value}' at '{member}' failed to "
                      "satisfy constraint: Member must have value {bound}")
    MISSING = Text("ValidationException",
                   "1 validation error detected: Value null at '{member}' failed to satisfy "
                   "constraint: Member must not be null")
    NUMBER_OF_BYTES_REQUIRED = Text("ValidationException", "NumberOfBytes is required.",
                                    recorded("test_generate_random_invalid_number_of_bytes[None]"))
    RSA_PLAINTEXT_TOO_LONG = Text(
        "ValidationException",
        "Algorithm {algorithm} and key spec {key_spec} cannot encrypt data larger than {limit} bytes.",
        recorded("test_encrypt_validate_plaintext_size_per_key_type"),
    )
    KEY_USAGE_REQUIRED = Text(
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
        recorded("test_hmac_create_key_invalid_operations"),
    )
    USAGE_NOT_COMPATIBLE = Text("ValidationException",
                                "KeyUsage {usage} is not compatible with KeySpec {key_spec}",
                                recorded("test_derive_shared_secret (response-invalid-key-spec)"))
    SPEC_AND_CMK_SPEC = Text("ValidationException",
                             "You cannot specify KeySpec and CustomerMasterKeySpec in the same request.")
    DIGEST_LENGTH = Text("ValidationException", "Digest is invalid length for algorithm {algorithm}.",
                         recorded("test_sign_verify (bad-digest)"))
    EXTERNAL_MU_KEY = Text("ValidationException",
                           "MessageType EXTERNAL_MU is only valid for ML-DSA keys, not {key_spec}.")
    EXTERNAL_MU_LENGTH = Text("ValidationException",
                              "Message of type EXTERNAL_MU must be {length} bytes long.")
    DIGEST_ML_DSA = Text("ValidationException",
                         "MessageType DIGEST is not valid for ML-DSA keys; use RAW or EXTERNAL_MU.")
    ED25519_RAW_ONLY = Text("ValidationException",
                            "The ED25519_SHA_512 signing algorithm requires MessageType RAW.")
    ED25519_PH_DIGEST_ONLY = Text("ValidationException",
                                  "The ED25519_PH_SHA_512 signing algorithm requires MessageType DIGEST.")
    #: DeriveSharedSecret with a PublicKey that is not a valid key of the curve: no message
    INVALID_PUBLIC_KEY = Text("ValidationException", None,
                              recorded("test_derive_shared_secret (response-invalid-public-key)"))
    DATA_KEY_SIZE_MISSING = Text("ValidationException",
                                 "Please specify either number of bytes or key spec.")
    DATA_KEY_SIZE_TWICE = Text("ValidationException",
                               "You cannot specify both KeySpec and NumberOfBytes.")
    VALID_TO_REQUIRED = Text(
        "ValidationException",
        "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        recorded("test_import_key_symmetric (import-expiring-key-without-valid-to)"),
    )
    VALID_TO_RANGE = Text("ValidationException",
                          "ValidTo must be a future date no more than 365 days from now.")
    VALID_TO_NOT_ALLOWED = Text(
        "ValidationException",
        "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.",
    )
    KEY_MATERIAL_ID_WITH_NEW = Text(
        "ValidationException",
        "You cannot specify a KeyMaterialId with ImportType NEW_KEY_MATERIAL.",
    )


# -- aliases --------------------------------------------------------------------------------------


class Aliases:
    PREFIX = Text(
        "ValidationException",
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        recorded("test_create_alias") + "; github.com/aws-controllers-k8s/community/issues/1878",
    )
    INVALID_CHARACTERS = Text("ValidationException",
                              "{alias_name} contains invalid characters for an alias")
    RESERVED = Text("NotAuthorizedException",
                    "Cannot create or change {alias_name}: the prefix 'alias/aws/' is reserved "
                    "for AWS managed keys.")
    TARGET_IS_ALIAS = Text("ValidationException", "Aliases must refer to keys. Not aliases")
    ALREADY_EXISTS = Text(
        "AlreadyExistsException", "An alias with the name {alias_arn} already exists",
        "github.com/cloudbees-oss/terraform-aws-cloudbees-ci-eks-addon/issues/66, "
        "github.com/crossplane-contrib/provider-aws/issues/1741",
    )
    TOO_MANY = Text("LimitExceededException", "A KMS key can have at most {limit} aliases.")


# -- tags -----------------------------------------------------------------------------------------


class Tags:
    DUPLICATE_KEYS = Text("TagException", "Duplicate tag keys",
                          recorded("test_tag_key_with_duplicate_tag_keys_raises_error"))
    #: more than 50 tags in one request
    TOO_MANY = Text("TagException", "Too many tags",
                    recorded("test_create_key_with_too_many_tags_raises_error"))
    #: a tag key beginning with aws: in any case (aws:, AWS:, Aws:)
    RESERVED = Text("TagException", "Tags beginning with aws: are reserved",
                    recorded("test_create_key_with_invalid_tag_key, "
                             "test_tag_existing_key_with_invalid_tag_key"))
    #: a key's tags would exceed 50 after TagResource merges the new ones
    LIMIT = Text("LimitExceededException",
                 "The request was rejected because {arn} would have more than {limit} tags.")


# -- ciphertext, signatures, MACs -----------------------------------------------------------------


class Ciphertext:
    #: a ciphertext that does not authenticate (tampered, wrong encryption context, not a
    #: ciphertext at all): AWS sends no message
    INVALID = Text("InvalidCiphertextException", None,
                   recorded("test_encrypt_decrypt_encryption_context, "
                            "test_encryption_context_generate_data_key, "
                            "test_key_rotations_encryption_decryption"))
    KEY_ID_REQUIRED = Text("InvalidCiphertextException",
                           "{member} is required to decrypt ciphertext of algorithm {algorithm}.")
    MATERIAL_UNKNOWN = Text("InvalidCiphertextException",
                            "The ciphertext refers to key material that does not exist.")
    MATERIAL_DELETED = Text("KMSInvalidStateException",
                            "{arn} key material {material_id} was deleted or has expired; "
                            "reimport it to use this ciphertext.")
    DECAPSULATION_LENGTH = Text("InvalidCiphertextException",
                                "The ciphertext length does not match key spec {key_spec}.")
    INCORRECT_KEY = Text(
        "IncorrectKeyException",
        "The key ID in the request does not identify a CMK that can perform this operation.",
        recorded("test_error_messaging_for_invalid_keys, test_re_encrypt_incorrect_source_key"),
    )
    UNKNOWN_KEY = Text(
        "AccessDeniedException",
        "The ciphertext refers to a customer master key that does not exist, does not exist in "
        "this region, or you are not allowed to access.",
        "github.com/aceew/aws-lambda-env-vars/issues/7, "
        "github.com/aws/aws-encryption-sdk-javascript/issues/1005",
    )


class Signatures:
    INVALID_SIGNATURE = Text("KMSInvalidSignatureException", None,
                             recorded("test_sign_verify (bad-signature)"))
    INVALID_MAC = Text("KMSInvalidMacException", None, recorded("test_invalid_verify_mac"))


# -- rotation -------------------------------------------------------------------------------------


class Rotation:
    #: RotateKeyOnDemand of an asymmetric or HMAC key: no message
    ON_DEMAND_UNSUPPORTED = Text(
        "UnsupportedOperationException", None,
        recorded("test_rotate_key_on_demand_raises_error_given_non_symmetric_key"),
    )
    AUTOMATIC_UNSUPPORTED = Text(
        "UnsupportedOperationException",
        "{arn} key spec {key_spec} with origin {origin} does not support automatic key rotation.",
    )
    #: 25 on-demand rotations per key (API Reference, RotateKeyOnDemand; not adjustable)
    ON_DEMAND_LIMIT = Text(
        "LimitExceededException",
        "The on-demand rotations limit has been reached for the given keyId. No more on-demand "
        "rotations can be performed for this key: {arn}",
        recorded("test_key_rotations_limits"),
    )
    #: an imported key without material in PENDING_ROTATION state
    NO_PENDING_MATERIAL = Text(
        "KMSInvalidStateException", "No available key material pending rotation for the key: {arn}.",
        "keyledger issue 12 (quoted there from a recorded AWS response)",
    )
    #: RotateKeyOnDemand while an automatic rotation is due within 20 minutes (the model's
    #: ConflictException: "an automatic rotation of this key is currently in progress or
    #: scheduled to begin within the next 20 minutes"); the text is the model's description
    AUTOMATIC_ROTATION_DUE = Text(
        "ConflictException",
        "The request was rejected because an automatic rotation of this key is currently in "
        "progress or scheduled to begin within the next 20 minutes.",
    )
    ALL_KEY_MATERIAL_UNSUPPORTED = Text(
        "UnsupportedOperationException",
        "{arn} is a {key_spec} key, which does not support key rotation: "
        "IncludeKeyMaterial=ALL_KEY_MATERIAL is not valid for it.",
    )


# -- imported key material ------------------------------------------------------------------------


class Import:
    NOT_EXTERNAL = Text("UnsupportedOperationException",
                        "{arn} origin is {origin} which is not valid for this operation.",
                        recorded("test_get_parameters_for_import"))
    SM2_WRAPPING = Text("UnsupportedOperationException",
                        "SM2 wrapping keys are available only in China Regions.")
    PKCS1_WRAPPING = Text("UnsupportedOperationException",
                          "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported; use "
                          "RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256.")
    INVALID_TOKEN = Text("InvalidImportTokenException",
                         "The import token is invalid or does not belong to this KMS key.")
    EXPIRED_TOKEN = Text("ExpiredImportTokenException",
                         "The import token has expired. Use GetParametersForImport to get a new one.")
    UNWRAP_FAILED = Text("InvalidCiphertextException",
                         "The EncryptedKeyMaterial could not be decrypted with the import parameters.")
    #: material that is not valid for the key spec (the crypto adapter says why)
    BAD_MATERIAL = Text("IncorrectKeyMaterialException", "{detail}")
    DIFFERENT_MATERIAL = Text("IncorrectKeyMaterialException",
                              "The key material doesn't match the key material previously "
                              "imported into this KMS key.")
    ALREADY_ASSOCIATED = Text("IncorrectKeyMaterialException",
                              "The key material is already associated with this KMS key; import "
                              "it with ImportType EXISTING_KEY_MATERIAL.")
    SECOND_PENDING = Text("KMSInvalidStateException",
                          "{arn} already has key material in PENDING_ROTATION state.")
    SYMMETRIC_ONLY = Text("UnsupportedOperationException",
                          "{members} can be used only with symmetric encryption keys; {arn} is a "
                          "{key_spec} key.")


# -- grants ---------------------------------------------------------------------------------------


class Grants:
    INVALID_GRANT_ID = Text("InvalidGrantIdException", "'{grant_id}' is not a valid grant ID.")
    INVALID_GRANT_TOKEN = Text("InvalidGrantTokenException", "The grant token is not valid.")
    NO_OPERATIONS = Text("ValidationException", "Operations must include at least one grant operation.")
    UNKNOWN_OPERATION = Text("ValidationException", "{operation} is not a valid grant operation.")
    OPERATIONS_REFUSED = Text("ValidationException",
                              "The grant {noun} {operations} {verb} not supported for a KMS key "
                              "with KeySpec {key_spec} and KeyUsage {key_usage}.")
    CONSTRAINTS_REFUSED = Text("ValidationException",
                               "Encryption context grant constraints are not supported for a KMS "
                               "key with KeySpec {key_spec} and KeyUsage {key_usage}.")
    CONSTRAINT_PAIRS = Text("ValidationException",
                            "{name} can contain at most {limit} encryption context pairs.")
    CONSTRAINT_VALUE = Text("ValidationException",
                            "Each value in {name} can be at most {limit} characters long.")
    CHILD_GRANT = Text("AccessDeniedException",
                       "Grant {grant_id} allows creating only grants that allow a subset of its "
                       "operations ({operations}) with equally strict or stricter encryption "
                       "context constraints.")
    TOO_MANY = Text("LimitExceededException",
                    "The request was rejected because {arn} already has the maximum of {limit} grants.")
    RETIRE_WHICH = Text("ValidationException",
                        "Specify either the GrantToken, or both the KeyId and the GrantId, of the "
                        "grant to retire.")
    RETIRE_MISMATCH = Text("ValidationException",
                           "The GrantToken names a different grant than the KeyId and GrantId.")
    RETIRING_BOTH = Text("ValidationException",
                         "You must specify either RetiringPrincipal or RetiringServicePrincipal, "
                         "but not both.")
    #: AWS's refusal form (IAM: "User: … is not authorized to perform: … because no
    #: resource-based policy allows …", seen on KMS: github.com/elastic/cloudbeat/issues/1749)
    NOT_AUTHORIZED = Text("AccessDeniedException",
                          "User: {principal} is not authorized to perform: {action} on resource: "
                          "{resource} because no resource-based policy allows the {action} action",
                          "github.com/elastic/cloudbeat/issues/1749, "
                          "github.com/4dn-dcic/tibanna/issues/402")


# -- what keyledger does not implement ------------------------------------------------------------


class Unsupported:
    OPERATION = Text("UnsupportedOperationException", "keyledger does not implement {operation} yet.")
    ORIGIN = Text("UnsupportedOperationException",
                  "Origin {origin} (custom key stores) is not supported.")
    CUSTOM_KEY_STORE = Text("UnsupportedOperationException", "Custom key stores are not supported.")
    RECIPIENT = Text("UnsupportedOperationException",
                     "Nitro Enclaves recipients (Recipient) are not supported.")
    KEY_SPEC = Text("UnsupportedOperationException",
                    "KeySpec {key_spec} is not supported by keyledger: no library it relies on "
                    "implements it (see docs/compatibility.md).")
    KEY_PAIR_SPEC = Text("UnsupportedOperationException",
                         "KeyPairSpec {key_pair_spec} is not supported by keyledger (see "
                         "docs/compatibility.md).")
    NO_PUBLIC_KEY = Text("UnsupportedOperationException",
                         "{arn} is a {key_spec} key, which has no public key.")
    SERVICE_PRINCIPAL = Text("UnsupportedOperationException",
                             "{member} is not supported by keyledger (it has no AWS service callers).")
    SOURCE_ARN = Text("UnsupportedOperationException",
                      "The SourceArn grant constraint is not supported by keyledger.")


# -- the rest: DryRun, paging, concurrency, internal errors, the protocol ------------------------


# -- multi-Region keys ----------------------------------------------------------------------------


class MultiRegion:
    #: ReplicateKey of a single-Region key (code: LocalStack PR 13102 "returns the exact AWS
    #: error"; AWS's text not seen)
    NOT_MULTI_REGION = Text("UnsupportedOperationException",
                            "{arn} is not a multi-Region key. You can replicate only multi-Region keys.")
    REPLICA_NOT_REPLICABLE = Text(
        "UnsupportedOperationException",
        "{arn} is a multi-Region replica key. You can replicate only a multi-Region primary key.")
    #: ReplicateKey into a Region that has a key of the set (code: botocore's ReplicateKey doc)
    ALREADY_IN_REGION = Text("AlreadyExistsException",
                             "A key related to {arn} already exists in the {region} Region.")
    REPLICA_ROTATION = Text(
        "UnsupportedOperationException",
        "{arn} is a multi-Region replica key. Change its rotation on the primary key, {primary_arn}.")
    NOT_PRIMARY = Text(
        "UnsupportedOperationException",
        "{arn} is not a multi-Region primary key. Call UpdatePrimaryRegion on the primary key of "
        "the multi-Region key set.")
    NO_REPLICA_IN_REGION = Text("NotFoundException", "{arn} has no replica key in the {region} Region.")
    #: --regions/--peers leave the Region out of the deployment
    REGION_NOT_SERVED = Text(
        "UnsupportedOperationException",
        "This keyledger deployment does not serve the {region} Region: serve it on a node and "
        "name that node in --peers.")
    #: imported-material sets: new material goes into the primary first (API reference,
    #: ImportKeyMaterial: "new material cannot be imported directly into replicas"; text ours)
    REPLICA_NEW_MATERIAL = Text(
        "UnsupportedOperationException",
        "{arn} is a multi-Region replica key. Import new key material into its primary key, then "
        "into this key with ImportType EXISTING_KEY_MATERIAL.")
    PENDING_REPLICA_IMPORTS = Text(
        "KMSInvalidStateException",
        "{arn}: key material {material_id} is not yet imported into every replica key "
        "({regions}).")
    # `keyledger promote`'s own checks: never answered to a client (AWS has no such command)
    PROMOTE_PENDING_DELETION = Text(
        "KMSInvalidStateException",
        "{arn} is pending deletion: a primary with replicas is never deleted; cancel its deletion "
        "(CancelKeyDeletion in {region}) before it is promoted.", answered=False)
    PROMOTE_NO_MATERIAL = Text(
        "KMSInvalidStateException",
        "{arn} is {state}: it holds none of the set's key material yet, and a primary without "
        "it could never be used; promote a replica that holds it.", answered=False)
    # the replication's own checks: never answered to a client
    NOT_PRIMARY_INTERNAL = Text("UnsupportedOperationException",
                                "{arn} is not a multi-Region primary key.", answered=False)
    NOT_REPLICA_INTERNAL = Text("UnsupportedOperationException",
                                "{arn} is not a multi-Region replica key.", answered=False)


class Requests:
    DRY_RUN = Text(
        "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.",
        recorded("test_generate_data_key_pair_dry_run, "
                 "test_generate_data_key_pair_without_plaintext_dry_run (HTTP 400)")
        + "; CloudTrail examples in the KMS Developer Guide (errorMessage)",
    )
    INVALID_MARKER = Text("InvalidMarkerException", "Invalid marker")
    CONFLICT = Text("ConflictException", "The resource was changed concurrently; retry the request.")
    INTERNAL = Text("KMSInternalException", "An internal error occurred.")


class Protocol:
    """The AWS JSON 1.1 front (api/): what the request looks like before any operation runs."""

    UNKNOWN_TARGET = Text("UnknownOperationException", "Missing or invalid X-Amz-Target header.")
    UNKNOWN_OPERATION = Text("UnknownOperationException", "Unknown operation {operation}.")
    MEDIA_TYPE = Text("UnsupportedMediaTypeException",
                      "Content-Type must be {expected}, not '{content_type}'.")
    TOO_LARGE = Text("RequestEntityTooLargeException", "Request bodies are limited to {limit} bytes.")
    NOT_JSON = Text("SerializationException", "The request body is not valid JSON.")
    NOT_AN_OBJECT = Text("SerializationException", "The request body must be a JSON object.")
    BAD_BASE64 = Text("SerializationException", "Invalid base64 at '{path}'")
    WRONG_TYPE = Text("SerializationException", "{detail}")


FAMILIES = (NotFound, InvalidArn, KeyState, KeyUsage, Validation, Aliases, Tags, Ciphertext,
            Signatures, Rotation, Import, Grants, MultiRegion, Unsupported, Requests, Protocol)

#: "Family.NAME" -> entry: the whole catalogue (tests read it)
CATALOGUE: dict[str, Text] = {
    f"{family.__name__}.{name}": entry
    for family in FAMILIES
    for name, entry in vars(family).items()
    if isinstance(entry, Text)
}
