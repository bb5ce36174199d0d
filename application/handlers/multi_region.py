"""Multi-Region keys: ReplicateKey (the replica Region builds the replica from the stream)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from application.context import RequestContext
from application.handlers import Handlers
from application.presenters import key_metadata
from domain.key import KmsKey, tags_of_request
from domain.messages import MultiRegion
from domain.multi_region import SharedProperties
from domain.operations import OPERATIONS
from domain.policy import default_key_policy
from domain.values import key_arn

REPLICATE_KEY = OPERATIONS["ReplicateKey"]
CREATE_KEY, TAG_RESOURCE = OPERATIONS["CreateKey"], OPERATIONS["TagResource"]
UPDATE_PRIMARY_REGION = OPERATIONS["UpdatePrimaryRegion"]


class MultiRegionKeys(Handlers):
    def ReplicateKey(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        replica_region = params["ReplicaRegion"]
        if not self.core.reachable(replica_region):
            raise MultiRegion.REGION_NOT_SERVED(region=replica_region)
        if self.core.serves(replica_region):
            self.region(replica_region)  # its store opens: its replicators follow this Region
        region = self.region(ctx.region)
        tags = tags_of_request(params.get("Tags", []))
        description = params.get("Description", "")
        policies: list[str] = []

        def replica_of(key: KmsKey, policy: str) -> KmsKey:
            """The replica the request makes, as its Region will (in memory, not saved)."""
            return KmsKey.replica(
                primary=SharedProperties(key.id, key.account, key.key_spec, key.key_usage,
                                         key.origin, ctx.region, key.replica_regions),
                region=replica_region, description=description, policy=policy, tags=tags,
                now=self.clock.now(), actor=ctx.actor)

        def add_replica(key: KmsKey) -> None:
            # AWS: "kms:CreateKey in an IAM policy in the replica Region. To use the Tags
            # parameter, kms:TagResource in an IAM policy in the replica Region": asked in that
            # Region, of the replica it makes (the condition keys read its spec, usage, origin,
            # multi-Region type REPLICA and tags)
            there = replace(ctx, region=replica_region)
            made = replica_of(key, default_key_policy(key.account))
            self.authorizer.check_request(there, CREATE_KEY, params, key=made)
            if params.get("Tags"):
                self.authorizer.check_request(there, TAG_RESOURCE, params, resource=made.arn,
                                              key=made)
            # the replica's policy is its own: validated (and lockout-checked) for its ARN,
            # the default key policy when none is given (AWS does not copy the primary's)
            policy = self.authorizer.new_key_policy(
                ctx, params.get("Policy"), params.get("BypassPolicyLockoutSafetyCheck", False),
                key_arn(replica_region, key.account, key.id), REPLICATE_KEY, params,
            ) or default_key_policy(key.account)
            policies[:] = [policy]
            key.add_replica(replica_region, description, policy, tags, ctx.actor)
            self.share_with_replicas(region, key, ctx.actor)

        key = self.gate.change(ctx, region, params["KeyId"], REPLICATE_KEY, params, add_replica)
        # The answer describes the replica as AWS does on return: Creating. The replica Region
        # creates it from the primary Region's stream (application.replication).
        replica = replica_of(key, policies[0])
        self.replicate_soon(replica_region)
        return {
            "ReplicaKeyMetadata": key_metadata(replica),
            "ReplicaPolicy": policies[0],
            "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()],
        }

    def UpdatePrimaryRegion(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        new_primary = params["PrimaryRegion"]
        region = self.region(ctx.region)

        def update(key: KmsKey) -> None:
            self.core.fence(region.name, key)
            if new_primary in key.replica_regions:
                # AWS authorizes kms:UpdatePrimaryRegion on the replica too, in its Region, and
                # needs it Enabled (the key-state table, applied there by the gate) — on the
                # node that serves that Region
                if self.core.serves(new_primary):
                    self.gate.use(replace(ctx, region=new_primary), self.region(new_primary),
                                  key.id, UPDATE_PRIMARY_REGION, UPDATE_PRIMARY_REGION.keys[0],
                                  params)
                elif self.core.authorize_elsewhere is not None:
                    self.core.authorize_elsewhere(ctx, new_primary, key.id,
                                                  UPDATE_PRIMARY_REGION.name, params)
            key.update_primary_region(new_primary, ctx.actor)

        self.gate.change(ctx, region, params["KeyId"], UPDATE_PRIMARY_REGION, params, update)
        self.replicate_soon(new_primary)  # the replica Region applies the change from the stream
        self.replicate_soon(ctx.region)  # and this Region takes the new primary's confirmation
        return {}
