"""botocore's model of the KMS API (``kms/2014-11-01/service-2.json``), loaded once, when first
asked for: the wire protocol validates requests against it (api.protocol) and the audit records
log what it says an operation's request and response hold (application.audit_records).

botocore is imported only then: a command that needs neither (``keyledger history``,
``who-can``) starts without it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.model import ServiceModel


@cache
def service_model() -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model("kms")
