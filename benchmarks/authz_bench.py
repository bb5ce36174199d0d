"""Micro-benchmark of domain.authorization.authorize(): µs per decision on the hot path.

Cases (each with its policies compiled once, as the server keeps them):

* ``default + root``: the default key policy, the account's root user, kms:Encrypt
  (cacheable: no condition consulted);
* ``default + IAM user``: the default key policy delegating to one identity policy
  (kms:Encrypt on the key ARN);
* ``EncryptionContext condition``: a key policy allowing a role's sessions kms:Decrypt with
  ``StringEquals kms:EncryptionContext:AppName`` and ``ForAnyValue:StringEquals
  kms:EncryptionContextKeys`` (not cacheable), the request's context satisfying both;
* ``EncryptionContext refused``: the same policy, a context that fails (NO_RESOURCE_POLICY);
* ``parse default policy``: Policy.parse of the default key policy (a one-time cost per policy
  version, for comparison).

Run: ``.venv/bin/python benchmarks/authz_bench.py [--number N] [--repeat R]``; prints the best
of R runs of N calls each, in µs per call.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.authorization import AuthorizationRequest, authorize  # noqa: E402
from domain.policy import Policy, default_key_policy  # noqa: E402
from domain.principals import Principal, PrincipalKind  # noqa: E402

ACCOUNT = "111122223333"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def cases() -> dict[str, tuple]:
    default = Policy.parse(default_key_policy(ACCOUNT))
    root = Principal.root(ACCOUNT)
    alice = Principal(ACCOUNT, PrincipalKind.USER, name="alice", unique_id="AIDAEXAMPLE0000000001")
    iam = Policy.parse(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "UseKey", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"],
         "Resource": KEY}]}), kind="identity")
    conditional = Policy.parse(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
         "Resource": "*"},
        {"Sid": "AppOnly", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/RoleForExampleApp"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:AppName": "ExampleApp"},
                       "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}},
    ]}))
    role = Principal(ACCOUNT, PrincipalKind.ASSUMED_ROLE, name="RoleForExampleApp",
                     session_name="s1", unique_id="AROAEXAMPLE0000000001")
    good = {"kms:encryptioncontext:appname": "ExampleApp",
            "kms:encryptioncontextkeys": ["AppName"]}
    bad = {"kms:encryptioncontext:appname": "Other", "kms:encryptioncontextkeys": ["AppName"]}
    return {
        "default + root": (root, default, (), {}),
        "default + IAM user": (alice, default, (iam,), {}),
        "EncryptionContext condition": (role, conditional, (), good),
        "EncryptionContext refused": (role, conditional, (), bad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"{'case':32} {'µs/call':>9}  outcome / cacheable")
    for name, (principal, key_policy, identity, context) in cases().items():
        request = AuthorizationRequest(principal, "kms:Decrypt" if context else "kms:Encrypt",
                                       KEY, ACCOUNT, key_policy, identity, context)
        decision = authorize(request)
        best = min(timeit.repeat(lambda r=request: authorize(r), number=args.number,
                                 repeat=args.repeat))
        print(f"{name:32} {best / args.number * 1e6:9.3f}  {decision.outcome.name} / "
              f"{decision.cacheable}")
    text = default_key_policy(ACCOUNT)
    number = max(args.number // 20, 1)
    best = min(timeit.repeat(lambda: Policy.parse(text), number=number, repeat=args.repeat))
    print(f"{'parse default policy':32} {best / number * 1e6:9.3f}")


if __name__ == "__main__":
    main()
