"""Server-side AWS Signature Version 4 verification for the AWS JSON 1.1 protocol (service ``kms``).

:class:`SigV4Verifier` checks the ``Authorization: AWS4-HMAC-SHA256 ...`` header of every request
and names the access key that signed it; :func:`open_mode_identity` is the ``--auth open``
counterpart, which checks nothing and reads the caller's account from the access key id.

The canonical request is rebuilt by botocore's rules (``botocore.auth.SigV4Auth``), by hand, with
plain bytes operations and no botocore objects, because this runs on every request:

* ``METHOD\\nCanonicalURI\\nCanonicalQuery\\nCanonicalHeaders\\n\\nSignedHeaders\\nPayloadHash``;
* CanonicalURI is ``quote(normalize_url_path(path), safe="/~")`` (``/`` for every KMS call);
  CanonicalQuery splits the raw query on ``&``, each pair at its first ``=``, sorts the pairs and
  joins them back, with no re-encoding (``_canonical_query_string_url``);
* CanonicalHeaders has one ``name:value`` line for each name of ``SignedHeaders``, in the order
  listed there. A value is what the request carries under that name, decoded as Latin-1 (how
  ``http.client`` encodes botocore's ``str`` values) and "trimall"-ed exactly as botocore's
  ``_header_value`` does (``" ".join(value.split())``, so every Unicode whitespace character of
  that decoding counts); repeated headers are trimmed one by one and joined with ``,``; the line
  is UTF-8 encoded, as botocore encodes its canonical request;
* PayloadHash is the lowercase hex SHA-256 of the raw body bytes, or the ``X-Amz-Content-SHA256``
  header's value when the request carries one (which must then equal the body's hash);
* StringToSign is ``AWS4-HMAC-SHA256\\n<timestamp>\\n<date>/<region>/<service>/aws4_request\\n<hex
  sha256(CanonicalRequest)>``; the signing key is HMAC-SHA256 chained over ``"AWS4" + secret``,
  the date, the region, the service and ``aws4_request``.

Speed (about 5 µs per verify of a boto3 Encrypt with a 1 KiB body, warm; see
benchmarks/sigv4_bench.py): the parsed ``Authorization`` header (everything but the signature)
is cached by the header's bytes up to ``Signature=``; for each, the canonical headers block is
cached by the raw values of the signed headers; the signing key of each (secret, date, region)
is cached as the two SHA-256 states after its HMAC pads, so the signature costs two hash-state
copies; timestamps and trimmed header values are cached by their raw bytes. Every cache is a
bounded dict. The signature is compared with :func:`hmac.compare_digest`. What remains per
request is two SHA-256 (body, canonical request), one HMAC and a few dict look-ups.

Order of the checks (AWS's own order is UNCONFIRMED; this follows the "AWS Auth Error Ordering"
that scratchstack-aws-signature implements):

1. an ``Authorization`` header is present (else MissingAuthenticationTokenException);
2. the header's parameters are ``key=value`` pairs, ``Credential``, ``Signature`` and
   ``SignedHeaders`` are present, and the request has an ``X-Amz-Date`` or ``Date`` header
   (IncompleteSignatureException; all the missing parts in one message);
3. the algorithm is ``AWS4-HMAC-SHA256`` (IncompleteSignatureException);
4. ``host`` is among the signed headers (InvalidSignatureException);
5. the timestamp is ISO 8601 basic (``YYYYMMDDTHHMMSSZ``; a ``Date`` header may instead be in
   RFC 7231 or RFC 5322 form, as botocore writes it) (IncompleteSignatureException);
6. the timestamp is within ``max_skew_seconds`` of now (InvalidSignatureException);
7. the credential has five ``/``-separated parts (IncompleteSignatureException), and its region is
   served, its service is ``kms``, its terminator is ``aws4_request`` and its date is the
   timestamp's date (InvalidSignatureException, one sentence per failed check);
8. the access key id is known (UnrecognizedClientException);
9. the session token matches the key's (UnrecognizedClientException) and has not expired
   (ExpiredTokenException);
10. ``X-Amz-Content-SHA256``, when present, equals the body's SHA-256, and the signature matches
    (InvalidSignatureException).

Choices
-------
Where docs/kms-access-control.md §1 marks a fact UNCONFIRMED, keyledger does this:

* No ``Authorization`` header: ``MissingAuthenticationTokenException`` (HTTP 400), message
  ``Request is missing Authentication Token`` (DynamoDB's text). An empty header counts as none.
* Presigned (query-string) SigV4 is not supported: such a request has no ``Authorization``
  header and gets ``MissingAuthenticationTokenException``.
* The missing-parameter family (``Authorization header requires 'Credential' parameter. ...``) is
  sent as ``IncompleteSignatureException``, one sentence per missing part in the order
  Credential, Signature, SignedHeaders, date header, then `` Authorization=<the header>``.
* An algorithm other than ``AWS4-HMAC-SHA256`` (checked after the parameters, because AWS answers
  ``Authorization: Basic xxx==`` with the missing-parameter message):
  ``IncompleteSignatureException`` ``Unsupported AWS 'algorithm': '<algorithm>'.``
  (scratchstack's text).
* ``host`` not signed: ``InvalidSignatureException`` ``'Host' or ':authority' must be a
  'SignedHeader' in the AWS Authorization.`` (DynamoDB's reply, aws/aws-sdk-php#2469). The
  server speaks HTTP/1.1, whose requests carry no ``:authority`` (HTTP/2's pseudo-header):
  signing it instead signs an empty value and leaves the Host unsigned, so ``host`` it is.
  No other header has to be signed; the timestamp is covered by the string to sign anyway.
* A malformed timestamp: ``IncompleteSignatureException`` ``Date must be in ISO-8601 'basic
  format'. Got '<value>'. See http://en.wikipedia.org/wiki/ISO_8601`` (scratchstack's text).
* A credential without five parts: ``IncompleteSignatureException`` ``Credential must have
  exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '<credential>'``
  (seen from Amazon Elasticsearch, mhart/aws4#97).
* Scope errors are ``InvalidSignatureException``; each failed check adds one sentence followed by
  a space, in the order region, service, terminator, date. The terminator and date sentences are
  scratchstack's: ``Credential should be scoped with a valid terminator: 'aws4_request', not
  '<term>'. `` and ``Date in Credential scope does not match YYYYMMDD from ISO-8601 version of
  date from HTTP: '<scope date>' != '<request date>', from '<timestamp>'. ``.
* The skew window is inclusive: a timestamp exactly ``max_skew_seconds`` away is accepted. "now"
  is truncated to whole seconds. The window prints as ``5 min.`` (``N min.`` for whole minutes,
  else ``N sec.``).
* ``X-Amz-Security-Token`` is accepted whether or not it is signed. A key with a session token
  needs the request's token to equal it; a token sent for a key without one (or a missing or
  wrong one) is ``UnrecognizedClientException`` ``The security token included in the request is
  invalid.``; an empty token header counts as absent. A session key past its ``expiration`` gets
  ``ExpiredTokenException`` ``The security token included in the request is expired``.
* ``X-Amz-Content-SHA256`` that differs from the body's SHA-256 (compared case-insensitively;
  ``UNSIGNED-PAYLOAD`` included) is ``InvalidSignatureException`` with the standard signature
  mismatch text: the payload is what the signature covers.
* The signature-mismatch message carries no canonical-request debugging detail.
* Error codes are the plain names, without a ``com.amazon.coral.service#`` prefix.
* ``SignedHeaders`` is used as listed (order and spelling) in the canonical request; each name
  is looked up lower-cased; a signed name the request does not carry has an empty value.
* Repeated headers: the first ``Authorization``, ``X-Amz-Date`` and ``Date`` are the ones read;
  signed headers are joined with ``,`` (botocore's rule).
* Open mode (:func:`open_mode_identity`) checks no signature, but a credential scope naming a
  region the server does not serve is still refused with the wrong-region
  ``InvalidSignatureException``; anything unparsable in the header is ignored.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import hmac
import re
import time
from binascii import hexlify
from collections.abc import Callable, Container, Sequence
from email.utils import parsedate_to_datetime
from operator import itemgetter
from typing import Any
from urllib.parse import quote

from domain.errors import (
    ExpiredTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    KmsError,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from domain.principals import AccessKey, Directory, Principal

__all__ = [
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "SigV4Verifier",
    "UnrecognizedClientException",
    "open_mode_identity",
]


ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"

MSG_MISSING_TOKEN = "Request is missing Authentication Token"
MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"
MSG_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
MSG_HOST_NOT_SIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
_MSG_REQUIRES_CREDENTIAL = "Authorization header requires 'Credential' parameter."
_MSG_REQUIRES_SIGNATURE = "Authorization header requires 'Signature' parameter."
_MSG_REQUIRES_SIGNED_HEADERS = "Authorization header requires 'SignedHeaders' parameter."
_MSG_REQUIRES_DATE = (
    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
)

_SIGNATURE_PARAM = b"Signature="
_SIG_HEX = 64  # the length of a signature: lowercase hex of 32 bytes
_SIG_TAIL = _SIG_HEX + len(_SIGNATURE_PARAM)
_CACHE_LIMIT = 4096  # entries of each bounded cache but the next two
_AUTHORIZATIONS_LIMIT = 1024  # parsed Authorization headers (about one per client and day)
_BLOCKS_LIMIT = 64  # canonical header blocks per parsed Authorization header
_CACHED_VALUE_MAX = 256  # longer header values are trimmed every time, not cached

_sha256 = hashlib.sha256


def _raise_mismatch() -> None:
    raise InvalidSignatureException(MSG_SIGNATURE_MISMATCH)


def wrong_region_message(region: str) -> str:
    """The wrong-region text (note its trailing space)."""
    return f"Credential should be scoped to a valid region, not '{region}'. "


def _iso(epoch: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def _window(seconds: int) -> str:
    return f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."


def trimall(raw: bytes) -> bytes:
    """A header value as botocore canonicalises it: Latin-1 text, whitespace runs collapsed to one
    space and stripped at both ends (``" ".join(value.split())``), UTF-8 encoded."""
    return " ".join(raw.decode("latin-1").split()).encode("utf-8")


def canonical_uri(path: str) -> bytes:
    """botocore's ``_normalize_url_path``: dot segments removed, then percent-encoded except ``/~``.

    ``path`` is the path as the client sent it (ASGI ``raw_path`` decoded as Latin-1); for a path
    without ``%`` escapes the decoded ASGI ``path`` is the same thing.
    """
    if path == "/" or not path:
        return b"/"
    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(path), safe="/~").encode("ascii")


def canonical_query(query_string: bytes) -> bytes:
    """botocore's ``_canonical_query_string_url``: pairs split at ``&`` and the first ``=``, sorted,
    joined back; values are not re-encoded."""
    if not query_string:
        return b""
    pairs = []
    for pair in query_string.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        pairs.append((key, value))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs)).encode("utf-8")


def _parse_timestamp(value: bytes, iso_only: bool) -> tuple[int, bytes] | None:
    """``(epoch seconds, ISO 8601 basic timestamp)`` of an ``X-Amz-Date`` (``iso_only``) or
    ``Date`` header value, else None."""
    text = value.decode("latin-1").strip()
    if (
        len(text) == 16
        and text[8] == "T"
        and text[15] == "Z"
        and text[:8].isdigit()
        and text[9:15].isdigit()
        and text.isascii()
    ):
        try:
            parsed = time.strptime(text, "%Y%m%dT%H%M%SZ")
        except ValueError:
            return None
        return calendar.timegm(parsed), text.encode("ascii")
    if iso_only:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=datetime.UTC)
    epoch = int(when.timestamp())
    return epoch, _iso(epoch).encode("ascii")


class _Authorization:
    """The parsed ``Authorization`` header, less its signature: cached, shared between requests."""

    __slots__ = (
        "credential",
        "access_key_id",
        "date",
        "region",
        "service",
        "terminator",
        "five_parts",
        "scope_ok",
        "signature",
        "date_bytes",
        "signed",
        "signed_line",
        "get_values",
        "blocks",
        "scope_line",
    )

    def __init__(self, params: dict[str, str], verifier: SigV4Verifier) -> None:
        self.credential = credential = params["Credential"]
        self.signature = params["Signature"].encode("latin-1")
        parts = credential.split("/")
        self.five_parts = len(parts) == 5
        if self.five_parts:
            self.access_key_id, self.date, self.region, self.service, self.terminator = parts
        else:
            self.access_key_id = parts[0]
            self.date = self.region = self.service = self.terminator = ""
        self.scope_ok = (
            self.five_parts
            and self.region in verifier.regions
            and self.service == verifier.service
            and self.terminator == TERMINATOR
        )
        self.date_bytes = self.date.encode("utf-8")
        #: (the name to look the value up under, the canonical line's ``name:``) per signed header
        self.signed = tuple(
            (name.lower().encode("latin-1"), name.encode("utf-8") + b":")
            for name in params["SignedHeaders"].split(";")
        )
        self.signed_line = params["SignedHeaders"].encode("utf-8")
        #: the raw values of the signed headers, in order (a tuple, or one value if one is signed)
        self.get_values = itemgetter(*(lookup for lookup, _ in self.signed))
        #: raw values -> canonical headers block (bounded)
        self.blocks: dict[Any, bytes] = {}
        scope = f"{self.date}/{self.region}/{self.service}/{self.terminator}"
        self.scope_line = b"\n" + scope.encode("utf-8") + b"\n"

    def block(
        self, values: dict[bytes, Any], trim: Callable[[bytes], bytes], raw: Any = None
    ) -> bytes:
        """The canonical headers, the blank line and the signed-headers line, each line ended by a
        newline; cached under ``raw`` (the signed headers' raw values) when given."""
        lines = []
        for lookup, line_name in self.signed:
            value = values.get(lookup, b"")
            if type(value) is list:  # a repeated header: each value trimmed, then joined
                value = b",".join([trimall(v) for v in value])
            else:
                value = trim(value)
            lines += (line_name, value, b"\n")
        lines += (b"\n", self.signed_line, b"\n")
        block = b"".join(lines)
        if raw is not None:
            if len(self.blocks) >= _BLOCKS_LIMIT:
                self.blocks.clear()
            self.blocks[raw] = block
        return block


class _SigningKey:
    """The SHA-256 states after the HMAC key's inner and outer pads: HMAC in two state copies."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0")  # a 32-byte HMAC-SHA256 key is always shorter than a block
        self.inner = _sha256(bytes(b ^ 0x36 for b in block))
        self.outer = _sha256(bytes(b ^ 0x5C for b in block))


def _split_repeated(
    headers: Sequence[tuple[bytes, bytes]],
) -> tuple[dict[bytes, Any], dict[bytes, bytes]]:
    """``(all values: name -> value, or a list of values if repeated; first value per name)``."""
    values: dict[bytes, Any] = {}
    first: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in values:
            previous = values[name]
            if type(previous) is list:
                previous.append(value)
            else:
                values[name] = [previous, value]
        else:
            values[name] = value
            first[name] = value
    return values, first


def _joined(value: Any) -> bytes:
    return b",".join(value) if type(value) is list else value


#: what the audit record leaves out of an authentication error's message: the value of any
#: signature parameter, however spelt, and any run of 64 hex digits (a SigV4 signature)
_SIGNATURE_VALUE = re.compile(r"(?i)(signature\s*[=:]\s*)(?!\(not logged\))[^,\s']*|[0-9a-f]{64}")


_UNLOGGED = "(not logged)"
#: the Authorization header's parameters an audit record quotes as sent (CloudTrail records
#: the access key id anyway)
_LOGGED_PARAMETERS = frozenset({"Credential", "SignedHeaders"})


def _logged_header(header: str) -> str:
    """An Authorization header as the audit record quotes it: its scheme (the word before the
    first space, when something follows it), SigV4's Credential and SignedHeaders
    parameters and the name of its Signature; everything else as ``(not logged)``: a Basic or
    Bearer credential, a token sent alone, a signature, a parameter SigV4 does not have."""
    scheme, space, rest = header.partition(" ")
    if not space:
        return _UNLOGGED if header else header
    fragments = []
    for fragment in rest.split(","):
        name, equals, _ = fragment.partition("=")
        if equals and name.strip() in _LOGGED_PARAMETERS:
            fragments.append(fragment)
        elif equals and name.strip().lower() == "signature":  # (however spelt)
            fragments.append(name + equals + _UNLOGGED)
        else:  # (a name SigV4 does not have may be a credential itself: base64 ends in "=")
            stripped = fragment.lstrip()
            fragments.append(fragment[:len(fragment) - len(stripped)] + _UNLOGGED
                             if stripped.strip() else fragment)
    return scheme + space + ",".join(fragments)


def _quoting(template: str, *quotes: tuple[str, str]) -> IncompleteSignatureException:
    """An error whose message quotes what the request sent (``template``'s ``{}``s filled with
    each pair's first value), and whose audit record quotes each pair's second instead."""
    error = IncompleteSignatureException(template.format(*(sent for sent, _ in quotes)))
    error.logged = template.format(*(logged for _, logged in quotes))
    return error


def keep_no_signature(error: KmsError) -> None:
    """An authentication error's message may repeat what the request sent (its Authorization
    header, its credential, its algorithm), as AWS's do: the audit record keeps no
    credential of another scheme (:func:`_logged_header`) and no signature, however spelt
    (one that a reader of the audit could replay, with the request's guessable body, for the
    minutes it stays valid)."""
    message = error.logged_message
    if message:
        logged = _SIGNATURE_VALUE.sub(lambda m: (m[1] or "") + _UNLOGGED, message)
        if logged != error.message:
            error.logged = logged


class SigV4Verifier:
    """Checks SigV4 ``Authorization`` headers against the access keys of a :class:`Directory`.

    ``directory`` is called on every request (so a reloaded identities file takes effect at once);
    ``regions`` are the regions this server answers for; ``now`` is the clock (seconds since the
    epoch); ``max_skew_seconds`` is the allowed distance between the request's timestamp and now.
    """

    def __init__(
        self,
        directory: Callable[[], Directory],
        regions: Container[str],
        *,
        service: str = "kms",
        now: Callable[[], float] = time.time,
        max_skew_seconds: int = 300,
    ) -> None:
        self.directory = directory
        self.regions = regions
        self.service = service
        self.now = now
        self.max_skew_seconds = max_skew_seconds
        self._authorizations: dict[bytes, _Authorization] = {}
        #: X-Amz-Date and Date header values -> (epoch seconds, ISO 8601 basic timestamp)
        self._timestamps: dict[bytes, tuple[int, bytes]] = {}
        self._dates: dict[bytes, tuple[int, bytes]] = {}
        self._trimmed: dict[bytes, bytes] = {}
        self._signing_keys: dict[tuple[str, str, str], _SigningKey] = {}
        self._request_lines: dict[tuple[str, str, bytes], bytes] = {}

    # -- the hot path -----------------------------------------------------------------------------

    def verify(
        self,
        method: str,
        path: str,
        query_string: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
    ) -> tuple[AccessKey, str]:
        """Return (the access key that signed, the region of its credential scope) or raise.

        ``headers`` are ASGI header pairs (lower-case names, raw values, possibly repeated);
        ``path`` is the request path as sent (see :func:`canonical_uri`); ``body`` the raw body.
        """
        values: dict[bytes, Any] = dict(headers)
        if len(values) == len(headers):
            first = values
        else:
            values, first = _split_repeated(headers)

        header = first.get(b"authorization")
        if not header:
            raise MissingAuthenticationTokenException(MSG_MISSING_TOKEN)
        signature = header[-_SIG_HEX:]
        auth = None
        if header[-_SIG_TAIL:-_SIG_HEX] == _SIGNATURE_PARAM and b"," not in signature:
            auth = self._authorizations.get(header[:-_SIG_HEX])
        raw_date = first.get(b"x-amz-date")
        if auth is None:
            auth = self._parse(header, raw_date is not None or b"date" in first)
            signature = auth.signature
        elif raw_date is None and b"date" not in first:
            self._missing_date(header.decode("latin-1").strip())

        # the timestamp and its window
        if raw_date is not None:
            stamp = self._timestamps.get(raw_date)
            if stamp is None:
                stamp = self._timestamp(raw_date, iso_only=True)
        else:
            stamp = self._dates.get(first[b"date"])
            if stamp is None:
                stamp = self._timestamp(first[b"date"], iso_only=False)
        epoch, timestamp = stamp
        now = int(self.now())
        skew = self.max_skew_seconds
        if not now - skew <= epoch <= now + skew:
            self._skew_error(epoch, timestamp, now)
        if not auth.scope_ok or auth.date_bytes != timestamp[:8]:
            self._scope_error(auth, timestamp)

        # the key and its session token
        key = self.directory().access_keys.get(auth.access_key_id)
        if key is None:
            raise UnrecognizedClientException(MSG_INVALID_TOKEN)
        token = values.get(b"x-amz-security-token")
        if key.session_token is None:
            if token:
                raise UnrecognizedClientException(MSG_INVALID_TOKEN)
        else:
            if not token or not hmac.compare_digest(
                _joined(token), key.session_token.encode("utf-8")
            ):
                raise UnrecognizedClientException(MSG_INVALID_TOKEN)
            if key.expiration is not None and self.now() >= key.expiration:
                raise ExpiredTokenException(MSG_EXPIRED_TOKEN)

        # the canonical request
        payload_hash = hexlify(_sha256(body).digest())
        claimed = values.get(b"x-amz-content-sha256")
        if claimed is not None:
            claimed = _joined(claimed)
            if claimed.lower() != payload_hash:
                _raise_mismatch()
            payload_hash = claimed
        if path == "/" and not query_string and method == "POST":
            request_line = b"POST\n/\n\n"
        else:
            request_line = self._request_line(method, path, query_string)
        if first is values:  # no repeated header: the raw values name the canonical block
            try:
                raw = auth.get_values(values)
            except KeyError:  # a signed header the request lacks
                block = auth.block(values, self._trim)
            else:
                block = auth.blocks.get(raw)
                if block is None:
                    block = auth.block(values, self._trim, raw)
        else:
            block = auth.block(values, self._trim)
        digest = hexlify(_sha256(request_line + block + payload_hash).digest())

        # the signature
        signing_key = self._signing_keys.get((key.secret_access_key, auth.date, auth.region))
        if signing_key is None:
            signing_key = self._signing_key(key.secret_access_key, auth.date, auth.region)
        inner = signing_key.inner.copy()
        inner.update(b"AWS4-HMAC-SHA256\n" + timestamp + auth.scope_line + digest)
        outer = signing_key.outer.copy()
        outer.update(inner.digest())
        if not hmac.compare_digest(hexlify(outer.digest()), signature):
            _raise_mismatch()
        return key, auth.region

    # -- cache fills and errors (off the hot path) --------------------------------------------------

    def _parse(self, raw: bytes, has_date: bool) -> _Authorization:
        """Parse an ``Authorization`` header, raising its errors in order; cache the result."""
        header = raw.decode("latin-1").strip()
        algorithm, _, rest = header.partition(" ")
        params: dict[str, str] = {}
        for fragment in rest.split(","):
            fragment = fragment.strip()
            if not fragment:
                continue
            name, equals, value = fragment.partition("=")
            if not equals:
                raise _quoting(
                    "'{}' not a valid key=value pair (missing equal-sign) in Authorization "
                    "header: '{}'.", (fragment, _UNLOGGED), (header, _logged_header(header)))
            params[name] = value
        missing = [
            message
            for present, message in (
                ("Credential" in params, _MSG_REQUIRES_CREDENTIAL),
                ("Signature" in params, _MSG_REQUIRES_SIGNATURE),
                ("SignedHeaders" in params, _MSG_REQUIRES_SIGNED_HEADERS),
                (has_date, _MSG_REQUIRES_DATE),
            )
            if not present
        ]
        if missing:
            raise _quoting(" ".join(missing) + " Authorization={}",
                           (header, _logged_header(header)))
        if algorithm != ALGORITHM:
            raise IncompleteSignatureException(f"Unsupported AWS 'algorithm': '{algorithm}'.")
        signed = params["SignedHeaders"].split(";")
        if "host" not in signed:  # (":authority" names HTTP/2's pseudo-header: an HTTP/1.1
            raise InvalidSignatureException(MSG_HOST_NOT_SIGNED)  # request has none to sign)
        auth = _Authorization(params, self)
        # Cache only what any header with the same bytes before its last 64 is sure to parse to.
        tail = raw[-_SIG_HEX:]
        if (
            raw[-_SIG_TAIL:-_SIG_HEX] == _SIGNATURE_PARAM
            and b"," not in tail
            and auth.signature == tail
        ):
            if len(self._authorizations) >= _AUTHORIZATIONS_LIMIT:
                self._authorizations.clear()
            self._authorizations[raw[:-_SIG_HEX]] = auth
        return auth

    @staticmethod
    def _missing_date(header: str) -> None:
        raise _quoting(_MSG_REQUIRES_DATE + " Authorization={}", (header, _logged_header(header)))

    def _timestamp(self, raw: bytes, iso_only: bool) -> tuple[int, bytes]:
        stamp = _parse_timestamp(raw, iso_only)
        if stamp is None:
            raise IncompleteSignatureException(
                f"Date must be in ISO-8601 'basic format'. Got '{raw.decode('latin-1')}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601"
            )
        cache = self._timestamps if iso_only else self._dates
        if len(cache) >= 256:
            cache.clear()
        cache[raw] = stamp
        return stamp

    def _skew_error(self, epoch: int, timestamp: bytes, now: int) -> None:
        skew = self.max_skew_seconds
        stamp = timestamp.decode("ascii")
        if epoch < now - skew:
            raise InvalidSignatureException(
                f"Signature expired: {stamp} is now earlier than {_iso(now - skew)} "
                f"({_iso(now)} - {_window(skew)})"
            )
        raise InvalidSignatureException(
            f"Signature not yet current: {stamp} is still later than {_iso(now + skew)} "
            f"({_iso(now)} + {_window(skew)})"
        )

    def _scope_error(self, auth: _Authorization, timestamp: bytes) -> None:
        if not auth.five_parts:
            raise IncompleteSignatureException(
                "Credential must have exactly 5 slash-delimited elements, e.g. "
                f"keyid/date/region/service/term, got '{auth.credential}'"
            )
        message = ""
        if auth.region not in self.regions:
            message += wrong_region_message(auth.region)
        if auth.service != self.service:
            message += f"Credential should be scoped to correct service: '{self.service}'. "
        if auth.terminator != TERMINATOR:
            message += (
                f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
                f"not '{auth.terminator}'. "
            )
        stamp = timestamp.decode("ascii")
        if auth.date != stamp[:8]:
            message += (
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{auth.date}' != '{stamp[:8]}', from '{stamp}'. "
            )
        raise InvalidSignatureException(message)

    def _trim(self, raw: bytes) -> bytes:
        """:func:`trimall`, cached for short values."""
        canonical = self._trimmed.get(raw)
        if canonical is not None:
            return canonical
        canonical = trimall(raw)
        if canonical == raw:
            canonical = raw
        if len(raw) <= _CACHED_VALUE_MAX:
            if len(self._trimmed) >= _CACHE_LIMIT:
                self._trimmed.clear()
            self._trimmed[raw] = canonical
        return canonical

    def _request_line(self, method: str, path: str, query_string: bytes) -> bytes:
        """``METHOD\nCanonicalURI\nCanonicalQuery\n``, cached for short paths and queries."""
        line = self._request_lines.get((method, path, query_string))
        if line is not None:
            return line
        line = b"%s\n%s\n%s\n" % (
            method.upper().encode("latin-1"),
            canonical_uri(path),
            canonical_query(query_string),
        )
        if len(path) + len(query_string) <= _CACHED_VALUE_MAX:
            if len(self._request_lines) >= 256:
                self._request_lines.clear()
            self._request_lines[(method, path, query_string)] = line
        return line

    def _signing_key(self, secret: str, date: str, region: str) -> _SigningKey:
        key = hmac.digest(("AWS4" + secret).encode("utf-8"), date.encode("utf-8"), "sha256")
        for part in (region, self.service, TERMINATOR):
            key = hmac.digest(key, part.encode("utf-8"), "sha256")
        signing_key = _SigningKey(key)
        if len(self._signing_keys) >= _CACHE_LIMIT:
            del self._signing_keys[next(iter(self._signing_keys))]
        self._signing_keys[(secret, date, region)] = signing_key
        return signing_key


# -- open mode ----------------------------------------------------------------------------------

_ROOTS: dict[str, Principal] = {}
_OPEN_CREDENTIALS: dict[bytes, tuple[str, str]] = {}


def credential_fields(header: bytes) -> tuple[str, str]:
    """``(access key id, scope region)`` read leniently from an ``Authorization`` header; ``""``
    for what is not there."""
    start = header.find(b"Credential=")
    if start < 0:
        return "", ""
    start += len(b"Credential=")
    end = header.find(b",", start)
    credential = header[start : end if end >= 0 else len(header)]
    cached = _OPEN_CREDENTIALS.get(credential)
    if cached is None:
        parts = credential.decode("latin-1").strip().split("/")
        cached = (parts[0], parts[2] if len(parts) == 5 else "")
        if len(_OPEN_CREDENTIALS) >= _CACHE_LIMIT:
            _OPEN_CREDENTIALS.clear()
        _OPEN_CREDENTIALS[credential] = cached
    return cached


def _is_account_id(value: str) -> bool:
    return len(value) == 12 and value.isdigit() and value.isascii()


def open_mode_identity(
    headers: Sequence[tuple[bytes, bytes]],
    default_account: str,
    default_region: str,
    regions: Container[str],
) -> tuple[Principal, str, str]:
    """--auth open: no signature check. A 12-digit access key id names the account, any other (or no
    Authorization header) the default account; the caller is that account's root. Returns
    (principal, region, access_key_id).

    The region is the credential scope's, else ``default_region``; a scope region not in
    ``regions`` raises the wrong-region :class:`InvalidSignatureException`.
    """
    header = None
    for name, value in headers:
        if name == b"authorization":
            header = value
            break
    access_key_id = region = ""
    if header:
        access_key_id, region = credential_fields(header)
        if region and region not in regions:
            raise InvalidSignatureException(wrong_region_message(region))
    account = access_key_id if _is_account_id(access_key_id) else default_account
    principal = _ROOTS.get(account)
    if principal is None:
        if len(_ROOTS) >= _CACHE_LIMIT:
            _ROOTS.clear()
        principal = _ROOTS[account] = Principal.root(account)
    return principal, region or default_region, access_key_id
