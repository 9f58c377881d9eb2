"""``python -m app``: serve with uvicorn using the settings from the environment.

On SIGTERM/SIGINT the app is marked draining at once (/readyz answers 503 on connections still open),
uvicorn stops accepting connections and waits for in-flight requests, then exits.
"""
from __future__ import annotations

import logging
import math

import uvicorn

from app.config import get_settings
from app.main import create_app


class Server(uvicorn.Server):
    def handle_exit(self, sig, frame) -> None:
        self.config.app.state.draining = True
        super().handle_exit(sig, frame)


def main() -> None:
    s = get_settings()
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(s)
    # Long enough for a request admitted just before SIGTERM to finish: its deadline plus upload/encode time.
    drain_s = math.ceil(s.request_timeout_s) + 10
    # h11, whose request-head limit applies (httptools has none of ours); connections past the limit get 503.
    # uvicorn has no header or body read timeouts: run it behind nginx (docker/, deploy/), never facing clients.
    config = uvicorn.Config(app, host=s.host, port=s.port, log_level=s.log_level, timeout_graceful_shutdown=drain_s,
                            http="h11", h11_max_incomplete_event_size=s.max_header_bytes, limit_concurrency=s.max_connections,
                            timeout_keep_alive=5)
    Server(config).run()


if __name__ == "__main__":
    main()
