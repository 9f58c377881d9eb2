"""Async jobs (/v1/jobs): 202 + Location, progress and ETA, the result, cancel, a bounded store with spill to
disk and a TTL; and the synchronous route refusing at once what it cannot finish before its deadline."""
from __future__ import annotations

import io
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.main import create_app
from app.tiling import TilePlan
from tests.helpers import metric_value, photo, png_bytes, png_declaring, write_nearest_model, write_slow_model

SMALL = png_bytes(Image.fromarray(photo(40, 30)))
BIG = png_bytes(Image.fromarray(photo(320, 320)))
TILES = TilePlan(320, 320, 32, 8, 2).count  # tiles of 32 px on the slow model: seconds of work


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("jobs-models")
    write_nearest_model(d, "nearest-x4", 4)
    write_slow_model(d)
    return d


def app_with(models, tmp_path=None, **kw):
    base = {"models_dir": models, "tile_size": 32, "tile_overlap": 8, "intra_op_threads": 1}
    return TestClient(create_app(Settings(**base, **kw)))


def wait_until(c: TestClient, job_id: str, status: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = c.get(f"/v1/jobs/{job_id}").json()
        if body["status"] == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never became {status}: {body}")


def test_a_job_runs_reports_progress_and_gives_the_same_image_as_the_sync_route(models):
    with app_with(models) as c:
        r = c.post("/v1/jobs?task=upscale&model=slow-x2&format=png", content=BIG)
        assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
        job = r.json()
        assert job["status"] in ("queued", "running") and job["task"] == "upscale"
        early = c.get(f"/v1/jobs/{job['id']}/result")
        assert early.status_code == 409 and early.json()["error"]["code"] == "not_ready"
        running = wait_until(c, job["id"], "running")
        while running["progress"]["tiles_done"] == 0:
            running = c.get(f"/v1/jobs/{job['id']}").json()
        if running["status"] == "running":
            assert running["progress"]["tiles_total"] == TILES and running["eta_s"] is not None
        done = wait_until(c, job["id"], "done")
        assert done["progress"] == {"tiles_done": TILES, "tiles_total": TILES, "fraction": 1.0}
        assert done["result"]["url"] == f"/v1/jobs/{job['id']}/result"
        res = c.get(done["result"]["url"])
        assert res.status_code == 200 and res.headers["x-model"] == "slow-x2" and res.headers["x-output-size"] == "640x640"
        sync = c.post("/upscale?model=slow-x2&format=png", content=BIG)
        assert res.content == sync.content


def test_options_are_checked_at_submission(models):
    with app_with(models) as c:
        assert c.post("/v1/jobs?scale=9", content=SMALL).status_code == 422
        assert c.post("/v1/jobs?model=nope", content=SMALL).status_code == 404
        assert c.post("/v1/jobs?task=teleport", content=SMALL).status_code == 422
        assert c.get("/v1/jobs/unknown").status_code == 404
        r = c.post("/v1/jobs?task=degrade&scale=2&seed=3", content=SMALL)  # the other task
        done = wait_until(c, r.json()["id"], "done")
        assert Image.open(io.BytesIO(c.get(done["result"]["url"]).content)).size == (20, 15)


def test_what_is_not_an_image_is_refused_at_submission_and_a_failed_job_answers_its_error(models):
    with app_with(models) as c:
        assert c.post("/v1/jobs", content=b"").status_code == 400  # the header is read before the 202
        assert c.post("/v1/jobs", content=b"not an image").status_code == 415
        r = c.post("/v1/jobs", content=png_declaring(50000, 50000))
        assert r.status_code == 413 and "GAN_MAX_INPUT_PIXELS" in r.json()["error"]["message"]
        truncated = BIG[: len(BIG) // 2]  # a good header, then the data stops: found only when decoding
        job = c.post("/v1/jobs", content=truncated).json()
        failed = wait_until(c, job["id"], "failed")
        assert failed["error"] == {"status": 400, "code": "bad_request", "message": failed["error"]["message"]}
        res = c.get(f"/v1/jobs/{job['id']}/result")  # its error, not "not ready": a poller stops here
        assert res.status_code == 400 and res.json()["error"]["code"] == "bad_request" and "retry-after" not in res.headers


def test_a_job_done_in_one_piece_reports_full_progress_and_its_time(models):
    with app_with(models) as c:
        job = c.post("/v1/jobs?task=degrade&scale=2&seed=3", content=SMALL).json()
        assert job["progress"] == {"tiles_done": 0, "tiles_total": 0, "fraction": 0.0}
        done = wait_until(c, job["id"], "done")
        assert done["progress"]["fraction"] == 1.0
        assert float(c.get(done["result"]["url"]).headers["x-processing-time-ms"]) > 0


def test_cancel_stops_the_work_and_forgets_the_job(models):
    with app_with(models) as c:
        job = c.post("/v1/jobs?model=slow-x2", content=BIG).json()
        wait_until(c, job["id"], "running")
        r = c.delete(f"/v1/jobs/{job['id']}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 404
        time.sleep(0.3)
        assert metric_value(c.get("/metrics").text, "gan_queue_tiles") == 0  # its queued tiles were dropped


def test_the_store_is_bounded_and_results_spill_to_disk_and_expire(models, tmp_path):
    with app_with(models, jobs_max=1, jobs_spill_bytes=0, jobs_dir=tmp_path, jobs_ttl_s=1.0) as c:
        first = c.post("/v1/jobs?model=nearest-x4", content=SMALL).json()
        full = c.post("/v1/jobs?model=nearest-x4", content=SMALL)
        assert full.status_code == 503 and "retry-after" in full.headers and "GAN_JOBS_MAX" in full.json()["error"]["message"]
        wait_until(c, first["id"], "done")
        assert [p.name for p in tmp_path.iterdir()] == [f"{first['id']}.out"]  # spilled: over jobs_spill_bytes
        assert Image.open(io.BytesIO(c.get(f"/v1/jobs/{first['id']}/result").content)).size == (160, 120)
        time.sleep(1.2)
        assert c.get(f"/v1/jobs/{first['id']}").status_code == 404  # expired after its TTL, its file deleted
        assert not list(tmp_path.iterdir())
        assert c.post("/v1/jobs?model=nearest-x4", content=SMALL).status_code == 202  # room again


def test_the_sync_route_refuses_at_once_what_cannot_finish_before_its_deadline(models):
    with app_with(models, request_timeout_s=3.0) as c:  # the warm-up measured the model's speed: the first request
        huge = png_bytes(Image.fromarray(photo(1200, 1200)))
        t0 = time.time()
        r = c.post("/upscale?model=slow-x2", content=huge)
        assert r.status_code == 413 and r.json()["error"]["code"] == "use_jobs" and "/v1/jobs" in r.json()["error"]["message"]
        assert time.time() - t0 < 2.0  # refused before the work, not a 504 after it


def test_results_stay_in_memory_when_no_folder_can_be_made(models, tmp_path):
    """A read-only container has no writable folder: jobs still run, their results kept in memory."""
    (tmp_path / "a-file").write_text("")
    with app_with(models, jobs_spill_bytes=0, jobs_dir=tmp_path / "a-file" / "jobs") as c:
        job = c.post("/v1/jobs?model=nearest-x4", content=SMALL).json()
        done = wait_until(c, job["id"], "done")
        assert Image.open(io.BytesIO(c.get(done["result"]["url"]).content)).size == (160, 120)
