"""Overlapping tiles and a streaming stitcher with a smooth blend window.

The image is cut into ``tile`` x ``tile`` input tiles with at least ``overlap`` pixels shared between
neighbours (the last tile of a row/column is aligned to the image edge). Images smaller than a tile are
reflect-padded to a tile and cropped back. Tile outputs are blended with a raised-cosine ramp over the
shared region (weights normalised, so any overlap blends exactly) and written out one tile row at a time:
memory is one band of tile rows, not the image.
"""
from __future__ import annotations

import numpy as np


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets along one axis covering [0, length) (length >= tile)."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    s = list(range(0, length - tile, stride))
    return s + [length - tile]


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


class TilePlan:
    """Where the tiles of one H x W image go, for a model of the given scale."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, scale: int) -> None:
        if overlap >= tile:
            raise ValueError("overlap must be smaller than the tile")
        self.height, self.width, self.tile, self.overlap, self.scale = height, width, tile, overlap, scale
        self.padded_h, self.padded_w = max(height, tile), max(width, tile)
        self.ys = starts(self.padded_h, tile, overlap)
        self.xs = starts(self.padded_w, tile, overlap)

    @property
    def rows(self) -> int:
        return len(self.ys)

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def row_tiles(self, pixels: np.ndarray, row: int, maxval: int, in_scale: int = 1) -> list[np.ndarray]:
        """The float32 3 x tile x tile tiles in [0,1] of one tile row.

        ``in_scale`` > 1 plans in output coordinates for a model that shrinks its input by that factor
        (a degradation model): the tiles are cut from ``pixels`` at in_scale times the planned positions.
        """
        t, y = self.tile * in_scale, self.ys[row] * in_scale
        band = pixels[y : y + t]
        pad_h, pad_w = t - band.shape[0], max(0, t - band.shape[1])
        if pad_h or pad_w:
            band = pad_reflect(band, pad_h, pad_w)
        return [np.ascontiguousarray(band[:, x * in_scale : x * in_scale + t].transpose(2, 0, 1), dtype=np.float32) / maxval
                for x in self.xs]


def pad_reflect(img: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """Pad bottom/right by reflection (edge replication for 1-pixel axes, where there is nothing to reflect)."""
    mode = "reflect" if min(img.shape[:2]) > 1 else "edge"
    return np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


class Stitcher:
    """Blends tile outputs row by row into the final uint8/uint16 H*s x W*s x 3 image."""

    def __init__(self, plan: TilePlan, dtype: type = np.uint8) -> None:
        self.plan = plan
        s, t = plan.scale, plan.tile
        self.maxval = 65535 if dtype == np.uint16 else 255
        self.out = np.empty((plan.height * s, plan.width * s, 3), dtype)
        self.ts = t * s
        self.acc = np.zeros((self.ts, plan.padded_w * s, 3), np.float32)
        self.wsum = np.zeros((self.ts, plan.padded_w * s), np.float32)
        self.acc_y0 = 0
        self.next_row = 0
        fade = plan.overlap * s
        self._win_y = [
            window_1d(self.ts, fade, r > 0, r < plan.rows - 1) for r in range(plan.rows)
        ]
        self._win_x = [
            window_1d(self.ts, fade, c > 0, c < len(plan.xs) - 1) for c in range(len(plan.xs))
        ]

    def add_row(self, row: int, outputs: list[np.ndarray]) -> None:
        """Blend the outputs (3 x ts x ts float32, one per tile of the row) and write finished rows out."""
        if row != self.next_row:
            raise ValueError(f"rows must be added in order: expected {self.next_row}, got {row}")
        p, s, ts = self.plan, self.plan.scale, self.ts
        y0 = p.ys[row] * s
        if row > 0:  # slide the band down: keep the rows the previous tile row shares with this one
            keep = self.acc_y0 + ts - y0
            self.acc[:keep] = self.acc[ts - keep :]
            self.wsum[:keep] = self.wsum[ts - keep :]
            self.acc[keep:] = 0
            self.wsum[keep:] = 0
        self.acc_y0 = y0
        wy = self._win_y[row]
        for c, (x, out) in enumerate(zip(p.xs, outputs)):
            w = wy[:, None] * self._win_x[c][None, :]
            xs = x * s
            self.acc[:, xs : xs + ts] += out.transpose(1, 2, 0) * w[..., None]
            self.wsum[:, xs : xs + ts] += w
        y_end = p.ys[row + 1] * s if row + 1 < p.rows else y0 + ts
        y_end_img = min(y_end, p.height * s)
        if y_end_img > y0:
            n = y_end_img - y0
            band = self.acc[:n, : p.width * s] / self.wsum[:n, : p.width * s, None]
            self.out[y0:y_end_img] = np.round(np.clip(band, 0.0, 1.0) * self.maxval).astype(self.out.dtype)
        self.next_row += 1

    @property
    def done(self) -> bool:
        return self.next_row == self.plan.rows
