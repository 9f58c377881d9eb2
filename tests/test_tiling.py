"""Tiling and stitching, checked exactly with a nearest-neighbour 'model' and for seams with a blur."""
from __future__ import annotations

import numpy as np
import pytest

from app.tiling import Stitcher, TilePlan, starts, window_1d
from tests.helpers import photo


def nearest(tile: np.ndarray, s: int) -> np.ndarray:
    return tile.repeat(s, axis=1).repeat(s, axis=2)


def run_tiled(img: np.ndarray, tile: int, overlap: int, s: int, model=nearest, dtype=np.uint8) -> np.ndarray:
    plan = TilePlan(img.shape[0], img.shape[1], tile, overlap, s)
    st = Stitcher(plan, dtype)
    maxval = 65535 if dtype == np.uint16 else 255
    for r in range(plan.rows):
        st.add_row(r, [model(t, s) for t in plan.row_tiles(img, r, maxval)])
    assert st.done
    return st.out


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (32, 32, 8), (33, 32, 8), (5, 32, 8), (1000, 96, 16)])
def test_starts_cover_with_overlap(length, tile, overlap):
    s = starts(max(length, tile), tile, overlap)
    assert s[0] == 0 and s[-1] + tile == max(length, tile)
    assert all(b - a <= tile - overlap for a, b in zip(s, s[1:]))


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


def test_memory_is_one_band_not_the_image():
    plan = TilePlan(3000, 4000, 96, 16, 2)
    st = Stitcher(plan)
    assert st.acc.shape == (192, 8000, 3)  # the float band is one tile row high


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
