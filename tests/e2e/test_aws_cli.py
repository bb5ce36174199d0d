"""Drive the server with the real AWS CLI (``aws kms ...``)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

AWS_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws"


@pytest.fixture(scope="module")
def aws(shared_server, tmp_path_factory, e2e):
    home = tmp_path_factory.mktemp("awscli-home")
    config = home / "config"
    config.write_text("[default]\nregion = us-east-1\noutput = json\n")
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    }
    env.update(
        AWS_ACCESS_KEY_ID=e2e.ROOT_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=e2e.ROOT_SECRET_ACCESS_KEY,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        HOME=str(home),
        NO_PROXY="127.0.0.1,localhost",
    )
    if not AWS_BIN.exists():
        pytest.fail(f"aws CLI not found at {AWS_BIN}")

    def run(*args: str, output: str = "json", check: bool = True, region: str = "us-east-1"):
        cmd = [str(AWS_BIN), "kms", *args, "--endpoint-url", shared_server.url,
               "--region", region, "--output", output]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        return proc

    def run_json(*args: str, region: str = "us-east-1"):
        return json.loads(run(*args, region=region).stdout)

    run.json = run_json
    return run


def test_cli_create_describe_encrypt_decrypt_alias(aws, tmp_path):
    created = aws.json("create-key", "--description", "from the aws cli")["KeyMetadata"]
    key_id = created["KeyId"]
    assert created["Arn"] == f"arn:aws:kms:us-east-1:111122223333:key/{key_id}"
    assert created["KeyState"] == "Enabled"
    assert created["Description"] == "from the aws cli"

    described = aws.json("describe-key", "--key-id", key_id)["KeyMetadata"]
    assert described["KeyId"] == key_id
    assert described["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert described["KeyUsage"] == "ENCRYPT_DECRYPT"

    plaintext = b"binary \x00\x01\x02\xff payload from the CLI\n" * 4
    pt_file = tmp_path / "plain.bin"
    pt_file.write_bytes(plaintext)
    enc = aws.json(
        "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{pt_file}",
        "--encryption-context", "purpose=cli,team=e2e",
    )
    assert enc["KeyId"] == created["Arn"]
    assert enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = base64.b64decode(enc["CiphertextBlob"])
    assert plaintext not in blob
    ct_file = tmp_path / "cipher.bin"
    ct_file.write_bytes(blob)

    out = aws(
        "decrypt", "--ciphertext-blob", f"fileb://{ct_file}",
        "--encryption-context", "purpose=cli,team=e2e",
        "--query", "Plaintext", output="text",
    ).stdout.strip()
    assert base64.b64decode(out) == plaintext

    # wrong context is rejected with the AWS error code, non-zero exit
    bad = aws(
        "decrypt", "--ciphertext-blob", f"fileb://{ct_file}",
        "--encryption-context", "purpose=other", check=False,
    )
    assert bad.returncode != 0
    assert "InvalidCiphertextException" in bad.stderr

    alias = f"alias/cli-{uuid.uuid4().hex[:10]}"
    created_alias = aws("create-alias", "--alias-name", alias, "--target-key-id", key_id)
    assert created_alias.stdout.strip() == ""

    listed = aws.json("list-aliases", "--key-id", key_id)["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]
    assert listed[0]["TargetKeyId"] == key_id
    assert listed[0]["AliasArn"] == f"arn:aws:kms:us-east-1:111122223333:{alias}"

    all_aliases = aws.json("list-aliases")["Aliases"]
    assert alias in {a["AliasName"] for a in all_aliases}

    by_alias = aws.json("describe-key", "--key-id", alias)["KeyMetadata"]
    assert by_alias["KeyId"] == key_id

    # encrypt through the alias, decrypt through the ciphertext alone
    pt2 = tmp_path / "plain2.bin"
    pt2.write_bytes(b"via alias")
    enc2 = aws.json("encrypt", "--key-id", alias, "--plaintext", f"fileb://{pt2}")
    ct2 = tmp_path / "cipher2.bin"
    ct2.write_bytes(base64.b64decode(enc2["CiphertextBlob"]))
    dec2 = aws.json("decrypt", "--ciphertext-blob", f"fileb://{ct2}")
    assert base64.b64decode(dec2["Plaintext"]) == b"via alias"
    assert dec2["KeyId"] == created["Arn"]


def test_cli_list_keys_and_errors(aws):
    key_id = aws.json("create-key")["KeyMetadata"]["KeyId"]
    keys = aws.json("list-keys")["Keys"]  # the CLI follows NextMarker itself
    assert key_id in {k["KeyId"] for k in keys}

    missing = aws("describe-key", "--key-id", str(uuid.uuid4()), check=False)
    assert missing.returncode != 0
    assert "NotFoundException" in missing.stderr

    random_b64 = aws("generate-random", "--number-of-bytes", "48", "--query", "Plaintext", output="text")
    assert len(base64.b64decode(random_b64.stdout.strip())) == 48

    dk = aws.json("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")
    assert len(base64.b64decode(dk["Plaintext"])) == 32

    aws("disable-key", "--key-id", key_id)
    gdk = aws("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256", check=False)
    assert gdk.returncode != 0 and "DisabledException" in gdk.stderr
    state = aws.json("describe-key", "--key-id", key_id)["KeyMetadata"]["KeyState"]
    assert state == "Disabled"


def test_cli_paginates_with_markers(aws):
    region = "sa-east-1"  # used by this test only
    created = {aws.json("create-key", region=region)["KeyMetadata"]["KeyId"] for _ in range(3)}
    # --page-size 1 makes the CLI walk NextMarker/Marker across three requests
    listed = aws.json("list-keys", "--page-size", "1", region=region)["Keys"]
    assert sorted(k["KeyId"] for k in listed) == sorted(created)
    first = aws.json("list-keys", "--max-items", "2", region=region)
    assert len(first["Keys"]) == 2 and first.get("NextToken")
    rest = aws.json("list-keys", "--starting-token", first["NextToken"], region=region)
    assert {k["KeyId"] for k in first["Keys"]} | {k["KeyId"] for k in rest["Keys"]} == created
