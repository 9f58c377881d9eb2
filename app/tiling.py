"""Tiles that waste no pixels, and a streaming stitcher with a smooth blend window.

An image whose side fits the tile budget (``tile`` input pixels) runs whole along that side, at its own size:
no padding up to a tile size (the models take any H and W). A longer side is cut into the fewest tiles of at
most ``tile`` pixels that share at least ``overlap`` pixels with their neighbours, all of one size (so one
image's tiles batch together) and evenly spaced, so the shared strips are about ``overlap`` wide: the pixels
computed per input pixel are at most about (1 + overlap / (tile - overlap)) per tiled side.

Tile outputs are blended with a raised-cosine ramp over the shared strips. The window is separable and each
axis's weights are normalised to sum to one, so a tile's contribution is final once its neighbours' are added.
Tiles arrive in raster order; each is written out as soon as no later tile touches its pixels. Memory besides
the output is one tile and two strips: the right strip of the previous tile (tile high, overlap wide) and the
bottom strip of the previous tile row (overlap high, image wide), not a band of whole tile rows.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


def axis_plan(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """(tile length, start offsets) covering [0, length) along one axis: one tile of the whole length if it
    fits, else the fewest equal tiles of at most ``tile`` with neighbours sharing at least ``overlap``."""
    if length <= tile:
        return length, [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    t = math.ceil((length + (n - 1) * overlap) / n)
    return t, [i * (length - t) // (n - 1) for i in range(n)]


def ramp(n: int) -> np.ndarray:
    """Raised-cosine weights rising from ~0 to ~1 over n samples (all strictly positive)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)


def window_1d(length: int, fade: int, before: bool, after: bool) -> np.ndarray:
    w = np.ones(length, np.float32)
    fade = min(fade, length // 2)
    if fade > 0:
        if before:
            w[:fade] = ramp(fade)
        if after:
            w[length - fade :] = ramp(fade)[::-1]
    return w


def axis_weights(starts: list[int], tile: int, fade: int) -> list[np.ndarray]:
    """Each tile's blend weights along one axis (in output pixels), normalised so they sum to 1 everywhere."""
    windows = [window_1d(tile, fade, i > 0, i < len(starts) - 1) for i in range(len(starts))]
    total = np.zeros(starts[-1] + tile, np.float32)
    for s, w in zip(starts, windows):
        total[s : s + tile] += w
    return [w / total[s : s + tile] for s, w in zip(starts, windows)]


class TilePlan:
    """Where the tiles of one H x W image go, for a model of the given scale."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, scale: int) -> None:
        if overlap * 2 >= tile:
            raise ValueError("overlap must be less than half of the tile")
        self.height, self.width, self.tile, self.overlap, self.scale = height, width, tile, overlap, scale
        self.tile_h, self.ys = axis_plan(height, tile, overlap)
        self.tile_w, self.xs = axis_plan(width, tile, overlap)

    @property
    def rows(self) -> int:
        return len(self.ys)

    @property
    def cols(self) -> int:
        return len(self.xs)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def computed_pixels(self) -> int:
        """Input pixels the model computes for this image (each tile's, overlaps counted twice)."""
        return self.count * self.tile_h * self.tile_w

    def positions(self) -> Iterator[tuple[int, int]]:
        """(row, column) of every tile in raster order, the order the stitcher takes them in."""
        for r in range(self.rows):
            for c in range(self.cols):
                yield r, c

    def cut(self, pixels: np.ndarray, row: int, col: int, maxval: int, in_scale: int = 1) -> np.ndarray:
        """The float32 3 x tile_h x tile_w tile in [0,1] at (row, col).

        ``in_scale`` > 1 plans in output coordinates for a model that shrinks its input by that factor
        (a degradation model): the tile is cut from ``pixels`` at in_scale times the planned position and size.
        """
        y, x = self.ys[row] * in_scale, self.xs[col] * in_scale
        part = pixels[y : y + self.tile_h * in_scale, x : x + self.tile_w * in_scale]
        return np.ascontiguousarray(part.transpose(2, 0, 1), dtype=np.float32) / maxval


class Stitcher:
    """Blends tile outputs, given in raster order, into the final uint8/uint16 H*s x W*s x 3 image."""

    def __init__(self, plan: TilePlan, dtype: type = np.uint8) -> None:
        self.plan = plan
        s = plan.scale
        self.maxval = 65535 if dtype == np.uint16 else 255
        self.out: np.ndarray = np.empty((plan.height * s, plan.width * s, 3), dtype)
        self.th, self.tw = plan.tile_h * s, plan.tile_w * s
        self._wy = axis_weights([y * s for y in plan.ys], self.th, plan.overlap * s)
        self._wx = axis_weights([x * s for x in plan.xs], self.tw, plan.overlap * s)
        # Rows shared between the tile row being added and the next one, image wide; and the columns shared
        # between the tile being added and the next in its row, tile high.
        self._bottom = np.zeros((0, plan.width * s, 3), np.float32)
        self._next_bottom: np.ndarray = self._bottom
        self._right = np.zeros((self.th, 0, 3), np.float32)
        self._next = 0

    @property
    def done(self) -> bool:
        return self._next == self.plan.count

    def add(self, output: np.ndarray) -> None:
        """Blend the next tile's output (3 x tile_h*s x tile_w*s float32, raster order) and write what is final."""
        p, s = self.plan, self.plan.scale
        if self.done:
            raise ValueError("every tile was already added")
        if output.shape != (3, self.th, self.tw):
            raise ValueError(f"tile output of shape {output.shape}, expected {(3, self.th, self.tw)}")
        row, col = divmod(self._next, p.cols)
        if col == 0:  # a new tile row: the previous row's bottom strip is what this row's top shares
            self._bottom, self._next_bottom = self._next_bottom, np.empty((0, 0, 3), np.float32)  # replaced below
            self._right = np.zeros((self.th, 0, 3), np.float32)
        y0, x0 = p.ys[row] * s, p.xs[col] * s
        # Where the next tile (right) and the next tile row (below) begin: from there on pixels are shared.
        x_cut = (p.xs[col + 1] * s - x0) if col + 1 < p.cols else self.tw
        y_cut = (p.ys[row + 1] * s - y0) if row + 1 < p.rows else self.th
        top = self._bottom.shape[0]  # rows shared with the previous tile row
        part = output.transpose(1, 2, 0) * (self._wy[row][:, None, None] * self._wx[col][None, :, None])
        part[:, : self._right.shape[1]] += self._right
        self._right = part[:, x_cut:].copy()
        done = part[:, :x_cut]  # final along x; along y, rows [0, top) still need the previous row's strip
        xs = slice(x0, x0 + x_cut)
        done[:top] += self._bottom[:, xs]
        if col == 0:
            self._next_bottom = np.zeros((self.th - y_cut, p.width * s, 3), np.float32)
        self._next_bottom[:, xs] = done[y_cut:]
        self._write(y0, y0 + y_cut, xs, done[:y_cut])
        self._next += 1
        if col + 1 == p.cols and row + 1 == p.rows:
            self._bottom = self._next_bottom = self._right = None  # type: ignore[assignment]

    def _write(self, y_start: int, y_end: int, xs: slice, values: np.ndarray) -> None:
        self.out[y_start:y_end, xs] = np.round(np.clip(values, 0.0, 1.0) * self.maxval).astype(self.out.dtype)

    def add_row(self, row: int, outputs: list[np.ndarray]) -> None:
        """Add one whole tile row (its outputs left to right); rows must come in order."""
        if self._next != row * self.plan.cols:
            raise ValueError(f"rows must be added in order: expected {self._next // self.plan.cols}, got {row}")
        for out in outputs:
            self.add(out)
