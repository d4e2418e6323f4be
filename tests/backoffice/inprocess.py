"""An in-process back office on a private in-memory database, for API tests that change state
(the shared ``backoffice_server`` must keep its seed as other tests expect it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from backoffice.app import create_app

APPLICANT_ID = "110101199003074514"
CENTRE = "TEST-01"


def client(seed: dict[str, Any], **kwargs: Any) -> TestClient:
    app = create_app("sqlite://", seed=seed, **kwargs)
    return TestClient(app, base_url="http://testserver")


def fixed_clock(at: dt.datetime) -> Any:
    return lambda: at
