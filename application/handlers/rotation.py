"""Key rotation: automatic rotation settings, on-demand rotation, the rotation listing."""

from __future__ import annotations

from typing import Any

from application.handlers import Handlers
from application.paging import limit, page, unmarker
from application.presenters import rotation_status
from domain import messages
from domain.key import KmsKey, rotation_period_days
from domain.key_specs import rotatable
from domain.messages import Requests
from domain.operations import OPERATIONS
from domain.values import RotationType

ENABLE_KEY_ROTATION, DISABLE_KEY_ROTATION, GET_KEY_ROTATION_STATUS, ROTATE_KEY_ON_DEMAND, \
    LIST_KEY_ROTATIONS = (
        OPERATIONS[n] for n in ("EnableKeyRotation", "DisableKeyRotation", "GetKeyRotationStatus",
                                "RotateKeyOnDemand", "ListKeyRotations")
    )


class Rotation(Handlers):
    def EnableKeyRotation(self, ctx, params):
        days = rotation_period_days(params.get("RotationPeriodInDays"))  # validated before lookup
        region = self.region(ctx.region)

        def enable(key: KmsKey) -> None:
            key.enable_rotation(days, self.clock.now(), ctx.actor)
            self.share_with_replicas(region, key, ctx.actor)

        self.gate.change(ctx, region, params["KeyId"], ENABLE_KEY_ROTATION, params, enable)
        return {}

    def DisableKeyRotation(self, ctx, params):
        region = self.region(ctx.region)

        def disable(key: KmsKey) -> None:
            key.disable_rotation(ctx.actor)
            self.share_with_replicas(region, key, ctx.actor)

        self.gate.change(ctx, region, params["KeyId"], DISABLE_KEY_ROTATION, params, disable)
        return {}

    def GetKeyRotationStatus(self, ctx, params):
        # Asymmetric, HMAC and imported-material keys answer too: "The key rotation status of
        # these KMS keys is always false" (API Reference); only Enable/DisableKeyRotation refuse.
        key = self.gate.use(ctx, self.region(ctx.region), params["KeyId"], GET_KEY_ROTATION_STATUS,
                            GET_KEY_ROTATION_STATUS.keys[0], params)
        return rotation_status(key)

    def RotateKeyOnDemand(self, ctx, params):
        region = self.region(ctx.region)
        now = self.clock.now()

        def rotate(key: KmsKey) -> None:
            key.check_on_demand_rotation(now)  # before generating material
            material = (
                None if key.imported
                else self.new_material(region, key.id, key.key_spec, now, RotationType.ON_DEMAND)
            )
            key.rotate_on_demand(material, now, ctx.actor)
            self.share_with_replicas(region, key, ctx.actor)

        key = self.gate.change(ctx, region, params["KeyId"], ROTATE_KEY_ON_DEMAND, params, rotate)
        return {"KeyId": key.arn}

    def ListKeyRotations(self, ctx, params):
        key = self.gate.use(ctx, self.region(ctx.region), params["KeyId"], LIST_KEY_ROTATIONS,
                            LIST_KEY_ROTATIONS.keys[0], params)
        everything = params.get("IncludeKeyMaterial") == "ALL_KEY_MATERIAL"
        if everything and not rotatable(key.key_spec):
            # "can only be used with KMS keys that support automatic or on-demand key rotation"
            raise messages.Rotation.ALL_KEY_MATERIAL_UNSUPPORTED(arn=key.arn, key_spec=key.key_spec)
        ids = list(key.imports) if key.imported else list(key.materials)
        ids = [i for i in ids if everything or key.rotation_of(i) is not None]
        start = unmarker(params.get("Marker"))
        if start is not None:
            if start not in ids:
                raise Requests.INVALID_MARKER()
            ids = ids[ids.index(start) + 1 :]
        size = limit(params, default=100, maximum=1000)
        ids, paging = page(ids, size, lambda i: i)
        rotations = []
        for material_id in ids:
            entry: dict[str, Any] = {
                "KeyId": key.id,
                "KeyMaterialId": material_id,
                "KeyMaterialState": key.material_state(material_id).value,
            }
            rotation = key.rotation_of(material_id)
            if rotation is not None:
                entry["RotationDate"] = rotation.created
                entry["RotationType"] = rotation.rotation_type.value
            imported = key.imports.get(material_id)
            if imported is not None:
                entry["ImportState"] = "IMPORTED" if imported.imported else "PENDING_IMPORT"
                entry["ExpirationModel"] = imported.expiration_model.value
                if imported.description:
                    entry["KeyMaterialDescription"] = imported.description
                if imported.valid_to is not None:
                    entry["ValidTo"] = imported.valid_to
            rotations.append(entry)
        return {"Rotations": rotations, **paging}
