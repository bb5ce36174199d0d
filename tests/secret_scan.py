"""The one at-rest secret scanner of the suite: does key material appear anywhere a store keeps
its bytes, in any encoding a store or a log would use?

A secret counts as found when a 32-byte window of it appears raw, as lower- or upper-case hex
(PostgreSQL dumps bytea as hex), or inside base64 / base64url of the whole secret at any of the
three byte alignments (events keep bytes as base64 in JSON). Every scan also checks that it read
the store: the caller names bytes that must be there (a key id the events record), and a scan
that reads nothing, or not those bytes, fails instead of passing vacuously.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path


def _windows(secret: bytes, size: int = 32) -> Iterable[bytes]:
    if len(secret) <= size:
        yield secret
        return
    for i in range(len(secret) - size + 1):
        yield secret[i:i + size]


def needles(secrets: Mapping[str, bytes]) -> list[tuple[str, str, bytes]]:
    """(secret name, encoding, bytes to look for) for every form a secret may take at rest."""
    found: list[tuple[str, str, bytes]] = []
    for name, secret in secrets.items():
        for window in _windows(secret):
            found.append((name, "raw", window))
            found.append((name, "hex", window.hex().encode()))
            found.append((name, "HEX", window.hex().upper().encode()))
        # base64 of the whole secret, at each of the three alignments, minus the edges (which
        # depend on the bytes around the secret)
        for shift in range(3):
            encoded = base64.b64encode(secret[shift:])[4:-4]
            if len(encoded) >= 40:
                found.append((name, "base64", encoded[:40]))
                found.append(
                    (name, "base64url", encoded[:40].replace(b"+", b"-").replace(b"/", b"_"))
                )
            elif encoded:  # a short secret: its whole (trimmed) encoding
                found.append((name, "base64", encoded))
                found.append((name, "base64url", encoded.replace(b"+", b"-").replace(b"/", b"_")))
    return found


def scan(blobs: Iterable[tuple[str, bytes]], secrets: Mapping[str, bytes],
         must_see: Iterable[bytes] = ()) -> list[str]:
    """Every "<where>: <secret> (<encoding>)" hit in ``blobs`` ((label, bytes) pairs). Fails
    unless it read at least one non-empty blob and found every ``must_see`` marker in them."""
    forms = needles(secrets)
    markers = {marker: False for marker in must_see}
    read = 0
    hits = []
    for where, blob in blobs:
        if not blob:
            continue
        read += 1
        for marker in markers:
            markers[marker] = markers[marker] or marker in blob
        for name, encoding, needle in forms:
            if needle in blob:
                hits.append(f"{where}: {name} ({encoding})")
                break
    assert read, "the secret scan read nothing: it would pass without looking"
    missing = [m for m, seen in markers.items() if not seen]
    assert not missing, f"the secret scan did not read the store (never saw {missing!r})"
    return hits


def files(*roots: Path) -> list[Path]:
    """Every file under ``roots`` (a root may be a file itself)."""
    out = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out.extend(p for p in root.rglob("*") if p.is_file())
    return out


def file_blobs(paths: Iterable[Path]) -> list[tuple[str, bytes]]:
    out = []
    for path in paths:
        try:
            out.append((str(path), path.read_bytes()))
        except OSError:  # a file that went away meanwhile (SQLite's journal)
            continue
    return out


def postgres_blobs(url: str) -> list[tuple[str, bytes]]:
    """Every row of every keyledger table of a PostgreSQL database: bytea columns as their
    bytes, every column as its text too."""
    import psycopg

    out = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema LIKE 'keyledger_%'"
        ).fetchall()
        for schema, table in tables:
            for n, row in enumerate(conn.execute(f'SELECT * FROM "{schema}"."{table}"')):
                raw = b"".join(bytes(v) for v in row if isinstance(v, bytes | memoryview))
                out.append((f"{schema}.{table}[{n}]", repr(row).encode() + raw))
    return out


def store_blobs(data_dir: str | Path, store: str | None) -> list[tuple[str, bytes]]:
    """Everything a keyledger service keeps at rest: its data dir (SQLite ledger, keyring,
    audit, root key) and, on PostgreSQL, every row of its schemas."""
    blobs = file_blobs(files(Path(data_dir)))
    if store:
        blobs += postgres_blobs(store)
    return blobs
