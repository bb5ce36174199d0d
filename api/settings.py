"""Server settings: every flag of ``keyledger serve`` has a ``KEYLEDGER_*`` variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from infrastructure.crypto_workers import DEFAULT_NICENESS


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "./keyledger-data"
    store: str | None = None
    account_id: str = "111122223333"
    default_region: str = "us-east-1"
    workers: int = 1
    root_key_file: str | None = None
    enable_test_control: bool = False
    maintenance_interval: float = 1.0
    #: how much lower the crypto helper processes run than the server: a nice increment,
    #: 0-19, or "idle" (SCHED_IDLE: only CPU time nothing else wants)
    crypto_niceness: str = str(DEFAULT_NICENESS)
    #: "sigv4": every request is signed with an access key of the identities file; "open":
    #: signatures are not checked and the caller is its account's root (policies still apply)
    auth: str = "sigv4"
    #: the identities file (sigv4 mode); default <data-dir>/identities.json
    identities: str | None = None
    #: audit records older than this are pruned (whole checkpointed prefixes only: export
    #: them first with `keyledger audit export`)
    audit_retention_days: int = 365
    #: microseconds the audit writer waits before a commit that follows one of several
    #: records, so that more share it (application.audit); 0: never waits
    audit_commit_delay_us: int = 100
    #: seconds after which maintenance stores a management request's record from the note its
    #: change carries, if the audit store lacks it (its process died in between:
    #: domain.request_records); keep it past the store's 30 s busy timeout, after which a
    #: late record is spooled, or a record stored that late is stored twice
    audit_record_grace: float = 120.0
    #: the Regions this node serves, comma-separated (default: every Region); requests signed
    #: for another Region get AWS's wrong-Region answer
    regions: str | None = None
    #: where the deployment's other Regions are served: "us-west-2=http://host:port,..."
    peers: str | None = None

    def __post_init__(self) -> None:
        if self.audit_retention_days < 1:
            raise ValueError(f"--audit-retention-days must be at least 1, not "
                             f"{self.audit_retention_days}: audit records are kept that many days")
        if not 0 <= self.audit_commit_delay_us <= 100_000:
            raise ValueError(f"--audit-commit-delay-us must be 0 to 100000, not "
                             f"{self.audit_commit_delay_us}")
        if not 0 <= self.audit_record_grace <= 86_400:
            raise ValueError(f"--audit-record-grace must be 0 to 86400 seconds, not "
                             f"{self.audit_record_grace}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, not {self.workers}")

    @classmethod
    def of_store(cls, args) -> Settings:
        """The settings of a command that works on a store (``--data-dir``, ``--store``)."""
        overrides = {"data_dir": args.data_dir, "store": args.store}
        return cls.from_env(**{k: v for k, v in overrides.items() if v is not None})

    @staticmethod
    def env_name(field: str) -> str:
        return "KEYLEDGER_" + field.upper()

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        values = {}
        for f in fields(cls):
            raw = overrides.get(f.name)
            if raw is None:
                raw = os.environ.get(cls.env_name(f.name))
            if raw is None:
                continue
            if f.type == "int":
                raw = int(raw)
            elif f.type == "float":
                raw = float(raw)
            elif f.type == "bool":
                raw = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "y")
            values[f.name] = raw
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[self.env_name(f.name)] = str(value)
        return out

    @property
    def served_regions(self) -> frozenset[str] | None:
        """The Regions this node serves (None: every Region)."""
        if not self.regions:
            return None
        return frozenset(r.strip() for r in self.regions.split(",") if r.strip())

    @property
    def peer_urls(self) -> dict[str, str]:
        """Region -> the URL of the node that serves it."""
        peers: dict[str, str] = {}
        for entry in (self.peers or "").split(","):
            if entry.strip():
                region, sep, url = entry.strip().partition("=")
                if not sep or not region or not url.startswith(("http://", "https://")):
                    raise ValueError(f"--peers: expected REGION=http(s)://HOST:PORT, not {entry!r}")
                peers[region] = url.rstrip("/")
        return peers

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def identities_path(self) -> Path:
        return Path(self.identities).expanduser() if self.identities else self.data_path / "identities.json"
