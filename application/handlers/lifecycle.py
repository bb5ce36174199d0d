"""Key lifecycle: create, describe, list, describe, enable/disable, schedule/cancel deletion."""

from __future__ import annotations

import uuid
from typing import Any

from application.context import RequestContext
from application.handlers import Handlers
from application.paging import limit, page, unmarker
from application.presenters import key_metadata
from domain.key import KmsKey, pending_window_days, tags_of_request
from domain.key_specs import check_creatable
from domain.messages import Requests, Unsupported, Validation
from domain.multi_region import new_multi_region_key_id
from domain.operations import OPERATIONS
from domain.policy import default_key_policy
from domain.values import Origin, key_arn

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
CREATE_KEY, DESCRIBE_KEY, LIST_KEYS, TAG_RESOURCE = (
    OPERATIONS[n] for n in ("CreateKey", "DescribeKey", "ListKeys", "TagResource"))
UPDATE_KEY_DESCRIPTION, ENABLE_KEY, DISABLE_KEY, SCHEDULE_KEY_DELETION, CANCEL_KEY_DELETION = (
    OPERATIONS[n] for n in ("UpdateKeyDescription", "EnableKey", "DisableKey",
                            "ScheduleKeyDeletion", "CancelKeyDeletion")
)


class KeyLifecycle(Handlers):
    def CreateKey(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        spec = params.get("KeySpec") or params.get("CustomerMasterKeySpec") or SYMMETRIC_DEFAULT
        usage = params.get("KeyUsage")  # required for all but symmetric encryption keys
        if "KeySpec" in params and "CustomerMasterKeySpec" in params:
            raise Validation.SPEC_AND_CMK_SPEC()
        origin = params.get("Origin", Origin.AWS_KMS)
        if origin not in (Origin.AWS_KMS, Origin.EXTERNAL):
            raise Unsupported.ORIGIN(origin=origin)
        if params.get("CustomKeyStoreId") or params.get("XksKeyId"):
            raise Unsupported.CUSTOM_KEY_STORE()
        multi_region = bool(params.get("MultiRegion"))
        self.authorizer.check_request(ctx, CREATE_KEY, params)
        key_id = new_multi_region_key_id() if multi_region else str(uuid.uuid4())
        if params.get("Tags"):  # "To use the Tags parameter, kms:TagResource (IAM policy)"
            self.authorizer.check_request(ctx, TAG_RESOURCE, params,
                                          resource=key_arn(ctx.region, ctx.account_id, key_id))
        policy = self.authorizer.new_key_policy(
            ctx, params.get("Policy"), params.get("BypassPolicyLockoutSafetyCheck", False),
            key_arn(ctx.region, ctx.account_id, key_id), CREATE_KEY, params,
        )
        region = self.region(ctx.region)
        now = self.clock.now()
        data_key, wrapped_data_key = region.hierarchy.new_data_key(key_id)
        check_creatable(spec, usage)  # before generating material (RSA 4096 takes a while)
        usage = usage or "ENCRYPT_DECRYPT"
        tags = tags_of_request(params.get("Tags", []))
        key = KmsKey.create(
            key_id=key_id,
            account=ctx.account_id,
            region=ctx.region,
            description=params.get("Description", ""),
            key_spec=spec,
            key_usage=usage,
            origin=origin,
            policy=policy or default_key_policy(ctx.account_id),
            tags=tags,
            material=(
                None if origin == Origin.EXTERNAL
                else self.new_material(region, key_id, spec, now, None, data_key)
            ),
            now=now,
            actor=ctx.actor,
            multi_region=multi_region,
        )
        ctx.resources.append(key.arn)  # (before the save: the note of the record it carries
        try:  # names the key, as the record does)
            region.save(key, data_keys=((key_id, wrapped_data_key),))
        except BaseException:
            ctx.resources.remove(key.arn)  # (no key was made)
            raise
        return {"KeyMetadata": key_metadata(key)}

    def DescribeKey(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        key = self.gate.use(ctx, self.region(ctx.region), params["KeyId"], DESCRIBE_KEY,
                            DESCRIBE_KEY.keys[0], params)
        return {"KeyMetadata": key_metadata(key)}

    def ListKeys(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self.authorizer.check_request(ctx, LIST_KEYS, params)
        region = self.region(ctx.region)
        after = unmarker(params.get("Marker"))
        position = int(after) if after is not None and after.isascii() and after.isdigit() else (
            -1 if after else 0
        )
        if not 0 <= position < 2**63:
            raise Requests.INVALID_MARKER()
        size = limit(params, default=100, maximum=1000)
        region.projection.catch_up()
        rows = region.directory.list_keys(ctx.account_id, position, size + 1)
        rows, paging = page(rows, size, lambda row: str(row[1]))
        keys = [{"KeyId": k, "KeyArn": key_arn(ctx.region, ctx.account_id, k)} for k, _ in rows]
        return {"Keys": keys, **paging}

    def _change(self, ctx, params, operation, change) -> KmsKey:
        return self.gate.change(ctx, self.region(ctx.region), params["KeyId"], operation, params, change)

    def UpdateKeyDescription(self, ctx, params):
        self._change(ctx, params, UPDATE_KEY_DESCRIPTION,
                     lambda k: k.update_description(params["Description"], ctx.actor))
        return {}

    def EnableKey(self, ctx, params):
        self._change(ctx, params, ENABLE_KEY, lambda k: k.enable(ctx.actor))
        return {}

    def DisableKey(self, ctx, params):
        self._change(ctx, params, DISABLE_KEY, lambda k: k.disable(ctx.actor))
        return {}

    def ScheduleKeyDeletion(self, ctx, params):
        days = pending_window_days(params.get("PendingWindowInDays"))  # validated before lookup
        key = self._change(ctx, params, SCHEDULE_KEY_DELETION,
                           lambda k: k.schedule_deletion(days, self.clock.now(), ctx.actor))
        answer = {"KeyId": key.arn, "KeyState": key.key_state.value,
                  "PendingWindowInDays": key.pending_window_days}
        if key.deletion_date is not None:  # a primary with replicas has none yet (AWS)
            answer["DeletionDate"] = key.deletion_date
        return answer

    def CancelKeyDeletion(self, ctx, params):
        key = self._change(ctx, params, CANCEL_KEY_DELETION,
                           lambda k: k.cancel_deletion(self.clock.now(), ctx.actor))
        return {"KeyId": key.arn}
