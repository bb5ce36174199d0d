"""Ansible's amazon.aws collection (``kms_key``, ``kms_key_info``; the ``ansible`` 12.3.0 package
bundles amazon.aws 10.x) manages keyledger's keys as it manages AWS KMS keys.

``ansible-playbook`` from the project's environment runs two plays against a real server:
create a key with an alias, tags, rotation and a policy; the same task again reports no change;
disable and re-enable it; retag, then purge tags; add a grant with an encryption-context
constraint (and again: no change); read it with ``kms_key_info``; create an RSA signing key
(and again: no change). Between the plays the test uses the grant with boto3 as its grantee.
The second play deletes both keys (PendingDeletion) and lists them with ``kms_key_info``.

Each time ``kms_key`` looks at a key it calls DescribeKey, ListAliases, GetKeyRotationStatus,
ListGrants, ListResourceTags, ListKeyPolicies and GetKeyPolicy, and it judges "changed" from
what those return, so a no-change run needs every read to give back exactly what was written.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.e2e.iac import run_playbook

pytestmark = pytest.mark.e2e

ACCOUNT = "111122223333"
REGION = "us-east-1"
GRANTEE_ARN = f"arn:aws:iam::{ACCOUNT}:user/grantee"
GRANTEE_KEY = ("AKIAE2EANSGRANTEE001", "ansible/grantee/secret/access/key/000001")

HEADER = '''
- name: keyledger through amazon.aws
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws:
      endpoint_url: "{{ endpoint_url }}"
      region: "{{ region }}"
      access_key: "{{ access_key }}"
      secret_key: "{{ secret_key }}"
'''

MANAGE = HEADER + '''
  vars:
    policy:
      Version: "2012-10-17"
      Statement:
        - Sid: Root
          Effect: Allow
          Principal: {AWS: "arn:aws:iam::{{ account }}:root"}
          Action: "kms:*"
          Resource: "*"
        - Sid: AppDescribe
          Effect: Allow
          Principal: {AWS: "arn:aws:iam::{{ account }}:role/app"}
          Action: "kms:DescribeKey"
          Resource: "*"
    grant:
      name: grantee-encrypts
      grantee_principal: "{{ grantee }}"
      operations: [Encrypt, Decrypt, GenerateDataKey]
      constraints:
        encryption_context_equals: {app: ansible}
  tasks:
    - name: create a key with an alias, tags, rotation and a policy
      amazon.aws.kms_key: &symmetric
        alias: "{{ alias }}"
        description: managed by ansible
        tags: {team: a, env: test}
        enable_key_rotation: true
        policy: "{{ policy | to_json }}"
      register: created

    - name: the same task again
      amazon.aws.kms_key: *symmetric
      register: unchanged

    - name: disable it
      amazon.aws.kms_key: {<<: *symmetric, enabled: false}
      register: disabled

    - name: enable it again
      amazon.aws.kms_key: *symmetric
      register: reenabled

    - name: retag without purging
      amazon.aws.kms_key: {<<: *symmetric, tags: {team: b, owner: ops}, purge_tags: false}
      register: retagged

    - name: purge the other tags
      amazon.aws.kms_key: {<<: *symmetric, tags: {team: b}, purge_tags: true}
      register: purged

    - name: add a grant with an encryption-context constraint
      amazon.aws.kms_key: &granted {<<: *symmetric, tags: {team: b}, grants: ["{{ grant }}"]}
      register: granted

    - name: the grant again
      amazon.aws.kms_key: *granted
      register: granted_again

    - name: read the key with kms_key_info
      amazon.aws.kms_key_info:
        alias: "{{ alias }}"
      register: info

    - name: create an RSA signing key
      amazon.aws.kms_key: &rsa
        alias: "{{ alias }}-rsa"
        description: ansible signing key
        key_spec: RSA_2048
        key_usage: SIGN_VERIFY
        tags: {purpose: signing}
      register: rsa

    - name: the RSA key again
      amazon.aws.kms_key: *rsa
      register: rsa_again

    - name: hand the results to the test
      ansible.builtin.copy:
        dest: "{{ results_file }}"
        content: "{{ {'created': created, 'unchanged': unchanged, 'disabled': disabled,
                      'reenabled': reenabled, 'retagged': retagged, 'purged': purged,
                      'granted': granted, 'granted_again': granted_again, 'info': info,
                      'rsa': rsa, 'rsa_again': rsa_again} | to_json }}"
'''

DELETE = HEADER + '''
  tasks:
    - name: delete both keys
      amazon.aws.kms_key:
        alias: "{{ item }}"
        state: absent
        pending_window: 7
      loop: ["{{ alias }}", "{{ alias }}-rsa"]
      register: deleted

    - name: delete them again
      amazon.aws.kms_key:
        alias: "{{ item }}"
        state: absent
        pending_window: 7
      loop: ["{{ alias }}", "{{ alias }}-rsa"]
      register: deleted_again

    - name: list the key in PendingDeletion with kms_key_info
      amazon.aws.kms_key_info:
        alias: "{{ alias }}"
        pending_deletion: true
      register: pending

    - name: hand the results to the test
      ansible.builtin.copy:
        dest: "{{ results_file }}"
        content: "{{ {'deleted': deleted, 'deleted_again': deleted_again,
                      'pending': pending} | to_json }}"
'''


@pytest.fixture(scope="module")
def server(server_factory, e2e):
    identities = e2e.root_identities()
    identities["accounts"][ACCOUNT]["users"] = {"grantee": {"access_keys": [
        {"access_key_id": GRANTEE_KEY[0], "secret_access_key": GRANTEE_KEY[1]}]}}
    srv = server_factory("ansible", identities=identities)
    yield srv
    srv.cleanup()


def play(server, e2e, workdir, name: str, text: str, alias: str) -> dict:
    playbook = workdir / f"{name}.yml"
    playbook.write_text(text)
    results = workdir / f"{name}-results.json"
    run_playbook(playbook, extra_vars={
        "endpoint_url": server.url, "region": REGION, "account": ACCOUNT,
        "access_key": e2e.ROOT_ACCESS_KEY_ID, "secret_key": e2e.ROOT_SECRET_ACCESS_KEY,
        "alias": alias, "grantee": GRANTEE_ARN, "results_file": str(results),
    })
    return json.loads(results.read_text())


def test_kms_key_and_kms_key_info_manage_keys(server, e2e, tmp_path):
    kms = server.kms()
    alias = f"ansible-{uuid.uuid4().hex[:8]}"
    r = play(server, e2e, tmp_path, "manage", MANAGE, alias)

    created = r["created"]
    assert created["changed"] is True
    key_id = created["key_id"]
    assert created["aliases"] == [alias]
    assert (created["key_state"], created["description"]) == ("Enabled", "managed by ansible")
    assert created["tags"] == {"team": "a", "env": "test"}
    assert created["enable_key_rotation"] is True
    assert [s["Sid"] for s in created["key_policies"][0]["Statement"]] == ["Root", "AppDescribe"]
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert r["unchanged"]["changed"] is False

    assert (r["disabled"]["changed"], r["disabled"]["key_state"]) == (True, "Disabled")
    assert (r["reenabled"]["changed"], r["reenabled"]["key_state"]) == (True, "Enabled")
    assert r["retagged"]["changed"] is True
    assert r["retagged"]["tags"] == {"team": "b", "owner": "ops", "env": "test"}
    assert (r["purged"]["changed"], r["purged"]["tags"]) == (True, {"team": "b"})
    assert {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]} \
        == {"team": "b"}

    granted = r["granted"]
    assert granted["changed"] is True and r["granted_again"]["changed"] is False
    [grant] = granted["grants"]
    assert (grant["name"], grant["grantee_principal"]) == ("grantee-encrypts", GRANTEE_ARN)
    assert sorted(grant["operations"]) == ["Decrypt", "Encrypt", "GenerateDataKey"]
    assert grant["constraints"] == {"encryption_context_equals": {"app": "ansible"}}
    [listed] = kms.list_grants(KeyId=key_id)["Grants"]
    assert listed["GrantId"] == grant["grant_id"]
    assert listed["Constraints"] == {"EncryptionContextEquals": {"app": "ansible"}}

    # The grant lets its grantee (a user without policies) encrypt with that context only.
    grantee = server.kms(credentials=Credentials(*GRANTEE_KEY))
    blob = grantee.encrypt(KeyId=key_id, Plaintext=b"granted", EncryptionContext={"app": "ansible"})
    assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"],
                       EncryptionContext={"app": "ansible"})["Plaintext"] == b"granted"
    with pytest.raises(ClientError) as refused:
        grantee.encrypt(KeyId=key_id, Plaintext=b"no", EncryptionContext={"app": "other"})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"

    [info] = r["info"]["kms_keys"]
    assert (info["key_id"], info["aliases"], info["tags"]) == (key_id, [alias], {"team": "b"})
    assert info["enable_key_rotation"] is True
    assert [g["grant_id"] for g in info["grants"]] == [grant["grant_id"]]
    assert [s["Sid"] for s in info["key_policies"][0]["Statement"]] == ["Root", "AppDescribe"]

    rsa = r["rsa"]
    assert rsa["changed"] is True and r["rsa_again"]["changed"] is False
    assert (rsa["key_spec"], rsa["key_usage"], rsa["key_state"]) == ("RSA_2048", "SIGN_VERIFY", "Enabled")
    assert rsa["aliases"] == [f"{alias}-rsa"] and rsa["tags"] == {"purpose": "signing"}
    assert rsa["enable_key_rotation"] is False  # "always false" for asymmetric keys
    assert "RSASSA_PSS_SHA_256" in rsa["signing_algorithms"]
    signature = kms.sign(KeyId=rsa["key_id"], Message=b"signed", SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert kms.verify(KeyId=rsa["key_id"], Message=b"signed", Signature=signature["Signature"],
                      SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"] is True

    before = datetime.now(UTC)
    d = play(server, e2e, tmp_path, "delete", DELETE, alias)
    after = datetime.now(UTC)
    assert [x["changed"] for x in d["deleted"]["results"]] == [True, True]
    assert [x["changed"] for x in d["deleted_again"]["results"]] == [False, False]
    [pending] = d["pending"]["kms_keys"]
    assert (pending["key_id"], pending["key_state"]) == (key_id, "PendingDeletion")
    for deleted in (key_id, rsa["key_id"]):
        md = kms.describe_key(KeyId=deleted)["KeyMetadata"]
        assert md["KeyState"] == "PendingDeletion"
        assert before + timedelta(days=7) - timedelta(seconds=5) <= md["DeletionDate"] \
            <= after + timedelta(days=7)
