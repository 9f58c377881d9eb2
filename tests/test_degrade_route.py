"""POST /degrade against a real server: both methods, seeds, sizes, tiling, and bad input."""
from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import ServerProcess, photo, png_bytes, write_box_degrader, write_nearest_model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("degrade-models")
    write_nearest_model(d, "nearest-x4", 4)
    write_box_degrader(d, "box-x4", 4)
    presets = tmp_path_factory.mktemp("presets") / "presets.json"
    presets.write_text(json.dumps({"light": {"second_prob": 0.0, "first": {"noise": {"gaussian_sigma": [0.0, 0.0],
                                   "poisson_scale": [1e-6, 1e-6]}, "jpeg": {"quality": [100, 100]}, "blur": {"prob": 0.0}}}}))
    srv = ServerProcess({"GAN_MODELS_DIR": str(d), "GAN_TILE_SIZE": "32", "GAN_TILE_OVERLAP": "8",
                         "GAN_MAX_INPUT_PIXELS": "1000000", "GAN_DEGRADATION_PRESETS": str(presets)})
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def post(client, arr_or_bytes, **params):
    body = arr_or_bytes if isinstance(arr_or_bytes, bytes) else png_bytes(Image.fromarray(arr_or_bytes))
    return client.post("/degrade", params=params, content=body)


def image_of(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)))


def box(arr: np.ndarray, s: int) -> np.ndarray:
    h, w = arr.shape[0] // s * s, arr.shape[1] // s * s
    return arr[:h, :w].astype(float).reshape(h // s, s, w // s, s, -1).mean(axis=(1, 3))


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("method", ["pipeline", "learned"])
def test_sizes_and_headers(client, scale, method):
    arr = photo(101, 67)
    r = post(client, arr, scale=scale, method=method, seed=5)
    out = image_of(r)
    assert out.shape == (67 // scale, 101 // scale, 3)
    assert r.headers["x-method"] == method and r.headers["x-seed"] == "5" and r.headers["x-scale"] == str(scale)
    assert r.headers["x-model"] == ("degrade-pipeline" if method == "pipeline" else "box-x4")


@pytest.mark.parametrize("method", ["pipeline", "learned"])
def test_same_seed_same_bytes_other_seed_other_bytes(client, method):
    arr = photo(90, 70, seed=2)
    a, b, c = (post(client, arr, method=method, seed=s, scale=2).content for s in (11, 11, 12))
    assert a == b and a != c


def test_without_seed_a_random_one_is_reported_and_reproduces(client):
    arr = photo(64, 64)
    r = post(client, arr)
    seed = int(r.headers["x-seed"])
    assert post(client, arr, seed=seed).content == r.content


def test_learned_is_tiled_exactly(client):
    """The box stand-in makes the expected output known: tiles (32 px on the output grid) must stitch seamlessly."""
    arr = photo(300, 212, seed=4)
    out = image_of(post(client, arr, method="learned", seed=1)).astype(float)
    noise = np.random.default_rng(1).standard_normal(8).astype(np.float32)
    expected = np.clip(box(arr, 4) / 255 + 0.1 * noise.mean(), 0, 1) * 255
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1.0


def test_preset_from_settings_file(client):
    """GAN_DEGRADATION_PRESETS replaced `light` with a no-op pipeline: only resizes are left."""
    arr = photo(128, 128, seed=1)
    out = image_of(post(client, arr, strength="light", scale=1, seed=3)).astype(float)
    assert np.abs(out - arr).mean() < 6  # resized down/up and back: close to the input, nothing else


def test_gray_and_alpha_survive(client):
    g = (photo(64, 48)[..., 0]).astype(np.uint8)
    out = image_of(post(client, png_bytes(Image.fromarray(g, "L")), scale=2, seed=1))
    assert out.shape == (24, 32)
    rgba = np.dstack([photo(64, 48), np.full((48, 64), 128, np.uint8)])
    out = image_of(post(client, png_bytes(Image.fromarray(rgba, "RGBA")), scale=2, seed=1, method="learned"))
    assert out.shape == (24, 32, 4) and abs(int(out[..., 3].mean()) - 128) <= 1


@pytest.mark.parametrize("params,status,code", [
    ({"scale": 3}, 422, "invalid_parameters"),
    ({"method": "magic"}, 422, "invalid_parameters"),
    ({"seed": -1}, 422, "invalid_parameters"),
    ({"seed": "abc"}, 422, "invalid_parameters"),
    ({"strength": "extreme"}, 422, "invalid_parameters"),
    ({"method": "learned", "strength": "heavy"}, 422, "invalid_parameters"),
    ({"format": "gif"}, 422, "invalid_parameters"),
])
def test_bad_options(client, params, status, code):
    r = post(client, photo(32, 32), **params)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


def test_bad_bodies(client):
    assert post(client, b"this is text, not an image").status_code == 415
    assert post(client, b"").status_code == 400
    assert post(client, png_bytes(Image.fromarray(photo(3, 3))), scale=4).status_code == 422  # nothing left at 1/4
    r = client.post("/degrade", files={"image": ("a.png", png_bytes(Image.fromarray(photo(40, 40))))}, data={"scale": "2", "seed": "4"})
    assert r.status_code == 200 and image_of(r).shape == (20, 20, 3)


def test_learned_without_a_model_is_a_clear_422(nearest_models):
    srv = ServerProcess({"GAN_MODELS_DIR": str(nearest_models)})
    try:
        r = httpx.post(srv.url + "/degrade?method=learned", content=png_bytes(Image.fromarray(photo(32, 32))))
        assert r.status_code == 422 and "pipeline" in r.json()["error"]["message"]
    finally:
        srv.stop()


def test_a_bad_presets_file_stops_startup(tmp_path, nearest_models):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"medium": {"first": {"blur": {"sigmaa": [1, 2]}}}}))
    with pytest.raises(RuntimeError, match="sigmaa"):
        ServerProcess({"GAN_MODELS_DIR": str(nearest_models), "GAN_DEGRADATION_PRESETS": str(bad)}, timeout=60)
