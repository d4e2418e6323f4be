"""Encryption at rest: the key file's rules, the sealed format, and what the files on disk hold."""

from __future__ import annotations

import base64
import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest

from kiosk.client import Material
from kiosk.outbox import (
    OutboxKeyError,
    OutboxStore,
    SealedDataError,
    Sealer,
    UnreadableSubmission,
    create_key,
    load_key,
)
from tests.outbox.kiosk_driver import APPLICANT_ID, APPLICANT_NAME, submission

ADDRESS = "测试省测试市测试路1号"


# --- the key file ----------------------------------------------------------------------------

def test_create_key_writes_0600_and_never_overwrites(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not widen the key file
    try:
        path = create_key(tmp_path / "k" / "outbox.key")
    finally:
        os.umask(old_umask)
    assert (path.stat().st_mode & 0o777) == 0o600
    key = load_key(path)
    assert len(key) == 32
    with pytest.raises(FileExistsError):
        create_key(path)
    assert load_key(path) == key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = create_key(tmp_path / "outbox.key")
    path.chmod(mode)
    with pytest.raises(OutboxKeyError, match="0600"):
        load_key(path)
    with pytest.raises(OutboxKeyError):
        OutboxStore.open(tmp_path / "data", path)
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_owner_read_only_is_accepted(tmp_path: Path) -> None:
    path = create_key(tmp_path / "outbox.key")
    path.chmod(0o400)
    assert len(load_key(path)) == 32


def test_key_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    path = create_key(tmp_path / "outbox.key")
    os.chown(path, 65534, 65534)  # nobody
    with pytest.raises(OutboxKeyError, match="belongs to uid 65534"):
        load_key(path)


def test_symlinked_missing_and_malformed_keys_are_refused(tmp_path: Path) -> None:
    real = create_key(tmp_path / "real.key")
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(OutboxKeyError):
        load_key(link)
    with pytest.raises(OutboxKeyError, match="does not exist"):
        load_key(tmp_path / "missing.key")
    for content in (b"", b"not base64 at all!!", base64.urlsafe_b64encode(b"short")):
        bad = tmp_path / "bad.key"
        bad.unlink(missing_ok=True)
        bad.write_bytes(content)
        bad.chmod(0o600)
        with pytest.raises(OutboxKeyError, match="32-byte"):
            load_key(bad)


# --- sealing ---------------------------------------------------------------------------------

def test_sealed_values_are_bound_to_their_row_and_column() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(b"secret", "outbox_materials", "content", 7)
    assert sealer.open(sealed, "outbox_materials", "content", 7) == b"secret"
    assert b"secret" not in sealed
    for table, column, row in [("outbox_materials", "content", 8),
                               ("outbox_submissions", "content", 7),
                               ("outbox_materials", "payload", 7)]:
        with pytest.raises(SealedDataError):
            sealer.open(sealed, table, column, row)
    flipped = bytearray(sealed)
    flipped[-1] ^= 1
    with pytest.raises(SealedDataError):
        sealer.open(bytes(flipped), "outbox_materials", "content", 7)
    with pytest.raises(SealedDataError):
        Sealer(os.urandom(32)).open(sealed, "outbox_materials", "content", 7)
    with pytest.raises(SealedDataError, match="known format"):
        sealer.open(b"\x02" + sealed[1:], "outbox_materials", "content", 7)
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert sealer.seal(b"secret", "t", "c", 1) != sealer.seal(b"secret", "t", "c", 1)


# --- what is on disk -------------------------------------------------------------------------

def test_files_on_disk_hold_no_personal_data_or_material(tmp_path: Path, key_file: Path) -> None:
    material = os.urandom(64 * 1024)
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        sub = dataclasses.replace(submission("at-rest", "K-CRYPTO"),
                                  materials=(Material("M1", "image/jpeg", material),))
        store.enqueue(sub)
        files = sorted((tmp_path / "data").iterdir())
        blob = b"".join(f.read_bytes() for f in files)  # outbox.db, -wal, -shm
    needles = [APPLICANT_ID.encode(), APPLICANT_NAME.encode("utf-8"), ADDRESS.encode("utf-8"),
               b"13800000000", material[:32], material[30_000:30_032], material[-32:]]
    assert [n for n in needles if n in blob] == []
    # In clear, and found where the search looks: the 事项编码, nothing about the person.
    assert b"SB001" in blob


def test_wrong_key_fails_loudly_at_open(tmp_path: Path, key_file: Path) -> None:
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        store.enqueue(submission("wrong-key", "K-CRYPTO"))
        right_id = Sealer.from_key_file(key_file).key_id
    other = create_key(tmp_path / "other.key")
    with pytest.raises(OutboxKeyError) as caught:
        OutboxStore.open(tmp_path / "data", other)
    assert right_id in str(caught.value)
    assert Sealer.from_key_file(other).key_id in str(caught.value)
    # The right key still opens everything: the refusal changed nothing.
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        head = store.next_pending()
        assert head is not None and head.submission.applicant.id_number == APPLICANT_ID


def test_an_empty_outbox_accepts_a_new_key(tmp_path: Path, key_file: Path) -> None:
    with OutboxStore.open(tmp_path / "data", key_file):
        pass
    with OutboxStore.open(tmp_path / "data", create_key(tmp_path / "new.key")) as store:
        store.enqueue(submission("new-key", "K-CRYPTO"))
        assert store.stats().pending == 1


def test_swapped_or_altered_rows_do_not_open(tmp_path: Path, key_file: Path) -> None:
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        store.enqueue(submission("swap-1", "K-CRYPTO"))
        store.enqueue(submission("swap-2", "K-CRYPTO"))
        path = store.database.path
        connection = sqlite3.connect(path)
        try:
            (a, pa), (b, pb) = connection.execute(
                "SELECT id, payload FROM outbox_submissions ORDER BY id").fetchall()
            # Same key, valid ciphertexts, wrong rows: someone's data under another number.
            connection.execute("UPDATE outbox_submissions SET payload = ? WHERE id = ?", (pb, a))
            connection.execute("UPDATE outbox_submissions SET payload = ? WHERE id = ?", (pa, b))
            connection.commit()
        finally:
            connection.close()
        with pytest.raises(UnreadableSubmission) as caught:
            store.next_pending()
        assert caught.value.row_id == a
        assert APPLICANT_ID not in str(caught.value)
