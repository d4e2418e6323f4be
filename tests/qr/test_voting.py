"""Agreement across frames: what is confirmed, when, and how often."""

from __future__ import annotations

import pytest

from devices.qr.voting import Votes


def test_one_frame_is_not_enough():
    votes = Votes(confirm=2, window=4)
    assert votes.add(["A"]) is None
    assert votes.add([]) is None
    assert votes.add(["A"]) == "A"


def test_agreement_must_fall_within_the_window():
    votes = Votes(confirm=2, window=3)
    assert [votes.add(t) for t in (["A"], [], [], ["A"])] == [None, None, None, None]


def test_a_payload_held_in_view_is_handed_on_once():
    votes = Votes(confirm=2, window=3)
    results = [votes.add(["A"]) for _ in range(10)]
    assert results == [None, "A"] + [None] * 8


def test_shown_again_after_leaving_the_view_it_is_handed_on_again():
    votes = Votes(confirm=2, window=2)
    assert [votes.add(t) for t in (["A"], ["A"], [], [], ["A"], ["A"])] == [
        None, "A", None, None, None, "A"]


def test_a_tie_between_two_payloads_confirms_neither():
    votes = Votes(confirm=2, window=4)
    assert [votes.add(t) for t in (["A", "B"], ["A", "B"], ["B", "A"])] == [None, None, None]


def test_the_majority_wins_over_a_stray_read():
    votes = Votes(confirm=2, window=4)
    assert [votes.add(t) for t in (["A"], ["B"], ["A"])] == [None, None, "A"]


def test_reset_forgets():
    votes = Votes(confirm=2, window=4)
    votes.add(["A"])
    votes.reset()
    assert votes.add(["A"]) is None


def test_confirm_must_fit_in_the_window():
    with pytest.raises(ValueError):
        Votes(confirm=5, window=4)
