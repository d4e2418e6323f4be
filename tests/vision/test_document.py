"""Finding and flattening a document on synthetic photographed pages (devices.sim's scenes:
a page with text and a table on a wood or fabric desk, turned, seen in perspective, lit
unevenly, with sensor noise)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from devices.sim.document_scenes import (
    Scene,
    SceneVariant,
    clear_caches,
    render_page,
    render_scene,
)
from devices.vision.document import (
    Orientation,
    PaperKind,
    Quad,
    find_document,
    order_corners,
    page_size_px,
    warp,
)

# Seeds 0 and 1 lay the page on wood, seed 2 on grey fabric.
SEEDS = (0, 1, 2)


@functools.cache
def scene(variant: SceneVariant, kind: PaperKind = PaperKind.A4, seed: int = 0,
          orientation: Orientation | None = None) -> Scene:
    """Scenes shared by the tests of this file (each takes a tenth of a second to render)."""
    return render_scene(variant, kind, seed=seed, orientation=orientation)


def corner_error(found: Quad, truth: np.ndarray) -> float:
    """The worst corner's distance as a share of the page's diagonal."""
    expected = Quad(order_corners(truth))
    return float(np.linalg.norm(found.corners - expected.corners, axis=1).max()
                 / expected.diagonal)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", list(PaperKind))
def test_finds_the_corners_of_a_well_placed_page(kind, seed):
    shown = scene(SceneVariant.WELL_PLACED, kind, seed)
    found = find_document(shown.image, kind)
    assert found is not None
    assert not found.cut
    assert corner_error(found.quad, shown.corners) < 0.02
    assert found.quad.inside(*found.frame_size)


@pytest.mark.parametrize("kind", list(PaperKind))
def test_orientation_follows_how_the_page_lies(kind):
    for orientation in Orientation:
        shown = scene(SceneVariant.WELL_PLACED, kind, 1, orientation)
        found = find_document(shown.image, kind)
        assert found is not None
        assert found.quad.orientation is orientation
        assert corner_error(found.quad, shown.corners) < 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_a_bare_desk_is_no_document(seed):
    assert find_document(scene(SceneVariant.NO_DOCUMENT, seed=seed).image) is None


def test_a_blank_frame_is_no_document():
    assert find_document(np.full((720, 1280, 3), 128, np.uint8)) is None
    assert find_document(np.zeros((720, 1280, 3), np.uint8)) is None


@pytest.mark.parametrize("kind", list(PaperKind))
def test_a_corner_out_of_frame_is_placed_outside_it_and_marked_cut(kind):
    shown = scene(SceneVariant.CORNER_OUT, kind, 1)
    found = find_document(shown.image, kind)
    assert found is not None
    assert found.cut_sides == {"right"}
    width, _ = found.frame_size
    # The corner out of view is where the visible sides meet, not clipped to the border.
    assert found.quad.corners[:, 0].max() > width
    assert corner_error(found.quad, shown.corners) < 0.03


def test_a_page_taller_than_the_frame_is_cut_top_and_bottom():
    found = find_document(scene(SceneVariant.TOO_CLOSE, seed=0).image)
    assert found is not None
    assert {"top", "bottom"} <= found.cut_sides


def test_a_far_page_is_still_found_small():
    shown = scene(SceneVariant.TOO_SMALL, PaperKind.ID1, 1)
    found = find_document(shown.image, PaperKind.ID1)
    assert found is not None
    assert found.coverage < 0.05
    assert corner_error(found.quad, shown.corners) < 0.03


@pytest.mark.parametrize("kind", [PaperKind.ID1, PaperKind.A4])
def test_a_box_inside_a_page_is_not_taken_for_the_page(kind):
    # The page filling the whole frame: its own edges are out of view, and its grey photo
    # box, dark heading band and table are rectangles too, but none is lighter than what
    # surrounds it, as a document on the desk is.
    page = render_page(kind, seed=0)
    height, width = page.shape[:2]
    crop = page[height // 20:height * 19 // 20, width // 20:width * 19 // 20]
    filled = cv2.resize(crop, (1280, 720), interpolation=cv2.INTER_AREA)
    assert find_document(filled, kind) is None
    assert find_document(filled) is None


@pytest.mark.parametrize("kind", list(PaperKind))
def test_warp_gives_the_paper_aspect_and_the_heading_where_it_is_printed(kind):
    shown = scene(SceneVariant.WELL_PLACED, kind, 1)
    found = find_document(shown.image, kind)
    assert found is not None
    flat = warp(shown.image, found.quad, kind, 900)
    height, width = flat.shape[:2]
    assert max(width, height) == 900
    assert max(width, height) / min(width, height) == pytest.approx(kind.aspect, rel=0.01)
    gray = flat.mean(axis=2)
    top, bottom = shown.band
    thickness = bottom - top

    def rows(a: float, b: float) -> float:
        return float(gray[round(a * height):round(b * height),
                          round(0.2 * width):round(0.8 * width)].mean())

    band = rows(top + 0.25 * thickness, bottom - 0.25 * thickness)
    above = rows(max(0.01, top - 0.05), top - 0.01)
    # The dark heading band lands on its rows: not shifted, flipped or turned.
    assert band < 110 < above
    assert rows(1 - bottom + 0.25 * thickness, 1 - top - 0.25 * thickness) > 110


@pytest.mark.parametrize("kind", list(PaperKind))
def test_warp_keeps_the_print_readable(kind):
    """The flattened page matches the page as printed: its table (or card text) is found
    where it was printed, at the same scale."""
    shown = scene(SceneVariant.WELL_PLACED, kind, 2)
    found = find_document(shown.image, kind)
    assert found is not None
    flat = cv2.cvtColor(warp(shown.image, found.quad, kind, 600), cv2.COLOR_BGR2GRAY)
    height, width = flat.shape
    printed = cv2.resize(cv2.cvtColor(render_page(kind, seed=2), cv2.COLOR_BGR2GRAY),
                         (width, height), interpolation=cv2.INTER_AREA)
    top, bottom, left, right = (round(0.25 * height), round(0.6 * height), round(0.1 * width),
                                round(0.9 * width))
    match = cv2.matchTemplate(flat, printed[top:bottom, left:right], cv2.TM_CCOEFF_NORMED)
    _, score, _, (x, y) = cv2.minMaxLoc(match)
    assert score > 0.5
    assert abs(x - left) <= 6 and abs(y - top) <= 6


def test_page_size_px_follows_orientation():
    assert page_size_px(PaperKind.A4, Orientation.PORTRAIT, 2339) == (1654, 2339)
    assert page_size_px(PaperKind.A4, Orientation.LANDSCAPE, 2339) == (2339, 1654)
    assert page_size_px(PaperKind.ID1, Orientation.LANDSCAPE, 1011) == (1011, 638)


@pytest.mark.parametrize("angle", [0, 20, 44, 45, 46, 89, 90, 135, 180, 270, -30])
def test_order_corners_is_clockwise_from_the_top_left(angle):
    theta = np.radians(angle)
    rect = np.array([[-200, -100], [200, -100], [200, 100], [-200, 100]], float)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    points = rect @ rot.T + (640, 360)
    shuffled = points[np.random.default_rng(angle % 7).permutation(4)]
    ordered = order_corners(shuffled)
    nearest = np.linalg.norm(ordered[:, None, :] - points[None, :, :], axis=2)
    assert sorted(nearest.argmin(axis=1)) == [0, 1, 2, 3]
    assert nearest.min(axis=1).max() < 1e-3
    # Clockwise on screen (y down): the shoelace sum is positive.
    x, y = ordered[:, 0], ordered[:, 1]
    assert float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) > 0
    assert int(np.argmin(ordered.sum(axis=1))) == 0


def test_scenes_are_deterministic_and_frames_differ_only_by_noise():
    first = render_scene(SceneVariant.WELL_PLACED, seed=0)
    clear_caches()  # the seed alone makes the frame, not what was kept from before
    again = render_scene(SceneVariant.WELL_PLACED, seed=0)
    later = render_scene(SceneVariant.WELL_PLACED, seed=0, frame=1)
    other = render_scene(SceneVariant.WELL_PLACED, seed=1)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.corners, later.corners)
    noise = np.abs(first.image.astype(int) - later.image.astype(int))
    assert 0 < noise.mean() < 5
    assert np.abs(first.image.astype(int) - other.image.astype(int)).mean() > 10
    assert first.image.shape == (720, 1280, 3) and first.image.dtype == np.uint8
