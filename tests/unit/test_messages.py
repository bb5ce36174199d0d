"""The message catalogue (domain/messages.py): its entries, and the compatibility doc's list of
the texts not confirmed against AWS."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from api.protocol import encode_error
from domain import errors
from domain.messages import CATALOGUE, Ciphertext, NotFound, Requests, Signatures

DOC = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"
SECTION = "### Messages not confirmed against AWS"


def _unconfirmed_in_doc() -> dict[str, str]:
    text = DOC.read_text()
    assert SECTION in text
    section = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    return dict(re.findall(r"^- `([A-Za-z]+\.[A-Z0-9_]+)` — ([A-Za-z]+):", section, re.M))


def test_the_doc_lists_exactly_the_unconfirmed_messages():
    listed = _unconfirmed_in_doc()
    unconfirmed = {name: t.code for name, t in CATALOGUE.items() if t.source is None and t.answered}
    assert listed == unconfirmed


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_entry_makes_its_error(name):
    text = CATALOGUE[name]
    assert text.code in errors.ERROR_TYPES, name
    fields = {f for _, f, _, _ in string.Formatter().parse(text.template or "") if f}
    error = text(**{f: f"<{f}>" for f in fields})
    assert type(error) is errors.ERROR_TYPES[text.code]
    assert error.code == text.code
    if text.template is None:
        assert error.message is None
    else:
        assert error.message == text.template.format(**{f: f"<{f}>" for f in fields})
        assert "{" not in error.message
    assert text.source is None or text.source.strip(), name


def test_a_message_less_error_has_no_message_member_on_the_wire():
    error = Ciphertext.INVALID()
    assert error.message is None and str(error) == "InvalidCiphertextException"
    assert encode_error(error.code, error.message) == b'{"__type":"InvalidCiphertextException"}'
    assert encode_error(*(lambda e: (e.code, e.message))(Signatures.INVALID_SIGNATURE())) == (
        b'{"__type":"KMSInvalidSignatureException"}'
    )
    found = NotFound.KEY(arn="arn:aws:kms:us-east-1:111122223333:key/k")
    assert encode_error(found.code, found.message) == (
        b'{"__type":"NotFoundException","message":"Key \'arn:aws:kms:us-east-1:111122223333:key/k\' '
        b'does not exist"}'
    )


def test_dry_run_is_http_400():
    """localstack's AWS-recorded GenerateDataKeyPair DryRun: HTTPStatusCode 400."""
    assert Requests.DRY_RUN().status == 400
