"""The request context carried from the wire into every use case."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.values import Actor

if TYPE_CHECKING:
    from application.authorization import Caller


@dataclass(slots=True)
class RequestContext:
    """Built once per request by the front end and only read after that.

    A slotted dataclass rather than a NamedTuple: it is built on every request and the use
    cases read its fields, and both are cheaper with slots. (frozen=True would make the
    construction several times dearer.)

    ``account_id`` is the caller's account: a key id names a key of that account.
    """

    account_id: str
    region: str
    request_id: str
    caller: Caller
    access_key_id: str = ""
    source_ip: str = ""
    user_agent: str = ""
    secure_transport: bool = False
    #: for the audit record: the key ARNs the request used (or named, when refused before
    #: using it), in order, and the material version a symmetric Encrypt used
    resources: list[str] = field(default_factory=list)
    key_material_id: str | None = None
    #: for the audit record: additionalEventData the use case adds (RetireGrant's grantId)
    additional: dict[str, str] | None = None

    def start_over(self) -> None:
        """The use case runs once more (after catching up with the ledger): what its first run
        noted for the audit record goes, or the record would name a key twice."""
        self.resources.clear()
        self.key_material_id = None
        self.additional = None

    @property
    def principal(self) -> str:
        return self.caller.principal.arn

    @property
    def actor(self) -> Actor:
        return Actor(
            principal=self.principal,
            access_key_id=self.access_key_id,
            request_id=self.request_id,
            source_ip=self.source_ip,
            user_agent=self.user_agent,
        )
