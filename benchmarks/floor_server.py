"""The "floor" for the HTTP benchmark: the fastest a Python KMS endpoint can be.

A raw ASGI application (no framework, no routing, no JSON work) served by
uvicorn with uvloop + httptools, one worker, access log off. It reads the
whole request body and answers every POST with a canned, realistic
``TrentService.Encrypt`` response (~1100-byte ciphertext blob, key ARN,
``application/x-amz-json-1.1`` content type and a fresh ``x-amzn-RequestId``).
Any GET answers ``200 {"status": "ok"}`` so it can be health-checked like
keyledger's ``/healthz``.

keyledger's req/s divided by this server's req/s (same client, same
connection count, same machine) is the "fraction of the floor" figure that
``http_bench.py`` reports.

Run on its own::

    .venv/bin/python benchmarks/floor_server.py --port 8099
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import uuid

# Deterministic pseudo-random ~1100-byte blob: roughly the size of a keyledger
# ciphertext for a 1 KiB plaintext (header + IV + 1024 bytes + tag).
_BLOB = base64.b64encode(bytes((i * 131 + 7) % 256 for i in range(1100))).decode("ascii")
_KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

ENCRYPT_RESPONSE = json.dumps(
    {
        "CiphertextBlob": _BLOB,
        "KeyId": _KEY_ARN,
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    },
    separators=(",", ":"),
).encode("ascii")

_POST_HEADERS_BASE = [
    (b"content-type", b"application/x-amz-json-1.1"),
    (b"content-length", str(len(ENCRYPT_RESPONSE)).encode("ascii")),
]
_HEALTH_BODY = b'{"status":"ok"}'
_HEALTH_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_HEALTH_BODY)).encode("ascii")),
]


async def app(scope, receive, send):  # noqa: C901 - deliberately flat, raw ASGI
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind != "http":
        return

    # Read the full request body, like a real handler has to.
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more_body = message.get("more_body", False)

    if scope["method"] == "POST":
        headers = _POST_HEADERS_BASE + [(b"x-amzn-requestid", str(uuid.uuid4()).encode("ascii"))]
        body = ENCRYPT_RESPONSE
    else:
        headers = _HEALTH_HEADERS
        body = _HEALTH_BODY
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    print(f"floor server listening on http://{args.host}:{args.port} (pid {os.getpid()})", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
