"""Fixtures shared by tests/outbox/ and tests/test_client.py (import them by name)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiosk.launcher import free_port
from kiosk.outbox import OutboxStore, create_key
from tests.conftest import make_test_seed, write_seed
from tests.outbox.peers import SubmissionsBackOffice


@dataclass
class OutboxServer:
    """The real back office (with the submissions router) on loopback, and its database."""

    process: SubmissionsBackOffice
    db_file: Path

    @property
    def url(self) -> str:
        return self.process.url


def start_server(folder: Path, port: int | None = None) -> SubmissionsBackOffice:
    folder.mkdir(parents=True, exist_ok=True)
    seed = write_seed(folder / "seed.json", make_test_seed())
    return SubmissionsBackOffice(port=port or free_port(),
                                 db_url=f"sqlite:///{folder / 'bo.db'}", seed=seed,
                                 timezone="Asia/Shanghai")


@pytest.fixture(scope="session")
def outbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboxServer]:
    folder = tmp_path_factory.mktemp("outbox-backoffice")
    with start_server(folder) as process:
        yield OutboxServer(process, folder / "bo.db")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return create_key(tmp_path / "keys" / "outbox.key")


@pytest.fixture
def store(tmp_path: Path, key_file: Path) -> Iterator[OutboxStore]:
    with OutboxStore.open(tmp_path / "data", key_file) as opened:
        yield opened
