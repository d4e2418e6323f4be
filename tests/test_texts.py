"""Every state a flow can show has its own words: a new problem, action or hint without text
would reach the citizen as a raw code."""

from __future__ import annotations

import enum

import pytest

from devices.identity import Authenticity, DocumentType
from devices.vision.quality import Guidance
from flows.apply import ApplyAction, ApplyProblem, MaterialState
from flows.certificate import CertAction, CertProblem
from flows.checkin import Action, Problem
from flows.identify import IdAction, IdProblem
from flows.material_capture import CaptureAction, CaptureProblem
from flows.ports import ApplicationStatus
from flows.print_job import PrintAction, PrintProblem
from flows.query import QueryProblem
from flows.rating import RateAction, RateProblem
from kiosk.ui import texts

TABLES: list[tuple[type[enum.Enum], dict]] = [
    (Problem, texts.PROBLEMS), (Action, texts.ACTIONS),
    (IdProblem, texts.ID_PROBLEMS), (IdAction, texts.ID_ACTIONS),
    (DocumentType, texts.DOCUMENT_TITLES), (Authenticity, texts.AUTHENTICITY),
    (ApplicationStatus, texts.APPLICATION_STATUS), (QueryProblem, texts.QUERY_PROBLEMS),
    (Guidance, texts.GUIDANCE), (CaptureProblem, texts.CAPTURE_PROBLEMS),
    (CaptureAction, texts.CAPTURE_ACTIONS),
    (ApplyProblem, texts.APPLY_PROBLEMS), (ApplyAction, texts.APPLY_ACTIONS),
    (MaterialState, texts.MATERIAL_STATES),
    (PrintProblem, texts.PRINT_PROBLEMS), (PrintAction, texts.PRINT_ACTIONS),
    (CertProblem, texts.CERT_PROBLEMS), (CertAction, texts.CERT_ACTIONS),
    (RateProblem, texts.RATE_PROBLEMS), (RateAction, texts.RATE_ACTIONS),
]


@pytest.mark.parametrize("members, table", TABLES, ids=[t[0].__name__ for t in TABLES])
def test_every_member_has_its_text(members, table):
    assert set(table) == set(members)
    assert all(table.values())
