"""Tiling and stitching, checked exactly with a nearest-neighbour 'model' and for seams with a blur."""
from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.tiling import Stitcher, TilePlan, axis_plan, window_1d
from tests.helpers import photo


def nearest(tile: np.ndarray, s: int) -> np.ndarray:
    return tile.repeat(s, axis=1).repeat(s, axis=2)


def run_tiled(img: np.ndarray, tile: int, overlap: int, s: int, model=nearest, dtype=np.uint8) -> np.ndarray:
    plan = TilePlan(img.shape[0], img.shape[1], tile, overlap, s)
    st = Stitcher(plan, dtype)
    maxval = 65535 if dtype == np.uint16 else 255
    for r, c in plan.positions():
        st.add(model(plan.cut(img, r, c, maxval), s))
    assert st.done
    return st.out


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (32, 32, 8), (33, 32, 8), (5, 32, 8), (1000, 96, 16),
                                                  (257, 256, 12), (4000, 256, 12), (30, 16, 6), (1, 16, 6)])
def test_axis_plan_covers_with_overlap_and_no_padding(length, tile, overlap):
    t, s = axis_plan(length, tile, overlap)
    assert t <= min(tile, length)  # never a tile larger than the image: no padding
    assert s[0] == 0 and s[-1] + t == length
    assert all(overlap <= a + t - b < t / 2 for a, b in zip(s, s[1:]))  # shared strips: at least overlap, not more than half


@pytest.mark.parametrize("h,w", [(64, 64), (100, 130), (255, 257), (256, 256), (257, 700), (480, 640), (1000, 1000),
                                 (64, 5000), (3000, 4000), (1080, 1920), (2000, 2000), (513, 769)])
def test_computed_pixels_at_most_115_percent_with_the_default_settings(h, w):
    cfg = Settings()
    plan = TilePlan(h, w, cfg.tile_size, cfg.tile_overlap, 4)
    assert plan.computed_pixels <= 1.15 * h * w


def test_computed_pixels_bound_on_every_size_from_64_to_1100():
    cfg = Settings()
    for n in range(64, 1100):
        t, s = axis_plan(n, cfg.tile_size, cfg.tile_overlap)
        assert t * len(s) <= 1.072 * n  # per side, so at most 1.15x the pixels of any image of such sides


def test_an_image_within_the_budget_is_one_tile_of_its_own_size():
    plan = TilePlan(200, 131, 256, 12, 4)
    assert (plan.count, plan.tile_h, plan.tile_w) == (1, 200, 131)
    assert plan.cut(photo(131, 200), 0, 0, 255).shape == (3, 200, 131)


def test_tiles_of_one_image_share_one_shape():
    plan = TilePlan(1000, 700, 256, 12, 2)
    img = photo(700, 1000)
    assert {plan.cut(img, r, c, 255).shape for r, c in plan.positions()} == {(3, plan.tile_h, plan.tile_w)}


def test_window_positive_and_flat_inside():
    w = window_1d(64, 16, True, True)
    assert (w > 0).all() and w[16:48].min() == 1 and w[0] < 0.01


@pytest.mark.parametrize("h,w", [(100, 130), (32, 32), (31, 97), (7, 5), (1, 1), (1, 300), (300, 1)])
@pytest.mark.parametrize("s", [2, 4])
def test_tiled_nearest_equals_whole_image(h, w, s):
    img = photo(w, h)
    out = run_tiled(img, 32, 8, s)
    assert out.shape == (h * s, w * s, 3)
    assert np.array_equal(out, img.repeat(s, 0).repeat(s, 1))


def test_16bit_output():
    img = (photo(50, 40).astype(np.uint16) * 257)
    out = run_tiled(img, 32, 8, 2, dtype=np.uint16)
    assert out.dtype == np.uint16 and np.array_equal(out, img.repeat(2, 0).repeat(2, 1))


def test_rows_must_come_in_order():
    plan = TilePlan(100, 100, 32, 8, 2)
    st = Stitcher(plan)
    with pytest.raises(ValueError):
        st.add_row(1, [np.zeros((3, 64, 64), np.float32)] * len(plan.xs))


def test_memory_is_two_strips_not_a_band_of_tile_rows():
    plan = TilePlan(3000, 4000, 96, 16, 2)
    st = Stitcher(plan)
    tile = np.zeros((3, plan.tile_h * 2, plan.tile_w * 2), np.float32)
    for _ in range(plan.cols + 1):  # one tile row and the first tile of the next
        st.add(tile)
    strip = max(a + plan.tile_h - b for a, b in zip(plan.ys, plan.ys[1:])) * 2
    assert st._bottom.shape[0] <= strip and st._bottom.shape[1] == 8000  # overlap high, not a tile row high
    assert st._right.shape[0] == plan.tile_h * 2 and st._right.shape[1] <= strip


def test_wrong_tile_shape_is_refused():
    plan = TilePlan(100, 100, 32, 8, 2)
    with pytest.raises(ValueError):
        Stitcher(plan).add(np.zeros((3, 64, 64), np.float32))


def test_no_seam_with_a_context_dependent_model():
    """A 'model' whose output near tile borders is wrong (zero padding, like a CNN's) must not leave seams."""

    def blur_up(t: np.ndarray, s: int) -> np.ndarray:
        padded = np.pad(t, ((0, 0), (2, 2), (2, 2)))  # zeros outside the tile: wrong near its border
        k = sum(padded[:, dy : dy + t.shape[1], dx : dx + t.shape[2]] for dy in range(5) for dx in range(5)) / 25
        return nearest(k, s)

    img = photo(200, 150)
    tiled = run_tiled(img, 48, 16, 2, blur_up).astype(float)
    whole = run_tiled(img, 400, 16, 2, blur_up).astype(float)  # one tile: the untiled result
    err = np.abs(tiled - whole).mean(axis=2)
    inner = err[8:-8, 8:-8]
    assert inner.max() < 3.0, "tile borders must be blended away"
