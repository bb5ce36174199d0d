"""Tags and key policies."""

from __future__ import annotations

from application.handlers import Handlers
from application.paging import limit, page, unmarker
from domain.key import check_policy_name, tags_of_request
from domain.messages import Requests
from domain.operations import OPERATIONS
from domain.policy import DEFAULT_POLICY_NAME

TAG_RESOURCE, UNTAG_RESOURCE, LIST_RESOURCE_TAGS, GET_KEY_POLICY, PUT_KEY_POLICY, LIST_KEY_POLICIES = (
    OPERATIONS[n] for n in ("TagResource", "UntagResource", "ListResourceTags", "GetKeyPolicy",
                            "PutKeyPolicy", "ListKeyPolicies")
)
MAX_TAG_KEY_LENGTH = 128  # the model's TagKeyType


class TagsAndPolicies(Handlers):
    def _key(self, ctx, params, operation):
        return self.gate.use(ctx, self.region(ctx.region), params["KeyId"], operation,
                             operation.keys[0], params)

    def TagResource(self, ctx, params):
        self.gate.change(ctx, self.region(ctx.region), params["KeyId"], TAG_RESOURCE, params,
                         lambda k: k.tag(tags_of_request(params["Tags"]), ctx.actor))
        return {}

    def UntagResource(self, ctx, params):
        self.gate.change(ctx, self.region(ctx.region), params["KeyId"], UNTAG_RESOURCE, params,
                         lambda k: k.untag(params["TagKeys"], ctx.actor))
        return {}

    def ListResourceTags(self, ctx, params):
        key = self._key(ctx, params, LIST_RESOURCE_TAGS)
        tag_keys = sorted(key.tags)
        start = unmarker(params.get("Marker"))
        if start is not None:
            if not 1 <= len(start) <= MAX_TAG_KEY_LENGTH:  # no tag key's position: forged
                raise Requests.INVALID_MARKER()
            tag_keys = [k for k in tag_keys if k > start]
        size = limit(params, default=50, maximum=50)
        tag_keys, paging = page(tag_keys, size, lambda k: k)
        return {"Tags": [{"TagKey": k, "TagValue": key.tags[k]} for k in tag_keys], **paging}

    def GetKeyPolicy(self, ctx, params):
        key = self._key(ctx, params, GET_KEY_POLICY)
        policy_name = params.get("PolicyName", DEFAULT_POLICY_NAME)
        check_policy_name(policy_name)
        return {"Policy": key.policy, "PolicyName": policy_name}

    def PutKeyPolicy(self, ctx, params):
        def put(key) -> None:
            policy = self.authorizer.new_key_policy(
                ctx, params["Policy"], params.get("BypassPolicyLockoutSafetyCheck", False), key.arn,
                PUT_KEY_POLICY, params,
            )
            key.put_policy(params.get("PolicyName", DEFAULT_POLICY_NAME), policy, ctx.actor)

        self.gate.change(ctx, self.region(ctx.region), params["KeyId"], PUT_KEY_POLICY, params, put)
        return {}

    def ListKeyPolicies(self, ctx, params):
        self._key(ctx, params, LIST_KEY_POLICIES)
        if params.get("Marker") is not None:  # (never issued: a key has one policy) past its end
            return {"PolicyNames": [], "Truncated": False}
        return {"PolicyNames": [DEFAULT_POLICY_NAME], "Truncated": False}
