"""The keyledger ciphertext blob: framing, authentication and the encryption-context encoding."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure.ciphertext import (
    MAGIC,
    MATERIAL_ID_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    VERSION,
    MalformedCiphertext,
    canonical_encryption_context,
    open_sealed,
    parse_header,
    seal,
)

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MATERIAL_ID = "ab" * 32
AEAD = AESGCM(bytes(range(32)))
CONTEXT = {"purpose": "test", "tenant": "t-1"}


def decrypt(blob: bytes, context=None, aead: AESGCM = AEAD) -> bytes:
    return open_sealed(aead, parse_header(blob), blob, context)


def header_length(key_id: str = KEY_ID) -> int:
    return 4 + len(key_id) + MATERIAL_ID_BYTES + NONCE_BYTES


# -- round trip and header ---------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", b"hello world", os.urandom(4096)])
@pytest.mark.parametrize("context", [None, {}, CONTEXT])
def test_round_trip(plaintext, context):
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, plaintext, context)
    assert decrypt(blob, context) == plaintext
    assert len(blob) == header_length() + len(plaintext) + TAG_BYTES


@given(
    plaintext=st.binary(max_size=512),
    context=st.none() | st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=5),
    key_id=st.text(alphabet="abcdef0123456789-mrk", min_size=1, max_size=64),
    material=st.binary(min_size=32, max_size=32),
)
@settings(max_examples=100, deadline=None)
def test_round_trip_property(plaintext, context, key_id, material):
    blob = seal(AEAD, key_id, material.hex(), plaintext, context)
    header = parse_header(blob)
    assert header.key_id == key_id
    assert header.key_material_id == material.hex()
    assert open_sealed(AEAD, header, blob, context) == plaintext


def test_header_layout():
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"secret", CONTEXT)
    header = parse_header(blob)
    assert header.key_id == KEY_ID
    assert header.key_material_id == MATERIAL_ID
    assert blob[:2] == MAGIC == b"KL"
    assert blob[2] == VERSION == 1
    assert blob[3] == len(KEY_ID)
    assert blob[4 : 4 + len(KEY_ID)] == KEY_ID.encode()
    assert blob[4 + len(KEY_ID) : 4 + len(KEY_ID) + 32] == bytes.fromhex(MATERIAL_ID)
    assert len(header.nonce) == NONCE_BYTES
    assert header.raw == blob[: header_length()]
    assert header.nonce == header.raw[-NONCE_BYTES:]


def test_nonce_is_fresh_per_seal():
    blobs = {seal(AEAD, KEY_ID, MATERIAL_ID, b"same", None) for _ in range(50)}
    assert len(blobs) == 50
    assert len({parse_header(b).nonce for b in blobs}) == 50


def test_plaintext_does_not_appear_in_blob():
    plaintext = b"very secret plaintext value"
    assert plaintext not in seal(AEAD, KEY_ID, MATERIAL_ID, plaintext, None)


def test_wrong_key_fails():
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"secret", None)
    with pytest.raises(InvalidTag):
        decrypt(blob, None, AESGCM(bytes(32)))


# -- tampering ---------------------------------------------------------------------------------------


def _flip_everywhere(blob: bytes):
    for position in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(blob)
            tampered[position] ^= mask
            yield position, mask, bytes(tampered)


@pytest.mark.parametrize("context", [None, CONTEXT])
@pytest.mark.parametrize("plaintext", [b"", b"attack at dawn"])
def test_any_single_byte_flip_is_rejected(plaintext, context):
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, plaintext, context)
    for position, mask, tampered in _flip_everywhere(blob):
        with pytest.raises((InvalidTag, MalformedCiphertext)):
            decrypt(tampered, context)
            pytest.fail(f"flip of byte {position} with {mask:#04x} was accepted")


@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_random_byte_replacement_is_rejected(data):
    plaintext = data.draw(st.binary(max_size=64))
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, plaintext, CONTEXT)
    position = data.draw(st.integers(0, len(blob) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != blob[position]))
    tampered = blob[:position] + bytes([value]) + blob[position + 1 :]
    with pytest.raises((InvalidTag, MalformedCiphertext)):
        decrypt(tampered, CONTEXT)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_bad_magic_or_version_is_malformed(position):
    blob = bytearray(seal(AEAD, KEY_ID, MATERIAL_ID, b"x", None))
    blob[position] ^= 0xFF
    with pytest.raises(MalformedCiphertext):
        parse_header(bytes(blob))


def test_non_ascii_key_id_is_malformed():
    blob = bytearray(seal(AEAD, KEY_ID, MATERIAL_ID, b"x", None))
    blob[4] = 0xC3
    with pytest.raises(MalformedCiphertext):
        parse_header(bytes(blob))


def test_appended_bytes_are_rejected():
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"x", CONTEXT)
    with pytest.raises(InvalidTag):
        decrypt(blob + b"\x00", CONTEXT)


def test_swapping_ciphertext_between_blobs_fails():
    a = seal(AEAD, KEY_ID, MATERIAL_ID, b"alpha", None)
    b = seal(AEAD, KEY_ID, MATERIAL_ID, b"bravo", None)
    n = header_length()
    with pytest.raises(InvalidTag):
        decrypt(a[:n] + b[n:])


def test_header_is_authenticated_against_key_id_substitution():
    """A blob relabelled with another key id (same length) does not decrypt."""
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"x", None)
    other = "ffffffff-12ab-34cd-56ef-1234567890ab"
    relabelled = blob.replace(KEY_ID.encode(), other.encode(), 1)
    assert parse_header(relabelled).key_id == other
    with pytest.raises(InvalidTag):
        decrypt(relabelled)


def test_header_is_authenticated_against_material_substitution():
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"x", None)
    start = 4 + len(KEY_ID)
    relabelled = blob[:start] + bytes.fromhex("cd" * 32) + blob[start + 32 :]
    assert parse_header(relabelled).key_material_id == "cd" * 32
    with pytest.raises(InvalidTag):
        decrypt(relabelled)


# -- truncation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("context", [None, CONTEXT])
def test_truncated_blobs_are_malformed(context):
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"", context)  # header + tag, nothing else
    assert len(blob) == header_length() + TAG_BYTES
    for length in range(len(blob)):
        with pytest.raises(MalformedCiphertext):
            parse_header(blob[:length])


def test_truncation_of_longer_blob_never_decrypts():
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"some longer plaintext", None)
    minimum = header_length() + TAG_BYTES
    for length in range(len(blob)):
        if length < minimum:
            with pytest.raises(MalformedCiphertext):
                parse_header(blob[:length])
        else:
            with pytest.raises(InvalidTag):
                decrypt(blob[:length])


@pytest.mark.parametrize("blob", [b"", b"K", b"KL", b"KL\x01", b"KL\x01\x00", b"\x00" * 100, b"KL\x02" + b"\x00" * 100])
def test_garbage_is_malformed(blob):
    with pytest.raises(MalformedCiphertext):
        parse_header(blob)


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_never_decrypt(blob):
    with pytest.raises((InvalidTag, MalformedCiphertext)):
        decrypt(blob)


def test_malformed_is_a_value_error():
    assert issubclass(MalformedCiphertext, ValueError)


# -- encryption context ------------------------------------------------------------------------------


def test_context_order_independent():
    forward = {"a": "1", "b": "2"}
    backward = {"b": "2", "a": "1"}
    assert list(forward) != list(backward)
    assert canonical_encryption_context(forward) == canonical_encryption_context(backward)
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"data", forward)
    assert decrypt(blob, backward) == b"data"


@pytest.mark.parametrize(
    "other",
    [
        None,
        {},
        {"a": "1"},
        {"a": "1", "b": "3"},
        {"a": "1", "B": "2"},
        {"a": "1", "b": "2", "c": "3"},
        {"a": "1", "b": "2 "},
        {"ab": "12"},
    ],
)
def test_different_context_fails(other):
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"data", {"a": "1", "b": "2"})
    with pytest.raises(InvalidTag):
        decrypt(blob, other)


def test_context_required_when_sealed_with_one():
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"data", None)
    with pytest.raises(InvalidTag):
        decrypt(blob, {"a": "1"})


def test_none_and_empty_context_are_equivalent():
    assert canonical_encryption_context(None) == canonical_encryption_context({})
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"data", None)
    assert decrypt(blob, {}) == b"data"


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"ab": "c"}, {"a": "bc"}),
        ({"a": "b", "c": "d"}, {"a": "bcd"}),
        ({"a": ""}, {}),
        ({"": ""}, {}),
        ({"": "a"}, {"a": ""}),
        ({"a": "b\x00\x00\x00\x01c"}, {"a": "b", "c": ""}),
    ],
)
def test_canonical_encoding_is_unambiguous(left, right):
    assert canonical_encryption_context(left) != canonical_encryption_context(right)
    blob = seal(AEAD, KEY_ID, MATERIAL_ID, b"data", left)
    with pytest.raises(InvalidTag):
        decrypt(blob, right)


def _decode_context(encoded: bytes) -> dict[str, str]:
    """Inverse of canonical_encryption_context: proves the encoding is injective."""
    (count,), offset = struct.unpack_from(">I", encoded), 4
    out = {}
    for _ in range(count):
        (klen,) = struct.unpack_from(">I", encoded, offset)
        key = encoded[offset + 4 : offset + 4 + klen]
        offset += 4 + klen
        (vlen,) = struct.unpack_from(">I", encoded, offset)
        value = encoded[offset + 4 : offset + 4 + vlen]
        offset += 4 + vlen
        out[key.decode()] = value.decode()
    assert offset == len(encoded)
    return out


contexts = st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=6)


@given(contexts)
@settings(max_examples=200, deadline=None)
def test_canonical_encoding_decodes_back(context):
    assert _decode_context(canonical_encryption_context(context)) == context


@given(contexts, contexts)
@settings(max_examples=200, deadline=None)
def test_canonical_encoding_injective(left, right):
    same = canonical_encryption_context(left) == canonical_encryption_context(right)
    assert same == (left == right)


@given(contexts, st.randoms())
@settings(max_examples=100, deadline=None)
def test_canonical_encoding_ignores_insertion_order(context, rnd):
    items = list(context.items())
    rnd.shuffle(items)
    assert canonical_encryption_context(dict(items)) == canonical_encryption_context(context)
