"""Running the service: gan-serve's flags and startup checks, request IDs in answers and logs, JSON logs,
per-model metrics, and a liveness check that fails when a batch worker dies."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import ROOT, ServerProcess, metric_value, png_bytes


def gan_serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, **(env or {})})


def test_gan_serve_help_lists_its_flags_and_starts_nothing():
    r = gan_serve("--help")
    assert r.returncode == 0
    for flag in ("--host", "--port", "--models-dir", "--workers", "--log-level"):
        assert flag in r.stdout


def test_a_missing_or_empty_models_folder_stops_startup_naming_it(tmp_path):
    r = gan_serve("--models-dir", str(tmp_path / "nope"))
    assert r.returncode == 2 and f"{tmp_path / 'nope'} does not exist" in r.stderr
    r = gan_serve("--models-dir", str(tmp_path))
    assert r.returncode == 2 and f"{tmp_path} holds no model cards" in r.stderr


def test_training_help_works_without_torch():
    code = "import sys; sys.modules['torch'] = None; from training.cli import main; main(['--help'])"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "train-sr" in r.stdout and "evaluate-restoration" in r.stdout, r.stderr


def test_request_ids_are_returned_and_in_every_json_log_line(nearest_models):
    srv = ServerProcess({"GAN_MODELS_DIR": str(nearest_models), "GAN_LOG_FORMAT": "json", "GAN_LOG_LEVEL": "info"})
    try:
        r = httpx.post(srv.url + "/upscale", content=b"not an image", headers={"X-Request-ID": "req-42"})
        assert r.status_code == 415 and r.headers["x-request-id"] == "req-42"
        made = httpx.get(srv.url + "/healthz").headers["x-request-id"]
        assert len(made) == 32  # none given: one is made
        bad = httpx.get(srv.url + "/healthz", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"]
        assert bad != "a b\tc" and len(bad) == 32  # not echoed into headers and logs as sent
        httpx.get(srv.url + "/v1/models/nope", headers={"X-Request-ID": "req-43"})
        time.sleep(0.5)  # the access log line of the last request
        output = srv.output()
    finally:
        srv.stop()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message", "request_id"} <= set(rec) for rec in lines)
    access = [rec for rec in lines if rec["logger"] == "uvicorn.access"]
    assert any(rec["request_id"] == "req-42" and "/upscale" in rec["message"] for rec in access)
    assert any(rec["request_id"] == "req-43" for rec in access)


def test_per_model_admissions_rejections_and_queue_wait_are_counted(nearest_models):
    from app.config import Settings
    from app.main import create_app

    with TestClient(create_app(Settings(models_dir=nearest_models, max_queue=1))) as c:
        before = metric_value(c.get("/metrics").text, "gan_model_requests_total")
        assert c.post("/upscale?model=nearest-x2", content=png_bytes(Image.new("RGB", (8, 8)))).status_code == 200
        text = c.get("/metrics").text
        assert metric_value(text, "gan_model_requests_total") == before + 1
        assert metric_value(text, "gan_queue_wait_seconds_count") >= 1
        model = c.app.state.registry.models["nearest-x2"]
        with model.batcher.admit():  # the one slot taken: the next request is refused at once
            assert c.post("/upscale?model=nearest-x2", content=png_bytes(Image.new("RGB", (8, 8)))).status_code == 503
        assert 'gan_model_rejected_total{model="nearest-x2"} 1.0' in c.get("/metrics").text


def test_healthz_fails_when_a_batch_worker_has_died(nearest_models):
    from app.config import Settings
    from app.main import create_app

    with TestClient(create_app(Settings(models_dir=nearest_models))) as c:
        assert c.get("/healthz").status_code == 200
        task = c.app.state.registry.models["nearest-x4"].batcher._tasks[0]
        c.portal.call(lambda: task.cancel())
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json()["models"] == ["nearest-x4"]


def test_tracing_makes_a_span_per_request_with_its_request_id(nearest_models):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from app.config import Settings
    from app.main import create_app
    spans = InMemorySpanExporter()
    settings = Settings(models_dir=nearest_models, otel_endpoint="http://collector.invalid:4318/v1/traces", otel_service_name="gan-test")
    with TestClient(create_app(settings, trace_exporter=spans)) as c:
        assert c.post("/upscale?model=nearest-x2", content=png_bytes(Image.new("RGB", (8, 8))),
                      headers={"X-Request-ID": "trace-1"}).status_code == 200
    server = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert [s.name for s in server] == ["POST /upscale"]
    assert server[0].attributes["http.request_id"] == "trace-1" and server[0].resource.attributes["service.name"] == "gan-test"
