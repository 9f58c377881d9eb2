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
    # no warm-up, so no measured speed: the work starts (with one, it would be refused at once: 413 use_jobs)
    srv = start(slow_models, request_timeout_s=0.3, warmup="false")
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


def trickle(url: str, seconds: float, path: str = "/upscale?scale=2") -> threading.Thread:
    """A client that declares a 100 kB body and sends a byte every 0.1 s for ``seconds``; returns its thread."""
    import select
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    answer: list[bytes] = []

    def go() -> None:
        with socket.create_connection((u.hostname, u.port), timeout=30) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n".encode())
            t_end = time.time() + seconds
            try:
                while time.time() < t_end:
                    if select.select([s], [], [], 0)[0]:  # the server answered before the body was complete
                        break
                    s.sendall(b"x")
                    time.sleep(0.1)
                answer.append(s.recv(300))
            except OSError:
                answer.append(b"")

    t = threading.Thread(target=go)
    t.answer = answer  # type: ignore[attr-defined]
    t.start()
    return t


def test_slow_upload_gets_408_and_holds_no_model_slot(slow_models):
    """A client trickling its body is cut off after GAN_BODY_TIMEOUT_S, and meanwhile holds no model slot: with
    GAN_MAX_QUEUE=1 a normal request is served while it trickles."""
    srv = start(slow_models, max_queue=1, body_timeout_s=2)
    try:
        slow = trickle(srv.url, 6)
        time.sleep(0.5)
        small = png_bytes(Image.fromarray(photo(24, 24)))
        assert httpx.post(srv.url + "/upscale?scale=2", content=small, timeout=30).status_code == 200
        slow.join()
        assert slow.answer[0].startswith(b"HTTP/1.1 408"), slow.answer  # type: ignore[attr-defined]
    finally:
        srv.stop()


def test_memory_budget_refuses_at_once_past_its_limit(slow_models):
    """GAN_MAX_INFLIGHT_BYTES across requests: while one request holds most of it, another gets 503 before its
    body is read; a request that could never fit gets 413."""
    from app.budget import image_bytes, tile_bytes

    plan = TilePlan(480, 480, 32, 8, 2)  # what BIG holds once decoded (app/upscaler.py)
    need = image_bytes(480, 480, 2, 1, 2 * len(BIG)) + tile_bytes(plan.tile_h, plan.tile_w, 2, 4, 960, 8)
    srv = start(slow_models, max_inflight_bytes=need + len(BIG) // 2)  # room for one BIG, not for a second body
    try:
        t, first = saturate(srv)
        r = httpx.post(srv.url + "/upscale?scale=2", content=BIG, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded" and "retry-after" in r.headers
        t.join()
        assert first[0].status_code == 200
        huge = png_bytes(Image.fromarray(photo(1200, 1200)))
        r = httpx.post(srv.url + "/upscale?scale=2", content=huge, timeout=30)
        assert r.status_code == 413 and "GAN_MAX_INFLIGHT_BYTES" in r.json()["error"]["message"]
        m = httpx.get(srv.url + "/metrics").text
        assert metric_value(m, "gan_budget_refused_total") >= 1 and metric_value(m, "gan_inflight_bytes") == 0
    finally:
        srv.stop()
