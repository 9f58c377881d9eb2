"""Backpressure, deadlines, disconnects and graceful shutdown, against the real server on a slow model."""
from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest
from PIL import Image

from app.tiling import TilePlan
from tests.helpers import ServerProcess, metric_value, photo, png_bytes, write_slow_model

BIG = png_bytes(Image.fromarray(photo(480, 480)))
TILES = TilePlan(480, 480, 32, 8, 2).count  # 400 tiles of 32 px: seconds of work on the slow model
# For "most tiles were never computed": a fast machine did 224 of BIG's tiles before a 0.5 s disconnect was seen.
HUGE = png_bytes(Image.fromarray(photo(960, 960)))
HUGE_TILES = TilePlan(960, 960, 32, 8, 2).count  # 1600


@pytest.fixture(scope="module")
def slow_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("slow")
    write_slow_model(d)
    return d


def start(slow_models, **env) -> ServerProcess:
    base = {"GAN_MODELS_DIR": str(slow_models), "GAN_TILE_SIZE": "32", "GAN_TILE_OVERLAP": "8", "GAN_MAX_BATCH": "4",
            "GAN_INTRA_OP_THREADS": "1"}
    return ServerProcess({**base, **{f"GAN_{k.upper()}": str(v) for k, v in env.items()}})


def post_in_thread(url: str, data: bytes, results: list, timeout: float = 120) -> threading.Thread:
    def go():
        try:
            results.append(httpx.post(url + "/upscale?scale=2", content=data, timeout=timeout))
        except Exception as e:  # noqa: BLE001 - the test inspects it
            results.append(e)
    t = threading.Thread(target=go)
    t.start()
    return t


def wait_for_work(url: str, timeout: float = 30) -> None:
    """Until the server has run at least one batch of the in-flight request."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metric_value(httpx.get(url + "/metrics").text, "gan_batch_size_count") > 0:
            return
        time.sleep(0.02)
    raise AssertionError("the request never started computing")


def saturate(srv: ServerProcess) -> tuple[threading.Thread, list]:
    """Start one slow request and wait until it computes: with max_queue=1 the model is now full."""
    first: list = []
    t = post_in_thread(srv.url, BIG, first)
    wait_for_work(srv.url)
    return t, first


def test_full_queue_answers_503_at_once_and_work_is_not_lost(slow_models):
    srv = start(slow_models, max_queue=1)
    try:
        t, first = saturate(srv)
        t0 = time.time()
        r = httpx.post(srv.url + "/upscale?scale=2", content=BIG, timeout=30)
        assert r.status_code == 503 and time.time() - t0 < 2.0  # vs seconds of work had it been admitted
        assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded"
        t.join()
        assert first[0].status_code == 200  # the admitted request finished normally
        assert httpx.post(srv.url + "/upscale?scale=2", content=BIG, timeout=60).status_code == 200
    finally:
        srv.stop()


def test_deadline_gives_504_and_leaves_nothing_queued(slow_models):
    srv = start(slow_models, request_timeout_s=0.3)
    try:
        r = httpx.post(srv.url + "/upscale?scale=2", content=HUGE, timeout=30)
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        time.sleep(0.5)
        m = httpx.get(srv.url + "/metrics").text
        assert metric_value(m, "gan_queue_tiles") == 0
        assert metric_value(m, "gan_batch_size_sum") < HUGE_TILES / 2  # most tiles were never computed
        small = png_bytes(Image.fromarray(photo(24, 24)))
        assert httpx.post(srv.url + "/upscale?scale=2", content=small, timeout=30).status_code == 200
    finally:
        srv.stop()


def test_disconnected_client_has_its_tiles_dropped(slow_models):
    """The count must also have stopped: a machine slow enough to be still computing fails too."""
    srv = start(slow_models)
    try:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(srv.url + "/upscale?scale=2", content=HUGE, timeout=httpx.Timeout(30, read=0.5))
        time.sleep(2)
        done = metric_value(httpx.get(srv.url + "/metrics").text, "gan_batch_size_sum")
        time.sleep(1)
        m = httpx.get(srv.url + "/metrics").text
        assert metric_value(m, "gan_batch_size_sum") == done  # nothing more is computed for the gone client
        assert 0 < done < HUGE_TILES / 2
        assert 'route="/upscale",status="499"' in m and 'status="500"' not in m  # not an error of ours
        assert "Traceback" not in srv.output()
        assert httpx.get(srv.url + "/healthz").status_code == 200
    finally:
        srv.stop()


def test_sigterm_drains_in_flight_requests(slow_models):
    srv = start(slow_models)
    results: list = []
    t = post_in_thread(srv.url, BIG, results)
    wait_for_work(srv.url)
    srv.proc.send_signal(signal.SIGTERM)
    t.join()
    assert isinstance(results[0], httpx.Response) and results[0].status_code == 200
    # uvicorn re-raises the SIGTERM it caught once it has drained, so the exit is 'terminated by SIGTERM'
    assert srv.proc.wait(30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.HTTPError):
        httpx.get(srv.url + "/healthz", timeout=2)
    srv.stop()


def test_full_queue_refuses_before_decoding(slow_models):
    """Saturated: a huge upload is refused at once, without reading or decoding it."""
    srv = start(slow_models, max_queue=1)
    huge = png_bytes(Image.fromarray(photo(2000, 2000)))  # ~4M pixels: minutes of work were it admitted
    try:
        t, _ = saturate(srv)
        t0 = time.time()
        r = httpx.post(srv.url + "/upscale?scale=2", content=huge, timeout=30)
        assert r.status_code == 503 and time.time() - t0 < 2.0  # vs seconds of work had it been admitted
        t.join()
    finally:
        srv.stop()


def test_draining_app_is_not_ready(nearest_models):
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(models_dir=nearest_models))
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
        app.state.draining = True  # what SIGTERM does first (app/__main__.py)
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "draining" and "retry-after" in r.headers
