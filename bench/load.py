"""Service load: throughput and latency at 1/4/16/64 concurrent clients, batching on vs max_batch=1.

    python -m bench.load [--model sr-x4] [--size 96] [--clients 1 4 16 64] [--requests-per-client 2]

Starts the real server (python -m app) on loopback for each mode, drives it with httpx async clients,
prints one table and the throughput ratio. Then measures the HTTP + codec overhead of one 256x256
request against the raw session time of the same tiles.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import time

import httpx
import numpy as np
from PIL import Image

from bench.common import machine, table
from tests.helpers import ServerProcess, photo


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(w, h, seed=1)).save(buf, "PNG")
    return buf.getvalue()


async def drive(url: str, body: bytes, model: str, clients: int, per_client: int) -> tuple[list[float], float, int]:
    lat: list[float] = []
    failures = 0

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal failures
        for _ in range(per_client):
            t0 = time.perf_counter()
            r = await c.post(f"{url}/upscale?model={model}&format=png", content=body)
            if r.status_code != 200:
                failures += 1
            lat.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return lat, wall, failures


def run_mode(label: str, env: dict, args, body: bytes, scale: int) -> list[list]:
    srv = ServerProcess({"GAN_MAX_QUEUE": "1000", "GAN_REQUEST_TIMEOUT_S": "600", **env})
    rows = []
    try:
        asyncio.run(drive(srv.url, body, args.model, 1, 2))  # warm-up
        for n in args.clients:
            lat, wall, failed = asyncio.run(drive(srv.url, body, args.model, n, args.requests_per_client))
            ok = len(lat) - failed
            mpix = ok * (args.size * scale) ** 2 / 1e6
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            rows.append([label, n, len(lat), failed, ok / wall, mpix / wall, p50 * 1000, p95 * 1000, p99 * 1000])
    finally:
        srv.stop()
    return rows


def overhead(args, scale: int) -> str:
    """One 256x256 request, alone, vs the raw session time of the same tiles, both one tile per call
    (so the batch composition cannot differ between the two sides)."""
    import json
    from pathlib import Path

    from app.runtime import Session
    from app.tiling import TilePlan

    body = png(256, 256)
    tile, overlap, max_batch = 96, 16, 1
    srv = ServerProcess({"GAN_TILE_SIZE": str(tile), "GAN_TILE_OVERLAP": str(overlap), "GAN_MAX_BATCH": str(max_batch)})
    try:
        with httpx.Client(timeout=600) as c:
            c.post(f"{srv.url}/upscale?model={args.model}&format=png", content=body)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                c.post(f"{srv.url}/upscale?model={args.model}&format=png", content=body).raise_for_status()
                times.append(time.perf_counter() - t0)
        service = float(np.median(times))
    finally:
        srv.stop()
    card = json.loads(Path(f"models/{args.model}.json").read_text())
    sess = Session(f"models/{card['onnx']['file']}", ["CPUExecutionProvider"])
    plan = TilePlan(256, 256, tile, overlap, scale)
    n = plan.count
    x = np.random.rand(n, 3, tile, tile).astype(np.float32)
    sess.run(x[:max_batch])
    raw = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(0, n, max_batch):
            sess.run(x[i : i + max_batch])
        raw.append(time.perf_counter() - t0)
    model = float(np.median(raw))
    return (
        f"256x256 x{scale} alone: service {service * 1000:.0f} ms, raw session on the same {n} tiles {model * 1000:.0f} ms; "
        f"HTTP + decode + tiling + stitch + PNG encode overhead = {100 * (service - model) / model:.1f}% of model time"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="sr-x4")
    p.add_argument("--size", type=int, default=96, help="input image side (one tile at the default tile size)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--requests-per-client", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=5)
    p.add_argument("--overhead-only", action="store_true", help="only the 256x256 service-vs-session overhead")
    args = p.parse_args()
    scale = int(args.model.rsplit("x", 1)[-1]) if args.model[-1].isdigit() else 4
    if args.overhead_only:
        print(overhead(args, scale))
        return
    body = png(args.size, args.size)
    rows = run_mode(f"batching (max_batch={args.max_batch})", {"GAN_MAX_BATCH": str(args.max_batch), "GAN_MAX_WAIT_MS": str(args.max_wait_ms)}, args, body, scale)
    rows += run_mode("max_batch=1", {"GAN_MAX_BATCH": "1"}, args, body, scale)
    print(f"# {args.model}, {args.size}x{args.size} -> x{scale} PNG, {args.requests_per_client} requests per client; {machine()}")
    print(table(["mode", "clients", "requests", "failed", "images/s", "out MP/s", "p50 ms", "p95 ms", "p99 ms"], rows))
    half = len(rows) // 2
    for on, off in zip(rows[:half], rows[half:]):
        print(f"clients={on[1]}: batching/unbatched throughput = {on[4] / off[4]:.2f}x, p50 {on[6]:.0f} vs {off[6]:.0f} ms")
    print(overhead(args, scale))


if __name__ == "__main__":
    main()
