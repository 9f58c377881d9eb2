"""The naive peer of bench.load: what a user would write in ten minutes with FastAPI and ONNX Runtime.

One session, the whole image per request (no tiles, no batching, no limits), decode and encode with Pillow.

    python -m bench.naive MODEL.onnx --port 8100
"""
from __future__ import annotations

import argparse
import io

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, Request, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool


def create_app(model_path: str) -> FastAPI:
    app = FastAPI()
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])

    @app.post("/upscale")
    async def upscale(request: Request) -> Response:
        data = await request.body()
        return Response(await run_in_threadpool(process, session, data), media_type="image/png")

    return app


def process(session: ort.InferenceSession, data: bytes) -> bytes:
    x = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32).transpose(2, 0, 1)[None] / 255.0
    y = session.run(None, {"image": x})[0][0]
    out = Image.fromarray(np.round(np.clip(y, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--port", type=int, default=8100)
    args = p.parse_args()
    uvicorn.run(create_app(args.model), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
