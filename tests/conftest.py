"""Shared fixtures. ``backoffice_server`` is the real back office over loopback HTTP.

The back-office suite (``BACKOFFICE_SUITE``) runs once per database, SQLite and PostgreSQL
(a private cluster, tests/peers/postgres.py): every test there that uses ``backoffice_server``,
``backoffice_db_url`` or ``backoffice_database`` gets the ids ``[sqlite]`` and ``[postgresql]``.
The rest of the suite talks to the back office on SQLite only: the database is the server's
business, and doubling those tests would test the same server code twice.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kiosk.launcher import EmbeddedBackOffice, free_port

# Real peers as fixtures: pcscd with the vpcd virtual reader, a private PostgreSQL cluster.
pytest_plugins = ["tests.peers.pcscd", "tests.peers.postgres", "tests.peers.cupsd"]

TESTS = Path(__file__).resolve().parent
DATABASES = ("sqlite", "postgresql")
# Paths relative to tests/: a folder (trailing /) or a file.
BACKOFFICE_SUITE = ("backoffice/", "test_checkin_backoffice.py", "outbox/test_submissions_api.py")

TEST_CENTRE = "TEST-01"
OTHER_CENTRE = "TEST-02"
NUMBERING_CENTRE = "TEST-NUM"  # only the numbering test issues tickets here
CONCURRENCY_CENTRE = "TEST-CONC"  # only the concurrency test issues tickets here
FRESH_POOL_SIZE = 80

# Fictional applicant; tests assert this string never reaches logs or exception text.
APPLICANT = "测试申请人甲"
APPLICANT_ID = "110101199003074514"  # fictional, valid GB 11643 check digit


def _appt(code: str, centre: str, item: str, day_offset: int, status: str = "booked",
          applicant: str = APPLICANT) -> dict[str, Any]:
    return {"code": code, "appointment_id": f"ID-{code}", "centre_id": centre,
            "service_item_code": item, "day_offset": day_offset, "slot_start": "09:00",
            "slot_end": "09:30", "applicant_name": applicant, "status": status}


def _categories(*codes: str) -> list[dict[str, str]]:
    names = {"A": "社会保障", "B": "医疗保障", "C": "户籍证明"}
    return [{"code": c, "name": names[c], "floor": "二楼", "area": f"{c}区",
             "window": f"{ord(c) - 64}号窗口"} for c in codes]


def make_test_seed() -> dict[str, Any]:
    """A seed whose every appointment has one purpose, so tests sharing one server never
    consume each other's appointments."""
    items = [
        {"code": "SB001", "name": "社会保障卡申领", "category_code": "A", "department": "人社局"},
        {"code": "YB001", "name": "异地就医备案", "category_code": "B", "department": "医保局"},
        {"code": "HJ001", "name": "户籍证明开具", "category_code": "C", "department": "公安分局",
         "promised_days": 3, "kiosk_services": ["guide", "apply", "query", "certificate"],
         "materials": [
             {"code": "ID", "name": "居民身份证", "requirement": "required", "paper": "id1",
              "max_pages": 2, "copies": "原件"},
             {"code": "HKB", "name": "居民户口簿", "requirement": "required", "paper": "a4",
              "max_pages": 4, "copies": "原件"},
             {"code": "USE", "name": "用途说明", "requirement": "deferrable", "paper": "a4",
              "max_pages": 1, "copies": "原件"}]},
    ]
    centres = [
        {"id": TEST_CENTRE, "name": "测试市测试区政务服务中心", "address": "测试地址",
         "ticket_categories": _categories("A", "B", "C"), "service_items": items},
        {"id": OTHER_CENTRE, "name": "测试市另一区政务服务中心",
         "ticket_categories": _categories("A"), "service_items": items[:1]},
        {"id": NUMBERING_CENTRE, "name": "编号测试中心",
         "ticket_categories": _categories("A", "B"), "service_items": []},
        {"id": CONCURRENCY_CENTRE, "name": "并发测试中心",
         "ticket_categories": _categories("A"), "service_items": []},
    ]
    item_cycle = itertools.cycle(["SB001", "YB001", "HJ001"])
    appointments = [_appt(f"T-FRESH-{n:03d}", TEST_CENTRE, next(item_cycle), 0)
                    for n in range(1, FRESH_POOL_SIZE + 1)]
    appointments += [
        _appt("T-TOMORROW", TEST_CENTRE, "SB001", 1),
        _appt("T-YESTERDAY", TEST_CENTRE, "SB001", -1),
        _appt("T-CANCELLED", TEST_CENTRE, "SB001", 0, status="cancelled"),
        _appt("T-CHECKED-IN", TEST_CENTRE, "SB001", 0, status="checked_in"),
        _appt("T-OTHER-CENTRE", OTHER_CENTRE, "SB001", 0),
    ]
    applications = [
        {"tracking_number": number, "centre_id": TEST_CENTRE, "service_item_code": item,
         "applicant_id_number": APPLICANT_ID, "status": status, "note": note,
         "submitted_day_offset": days, "updated_day_offset": days + 1}
        for number, item, status, note, days in [
            ("T-APP-OLD", "HJ001", "collected", "", -30),
            ("T-APP-NEW", "SB001", "ready", "请到B区领取", -3),
        ]]
    applications.append({"tracking_number": "T-APP-PASSPORT", "centre_id": TEST_CENTRE,
                         "service_item_code": "YB001", "applicant_document_type": "passport",
                         "applicant_id_number": APPLICANT_ID, "status": "in_review",
                         "submitted_day_offset": -1, "updated_day_offset": -1})
    return {"_comment": "pytest seed", "centres": centres, "appointments": appointments,
            "applications": applications}


@dataclass
class RunningBackOffice:
    """What ``backoffice_server`` yields."""

    url: str
    seed: dict[str, Any]
    process: EmbeddedBackOffice
    database: str = "sqlite"  # one of DATABASES
    centre_id: str = TEST_CENTRE
    other_centre_id: str = OTHER_CENTRE
    numbering_centre_id: str = NUMBERING_CENTRE
    concurrency_centre_id: str = CONCURRENCY_CENTRE
    applicant_name: str = APPLICANT
    applicant_id: str = APPLICANT_ID
    # Appointment codes by purpose; each is used by at most one test that changes it.
    seed_codes: dict[str, str] = field(default_factory=lambda: {
        "tomorrow": "T-TOMORROW", "yesterday": "T-YESTERDAY", "cancelled": "T-CANCELLED",
        "checked_in": "T-CHECKED-IN", "other_centre": "T-OTHER-CENTRE"})
    _fresh: Iterator[int] = field(default_factory=lambda: iter(range(1, FRESH_POOL_SIZE + 1)))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def fresh_code(self) -> str:
        """A code booked for today at ``centre_id`` that no other test has been given."""
        with self._lock:
            n = next(self._fresh, None)
        if n is None:
            raise RuntimeError(f"fresh appointment pool exhausted: raise FRESH_POOL_SIZE "
                               f"({FRESH_POOL_SIZE}) in tests/conftest.py")
        return f"T-FRESH-{n:03d}"

    def appointment(self, code: str) -> dict[str, Any]:
        """The seed entry of ``code``."""
        return next(a for a in self.seed["appointments"] if a["code"] == code)


def write_seed(path: Path, seed: dict[str, Any]) -> Path:
    path.write_text(json.dumps(seed, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def test_seed() -> dict[str, Any]:
    """A fresh copy of the seed ``backoffice_server`` runs on, to load or alter in a test."""
    return make_test_seed()


def in_backoffice_suite(path: Path) -> bool:
    """Whether the test file at ``path`` belongs to the suite that runs on every database."""
    try:
        relative = path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return False
    return any(relative.startswith(entry) if entry.endswith("/") else relative == entry
               for entry in BACKOFFICE_SUITE)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backoffice_database" in metafunc.fixturenames and in_backoffice_suite(metafunc.definition.path):
        # SQLite's param is None, the cache key of the unparametrised fixture the rest of the
        # suite uses: switching between the two then tears nothing down (a module-scoped kiosk
        # built on ``backoffice_server`` survives). Session scope groups the PostgreSQL runs.
        metafunc.parametrize("backoffice_database", [None, "postgresql"], ids=list(DATABASES),
                             indirect=True, scope="session")


@pytest.fixture(scope="session")
def backoffice_database(request: pytest.FixtureRequest) -> str:
    """The database the back office under test runs on: ``sqlite`` or ``postgresql``."""
    return getattr(request, "param", None) or "sqlite"


def new_database_url(request: pytest.FixtureRequest, database: str, folder: Path,
                     name: str = "bo") -> str:
    """The URL of a new, empty back-office database: a file in ``folder`` for SQLite, a new
    database in the session's private cluster for PostgreSQL (started on first use; the test
    skips, or fails in CI, when PostgreSQL is not installed)."""
    if database == "sqlite":
        return f"sqlite:///{folder / f'{name}.db'}"
    if database == "postgresql":
        return request.getfixturevalue("postgres").create_database(name)
    raise ValueError(f"unknown database {database!r}: one of {DATABASES}")


class BackOfficeServers:
    """One seeded back office per database, started on first use and kept for the session, so
    the SQLite and PostgreSQL runs of a test each find their server (and its fresh-code pool)
    as the previous test left it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._running: dict[str, RunningBackOffice] = {}

    def get(self, request: pytest.FixtureRequest, database: str) -> RunningBackOffice:
        if database not in self._running:
            folder = self.workdir / database
            folder.mkdir()
            seed = make_test_seed()
            seed_path = write_seed(folder / "seed.json", seed)
            server = EmbeddedBackOffice(port=free_port(),
                                        db_url=new_database_url(request, database, folder),
                                        seed=seed_path, timezone="Asia/Shanghai")
            server.start()
            if database == "postgresql":
                # The cluster may be torn down before this registry: stop its client first.
                request.getfixturevalue("postgres").before_stop(server.stop)
            self._running[database] = RunningBackOffice(url=server.url, seed=seed,
                                                        process=server, database=database)
        return self._running[database]

    def close(self) -> None:
        for running in self._running.values():
            running.process.stop()
        self._running.clear()


@pytest.fixture(scope="session")
def backoffice_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackOfficeServers]:
    servers = BackOfficeServers(tmp_path_factory.mktemp("backoffice"))
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session")
def backoffice_server(request: pytest.FixtureRequest, backoffice_servers: BackOfficeServers,
                      backoffice_database: str) -> RunningBackOffice:
    """The real back office (``python -m backoffice``) on a free loopback port, seeded with
    ``make_test_seed()``, shared by the whole session (one per database)."""
    return backoffice_servers.get(request, backoffice_database)


@pytest.fixture
def backoffice_db_url(request: pytest.FixtureRequest, backoffice_database: str,
                      tmp_path: Path) -> Iterator[str]:
    """A new, empty database on the database under test, for one test (dropped after it)."""
    cluster = request.getfixturevalue("postgres") if backoffice_database == "postgresql" else None
    url = new_database_url(request, backoffice_database, tmp_path)
    yield url
    if cluster is not None:
        cluster.drop_database(url)
