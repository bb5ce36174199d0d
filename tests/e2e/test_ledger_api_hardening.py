"""The ledger REST API (``GET /ledger/v1/...``) answers every malformed request 400 in its
usual shape, audits every request it answers (one record each, refusals included), names the
record in each answer's ``x-amzn-RequestId``, and reads the audit by what eventTime shows
and by key ARN — against the real server on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import httpx
import pytest
from botocore.credentials import Credentials

from tests.e2e.conftest import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_CREDENTIALS,
    sign,
    stored_audit_record,
)

pytestmark = pytest.mark.e2e

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"


def _audit(server, credentials=None, **query):
    path = "/ledger/v1/audit" + ("?" + urlencode(query) if query else "")
    if credentials is None:
        return server.ledger_get(path)
    return server.ledger_get(path, credentials=credentials)


def _answered(server, response, status: int, body: dict | None = None) -> dict:
    """The stored record of an answer (named by its x-amzn-RequestId), once the answer is as
    expected."""
    assert response.status_code == status, response.text
    if body is not None:
        assert response.json() == body
    request_id = response.headers.get("x-amzn-RequestId")
    assert request_id, dict(response.headers)
    record = stored_audit_record(server, request_id)
    assert record["requestID"] == request_id
    return record


# -- 1. a paging token past any store position ----------------------------------------------------


def test_a_paging_token_beyond_any_position_is_an_invalid_token(store_server):
    huge = base64.urlsafe_b64encode(b"kla:99999999999999999999999").decode()
    record = _answered(store_server, _audit(store_server, next_token=huge), 400,
                       {"detail": "Invalid NextToken"})
    assert (record["eventName"], record["errorCode"], record["errorMessage"]) == (
        "ReadAudit", "InvalidMarkerException", "Invalid NextToken")
    # as any other forged token is answered
    _answered(store_server, _audit(store_server, next_token="not-a-token"), 400,
              {"detail": "Invalid NextToken"})


# -- 2. malformed parameters: 400, audited ---------------------------------------------------------


@pytest.mark.parametrize(("query", "detail"), [
    ({"limit": "abc"}, "limit must be between 1 and 1000."),
    ({"limit": "0"}, "limit must be between 1 and 1000."),
    ({"errors_only": "maybe"}, "errors_only must be true or false, not 'maybe'."),
    ({"start": "nan"}, "start must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not 'nan'."),
    ({"start": "inf"}, "start must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not 'inf'."),
    ({"end": "-Infinity"}, "end must be ISO 8601 (2024-05-01T09:14:00Z) or epoch seconds, not '-Infinity'."),
    ({"region": "xx-fake-1"}, "invalid region 'xx-fake-1'"),
])
def test_a_malformed_parameter_is_a_400_and_is_audited(store_server, query, detail):
    record = _answered(store_server, _audit(store_server, **query), 400, {"detail": detail})
    assert (record["eventSource"], record["eventName"], record["errorCode"],
            record["errorMessage"]) == ("keyledger.ledger", "ReadAudit", "ValidationException", detail)
    assert record["userIdentity"]["arn"] == ROOT_ARN
    assert list(record["requestParameters"].values()) == list(query.values())  # names in camelCase
    assert record["awsRegion"] == DEFAULT_REGION  # a Region not served: the default Region's audit


def test_an_unserved_region_on_a_key_route_is_a_400_and_is_audited(store_server):
    key_id = store_server.kms().create_key()["KeyMetadata"]["KeyId"]
    response = store_server.ledger_get(f"/ledger/v1/keys/{key_id}/state?region=xx-fake-1")
    record = _answered(store_server, response, 400, {"detail": "invalid region 'xx-fake-1'"})
    assert (record["eventName"], record["errorCode"]) == ("ReadKeyState", "ValidationException")
    assert "resources" not in record or record["resources"] == []


def test_flags_still_read_as_true_or_false(store_server):
    assert _audit(store_server, errors_only="true", limit="1").status_code == 200
    assert _audit(store_server, errors_only="0", limit="1000").status_code == 200


# -- 3. every answer names its record -------------------------------------------------------------


def test_every_ledger_answer_carries_its_records_request_id(store_server):
    key_id = store_server.kms().create_key()["KeyMetadata"]["KeyId"]
    ok = _answered(store_server, _audit(store_server, limit="1"), 200)
    assert (ok["eventName"], ok.get("errorCode")) == ("ReadAudit", None)
    events = _answered(store_server, store_server.ledger_get(f"/ledger/v1/keys/{key_id}/events"), 200)
    assert events["eventName"] == "ReadHistory"
    missing = "00000000-0000-0000-0000-000000000000"
    gone = _answered(store_server, store_server.ledger_get(f"/ledger/v1/keys/{missing}/state"), 404)
    assert gone["errorCode"] == "NotFoundException"
    replication = _answered(store_server, store_server.ledger_get("/ledger/v1/replication"), 200)
    assert replication["eventName"] == "ReadReplication"
    # two requests, two request ids
    first, second = _audit(store_server, limit="1"), _audit(store_server, limit="1")
    assert first.headers["x-amzn-RequestId"] != second.headers["x-amzn-RequestId"]


# -- 4. an authentication failure names the access key it claimed ----------------------------------


def test_an_authentication_failure_records_the_access_key_id_it_claimed(store_server):
    stranger = Credentials("AKIASTRANGER0000000", "x")
    record = _answered(store_server, _audit(store_server, credentials=stranger), 403)
    assert record["userIdentity"] == {"type": "Unknown", "accessKeyId": "AKIASTRANGER0000000"}
    assert (record["eventName"], record["errorCode"]) == ("ReadAudit", "UnrecognizedClientException")
    # a wrong secret for a known key: the key id it claimed, still unauthenticated
    wrong = Credentials(ROOT_ACCESS_KEY_ID, "not-the-secret")
    record = _answered(store_server, store_server.ledger_get("/ledger/v1/replication", credentials=wrong), 403)
    assert record["userIdentity"] == {"type": "Unknown", "accessKeyId": ROOT_ACCESS_KEY_ID}
    assert record["eventName"] == "ReadReplication"


# -- 5. start/end to the second eventTime shows ---------------------------------------------------


def test_start_and_end_at_a_records_own_event_time_find_it(store_server):
    kms = store_server.kms()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    request_id = kms.encrypt(KeyId=key_id, Plaintext=b"x")["ResponseMetadata"]["RequestId"]
    shown = stored_audit_record(store_server, request_id)["eventTime"]  # e.g. 2026-12-06T09:14:02Z
    found = _audit(store_server, key_id=key_id, event_name="Encrypt", start=shown, end=shown)
    assert found.status_code == 200, found.text
    assert [r["requestID"] for r in found.json()["Records"]] == [request_id]


# -- 6. the key filter: a key id or a key ARN ----------------------------------------------------


def test_a_key_arn_filters_as_its_key_id_and_an_alias_is_refused(store_server):
    kms = store_server.kms()
    key = kms.create_key()["KeyMetadata"]
    request_id = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["ResponseMetadata"]["RequestId"]
    by_arn = _audit(store_server, key_id=key["Arn"], event_name="Encrypt")
    assert by_arn.status_code == 200, by_arn.text
    assert [r["requestID"] for r in by_arn.json()["Records"]] == [request_id]
    alias = f"alias/hardening-{key['KeyId'][:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    for named in (alias, f"arn:aws:kms:{DEFAULT_REGION}:{ACCOUNT_ID}:{alias}"):
        detail = f"The key filter takes a key id or key ARN, not an alias: {named!r}."
        record = _answered(store_server, _audit(store_server, key_id=named), 400, {"detail": detail})
        assert record["errorCode"] == "ValidationException"


# -- 7. a path or method the ledger API does not have --------------------------------------------


def _signed(server, method: str, path: str, credentials=ROOT_CREDENTIALS) -> httpx.Response:
    url = server.url + path
    return httpx.request(method, url, timeout=10, follow_redirects=False,
                         headers=sign(url, {}, b"", credentials=credentials, method=method))


def test_an_unknown_path_or_method_is_answered_and_audited(store_server):
    missing = _answered(store_server, store_server.ledger_get("/ledger/v1/nope?x=1"), 404,
                        {"detail": "Not Found"})
    assert (missing["eventName"], missing["errorCode"], missing["errorMessage"]) == (
        "LedgerApi", "UnknownOperationException", "The ledger API has no GET /ledger/v1/nope.")
    assert (missing["userIdentity"]["arn"], missing["requestParameters"]) == (ROOT_ARN, {"x": "1"})
    # any method on a path no route has is a 404
    for method in ("TRACE", "DELETE", "HEAD"):
        answer = _signed(store_server, method, "/ledger/v1/nope")
        record = _answered(store_server, answer, 404)
        assert (record["eventName"], record["errorMessage"]) == (
            "LedgerApi", f"The ledger API has no {method} /ledger/v1/nope."), method
    # a route that takes the path with another method: 405, naming the methods it takes
    for method in ("POST", "TRACE"):
        answer = _signed(store_server, method, "/ledger/v1/audit")
        record = _answered(store_server, answer, 405, {"detail": "Method Not Allowed"})
        assert answer.headers["allow"] == "GET", method
        assert (record["eventName"], record["errorMessage"]) == (
            "LedgerApi", f"The ledger API has no {method} /ledger/v1/audit."), method
    # an unauthenticated caller is refused first, named as an authenticated one is
    stranger = Credentials("AKIASTRANGER0000000", "x")
    for path in ("/ledger/v1/nope", "/ledger/v1/audit"):
        refused = _answered(store_server, _signed(store_server, "POST", path, stranger), 403)
        assert (refused["eventName"], refused["errorCode"]) == (
            "LedgerApi", "UnrecognizedClientException"), path
    # the nodes' routes are not API calls: a wrong method is Starlette's 405, not audited
    feed = _signed(store_server, "POST", "/ledger/v1/feed")
    assert (feed.status_code, feed.headers["allow"], feed.headers.get("x-amzn-RequestId")) == (
        405, "GET", None)
    # a path with a slash too many is redirected to its route, as before, and audited
    slash = _signed(store_server, "GET", "/ledger/v1/audit/?limit=2")
    moved = store_server.url + "/ledger/v1/audit?limit=2"
    assert (slash.status_code, slash.headers["location"]) == (307, moved)
    record = _answered(store_server, slash, 307)
    assert (record["eventName"], record.get("errorCode"), record["additionalEventData"],
            record["requestParameters"]) == (
        "LedgerApi", None, {"redirectedTo": "/ledger/v1/audit"}, {"limit": "2"})
