"""Peak memory of the server: one large request, a thin image, and 16 concurrent uploads, against the bound.

    python -m bench.memory [--width 4000 --height 3000 --scale 2] [--model-dir DIR]

Uses the exact nearest-neighbour test model by default, so the numbers are the pipeline's memory (decode,
tiles, stitch strips, output, encode) and the run takes seconds, not minutes, on a CPU. Each case resets the
server's peak RSS (VmHWM, through /proc/PID/clear_refs) and reports how far it grew, beside the bound that
app/budget.py computes for it (the README's "Memory" formula), summed over the requests of the case:

- large: one WIDTH x HEIGHT JPEG at --scale;
- thin: a 16000 x 1 PNG at x4 (a 60000 x 1 one is refused by GAN_MAX_INPUT_SIDE, shown as its status);
- 16 uploads: 16 clients at once, each a 12 MB PNG body (a 2048 x 2048 noise image, which PNG cannot compress),
  under the default GAN_MAX_INFLIGHT_BYTES: the budget admits what fits and answers 503 to the rest.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from app.budget import image_bytes, tile_bytes
from app.config import Settings
from app.tiling import TilePlan
from bench.common import table
from tests.helpers import ServerProcess, write_nearest_model


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key}")


def encode(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buf.getvalue()


def bound_mb(w: int, h: int, scale: int, body: int, s: Settings) -> float:
    plan = TilePlan(h, w, s.tile_size, s.tile_overlap, scale)
    return (image_bytes(w, h, scale, 1, 2 * body) + tile_bytes(plan.tile_h, plan.tile_w, scale, s.batch_for(text=False, gpu=False), w * scale, s.tile_overlap)) / 2**20


async def post_all(url: str, bodies: list[bytes]) -> list[int]:
    async with httpx.AsyncClient(timeout=600) as c:
        rs = await asyncio.gather(*(c.post(url, content=b) for b in bodies))
    return [r.status_code for r in rs]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--model-dir", help="models folder (default: a temporary one with the nearest test models)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp()
    model_dir = args.model_dir or tmp
    if not args.model_dir:
        for s in (2, 4):
            write_nearest_model(Path(tmp), f"nearest-x{s}", s)
    rng = np.random.default_rng(0)
    large = encode((rng.random((args.height, args.width, 3)) * 255).astype(np.uint8), "JPEG")
    thin = encode(np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (1, 63, 3))[:, :16000], "PNG")
    strip = encode(np.zeros((1, 60000, 3), np.uint8), "PNG")
    noise = encode(rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8), "PNG")
    settings = Settings()
    env = {"GAN_MODELS_DIR": model_dir, "GAN_MAX_INPUT_PIXELS": str(max(args.width * args.height, 16_000_000)),
           "GAN_MAX_OUTPUT_PIXELS": str(max(args.width * args.height * args.scale**2, 64_000_000)),
           "GAN_MAX_BODY_BYTES": str(max(len(large), len(noise)) + 1000), "GAN_REQUEST_TIMEOUT_S": "3000"}
    srv = ServerProcess(env)
    rows = []
    try:
        pid = srv.proc.pid
        cases = [
            (f"large {args.width}x{args.height} JPEG x{args.scale}", f"/upscale?scale={args.scale}&format=jpeg", [large],
             bound_mb(args.width, args.height, args.scale, len(large), settings)),
            ("thin 16000x1 PNG x4", "/upscale?scale=4&format=png", [thin], bound_mb(16000, 1, 4, len(thin), settings)),
            ("thin 60000x1 PNG x4", "/upscale?scale=4&format=png", [strip], 0.0),
            ("16 concurrent 2048x2048 uploads x2", "/upscale?scale=2&format=png", [noise] * 16,
             min(16 * bound_mb(2048, 2048, 2, len(noise), settings), settings.max_inflight_bytes / 2**20)),
        ]
        for name, path, bodies, bound in cases:
            base = status_mb(pid, "VmRSS")
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            statuses = asyncio.run(post_all(srv.url + path, bodies))
            grew = status_mb(pid, "VmHWM") - base
            counts = ", ".join(f"{statuses.count(c)} x {c}" for c in sorted(set(statuses)))
            rows.append([name, f"{sum(map(len, bodies)) / 2**20:.1f}", counts, f"{grew:.0f}", f"{bound:.0f}"])
    finally:
        srv.stop()
    print(f"# server peak RSS growth per case (nearest-neighbour models, default limits; GAN_MAX_INFLIGHT_BYTES "
          f"{settings.max_inflight_bytes >> 20} MiB)")
    print(table(["case", "bodies (MiB)", "answers", "peak RSS growth (MiB)", "bound (MiB)"], rows))


if __name__ == "__main__":
    main()
