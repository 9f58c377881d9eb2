"""Service load: the service against a naive peer, and batching on vs off.

    python -m bench.load [--model sr-x4] [--cases 128:16 512:1] [--requests-per-client 2]
    python -m bench.load --batching [--size 96] [--clients 1 4 16 64]
    python -m bench.load --overhead-only

Default: for each case SIZE:CLIENTS, the real server (python -m app, default settings) and the naive peer
(bench/naive.py: FastAPI + ONNX Runtime, the whole image per request, no batching) serve the same model file,
one after the other in this run, driven by httpx async clients; one table and the service/naive ratios.
``--batching``: the service with max_batch=8 against max_batch=1. ``--overhead-only``: one 256x256 request
against the raw session time of the same tiles.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from pathlib import Path

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


def run_mode(label: str, srv: ServerProcess, model: str, cases: list[tuple[int, int]], per_client: int, scale: int) -> list[list]:
    """Drive a started server through each (image side, clients) case; a row per case. Stops the server."""
    rows = []
    try:
        for size, n in cases:
            body = png(size, size)
            asyncio.run(drive(srv.url, body, model, 1, 1))  # warm-up at this size
            lat, wall, failed = asyncio.run(drive(srv.url, body, model, n, per_client))
            ok = len(lat) - failed
            mpix = ok * (size * scale) ** 2 / 1e6
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            rows.append([label, f"{size}x{size}", n, len(lat), failed, ok / wall, mpix / wall, p50 * 1000, p95 * 1000, p99 * 1000])
    finally:
        srv.stop()
    return rows


def service(env: dict | None = None) -> ServerProcess:
    return ServerProcess({"GAN_MAX_QUEUE": "1000", "GAN_REQUEST_TIMEOUT_S": "600", **(env or {})})


HEADERS = ["server", "image", "clients", "requests", "failed", "images/s", "out MP/s", "p50 ms", "p95 ms", "p99 ms"]


def overhead(args, scale: int) -> str:
    """One 256x256 request, alone, vs the raw session time of the same tiles, both one tile per call
    (so the batch composition cannot differ between the two sides)."""
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
        served = float(np.median(times))
    finally:
        srv.stop()
    card = json.loads(Path(f"models/{args.model}.json").read_text())
    sess = Session(f"models/{card['onnx']['file']}", ["CPUExecutionProvider"])
    plan = TilePlan(256, 256, tile, overlap, scale)
    n = plan.count
    x = np.random.rand(n, 3, plan.tile_h, plan.tile_w).astype(np.float32)
    sess.run(x[:max_batch])
    raw = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(0, n, max_batch):
            sess.run(x[i : i + max_batch])
        raw.append(time.perf_counter() - t0)
    model = float(np.median(raw))
    return (
        f"256x256 x{scale} alone: service {served * 1000:.0f} ms, raw session on the same {n} tiles {model * 1000:.0f} ms; "
        f"HTTP + decode + tiling + stitch + PNG encode overhead = {100 * (served - model) / model:.1f}% of model time"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="sr-x4")
    p.add_argument("--cases", nargs="+", default=["128:16", "512:1"], help="SIZE:CLIENTS, e.g. 128:16 (a 128x128 PNG, 16 clients)")
    p.add_argument("--requests-per-client", type=int, default=2)
    p.add_argument("--batching", action="store_true", help="batching (max_batch 8) vs max_batch=1 instead of service vs naive")
    p.add_argument("--size", type=int, default=96, help="--batching: input image side")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64], help="--batching: client counts")
    p.add_argument("--max-wait-ms", type=float, default=5)
    p.add_argument("--overhead-only", action="store_true", help="only the 256x256 service-vs-session overhead")
    p.add_argument("--env", nargs="*", default=[], help="settings for the service, e.g. GAN_MODEL_WORKERS=2")
    args = p.parse_args()
    card = json.loads(Path(f"models/{args.model}.json").read_text())
    scale = card["scale"]
    if args.overhead_only:
        print(overhead(args, scale))
        return
    per = args.requests_per_client
    if args.batching:
        cases = [(args.size, n) for n in args.clients]
        rows = run_mode("batching (max_batch=8)", service({"GAN_MAX_BATCH": "8", "GAN_MAX_WAIT_MS": str(args.max_wait_ms)}),
                        args.model, cases, per, scale)
        rows += run_mode("max_batch=1", service({"GAN_MAX_BATCH": "1"}), args.model, cases, per, scale)
        print(f"# {args.model}, x{scale} PNG, {per} requests per client; {machine()}")
        print(table(HEADERS, rows))
        half = len(rows) // 2
        for on, off in zip(rows[:half], rows[half:]):
            print(f"clients={on[2]}: batching/unbatched throughput = {on[5] / off[5]:.2f}x, p50 {on[7]:.0f} vs {off[7]:.0f} ms")
        return
    cases = [(int(a), int(b)) for a, b in (c.split(":") for c in args.cases)]
    rows = run_mode("service", service(dict(a.split("=", 1) for a in args.env)), args.model, cases, per, scale)
    naive = ServerProcess(args=["bench.naive", f"models/{card['onnx']['file']}"], ready="/docs")
    rows += run_mode("naive FastAPI + ORT", naive, args.model, cases, per, scale)
    print(f"# {args.model} ({card['onnx']['file']}), x{scale} PNG, {per} requests per client; {machine()}")
    print(table(HEADERS, rows))
    half = len(rows) // 2
    for ours, theirs in zip(rows[:half], rows[half:]):
        print(f"{ours[1]}, {ours[2]} clients: service/naive throughput = {ours[5] / theirs[5]:.2f}x, p50 {ours[7]:.0f} vs {theirs[7]:.0f} ms")


if __name__ == "__main__":
    main()
