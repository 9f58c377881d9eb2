"""Peak memory of the server for one large request: is it bounded by tiles, not by the image?

    python -m bench.memory [--width 4000 --height 3000 --scale 2] [--model-dir DIR]

Uses the exact nearest-neighbour test model by default, so the number is the pipeline's memory
(decode, tiles, batches, stitch band, output, encode) and the run takes seconds, not minutes, on a CPU.
Reports the server's peak RSS (VmHWM) before and after, and the output buffer for comparison.
"""
from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import table
from tests.helpers import ServerProcess, write_nearest_model


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--model-dir", help="models folder (default: a temporary one with the nearest test model)")
    p.add_argument("--model", default=None)
    args = p.parse_args()
    tmp = tempfile.mkdtemp()
    model_dir = args.model_dir or tmp
    model = args.model or f"nearest-x{args.scale}"
    if not args.model_dir:
        write_nearest_model(Path(tmp), model, args.scale)
    rng = np.random.default_rng(0)
    img = (rng.random((args.height, args.width, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=90)
    body = buf.getvalue()
    srv = ServerProcess({"GAN_MODELS_DIR": model_dir, "GAN_MAX_INPUT_PIXELS": str(args.width * args.height),
                         "GAN_MAX_OUTPUT_PIXELS": str(args.width * args.height * args.scale**2),
                         "GAN_MAX_BODY_BYTES": str(len(body) + 1000), "GAN_REQUEST_TIMEOUT_S": "3000"})
    try:
        before = vm_hwm_mb(srv.proc.pid)
        r = httpx.post(f"{srv.url}/upscale?model={model}&format=jpeg", content=body, timeout=3000)
        r.raise_for_status()
        after = vm_hwm_mb(srv.proc.pid)
    finally:
        srv.stop()
    out_mb = args.width * args.height * args.scale**2 * 3 / 2**20
    in_mb = args.width * args.height * 3 / 2**20
    print(f"# {args.width}x{args.height} JPEG ({len(body) / 2**20:.1f} MiB) x{args.scale} with {model}")
    print(table(["peak RSS before (MiB)", "peak RSS after (MiB)", "growth (MiB)", "input pixels (MiB)", "output buffer (MiB)", "growth beyond output (MiB)"],
                [[before, after, after - before, in_mb, out_mb, after - before - out_mb]]))


if __name__ == "__main__":
    main()
