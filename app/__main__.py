"""``gan-serve`` / ``python -m app``: serve with uvicorn, settings from the environment (GAN_*) and the flags.

On SIGTERM/SIGINT the app is marked draining at once (/readyz answers 503 on connections still open),
uvicorn stops accepting connections and waits for in-flight requests, then exits.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from app.config import get_settings


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.served = app

    def handle_exit(self, sig, frame) -> None:
        self.served.state.draining = True
        super().handle_exit(sig, frame)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gan-serve", description="Serve the models of a folder over HTTP (/upscale, /degrade, /text-to-image).",
        epilog="Every setting is also an environment variable (GAN_HOST, GAN_PORT, GAN_MODELS_DIR, ...; the README lists "
               "them); a flag wins over its variable.",
    )
    p.add_argument("--host", help="interface to listen on (GAN_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (GAN_PORT, default 8000)")
    p.add_argument("--models-dir", help="folder of NAME.onnx + NAME.json model cards (GAN_MODELS_DIR, default the shipped models/)")
    p.add_argument("--workers", type=int, help="batch workers per model (GAN_MODEL_WORKERS, default 1): concurrent model "
                                               "calls; for more processes run more replicas behind the load balancer")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="GAN_LOG_LEVEL, default info")
    return p


def check_models_dir(path: Path) -> str | None:
    """Why the server must not start with this models folder, or None."""
    if not path.is_dir():
        return f"the models folder {path} does not exist (GAN_MODELS_DIR / --models-dir)"
    if not [c for c in path.glob("*.json") if not c.name.endswith(".tokenizer.json")]:
        return f"the models folder {path} holds no model cards (NAME.json beside NAME.onnx): nothing to serve"
    return None


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    flags = {"GAN_HOST": args.host, "GAN_PORT": args.port, "GAN_MODELS_DIR": args.models_dir,
             "GAN_MODEL_WORKERS": args.workers, "GAN_LOG_LEVEL": args.log_level}
    os.environ.update({k: str(v) for k, v in flags.items() if v is not None})
    get_settings.cache_clear()
    s = get_settings()
    from app.logs import configure

    configure(s.log_level, s.log_format)
    problem = check_models_dir(Path(s.models_dir))
    if problem:
        logging.getLogger("app").error(problem)
        sys.exit(2)
    from app.main import create_app

    app = create_app(s)
    # Long enough for a request admitted just before SIGTERM to finish: its deadline plus upload/encode time.
    drain_s = math.ceil(s.request_timeout_s) + 10
    # h11, whose request-head limit applies (httptools has none of ours); connections past the limit get 503.
    # uvicorn has no header or body read timeouts: run it behind nginx (docker/, deploy/), never facing clients.
    config = uvicorn.Config(app, host=s.host, port=s.port, log_level=s.log_level, timeout_graceful_shutdown=drain_s,
                            http="h11", h11_max_incomplete_event_size=s.max_header_bytes, limit_concurrency=s.max_connections,
                            timeout_keep_alive=5, log_config=None)
    Server(config, app).run()


if __name__ == "__main__":
    main()
