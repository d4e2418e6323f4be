"""The published contract: docs/openapi.json is what the server serves, and the server keeps
it (schemathesis's stateless checks against a real server on loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kiosk.launcher import EmbeddedBackOffice, free_port
from tests.conftest import make_test_seed, write_seed

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "docs" / "openapi.json"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")


def test_published_contract_equals_what_the_server_serves(backoffice_server):
    served = httpx.get(f"{backoffice_server.url}/openapi.json", trust_env=False).json()
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    assert published == served, "API changed: run scripts/export-openapi.py and commit the file"


def test_export_script_check_mode_agrees():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "export-openapi.py"),
                             "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_write_documents_its_400():
    document = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], f"{method} {path}"


@pytest.fixture
def fresh_server(tmp_path) -> str:
    seed = write_seed(tmp_path / "seed.json", make_test_seed())
    with EmbeddedBackOffice(port=free_port(), db_url=f"sqlite:///{tmp_path / 'bo.db'}",
                            seed=seed, timezone="Asia/Shanghai") as server:
        yield server.url


def test_schemathesis_stateless_checks_pass(fresh_server, tmp_path):
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "run", f"{fresh_server}/openapi.json", "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--max-examples", "15", "--seed", "7",
         "--no-color", "--request-timeout", "10"],
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=300)
    tail = result.stdout[-4000:]
    assert result.returncode == 0, tail
    assert "Tested: 21" in result.stdout, tail
