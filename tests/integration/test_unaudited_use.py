"""No unaudited use: when the audit store cannot be written, the request answers
KMSInternalException (HTTP 500) instead of its result — the real ASGI app, in process."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx

from api.app import create_app
from api.settings import Settings


class BrokenStore:
    """An audit store whose disk is gone."""

    def __init__(self, real) -> None:
        self.real = real

    def append(self, rows) -> None:
        raise OSError("disk I/O error")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_request_whose_record_cannot_be_stored_fails(tmp_path):
    app = create_app(Settings(data_dir=str(tmp_path / "data"), auth="open"))
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kms")

    def call(operation: str, params: dict) -> httpx.Response:
        return loop.run_until_complete(client.post("/", content=json.dumps(params), headers={
            "X-Amz-Target": f"TrentService.{operation}",
            "Content-Type": "application/x-amz-json-1.1"}))

    try:
        created = call("CreateKey", {})
        assert created.status_code == 200
        key_id = created.json()["KeyMetadata"]["KeyId"]
        audit = app.service.region("us-east-1").audit
        audit.store = BrokenStore(audit.store)
        refused = call("Encrypt", {"KeyId": key_id, "Plaintext": base64.b64encode(b"x").decode()})
        assert (refused.status_code, refused.json()) == (
            500, {"__type": "KMSInternalException", "message": "An internal error occurred."})
        assert "CiphertextBlob" not in refused.text
        audit.store = audit.store.real
        assert call("Encrypt", {"KeyId": key_id,
                                "Plaintext": base64.b64encode(b"x").decode()}).status_code == 200
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        app.service.close()
