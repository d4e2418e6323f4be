"""The simulated camera's specimen pages: valid MRZs, camera-sized frames, drawn again
exactly from a seed."""

from __future__ import annotations

import numpy as np
import pytest

from devices.emrtd.mrz import SHAPES, format_mrz, parse_mrz
from devices.sim.mrz_scenes import (
    FRAME_SIZE,
    MODERATE,
    SPECIMENS,
    mrz_scene,
    page_without_mrz_scene,
    random_specimen,
)


@pytest.mark.parametrize("name", sorted(SPECIMENS))
def test_every_specimen_has_a_valid_mrz_of_its_format(name: str) -> None:
    scene = mrz_scene(name, seed=0)
    assert scene.text is not None
    mrz = parse_mrz(scene.text)
    assert mrz.format == SPECIMENS[name].format
    assert mrz.document_number == SPECIMENS[name].document_number
    assert scene.image.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3)
    assert scene.image.dtype == np.uint8


@pytest.mark.parametrize("fmt", sorted(SHAPES))
def test_random_specimens_are_valid_and_vary(fmt: str) -> None:
    drawn = [random_specimen(fmt, np.random.default_rng(seed)) for seed in range(20)]
    assert all(m.format == fmt for m in drawn)
    assert len({format_mrz(m) for m in drawn}) == len(drawn)
    for m in drawn:
        assert parse_mrz(format_mrz(m)).document_number == m.document_number


def test_a_seed_draws_the_same_frame_and_another_seed_another() -> None:
    first = mrz_scene("utopia-td3", seed=7, conditions=MODERATE).image
    again = mrz_scene("utopia-td3", seed=7, conditions=MODERATE).image
    other = mrz_scene("utopia-td3", seed=8, conditions=MODERATE).image
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_page_without_mrz_says_so_and_a_blot_darkens_its_cell() -> None:
    blank = page_without_mrz_scene(1)
    assert blank.mrz is None and blank.text is None
    clean = mrz_scene("utopia-td3", seed=3).image.astype(int)
    blotted = mrz_scene("utopia-td3", seed=3, smudge=((1, 9),)).image.astype(int)
    assert (blotted - clean).sum() < 0  # ink added, nothing else moved
    assert repr(blank) == "MrzScene(seed=1, no MRZ)"
