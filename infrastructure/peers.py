"""The deployment's other nodes (``--peers``): their ledger feeds and transport keys over HTTP.

A node reads another node's Region with ``GET /ledger/v1/feed`` and ``GET
/ledger/v1/transport-key``, signed (SigV4, service ``kms``, the Region read) with the first key of
the identities file's ``"nodes"`` section. The events arrive as stored (their key material is
sealed; material shared between Regions is sealed to the receiving Region's transport key) and
are decoded by the receiving Region's own ledger mapper.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from eventsourcing.persistence import StoredEvent

log = logging.getLogger("keyledger.peers")

_OPEN_MODE = Credentials("keyledger-node", "keyledger-node")  # signatures are not checked


class PeerError(RuntimeError):
    """A peer did not answer as a keyledger node does (down, refused, malformed)."""


class Peer:
    """Another node, which serves some of the deployment's Regions."""

    def __init__(self, url: str, credentials: Callable[[], Credentials | None]) -> None:
        self.url = url
        self._credentials = credentials
        self._client = httpx.Client(timeout=5.0)
        self._transport_keys: dict[str, bytes] = {}

    def _get(self, path: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        url = str(httpx.URL(self.url + path, params=params))
        request = AWSRequest(method="GET", url=url)
        SigV4Auth(self._credentials() or _OPEN_MODE, "kms", region).add_auth(request)
        try:
            response = self._client.get(url, headers=dict(request.headers.items()))
        except httpx.HTTPError as error:
            raise PeerError(f"{self.url}: {error}") from error
        if response.status_code != 200:
            raise PeerError(f"{self.url}{path} ({region}): HTTP {response.status_code} "
                            f"{response.text[:200]}")
        return response.json()

    def authorize(self, region: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """Ask the peer to authorize a caller's operation on its key in ``region`` (the
        replica's Region, for UpdatePrimaryRegion): None if allowed, else the KMS error
        {"Code", "Message"} it answers."""
        url = self.url + "/ledger/v1/authorize"
        body = json.dumps({**request, "Region": region}).encode()
        aws_request = AWSRequest(method="POST", url=url, data=body,
                                 headers={"Content-Type": "application/json"})
        SigV4Auth(self._credentials() or _OPEN_MODE, "kms", region).add_auth(aws_request)
        try:
            response = self._client.post(url, content=body,
                                         headers=dict(aws_request.headers.items()))
        except httpx.HTTPError as error:
            raise PeerError(f"{self.url}: {error}") from error
        if response.status_code != 200:
            raise PeerError(f"{url} ({region}): HTTP {response.status_code} {response.text[:200]}")
        return response.json().get("Error")

    def read(self, region: str, after: int, limit: int) -> list[dict[str, Any]]:
        return self._get("/ledger/v1/feed", region, {"region": region, "after": after,
                                                     "limit": limit})["Events"]

    def transport_public_key(self, region: str) -> bytes:
        key = self._transport_keys.get(region)
        if key is None:
            answer = self._get("/ledger/v1/transport-key", region, {"region": region})
            key = self._transport_keys[region] = base64.b64decode(answer["PublicKey"])
        return key

    def feed(self, region: str, mapper) -> RemoteFeed:
        return RemoteFeed(self, region, mapper)

    def close(self) -> None:
        self._client.close()


class RemoteFeed:
    """A Region of a peer as application.replication reads it: (position, domain event)."""

    def __init__(self, peer: Peer, region: str, mapper) -> None:
        self.peer = peer
        self.region = region
        self.mapper = mapper

    def read(self, after: int, limit: int) -> list[tuple[int, Any]]:
        return [
            (event["Id"], self.mapper.to_domain_event(StoredEvent(
                originator_id=event["OriginatorId"],
                originator_version=event["OriginatorVersion"],
                topic=event["Topic"],
                state=base64.b64decode(event["State"]),
            )))
            for event in self.peer.read(self.region, after, limit)
        ]


def peers_of(settings, authenticator) -> dict[str, Peer]:
    """Region -> the peer serving it (``--peers``); one client per peer URL."""

    def credentials() -> Credentials | None:
        directory = authenticator.directory
        if directory is None:  # open mode
            return None
        keys = list(directory.node_keys.values())
        if not keys:
            raise PeerError('the identities file has no "nodes" access key to sign peer requests with')
        return Credentials(keys[0].access_key_id, keys[0].secret_access_key)

    by_url: dict[str, Peer] = {}
    return {region: by_url.setdefault(url, Peer(url, credentials))
            for region, url in settings.peer_urls.items()}
