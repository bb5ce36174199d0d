"""The chain's canonical bytes: the fast paths for a row's usual types say what the general
rule (``_tagged``) says, for every type a stored row can hold."""

from __future__ import annotations

import pytest

from infrastructure.ledger_chain import AUDIT, EVENT, _digest, _row_digest, _tagged, canonical


class _Text(str):
    pass


@pytest.mark.parametrize("value", [
    None, 0, -1, 2**63 - 1, -(2**63), True, False, 0.0, -0.0, 1.5, float("inf"), "", "é",
    "x" * 70_000, _Text("sub"), b"", b"\x00" * 1100, bytearray(b"ab"), memoryview(b"cd"),
])
def test_each_value_is_encoded_as_the_general_rule_says(value):
    assert canonical([value]) == _tagged(value)


def test_a_row_is_its_values_in_order():
    row = (1765012440.25, "111122223333", None, "arn:aws:iam::111122223333:root", 7, b"{}")
    assert canonical(row) == b"".join(_tagged(v) for v in row)
    assert canonical(row) != canonical(row[::-1])
    assert canonical([]) == b""
    assert canonical(["ab", "c"]) != canonical(["a", "bc"])  # lengths keep fields apart


@pytest.mark.parametrize("source", [AUDIT, EVENT])
@pytest.mark.parametrize("row", [
    (17, 1765012440.25, "111122223333", None, "arn:aws:iam::111122223333:root", "Encrypt",
     None, "req", "evt", b'{"eventName":"Encrypt"}'),
    (18, 1765012440.5, "111122223333", "k", None, "Decrypt", "AccessDeniedException", None,
     "evt", b""),
    (3, "originator", 1, "topic", b"\x00" * 3000),
    (3, "originator", 1, "topic", "state stored as text"),  # (a tampered row: not bytes)
    (4, "originator", 1, "topic", None),
    (5, "originator", 1, "topic", bytearray(b"state")),
])
def test_a_rows_digest_hashes_its_last_value_in_place_as_the_canonical_bytes_would(source, row):
    assert _row_digest(source, row) == _digest(source, row[0], canonical(row[1:]))
