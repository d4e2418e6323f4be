"""The outbox schema under Alembic: head matches the models, and an old file with submissions
waiting is upgraded in place and then delivered."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kiosk.client import NO_RETRY, HttpBackOffice
from kiosk.outbox import OutboxStore, OutboxWorker, Sealer, open_outbox_database
from kiosk.outbox.db import MIGRATIONS_DIR, outbox_revision
from kiosk.outbox.models import OutboxBase
from kiosk.outbox.store import new_local_tracking_number
from kiosk.storage.db import downgrade, upgrade
from tests.outbox.kiosk_driver import submission
from tests.outbox.peers import material_digest, stored_applications

TABLES = {"outbox_submissions", "outbox_materials", "outbox_receipts"}


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_fresh_file_is_at_head_and_matches_the_models(tmp_path: Path) -> None:
    with open_outbox_database(tmp_path / "outbox.db") as db:
        assert outbox_revision(db) == "ob0002"
        assert tables(db.engine) == TABLES
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), OutboxBase.metadata)
        assert diff == []
        downgrade(db.engine, "base", migrations_dir=MIGRATIONS_DIR)
        assert tables(db.engine) == set()
        upgrade(db.engine, "head", migrations_dir=MIGRATIONS_DIR)
        assert outbox_revision(db) == "ob0002"


def write_as_ob0001(db_path: Path, sealer: Sealer, kiosk_id: str, markers: list[str]) -> list[str]:
    """What the ob0001 kiosk wrote: the same sealed formats, without the later columns."""
    numbers = []
    with open_outbox_database(db_path, revision="ob0001") as db:
        assert outbox_revision(db) == "ob0001"
        with db.engine.begin() as connection:
            for marker in markers:
                sub = submission(marker, kiosk_id)
                number = new_local_tracking_number(dt.datetime.now(dt.UTC))
                payload = json.dumps({
                    "v": 1, "centre_id": sub.centre_id, "kiosk_id": sub.kiosk_id,
                    "applicant": {"document_type": sub.applicant.document_type,
                                  "id_number": sub.applicant.id_number,
                                  "name": sub.applicant.name},
                    "form": dict(sub.form),
                    "commitment": {"text_version": sub.commitment.text_version,
                                   "signed_at": sub.commitment.signed_at.isoformat()},
                    "deferred_materials": []}, ensure_ascii=False).encode()
                row_id = connection.execute(sa.text(
                    "INSERT INTO outbox_submissions (local_tracking_number, idempotency_key, "
                    "created_at, service_item_code, session_id, state, key_id, payload) "
                    "VALUES (:n, :k, :t, :i, :s, 'pending', :kid, x'') RETURNING id"),
                    {"n": number, "k": str(uuid.uuid4()), "t": dt.datetime(2030, 1, 1, 9),
                     "i": sub.service_item_code, "s": sub.session_id,
                     "kid": sealer.key_id}).scalar_one()
                connection.execute(sa.text(
                    "UPDATE outbox_submissions SET payload = :p WHERE id = :id"),
                    {"p": sealer.seal(payload, "outbox_submissions", "payload", row_id),
                     "id": row_id})
                for position, material in enumerate(sub.materials):
                    material_id = connection.execute(sa.text(
                        "INSERT INTO outbox_materials (submission_id, position, code, "
                        "media_type, size, key_id, content) VALUES (:s, :p, :c, :m, :z, :kid, "
                        "x'') RETURNING id"),
                        {"s": row_id, "p": position, "c": material.code,
                         "m": material.media_type, "z": len(material.content),
                         "kid": sealer.key_id}).scalar_one()
                    connection.execute(sa.text(
                        "UPDATE outbox_materials SET content = :c WHERE id = :id"),
                        {"c": sealer.seal(material.content, "outbox_materials", "content",
                                          material_id), "id": material_id})
                numbers.append(number)
    return numbers


def test_upgrade_in_place_with_submissions_waiting(tmp_path: Path, key_file: Path,
                                                   outbox_server) -> None:
    kiosk_id = "K-MIGRATE"
    markers = [f"migrate-{i}" for i in range(5)]
    numbers = write_as_ob0001(tmp_path / "data" / "outbox.db", Sealer.from_key_file(key_file),
                              kiosk_id, markers)

    with OutboxStore.open(tmp_path / "data", key_file) as store:
        assert outbox_revision(store.database) == "ob0002"
        assert store.stats().pending == 5
        entry = store.lookup(numbers[0])
        assert entry is not None and (entry.state, entry.attempts) == ("pending", 0)
        with HttpBackOffice(outbox_server.url, timeout_s=10, retry=NO_RETRY) as client:
            assert OutboxWorker(store, client).drain() == 5
        assert store.stats().pending == 0
        receipts = {n: store.lookup(n).tracking_number for n in numbers}  # type: ignore[union-attr]

    stored = stored_applications(outbox_server.db_url, kiosk_id)
    assert sorted(s.marker for s in stored) == sorted(markers)
    by_marker = {s.marker: s for s in stored}
    for marker, number in zip(markers, numbers, strict=True):
        app = by_marker[marker]
        assert app.local_tracking_number == number
        assert receipts[number] == app.tracking_number
        sizes = [len(m.content) for m in submission(marker, kiosk_id).materials]
        assert app.material_digests == tuple(material_digest(marker, i, size)
                                             for i, size in enumerate(sizes))


def test_downgrade_keeps_waiting_materials(tmp_path: Path, key_file: Path) -> None:
    # The downgrade drops columns in place; a copy-and-rename would cascade-delete materials.
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        store.enqueue(submission("down-1", "K-MIGRATE"))
        downgrade(store.database.engine, "ob0001", migrations_dir=MIGRATIONS_DIR)
        with store.database.engine.connect() as connection:
            counts = [connection.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
                      for t in ("outbox_submissions", "outbox_materials")]
        assert counts == [1, len(submission("down-1", "K-MIGRATE").materials)]
    with OutboxStore.open(tmp_path / "data", key_file) as store:
        head = store.next_pending()
        assert head is not None and dict(head.submission.form)["marker"] == "down-1"
