"""Key policies: stored and validated as JSON documents (evaluation comes later)."""

from __future__ import annotations

import json

from domain.errors import MalformedPolicyDocumentException

DEFAULT_POLICY_NAME = "default"


def default_key_policy(account: str) -> str:
    """The default key policy AWS creates: the account root may do everything."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        indent=2,
    )


def validate_key_policy(policy: str) -> str:
    """Return ``policy`` unchanged if it is a well-formed policy document."""
    try:
        document = json.loads(policy)
    except ValueError:
        raise MalformedPolicyDocumentException(
            "The new key policy will not allow you to update the key policy in the future."
            if not policy.strip()
            else "The policy document is not valid JSON."
        ) from None
    if not isinstance(document, dict):
        raise MalformedPolicyDocumentException("The policy document must be a JSON object.")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicyDocumentException("Policy contains no statements.")
    for statement in statements:
        if not isinstance(statement, dict):
            raise MalformedPolicyDocumentException("Policy statement must be a JSON object.")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise MalformedPolicyDocumentException(
                "Policy statement has an invalid or missing Effect."
            )
        if "Action" not in statement and "NotAction" not in statement:
            raise MalformedPolicyDocumentException("Policy statement is missing an Action.")
    return policy
