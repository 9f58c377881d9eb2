"""The real server (python -m app in a subprocess) over HTTP, on exact nearest-neighbour test models.

With a nearest-neighbour model the whole path (upload -> decode -> tiles -> batcher -> session ->
stitch -> encode) must return exactly the nearest-neighbour upscale of the input.
"""
from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers import encoded, photo, png_bytes, png_declaring, write_nearest_model


@pytest.fixture(scope="module")
def client(test_server):
    with httpx.Client(base_url=test_server.url, timeout=60) as c:
        yield c


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


def test_health_ready_models(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["models"]["nearest-x2"] == "CPUExecutionProvider"
    names = {m["name"] for m in client.get("/v1/models").json()["models"]}
    assert names == {"nearest-x2", "nearest-x4", "degrade-pipeline"}
    pipeline = client.get("/v1/models/degrade-pipeline").json()
    assert set(pipeline["presets"]) == {"light", "medium", "heavy"} and pipeline["presets"]["medium"]["first"]["jpeg"]["quality"] == [30, 95]
    assert client.post("/upscale?model=degrade-pipeline", content=b"x").status_code == 422  # not an upscaler
    assert client.get("/v1/models/nearest-x4").json()["scale"] == 4
    assert error_of(client.get("/v1/models/nope"))["code"] == "not_found"


@pytest.mark.parametrize("w,h", [(70, 50), (1, 1), (33, 200)])
def test_multipart_png_is_exact(client, w, h):
    arr = photo(w, h)
    r = client.post("/upscale", params={"scale": 2}, files={"image": ("a.png", png_bytes(Image.fromarray(arr)), "image/png")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-model"] == "nearest-x2"
    assert r.headers["x-scale"] == "2" and r.headers["x-output-size"] == f"{2 * w}x{2 * h}"
    assert float(r.headers["x-processing-time-ms"]) > 0
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert np.array_equal(out, arr.repeat(2, 0).repeat(2, 1))


def test_raw_body_and_form_options(client):
    arr = photo(40, 30)
    r = client.post("/upscale?model=nearest-x4", content=png_bytes(Image.fromarray(arr)), headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (160, 120)
    r = client.post("/upscale", files={"image": ("a", png_bytes(Image.fromarray(arr)))}, data={"scale": "4", "format": "webp"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp" and r.headers["x-scale"] == "4"


def test_jpeg_in_jpeg_out_with_quality(client):
    data = encoded(Image.fromarray(photo(64, 64)), "JPEG", quality=95)
    small = client.post("/upscale?scale=2&quality=20", content=data)
    big = client.post("/upscale?scale=2&quality=95", content=data)
    assert small.headers["content-type"] == big.headers["content-type"] == "image/jpeg"
    assert len(small.content) < len(big.content)


@pytest.mark.parametrize(
    "make,mode",
    [
        (lambda a: Image.fromarray(a).convert("L"), "L"),
        (lambda a: Image.fromarray(a).convert("LA"), "L"),  # opaque alpha is dropped
        (lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 77, np.uint8)]), "RGBA"), "RGBA"),
        (lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257), "I;16"),
        (lambda a: Image.fromarray(a).convert("P"), "RGB"),
    ],
)
def test_modes_roundtrip_through_the_server(client, make, mode):
    r = client.post("/upscale?scale=2", content=png_bytes(make(photo(20, 10))))
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(r.content))
    assert out.size == (40, 20) and out.mode == mode


def test_cmyk_jpeg(client):
    r = client.post("/upscale?scale=2", content=encoded(Image.fromarray(photo(16, 16)).convert("CMYK"), "JPEG"))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).mode == "RGB"


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        ({"content": b"just some text"}, 415, "unsupported_media_type"),
        ({"content": b""}, 400, "bad_request"),
        ({"content": png_bytes(Image.new("RGB", (64, 64)))[:60]}, 400, "bad_request"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"scale": 9}}, 422, "invalid_parameters"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"format": "gif"}}, 422, "invalid_parameters"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"quality": 0}}, 422, "invalid_parameters"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"scale": "big"}}, 422, "invalid_parameters"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"model": "nope"}}, 404, "not_found"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"scale": 0.5}}, 422, "invalid_parameters"),
        ({"content": png_bytes(Image.new("RGB", (8, 8))), "params": {"scale": "nan"}}, 422, "invalid_parameters"),
        ({"content": b"\x00" * 2_000_001}, 413, "too_large"),
        ({"content": png_bytes(Image.new("RGB", (1001, 1000)))}, 413, "too_large"),  # > 1M input pixels
        ({"content": png_bytes(Image.new("RGB", (1000, 1000))), "params": {"scale": 4}}, 413, "too_large"),  # 16M out > 8M
        ({"content": b"--xx\r\ngarbage", "headers": {"content-type": "multipart/form-data; boundary=xx"}}, 400, "bad_request"),
    ],
)
def test_bad_requests_get_json_4xx(client, kwargs, status, code):
    r = client.post("/upscale", **kwargs)
    assert r.status_code == status, r.text
    assert error_of(r)["code"] == code
    assert client.get("/healthz").status_code == 200


def test_multipart_without_image_field(client):
    r = client.post("/upscale", files={"photo": ("a.png", png_bytes(Image.new("RGB", (4, 4))))})
    assert r.status_code == 400 and "image" in error_of(r)["message"]


def test_wrong_method_and_path_are_json(client):
    assert error_of(client.get("/upscale"))["code"] == "method_not_allowed"
    assert client.get("/nowhere").status_code == 404


def test_metrics_count_requests_and_batches(client):
    client.post("/upscale?scale=2", content=png_bytes(Image.fromarray(photo(100, 100))))
    text = client.get("/metrics").text
    assert 'gan_requests_total{method="POST",route="/upscale",status="200"}' in text
    assert 'gan_batch_size_count{model="nearest-x2"}' in text
    assert 'gan_tiles_per_request_bucket{le="16.0",model="nearest-x2"}' in text
    assert 'gan_model_info{model="nearest-x2",provider="CPUExecutionProvider"} 1.0' in text


def _hostile_corpus() -> dict[str, bytes]:
    ok = png_bytes(Image.fromarray(photo(64, 64)))
    jpg = encoded(Image.fromarray(photo(64, 64)), "JPEG")
    pal = Image.fromarray(photo(16, 16)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    exif = Image.Exif()
    exif[0x0112] = 8
    gif = io.BytesIO()
    Image.new("RGB", (10, 6), "red").save(gif, "GIF", save_all=True, append_images=[Image.new("RGB", (10, 6), "blue")])
    return {
        "zero bytes": b"",
        "one byte": b"\x89",
        "truncated png": ok[: len(ok) // 2],
        "truncated jpeg": jpg[: len(jpg) // 2],
        "png magic then junk": ok[:16] + b"\xff" * 200,
        "wrong magic": b"RIFF\x00\x00\x00\x00WAVEfmt ",
        "html": b"<html><body>hello</body></html>",
        "1x1": png_bytes(Image.new("RGB", (1, 1), "red")),
        "1x100000": png_bytes(Image.new("L", (100_000, 1), 128)),
        "huge declared size": png_declaring(1_000_000, 1_000_000),
        "cmyk jpeg": encoded(Image.fromarray(photo(16, 16)).convert("CMYK"), "JPEG"),
        "16-bit png": png_bytes(Image.fromarray(np.full((8, 8), 40000, np.uint16))),
        "palette with transparency": png_bytes(pal, transparency=0),
        "exif rotated": encoded(Image.fromarray(photo(30, 10)), "JPEG", exif=exif.tobytes()),
        "animated gif": gif.getvalue(),
    }


HOSTILE = _hostile_corpus()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_inputs_get_4xx_or_a_correct_image(client, name):
    data = HOSTILE[name]
    r = client.post("/upscale?scale=2", content=data)
    if r.status_code == 200:
        w_in, h_in = map(int, r.headers["x-input-size"].split("x"))
        assert Image.open(io.BytesIO(r.content)).size == (2 * w_in, 2 * h_in)
        if name == "exif rotated":
            assert (w_in, h_in) == (10, 30)
        if name == "animated gif":
            assert r.headers["x-frames-used"] == "1 of 2"
    else:
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        error_of(r)
    assert client.get("/healthz").status_code == 200


def test_garbage_multipart_variants(client):
    for ctype, body in [
        ("multipart/form-data", b"no boundary at all"),
        ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nxx"),
        ("multipart/form-data; boundary=abc", b"--abc--\r\n"),
    ]:
        r = client.post("/upscale", content=body, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500, (body, r.status_code)
        error_of(r)
    assert client.get("/healthz").status_code == 200


def test_no_model_loaded_is_503(tmp_path):
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    with TestClient(create_app(Settings(models_dir=tmp_path))) as c:
        assert c.get("/readyz").status_code == 503
        r = c.post("/upscale", content=png_bytes(Image.new("RGB", (8, 8))))
        assert r.status_code == 503 and "retry-after" in r.headers


def test_bad_tile_and_face_settings_are_refused_at_startup():
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="GAN_TILE_OVERLAP"):
        Settings(tile_size=32, tile_overlap=16)
    with pytest.raises(ValidationError, match="GAN_FACE_MIN_PX"):
        Settings(face_min_px=80, face_max_px=64)


def test_whole_image_path_wastes_no_pixels_with_the_default_tiles(nearest_models):
    """Default settings: an image within GAN_TILE_SIZE is one model call at its own size; larger ones cost at
    most 1.15x their pixels (counted by the server in gan_computed_pixels_total), and every result is exact."""
    from tests.helpers import ServerProcess, metric_value

    srv = ServerProcess({"GAN_MODELS_DIR": str(nearest_models)})
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            small = photo(200, 131)
            r = c.post("/upscale?scale=2&format=png", content=png_bytes(Image.fromarray(small)))
            assert r.status_code == 200
            assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), small.repeat(2, 0).repeat(2, 1))
            text = c.get("/metrics").text
            assert metric_value(text, "gan_tiles_per_request_count") == 1
            assert 'gan_tiles_per_request_bucket{le="1.0",model="nearest-x2"} 1.0' in text  # one tile: the whole image
            assert metric_value(text, "gan_computed_pixels_total") == metric_value(text, "gan_image_pixels_total") == 200 * 131
            sizes = [(64, 64), (700, 300), (1000, 257), (513, 769)]
            for w, h in sizes:
                img = photo(w, h, seed=w)
                r = c.post("/upscale?scale=2&format=png", content=png_bytes(Image.fromarray(img)))
                assert r.status_code == 200
                assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), img.repeat(2, 0).repeat(2, 1))
            text = c.get("/metrics").text
        image_px = metric_value(text, "gan_image_pixels_total")
        assert image_px == 200 * 131 + sum(w * h for w, h in sizes)
        assert metric_value(text, "gan_computed_pixels_total") <= 1.15 * image_px
    finally:
        srv.stop()


def test_a_model_whose_warmup_fails_is_not_served_and_readiness_names_only_states(tmp_path, caplog):
    """A model file that loads but cannot run: the others are served; /readyz lists it as failed without the
    error text (that goes to the log); GAN_REQUIRED_MODELS makes readiness fail while it is missing."""
    from fastapi.testclient import TestClient
    from onnx import TensorProto, helper

    from app.config import Settings
    from app.main import create_app
    from tests.helpers import save_with_card, write_nearest_model

    write_nearest_model(tmp_path, "nearest-x2", 2)
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 7])  # no image has 7 values: every run fails
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["image", "shape"], ["output"])], "broken",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], [shape])
    save_with_card(graph, tmp_path, "broken-x2", 2)
    with TestClient(create_app(Settings(models_dir=tmp_path))) as c:
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["failed"] == {"broken-x2": "failed to load"}
        assert str(tmp_path) not in r.text and "Reshape" not in r.text
        assert c.post("/upscale?scale=2", content=png_bytes(Image.new("RGB", (8, 8)))).status_code == 200
    assert any("broken-x2" in rec.message and "warm-up failed" in rec.message for rec in caplog.records)
    with TestClient(create_app(Settings(models_dir=tmp_path, required_models=["nearest-x2", "broken-x2"]))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "required models missing"
        assert r.json()["missing_required"] == ["broken-x2"]


def test_api_key_guards_everything_but_health_and_the_page(nearest_models):
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    body = png_bytes(Image.new("RGB", (8, 8)))
    with TestClient(create_app(Settings(models_dir=nearest_models, api_key="s3cret", docs=False))) as c:
        for path in ("/healthz", "/readyz", "/"):
            assert c.get(path).status_code == 200, path
        r = c.post("/upscale?scale=2", content=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and error_of(r)["code"] == "unauthorized"
        assert c.post("/upscale?scale=2", content=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/models").status_code == 401 and c.get("/metrics").status_code == 401
        ok = c.post("/upscale?scale=2", content=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.headers["x-model"] == "nearest-x2"
        auth = {"Authorization": "Bearer s3cret"}
        assert all(c.get(p, headers=auth).status_code == 404 for p in ("/docs", "/openapi.json", "/redoc"))  # GAN_DOCS=false
    with TestClient(create_app(Settings(models_dir=nearest_models))) as c:  # no key set: nothing asked
        assert c.post("/upscale?scale=2", content=body).status_code == 200 and c.get("/openapi.json").status_code == 200


def test_oversized_request_head_is_refused(test_server):
    """An 8 MB header was accepted: the request head is limited (GAN_MAX_HEADER_BYTES, 64 KiB by default)."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(test_server.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20))
        try:
            answer = sock.recv(200)
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer  # refused or closed, never served
    assert httpx.get(test_server.url + "/healthz").status_code == 200  # and the server is fine


def test_mode_picks_the_real_photo_models(tmp_path):
    from fastapi.testclient import TestClient

    from app.config import Settings
    from app.main import create_app

    for name, scale in (("real-x4-l1", 4), ("real-x4", 4), ("sr-x4", 4)):
        write_nearest_model(tmp_path, name, scale)
    with TestClient(create_app(Settings(models_dir=tmp_path))) as c:
        img = png_bytes(Image.new("RGB", (8, 8)))
        assert c.post("/upscale?mode=faithful", content=img).headers["x-model"] == "real-x4-l1"
        r = c.post("/upscale?mode=crisp&scale=2", content=img)  # no real-x2: the x4 model, resized
        assert r.headers["x-model"] == "real-x4" and r.headers["x-output-size"] == "16x16"
        assert c.post("/upscale", content=img).headers["x-model"] == "sr-x4"
        assert c.post("/upscale?mode=faithful&model=sr-x4", content=img).status_code == 422
        assert c.post("/upscale?mode=sharpest", content=img).status_code == 422
