"""Fixtures shared by tests/outbox/ and tests/test_client.py (import them by name)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiosk.launcher import free_port
from kiosk.outbox import OutboxStore, create_key
from tests.conftest import make_test_seed, new_database_url, write_seed
from tests.outbox.peers import SubmissionsBackOffice


@dataclass
class OutboxServer:
    """The real back office (with the submissions router) on loopback, and its database."""

    process: SubmissionsBackOffice
    db_url: str  # SQLAlchemy URL: SQLite file or PostgreSQL database (``backoffice_database``)

    @property
    def url(self) -> str:
        return self.process.url


def start_server(folder: Path, port: int | None = None,
                 db_url: str | None = None) -> SubmissionsBackOffice:
    folder.mkdir(parents=True, exist_ok=True)
    seed = write_seed(folder / "seed.json", make_test_seed())
    return SubmissionsBackOffice(port=port or free_port(),
                                 db_url=db_url or f"sqlite:///{folder / 'bo.db'}", seed=seed,
                                 timezone="Asia/Shanghai")


@pytest.fixture(scope="session")
def outbox_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  backoffice_database: str) -> Iterator[OutboxServer]:
    folder = tmp_path_factory.mktemp("outbox-backoffice")
    db_url = new_database_url(request, backoffice_database, folder)
    with start_server(folder, db_url=db_url) as process:
        yield OutboxServer(process, db_url)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return create_key(tmp_path / "keys" / "outbox.key")


@pytest.fixture
def store(tmp_path: Path, key_file: Path) -> Iterator[OutboxStore]:
    with OutboxStore.open(tmp_path / "data", key_file) as opened:
        yield opened
