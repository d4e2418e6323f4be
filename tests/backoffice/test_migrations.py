"""The back-office schema under Alembic, on SQLite and on PostgreSQL: the migrations make what
the models say, a database of the create_all era is taken over with its rows, one that cannot
be is refused untouched, and --reset starts empty (``migrate`` and the server alike)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from backoffice import models
from backoffice.app import create_app
from backoffice.cli import main
from backoffice.db import (
    INITIAL_REVISION,
    VERSION_TABLE,
    Migration,
    SchemaError,
    current_revision,
    downgrade,
    make_engine,
    migrate,
    script_head,
)
from backoffice.seed import load_seed
from kiosk.launcher import free_port
from tests.conftest import APPLICANT_ID, TEST_CENTRE

TABLES = set(models.Base.metadata.tables)
NOW = dt.datetime(2030, 5, 17, 2, 30, tzinfo=dt.UTC)  # 10:30 in Asia/Shanghai
TODAY = dt.date(2030, 5, 17)


@pytest.fixture
def engine(backoffice_db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(backoffice_db_url)
    yield engine
    engine.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def model_diff(engine: sa.Engine) -> list[Any]:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), models.Base.metadata)


def dump(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every back-office table, read through the models' column types."""
    with engine.connect() as connection:
        return {name: [tuple(row) for row in connection.execute(
                    sa.select(table).order_by(*table.primary_key.columns))]
                for name, table in models.Base.metadata.tables.items()}


def write_like_the_old_server(engine: sa.Engine, seed: dict[str, Any]) -> None:
    """What a back office of the create_all era held: the seed, and a row of every kind its
    API wrote (a submitted application with a material, a ticket, a rating...)."""
    with Session(engine) as session:
        load_seed(session, seed, TODAY)
        session.add_all([
            models.TicketCounter(centre_id=TEST_CENTRE, day=TODAY, category_code="A",
                                 last_seq=7),
            models.QueueTicket(centre_id=TEST_CENTRE, category_code="A", day=TODAY, seq=7,
                               number="A007", service_name="社会保障", kiosk_id="KIOSK-OLD",
                               issued_at=NOW),
            models.HelpRequest(centre_id=TEST_CENTRE, kiosk_id="KIOSK-OLD", session_id="s-1",
                               created_at=NOW),
            models.ApplicationCounter(day=TODAY, last_seq=3),
            models.Application(
                tracking_number="T-APP-KIOSK", centre_id=TEST_CENTRE, service_item_code="SB001",
                service_name="社会保障卡申领", department="人社局",
                applicant_document_type="resident_id", applicant_id_number=APPLICANT_ID,
                status="submitted", submitted_at=NOW, updated_at=NOW,
                local_tracking_number="L-OLD-1", kiosk_id="KIOSK-OLD", session_id="s-2",
                form={"电话": "13800000000"}, deferred_materials=["MARRIAGE"],
                materials=[models.ApplicationMaterial(
                    position=0, code="ID", media_type="image/jpeg", size=4, sha256="0" * 64,
                    content=b"\xff\xd8\x00\x01")],
                history=[models.ApplicationEvent(at=NOW, step="submitted", department="人社局")]),
            models.Rating(level=5, indicators=["服务态度好"], tracking_number="T-APP-KIOSK",
                          kiosk_id="KIOSK-OLD", centre_id=TEST_CENTRE, created_at=NOW),
            models.KioskHeartbeat(kiosk_id="KIOSK-OLD", centre_id=TEST_CENTRE,
                                  software_version="0.0.9", received_at=NOW,
                                  devices=[{"id": "printer", "state": "online"}],
                                  outbox_oldest_age_s=1.5),
            models.IdempotencyRecord(scope="queue-ticket", key="old-key", fingerprint="f" * 64,
                                     status_code=201, body={"number": "A007"}, created_at=NOW),
        ])
        session.commit()


def old_create_all(engine: sa.Engine) -> None:
    """The schema as the versions before Alembic made it."""
    models.Base.metadata.create_all(engine)


# --- a new database --------------------------------------------------------------------------

def test_a_new_database_gets_the_schema_from_the_migrations_and_it_matches_the_models(
        engine: sa.Engine, backoffice_db_url: str) -> None:
    app = create_app(backoffice_db_url)  # the server's start, as `kiosk-backoffice` runs it
    app.state.engine.dispose()
    assert current_revision(engine) == script_head() == INITIAL_REVISION
    assert tables(engine) == TABLES | {VERSION_TABLE}
    # A model changed without a revision (or a revision that is not what the models say)
    # makes this non-empty, on either database.
    assert model_diff(engine) == []

    downgrade(engine, "base")
    assert tables(engine) == {VERSION_TABLE} and current_revision(engine) is None
    assert migrate(engine) == Migration(before=None, after=INITIAL_REVISION)
    assert model_diff(engine) == []
    assert migrate(engine) == Migration(before=INITIAL_REVISION, after=INITIAL_REVISION)


def test_migrations_do_not_depend_on_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://")
    try:
        assert migrate(engine).after == INITIAL_REVISION
    finally:
        engine.dispose()


def test_two_servers_starting_at_once_migrate_once(engine: sa.Engine) -> None:
    # Both would run CREATE TABLE; the second must wait for the first and find nothing to do.
    start = threading.Barrier(2)
    results: list[Migration | BaseException] = []

    def run() -> None:
        start.wait()
        try:
            results.append(migrate(engine))
        except BaseException as exc:  # reported below, with the other thread's result
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.before or "" for r in results if isinstance(r, Migration)) == [
        "", INITIAL_REVISION], results
    assert model_diff(engine) == []


def test_in_process_servers_on_other_databases_migrate_side_by_side() -> None:
    # Alembic keeps the run in progress in module globals: runs on threads must take turns.
    start = threading.Barrier(3)
    results: list[str | BaseException] = []

    def run() -> None:
        engine = make_engine("sqlite://")
        start.wait()
        try:
            results.append(migrate(engine).after)
        except BaseException as exc:
            results.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [INITIAL_REVISION] * 3


# --- a database of the create_all era ----------------------------------------------------------

def test_an_unversioned_database_is_stamped_and_keeps_every_row(
        engine: sa.Engine, backoffice_db_url: str, test_seed: dict[str, Any]) -> None:
    old_create_all(engine)
    write_like_the_old_server(engine, test_seed)
    before = dump(engine)
    assert all(before.values()), [name for name, rows in before.items() if not rows]

    app = create_app(backoffice_db_url, timezone="Asia/Shanghai", clock=lambda: NOW)
    try:
        assert current_revision(engine) == script_head()
        assert dump(engine) == before
        assert model_diff(engine) == []
        api = TestClient(app, base_url="http://testserver")
        items = api.get("/api/v1/service-items", params={"centre_id": TEST_CENTRE}).json()
        assert {i["code"] for i in items["items"]} == {"SB001", "YB001", "HJ001"}
        # The old counter row is the one numbering goes on from.
        taken = api.post("/api/v1/queue-tickets", headers={"Idempotency-Key": "after-adopt-1"},
                         json={"centre_id": TEST_CENTRE, "category_code": "A",
                               "kiosk_id": "KIOSK-NEW"})
        assert taken.status_code == 201 and taken.json()["ticket"]["number"] == "A008"
    finally:
        app.state.engine.dispose()
    assert migrate(engine) == Migration(before=INITIAL_REVISION, after=INITIAL_REVISION)


def test_an_unversioned_database_that_is_not_the_first_schema_is_refused_untouched(
        engine: sa.Engine, test_seed: dict[str, Any]) -> None:
    old_create_all(engine)
    write_like_the_old_server(engine, test_seed)
    with engine.begin() as connection:
        # An older shape: no heartbeats yet, no 容缺后补 column.
        connection.execute(sa.text("DROP TABLE kiosk_heartbeats"))
        connection.execute(sa.text("ALTER TABLE applications DROP COLUMN deferred_materials"))
    with engine.connect() as connection:
        before = connection.execute(sa.text("SELECT tracking_number FROM applications "
                                            "ORDER BY tracking_number")).scalars().all()

    with pytest.raises(SchemaError) as refused:
        migrate(engine)
    message = str(refused.value)
    assert "table kiosk_heartbeats missing" in message
    assert "column applications.deferred_materials missing" in message
    assert "--reset" in message and APPLICANT_ID not in message
    assert VERSION_TABLE not in tables(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT tracking_number FROM applications ORDER BY "
                                          "tracking_number")).scalars().all() == before

    result = migrate(engine, reset=True)
    assert (result.reset, result.after) == (True, INITIAL_REVISION)
    assert model_diff(engine) == []
    assert not any(dump(engine).values())


def test_a_database_from_a_newer_version_is_refused_untouched(engine: sa.Engine) -> None:
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'bo9999'"))
    with pytest.raises(SchemaError, match="'bo9999'.*newer version"):
        migrate(engine)
    assert current_revision(engine) == "bo9999"


# --- reset -------------------------------------------------------------------------------------

def test_reset_empties_the_back_office_tables_and_leaves_other_tables_alone(
        engine: sa.Engine, test_seed: dict[str, Any]) -> None:
    migrate(engine)
    write_like_the_old_server(engine, test_seed)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE other_program (x INTEGER)"))
        connection.execute(sa.text("INSERT INTO other_program VALUES (42)"))

    assert migrate(engine, reset=True) == Migration(before=None, after=INITIAL_REVISION,
                                                    reset=True)
    assert not any(dump(engine).values())
    assert tables(engine) == TABLES | {VERSION_TABLE, "other_program"}
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT x FROM other_program")).scalar_one() == 42


# --- the program -----------------------------------------------------------------------------

def test_migrate_command_adopts_then_reports_nothing_to_do_then_resets(
        engine: sa.Engine, backoffice_db_url: str, test_seed: dict[str, Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    old_create_all(engine)
    write_like_the_old_server(engine, test_seed)

    def run(*args: str) -> tuple[int, str]:
        status = main(["migrate", "--db", backoffice_db_url, *args])
        return status, capsys.readouterr().err

    status, err = run()
    assert status == 0 and "stamped at bo0001" in err
    assert dump(engine)["applications"]
    status, err = run()
    assert status == 0 and err.endswith(": schema already at bo0001\n")
    status, err = run("--reset")
    assert status == 0 and "reset" in err
    assert not any(dump(engine).values()) and current_revision(engine) == INITIAL_REVISION


def test_a_database_that_cannot_be_taken_over_stops_the_server_with_one_line(
        engine: sa.Engine, backoffice_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    old_create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE ratings"))

    assert main(["--port", str(free_port()), "--db", backoffice_db_url]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "table ratings missing" in err
    assert "Traceback" not in err
    assert main(["migrate", "--db", backoffice_db_url]) == 2
    assert "table ratings missing" in capsys.readouterr().err
    assert VERSION_TABLE not in tables(engine)
