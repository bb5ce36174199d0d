"""Authorization of every request (placeholder until the policy evaluator lands)."""

from __future__ import annotations


class Authorizer:
    def check_key(self, ctx, key, operation, action, params, alias) -> None:
        return None

    def check_request(self, ctx, operation, params, resource: str = "*") -> None:
        return None

    def new_key_policy(self, ctx, policy, bypass_lockout_check: bool):
        return policy
