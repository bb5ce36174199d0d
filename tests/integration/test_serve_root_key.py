"""``keyledger serve`` with another root key than the one that sealed its store's data keys
refuses to start, in one line (found in a review: a server on a PostgreSQL store sealed under
another root key started and looked healthy, while every use of a stored key, the chaining
and the replication failed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infrastructure.root_key import create_root_key_file
from tests.e2e.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def serve(settings, data_dir: Path, root_key_file: Path | None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "api", "serve", "--port", str(free_port()),
            "--data-dir", str(data_dir), "--auth", "open"]
    args += ["--store", settings.store] if settings.store else []
    args += ["--root-key-file", str(root_key_file)] if root_key_file else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYLEDGER_")}
    return subprocess.run(args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_serve_refuses_a_store_sealed_under_another_root_key(kms, tmp_path):
    kms.call("CreateKey", Description="sealed under the store's root key")
    kms.close()
    other = tmp_path / "other.key"
    create_root_key_file(other)
    refused = serve(kms.settings, kms.settings.data_path, other)
    where = (kms.settings.data_path if not kms.settings.store else
             "PostgreSQL " + kms.settings.store.split("@")[-1].split("?")[0])
    assert (refused.returncode, refused.stderr.splitlines()[-1]) == (2, (
        f"keyledger serve: the root key does not open the data keys of Region us-east-1 in "
        f"{where}: they were sealed under another root key; start with that one "
        "(--root-key-file or KEYLEDGER_ROOT_KEY)")), refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.postgres
def test_serve_refuses_a_new_data_dir_on_a_postgres_store_of_another(postgres_url, tmp_path):
    """The review's case: a new --data-dir (its own new root key) on a database in use."""
    from api.settings import Settings
    from tests.integration.conftest import Harness

    harness = Harness(Settings(data_dir=str(tmp_path / "first"), store=postgres_url))
    harness.call("CreateKey")
    harness.close()
    second = tmp_path / "second"
    refused = serve(harness.settings, second, None)
    assert refused.returncode == 2, refused.stderr
    where = "PostgreSQL " + postgres_url.split("@")[-1].split("?")[0]
    assert refused.stderr.splitlines()[-1] == (
        f"keyledger serve: no root key at {second / 'root.key'}, and the data keys of Region "
        f"us-east-1 in {where} were sealed under one; start with it (--root-key-file or "
        "KEYLEDGER_ROOT_KEY)"), refused.stderr
    assert not (second / "root.key").exists()  # (no new key beside a store needing the old)

    # a mistyped --root-key-file: refused the same way, and no key is made there either
    typo = tmp_path / "first" / "root.kye"
    refused = serve(harness.settings, tmp_path / "first", typo)
    assert refused.returncode == 2 and f"no root key at {typo}," in refused.stderr
    assert not typo.exists()
