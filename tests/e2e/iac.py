"""Infrastructure-as-code clients for the e2e suites: Terraform (hashicorp/aws from the machine's
offline provider mirror) and Ansible (the amazon.aws collection bundled by the ``ansible``
package), each pointed at a real keyledger server.

Nothing here reaches the network: Terraform installs the provider from a ``filesystem_mirror``
named by ``TF_CLI_CONFIG_FILE`` (``direct`` excluded for it), with the checkpoint call off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
AWS_PROVIDER_VERSION = "5.100.0"
# The directory that holds registry.terraform.io/ (overridable for machines that keep it elsewhere).
TF_MIRROR = Path(os.environ.get("KEYLEDGER_TF_MIRROR", "/opt/tf-plugins"))
# The AWS provider is a 700 MB Go binary that builds its whole schema in every process Terraform
# starts (three per plan); a lazier garbage collector takes each command from ~13 s to ~9 s
# on this 2-core machine. GC tuning only: nothing the provider sends changes.
GO_GC = "400"


def terraform_missing() -> str | None:
    """Why the Terraform suite cannot run here, or None."""
    if shutil.which("terraform") is None:
        return "the terraform binary is not on PATH"
    provider_dir = TF_MIRROR / AWS_PROVIDER / AWS_PROVIDER_VERSION / "linux_amd64"
    if not any(provider_dir.glob("terraform-provider-aws_*")):
        return (f"no offline mirror of {AWS_PROVIDER} {AWS_PROVIDER_VERSION} at {provider_dir} "
                "(set KEYLEDGER_TF_MIRROR to the directory that holds registry.terraform.io)")
    return None


def clean_env() -> dict[str, str]:
    """The test process's environment without AWS or Terraform settings of the machine (a
    profile, real credentials, a region or an endpoint must never leak into a client)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "TF_", "ANSIBLE_", "KEYLEDGER_", "BOTO"))}


def provider_block(url: str, access_key: str, secret_key: str, region: str = "us-east-1") -> str:
    """The AWS provider pointed at keyledger (the block docs/compatibility.md shows)."""
    return f'''
terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "{AWS_PROVIDER_VERSION}"
    }}
  }}
}}
{aliased_provider_block(url, access_key, secret_key, region)}'''


def aliased_provider_block(url: str, access_key: str, secret_key: str, region: str,
                           alias: str | None = None) -> str:
    """One ``provider "aws"`` block pointed at keyledger; with ``alias``, a second provider for
    another Region of the same server (``provider = aws.<alias>`` on a resource), as
    multi-Region keys are managed on AWS."""
    alias_line = f'\n  alias                       = "{alias}"' if alias else ""
    return f'''
provider "aws" {{{alias_line}
  region                      = "{region}"
  access_key                  = "{access_key}"
  secret_key                  = "{secret_key}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  endpoints {{
    kms = "{url}"
  }}
}}
'''


class TerraformError(AssertionError):
    pass


class Terraform:
    """One Terraform working directory."""

    def __init__(self, workdir: Path, *, server_log: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server_log = server_log
        cli_config = self.workdir / "terraform.rc"
        cli_config.write_text(f'''
provider_installation {{
  filesystem_mirror {{
    path    = "{TF_MIRROR}"
    include = ["{AWS_PROVIDER}"]
  }}
  direct {{
    exclude = ["{AWS_PROVIDER}"]
  }}
}}
''')
        self.env = clean_env()
        self.env.update({
            "TF_CLI_CONFIG_FILE": str(cli_config),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "GOGC": GO_GC,
        })
        if os.environ.get("KEYLEDGER_TF_LOG"):  # e.g. DEBUG: every request and response
            self.env["TF_LOG"] = os.environ["KEYLEDGER_TF_LOG"]
            self.env["TF_LOG_PATH"] = str(self.workdir / "terraform.log")

    def write(self, name: str, text: str) -> None:
        (self.workdir / name).write_text(text)

    def remove(self, name: str) -> None:
        (self.workdir / name).unlink(missing_ok=True)

    def run(self, *args: str, ok: tuple[int, ...] = (0,), timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = ["terraform", *args]
        proc = subprocess.run(cmd, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode not in ok:
            server = ""
            if self.server_log is not None and self.server_log.exists():
                server = f"\n--- server log (tail) ---\n{self.server_log.read_text(errors='replace')[-3000:]}"
            raise TerraformError(
                f"`terraform {' '.join(args)}` exited {proc.returncode} (expected {ok})\n"
                f"--- stdout (tail) ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
                f"{server}"
            )
        return proc

    def init(self) -> None:
        self.run("init", "-no-color", "-input=false")

    def apply(self, plan_file: str | None = None) -> subprocess.CompletedProcess:
        args = ["apply", "-no-color", "-input=false", "-parallelism=64"]
        args += [plan_file] if plan_file else ["-auto-approve"]
        return self.run(*args)

    def plan(self, out: str | None = None) -> tuple[int, dict[str, str]]:
        """``plan -detailed-exitcode`` (0 no changes, 2 changes; 1 is an error and raises) and
        the planned changes other than reads, address -> action (from ``-json``'s
        ``planned_change`` messages, so no second Terraform run is needed to read them)."""
        args = ["plan", "-no-color", "-input=false", "-detailed-exitcode", "-parallelism=64", "-json"]
        if out:
            args.append(f"-out={out}")
        proc = self.run(*args, ok=(0, 2))
        changes: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            message = json.loads(line) if line.startswith("{") else {}
            if message.get("type") == "planned_change":
                change = message["change"]
                if change["action"] not in ("read", "noop"):
                    changes[change["resource"]["addr"]] = change["action"]
        return proc.returncode, changes

    def state(self) -> dict[str, dict[str, Any]]:
        """Every resource and data source in the state by address, with its attribute values,
        read from the state file (``terraform show -json`` would start the provider)."""
        path = self.workdir / "terraform.tfstate"
        if not path.exists():
            return {}
        resources: dict[str, dict[str, Any]] = {}
        for resource in json.loads(path.read_text()).get("resources", []):
            base = f"{resource['type']}.{resource['name']}"
            if resource["mode"] == "data":
                base = "data." + base
            for instance in resource["instances"]:
                key = instance.get("index_key")
                suffix = "" if key is None else f"[{json.dumps(key)}]"
                resources[base + suffix] = instance["attributes"]
        return resources

    def import_(self, address: str, resource_id: str) -> None:
        self.run("import", "-no-color", "-input=false", address, resource_id)

    def destroy(self) -> None:
        self.run("destroy", "-no-color", "-input=false", "-auto-approve", "-parallelism=64")


# -- Ansible -------------------------------------------------------------------------------------

def ansible_playbook() -> str:
    """The ansible-playbook of the environment running the tests (the project's venv)."""
    candidate = Path(sys.executable).parent / "ansible-playbook"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ansible-playbook")
    if found is None:
        pytest.fail("ansible-playbook is not installed: `pip install -e '.[test]'` installs ansible",
                    pytrace=False)
    return found


def run_playbook(playbook: Path, *, extra_vars: dict[str, Any], verbosity: int = 0,
                 timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a playbook on localhost with the venv's Python (boto3 importable for the modules);
    raise with its output when it fails."""
    workdir = playbook.parent
    env = clean_env()
    env.update({
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
        "ANSIBLE_HOME": str(workdir / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "PYTHONWARNINGS": "ignore",
    })
    vars_file = workdir / "extra-vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    cmd = [ansible_playbook(), "-i", "localhost,", "-c", "local", str(playbook),
           "-e", f"@{vars_file}"]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(
            f"ansible-playbook exited {proc.returncode}\n--- stdout (tail) ---\n"
            f"{proc.stdout[-12000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
    return proc
