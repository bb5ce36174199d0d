"""sigv4 mode: which principals a key policy or grant may name (``Authenticator.principal_exists``):
those of the identities file, by ARN, by a role session's ARN while its role exists, and by
the unique id IAM stores in their place (AIDA…, AROA…)."""

from __future__ import annotations

import json

import pytest

from api.auth import Authenticator
from domain import errors
from domain.policy import Policy
from domain.principals import PrincipalKind, unique_id_for

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/deployer"


@pytest.fixture
def exists(tmp_path):
    path = tmp_path / "identities.json"
    path.write_text(json.dumps({"accounts": {ACCOUNT: {
        "users": {"alice": {}}, "roles": {"deployer": {}}}}}))
    path.chmod(0o600)
    return Authenticator("sigv4", path, ACCOUNT, "us-east-1", {"us-east-1"}).principal_exists


def test_existing_principals_are_known_by_arn_session_and_unique_id(exists):
    assert exists(ALICE) and exists(DEPLOYER)
    assert exists(f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci")
    assert exists(unique_id_for(PrincipalKind.USER, ALICE))
    assert exists(unique_id_for(PrincipalKind.ASSUMED_ROLE, DEPLOYER))


def test_a_unique_id_no_principal_has_is_not_known(exists):
    assert not exists("AIDACKCEVSQ6C2EXAMPLE")  # (an orphaned id, as AWS refuses it)
    assert not exists(unique_id_for(PrincipalKind.USER, f"arn:aws:iam::{ACCOUNT}:user/bob"))
    # a user's id spelt as a role's is no role's
    assert not exists("AROA" + unique_id_for(PrincipalKind.USER, ALICE)[4:])


def test_a_key_policy_may_name_an_existing_principal_by_its_unique_id(exists):
    def policy(principal: str) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "kms:*",
             "Resource": "*"}]})

    Policy.parse(policy(unique_id_for(PrincipalKind.ASSUMED_ROLE, DEPLOYER)),
                 principal_exists=exists, kind="key")
    with pytest.raises(errors.MalformedPolicyDocumentException):
        Policy.parse(policy("AROACKCEVSQ6C2EXAMPLE"), principal_exists=exists, kind="key")
