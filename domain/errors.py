"""Domain errors, named exactly as the AWS KMS error shapes they become on the wire."""

from __future__ import annotations


class KmsError(Exception):
    """Base of every error a KMS caller can see; ``code`` is the wire ``__type``."""

    code = "KMSInternalException"
    status = 400
    #: the message as the audit record keeps it, where the answer's quotes a secret of the
    #: request (a grant token, a signature); None: the message itself
    logged: str | None = None

    def __init__(self, message: str | None) -> None:
        """``message`` None: AWS sends this error without a ``message`` member (the protocol
        layer leaves it out); the texts themselves are domain.messages'."""
        super().__init__(message if message is not None else self.code)
        self.message = message

    @property
    def logged_message(self) -> str | None:
        return self.message if self.logged is None else self.logged


#: error code -> class, for the message catalogue (domain.messages)
ERROR_TYPES: dict[str, type[KmsError]] = {}


def _error(name: str, status: int = 400) -> type[KmsError]:
    cls = type(name, (KmsError,), {"code": name, "status": status, "__module__": __name__})
    ERROR_TYPES[name] = cls
    return cls


AlreadyExistsException = _error("AlreadyExistsException")
ConflictException = _error("ConflictException")
DisabledException = _error("DisabledException")
# HTTP 400, as AWS answers it (localstack's AWS-recorded snapshot of GenerateDataKeyPair with
# DryRun: "HTTPStatusCode": 400), not the 412 an earlier version chose
DryRunOperationException = _error("DryRunOperationException")
ExpiredImportTokenException = _error("ExpiredImportTokenException")
IncorrectKeyException = _error("IncorrectKeyException")
IncorrectKeyMaterialException = _error("IncorrectKeyMaterialException")
InvalidAliasNameException = _error("InvalidAliasNameException")
InvalidArnException = _error("InvalidArnException")
InvalidCiphertextException = _error("InvalidCiphertextException")
InvalidGrantIdException = _error("InvalidGrantIdException")
InvalidGrantTokenException = _error("InvalidGrantTokenException")
InvalidImportTokenException = _error("InvalidImportTokenException")
InvalidKeyUsageException = _error("InvalidKeyUsageException")
InvalidMarkerException = _error("InvalidMarkerException")
KMSInternalException = _error("KMSInternalException", 500)
KMSInvalidMacException = _error("KMSInvalidMacException")
KMSInvalidSignatureException = _error("KMSInvalidSignatureException")
KMSInvalidStateException = _error("KMSInvalidStateException")
KeyUnavailableException = _error("KeyUnavailableException", 500)
LimitExceededException = _error("LimitExceededException")
MalformedPolicyDocumentException = _error("MalformedPolicyDocumentException")
NotAuthorizedException = _error("NotAuthorizedException")
NotFoundException = _error("NotFoundException")
TagException = _error("TagException")
UnsupportedOperationException = _error("UnsupportedOperationException")
ValidationException = _error("ValidationException")
# Not a shape of the KMS model, but what AWS KMS answers when a ciphertext names a key the
# caller cannot reach (it does not exist, is in another Region, or belongs to another account).
AccessDeniedException = _error("AccessDeniedException")

# AWS's common errors of authentication (SigV4), raised by infrastructure.sigv4: HTTP 400 on
# AWS JSON 1.1 services.
MissingAuthenticationTokenException = _error("MissingAuthenticationTokenException")  # no Authorization
IncompleteSignatureException = _error("IncompleteSignatureException")  # unreadable header or date
UnrecognizedClientException = _error("UnrecognizedClientException")  # unknown key id or token
InvalidSignatureException = _error("InvalidSignatureException")  # signature, scope or time
ExpiredTokenException = _error("ExpiredTokenException")  # a session key past its expiration

# The AWS JSON 1.1 front's own errors (api/): the request is not a KMS request at all.
SerializationException = _error("SerializationException")  # not JSON, wrong JSON types
UnknownOperationException = _error("UnknownOperationException")  # X-Amz-Target
UnsupportedMediaTypeException = _error("UnsupportedMediaTypeException", 415)
RequestEntityTooLargeException = _error("RequestEntityTooLargeException", 413)
