"""Peak memory of one request stays under the documented bound (app/budget.py, README "Memory"), measured as the
server process's peak RSS (VmHWM, reset before each request) on thin, wide, tall, 16-bit and alpha inputs."""
from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.budget import image_bytes, tile_bytes
from app.config import Settings
from app.tiling import TilePlan
from tests.helpers import ServerProcess, photo

SLACK = 80 * 2**20  # allocator and library overhead not in the formula (Python objects, zlib/PNG buffers)


def kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def encoded(arr: np.ndarray) -> bytes:
    """PNG of an HxW uint16 (16-bit grey), HxWx3 or HxWx4 (RGBA) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def cases() -> dict[str, tuple[bytes, int, int, int]]:
    """name -> (PNG bytes, width, height, bytes per sample)"""
    wide = np.tile(photo(400, 200), (1, 15, 1))
    rgba = np.concatenate([np.tile(photo(500, 375), (2, 2, 1)), np.full((750, 1000, 1), 200, np.uint8)], axis=2)
    grey16 = (np.tile(photo(500, 500)[..., 0], (2, 2)).astype(np.uint16) * 257)
    return {
        "thin 16000x1": (encoded(np.tile(photo(400, 1), (1, 40, 1))), 16000, 1, 1),
        "wide 6000x200": (encoded(wide), 6000, 200, 1),
        "tall 200x6000": (encoded(np.ascontiguousarray(wide.transpose(1, 0, 2))), 200, 6000, 1),
        "16-bit grey 1000x1000": (encoded(grey16), 1000, 1000, 2),
        "alpha 1000x750": (encoded(rgba), 1000, 750, 1),
    }


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_peak_rss_of_a_request_is_within_the_documented_bound(nearest_models):
    settings = Settings()
    srv = ServerProcess({"GAN_MODELS_DIR": str(nearest_models)})
    try:
        pid = srv.proc.pid
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            assert c.post("/upscale?scale=4&format=png", content=encoded(photo(64, 64))).status_code == 200  # warm
            for name, (body, w, h, sample) in cases().items():
                base = kib(pid, "VmRSS")
                try:
                    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
                except OSError:
                    pytest.skip("cannot reset the peak RSS here")
                r = c.post("/upscale?scale=4&format=png", content=body)
                assert r.status_code == 200 and r.headers["x-output-size"] == f"{4 * w}x{4 * h}", (name, r.text[:200])
                plan = TilePlan(h, w, settings.tile_size, settings.tile_overlap, 4)
                bound = image_bytes(w, h, 4, sample, 2 * len(body)) + tile_bytes(
                    plan.tile_h, plan.tile_w, 4, settings.batch_for(text=False, gpu=False), 4 * w, settings.tile_overlap)
                grew = kib(pid, "VmHWM") - base
                print(f"{name}: peak RSS grew {grew / 2**20:.0f} MiB; bound {bound / 2**20:.0f} MiB + {SLACK >> 20} MiB slack")
                assert grew <= bound + SLACK, f"{name}: peak grew {grew >> 20} MiB, bound {bound >> 20} MiB + slack"
            # The thin strip of the issue: refused by the side limit before any pixel is decoded.
            strip = encoded(np.zeros((1, 60000, 3), np.uint8))
            r = c.post("/upscale?scale=4", content=strip)
            assert r.status_code == 413 and "GAN_MAX_INPUT_SIDE" in r.json()["error"]["message"]
    finally:
        srv.stop()
