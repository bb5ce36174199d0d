"""botocore's data for the KMS API, read once, when first asked for: the model
(``kms/2014-11-01/service-2.json``) the wire protocol validates requests against (api.protocol)
and the audit records log by (application.audit_records), and the Regions botocore knows a KMS
endpoint in.

Read with botocore's loader, model and endpoint resolver, not a ``botocore.session`` (whose
client, waiter and docs modules cost ~0.1 s to import and are not needed); botocore is imported
only then, so a command that needs none of it (``keyledger history``, ``who-can``) starts
without it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.loaders import Loader
    from botocore.model import ServiceModel


@cache
def _loader() -> Loader:
    from botocore.loaders import create_loader

    return create_loader(os.environ.get("AWS_DATA_PATH"))  # where a session would look too


@cache
def service_model() -> ServiceModel:
    from botocore.model import ServiceModel

    return ServiceModel(_loader().load_service_model("kms", "service-2"), service_name="kms")


@cache
def kms_regions() -> frozenset[str]:
    """The commercial ("aws" partition) Regions where botocore knows a KMS endpoint."""
    from botocore.regions import EndpointResolver

    endpoints = EndpointResolver(_loader().load_data("endpoints"))
    return frozenset(endpoints.get_available_endpoints("kms", "aws"))
