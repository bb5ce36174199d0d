"""The root key file: created once, private, and durable before any key depends on it."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from infrastructure import root_key
from infrastructure.root_key import ROOT_KEY_BYTES, RootKey, RootKeyError, create_root_key_file


def test_a_new_root_key_is_private_fsynced_and_linked_into_place(tmp_path, monkeypatch):
    synced: list[str] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        fsync(fd)

    monkeypatch.setattr(root_key.os, "fsync", recording_fsync)
    RootKey.load(tmp_path / "data")
    path = tmp_path / "data" / "root.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_bytes().strip())) == ROOT_KEY_BYTES
    assert synced == ["file", "dir"]  # its bytes, then its name
    assert sorted(p.name for p in path.parent.iterdir()) == ["root.key"]  # no temporary left


def test_a_root_key_another_process_created_first_is_kept(tmp_path, monkeypatch):
    path = tmp_path / "root.key"
    theirs = base64.b64encode(os.urandom(ROOT_KEY_BYTES)) + b"\n"
    link = os.link

    def created_meanwhile(source, target) -> None:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, theirs)
        os.close(fd)
        link(source, target)  # (raises FileExistsError, as the race would)

    monkeypatch.setattr(root_key.os, "link", created_meanwhile)
    create_root_key_file(path)
    assert path.read_bytes() == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root.key"]


def test_an_existing_root_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "root.key"
    create_root_key_file(path)
    path.chmod(0o644)
    with pytest.raises(RootKeyError, match=r"must not be readable by others \(mode 644; chmod 600 it\)"):
        RootKey.load(tmp_path)


@pytest.mark.parametrize("contents", [b"garbage\n", b"", b"QUFBQQ==\n", b"\xff\xfe"])
def test_a_root_key_file_without_a_32_byte_base64_key_is_refused(tmp_path, contents):
    path = tmp_path / "root.key"
    path.write_bytes(contents)
    path.chmod(0o600)
    with pytest.raises(RootKeyError, match=f"root key file {path} does not hold a root key"):
        RootKey.load(tmp_path)


def test_a_root_key_in_the_environment_must_be_32_bytes_of_base64(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYLEDGER_ROOT_KEY", "not base64!")
    with pytest.raises(RootKeyError, match="KEYLEDGER_ROOT_KEY does not hold a root key"):
        RootKey.load(tmp_path)
