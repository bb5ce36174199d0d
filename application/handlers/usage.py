"""Key usage: GetKeyLastUsage, answered from the region's audit store.

The key is named by key id or key ARN (no alias: "Alias names are not supported"), in the
caller's account ("Cross-account use: No"), authorized by ``kms:GetKeyLastUsage`` in the key
policy; the answer is :func:`application.forensics.key_last_usage`.
"""

from __future__ import annotations

from typing import Any

from application.context import RequestContext
from application.forensics import key_last_usage
from application.handlers import Handlers
from domain.operations import OPERATIONS

GET_KEY_LAST_USAGE = OPERATIONS["GetKeyLastUsage"]


class KeyUsage(Handlers):
    def GetKeyLastUsage(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        region = self.region(ctx.region)
        key = self.gate.use(ctx, region, params["KeyId"], GET_KEY_LAST_USAGE,
                            GET_KEY_LAST_USAGE.keys[0], params)
        return key_last_usage(region, key)
