"""POST /text-to-image with a LAPGAN generator (generator=lapgan, detail_seed, vary=detail) and a style image
(S(x)), through a real server on exact stand-ins (tests/t2i_standins.py), then on the shipped models."""
from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from app import text_to_image as t2i
from tests import t2i_standins as standins
from tests.helpers import ROOT, ServerProcess

PROMPT = "a red flower with a dark center"
SHIPPED = ROOT / "models"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("t2i-lap-models")
    standins.write_t2i_models(d)          # text-encoder + t2i-test64 (gan-int-cls-like, no arch in its card)
    standins.write_lapgan(d)              # t2i-lap-test64
    standins.write_style_encoder(d)       # style-t2i-test64, for t2i-test64
    standins.write_style_encoder(d, "t2i-lap-test64")
    srv = ServerProcess({"GAN_MODELS_DIR": str(d)})
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def pixels(r: httpx.Response) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    return int(np.abs(a.astype(int) - b).max()) <= 1


# -- units ----------------------------------------------------------------------------------------------------
def test_ask_draws_seeds_and_detail_seeds():
    assert t2i.Ask("p", 3, 10, 50).draws() == [(10, 50), (11, 51), (12, 52)]
    assert t2i.Ask("p", 3, 10, 50, vary="detail").draws() == [(10, 50), (10, 51), (10, 52)]


def test_style_input_takes_the_centred_square_at_64px():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 200  # the centred 100 x 100 square
    x = t2i.style_input(img)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32 and np.allclose(x, 200 / 255)
    deep = t2i.style_input(np.full((64, 64, 3), 65535, np.uint16))
    assert np.allclose(deep, 1.0)


# -- through the server ---------------------------------------------------------------------------------------
def test_default_generator_is_gan_int_cls_and_lapgan_is_asked_by_name(client):
    r = client.post("/text-to-image", json={"prompt": PROMPT, "seed": 4})
    assert r.headers["x-model"] == "t2i-test64" and "x-detail-seed" not in r.headers
    r = client.post("/text-to-image", json={"prompt": PROMPT, "seed": 4, "generator": "lapgan"})
    assert r.headers["x-model"] == "t2i-lap-test64" and r.headers["x-seed"] == "4" and r.headers["x-detail-seed"] == "4"
    assert close(pixels(r), standins.lap_image(PROMPT, 4, 4))
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["t2i-lap-test64"]["arch"] == "lapgan" and models["style-t2i-test64"]["task"] == "style-encoder"


def test_detail_seed_keeps_the_composition_and_redraws_the_detail(client):
    def lap(**kw):
        return pixels(client.post("/text-to-image", json={"prompt": PROMPT, "generator": "lapgan", **kw}))

    a, again = lap(seed=7, detail_seed=1), lap(seed=7, detail_seed=1)
    assert np.array_equal(a, again)  # same seeds, same bytes
    b = lap(seed=7, detail_seed=2)
    c = lap(seed=8, detail_seed=1)
    assert close(b, standins.lap_image(PROMPT, 7, 2)) and close(c, standins.lap_image(PROMPT, 8, 1))
    coarse_a, coarse_b = (standins.lap_image(PROMPT, 7, 1) - 0.0), standins.image(PROMPT, 7)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    # the detail changes only the detail: a and b differ by at most the stand-in's detail band, a and c by more
    band = 3 * 4 * standins.DETAIL * 255
    assert np.abs(a.astype(int) - b).mean() < np.abs(a.astype(int) - c).mean() and np.abs(a.astype(int) - b).max() <= 2 * band
    assert coarse_a.shape == coarse_b.shape


def test_vary_detail_gives_n_detail_draws_of_one_composition(client):
    r = client.post("/text-to-image", json={"prompt": PROMPT, "generator": "lapgan", "n": 3, "seed": 5, "detail_seed": 20,
                                            "vary": "detail"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["seeds"] == [5, 5, 5] and body["detail_seeds"] == [20, 21, 22] and body["model"] == "t2i-lap-test64"
    for i, b64 in enumerate(body["images"]):
        assert close(np.asarray(Image.open(io.BytesIO(base64.b64decode(b64)))), standins.lap_image(PROMPT, 5, 20 + i))
    r = client.post("/text-to-image", json={"prompt": PROMPT, "generator": "lapgan", "n": 2, "seed": 5})
    assert r.json()["seeds"] == [5, 6] and r.json()["detail_seeds"] == [5, 6]


def test_style_image_sets_the_noise_by_file_or_base64(client):
    style = np.zeros((80, 120, 3), np.uint8)
    style[:, 20:100] = (200, 40, 90)  # the centred square is one colour
    z = standins.style_z(np.full((64, 64, 3), (200, 40, 90), np.uint8))
    by_file = client.post("/text-to-image", data={"prompt": PROMPT, "seed": "3"}, files={"style_image": ("s.png", png(style), "image/png")})
    assert by_file.headers["x-style-encoder"] == "style-t2i-test64"
    assert close(pixels(by_file), standins.image(PROMPT, 0, z=z))
    by_json = client.post("/text-to-image", json={"prompt": PROMPT, "seed": 3, "style_image": base64.b64encode(png(style)).decode()})
    assert by_json.content == by_file.content
    other_seed = client.post("/text-to-image", json={"prompt": PROMPT, "seed": 99, "style_image": base64.b64encode(png(style)).decode()})
    assert other_seed.content == by_file.content  # the style image, not the seed, gives the noise
    assert "x-seed" not in by_json.headers and "x-seed" not in by_file.headers  # so no seed is reported
    data_url = client.post("/text-to-image", json={"prompt": PROMPT, "style_image": "data:image/png;base64," + base64.b64encode(png(style)).decode()})
    assert data_url.content == by_file.content  # a browser's FileReader.readAsDataURL() works as it is
    lap = client.post("/text-to-image", json={"prompt": PROMPT, "generator": "lapgan", "n": 2, "seed": 1, "vary": "detail",
                                              "style_image": base64.b64encode(png(style)).decode()})
    assert lap.status_code == 200 and lap.headers["x-style-encoder"] == "style-t2i-lap-test64"
    imgs = [np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) for b in lap.json()["images"]]
    assert close(imgs[1], standins.lap_image(PROMPT, 1, 2, z=z))


def test_form_fields_are_validated_like_json(client):
    r = client.post("/text-to-image", data={"prompt": PROMPT, "n": "two"}, files={"style_image": ("s.png", png(np.zeros((8, 8, 3), np.uint8)))})
    assert r.status_code == 422 and "n" in error_of(r)["message"]
    r = client.post("/text-to-image", data={"prompt": PROMPT, "style_image": "abc"}, files={"other": ("x", b"x")})
    assert r.status_code == 422 and "style_image" in error_of(r)["message"]
    r = client.post("/text-to-image", data={"prompt": PROMPT, "size": "64", "quality": "80", "format": "jpeg"},
                    files={"style_image": ("s.png", png(np.zeros((8, 8, 3), np.uint8)))})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("body,status,code,words", [
    ({"generator": "lapgan", "model": "t2i-test64"}, 422, "invalid_parameters", "not lapgan"),
    ({"detail_seed": 3}, 422, "invalid_parameters", "detail levels"),
    ({"vary": "detail", "n": 2}, 422, "invalid_parameters", "detail levels"),
    ({"generator": "stylegan"}, 422, "invalid_parameters", "generator"),
    ({"detail_seed": -1, "generator": "lapgan"}, 422, "invalid_parameters", "detail_seed"),
    ({"style_image": "not base64!"}, 422, "invalid_parameters", "base64"),
    ({"style_image": base64.b64encode(b"not an image").decode()}, 415, "unsupported_media_type", "style_image: not an image"),
    ({"style_image": "", "n": 1}, 422, "invalid_parameters", "style_image: empty"),
    ({"style_image": "data:image/png,abc"}, 422, "invalid_parameters", "data URL must be base64"),
    ({"seed": 2**63 - 2, "n": 3}, 422, "invalid_parameters", "seed + n - 1"),
    ({"seed": 2**63 - 2, "n": 2}, 200, "", ""),  # the last seed, 2**63 - 1, can be sent back
    ({"style_image": "__PNG__", "n": 2}, 422, "invalid_parameters", "n = 1"),
])
def test_bad_level_and_style_options_are_clear_4xx(client, body, status, code, words):
    if body.get("style_image") == "__PNG__":
        body["style_image"] = base64.b64encode(png(np.zeros((8, 8, 3), np.uint8))).decode()
    r = client.post("/text-to-image", json={"prompt": PROMPT, **body})
    assert r.status_code == status, r.text
    if status == 200:
        return
    err = error_of(r)
    assert err["code"] == code and words in err["message"], err


def test_style_image_limits(client):
    big = client.post("/text-to-image", data={"prompt": PROMPT}, files={"style_image": ("s.bin", b"\0" * (2 * 1024 * 1024 + 1))})
    assert big.status_code == 413 and error_of(big)["code"] == "too_large"


def test_style_image_without_its_encoder_is_422(tmp_path):
    standins.write_t2i_models(tmp_path)
    standins.write_style_encoder(tmp_path, "no-such-generator")  # its generator is not there: not served
    srv = ServerProcess({"GAN_MODELS_DIR": str(tmp_path)})
    try:
        ready = httpx.get(srv.url + "/readyz").json()
        assert ready["failed"]["style-no-such-generator"] == "failed to load"  # the reason is in the log, not public
        assert "its generator 'no-such-generator' is not loaded" in srv.output()
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": PROMPT, "style_image": base64.b64encode(png(np.zeros((8, 8, 3), np.uint8))).decode()})
        assert r.status_code == 422 and "style encoder for 't2i-test64'" in error_of(r)["message"]
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": PROMPT, "generator": "lapgan"})
        assert r.status_code == 422 and "no lapgan generator" in error_of(r)["message"]
    finally:
        srv.stop()


# -- the shipped models -----------------------------------------------------------------------------------------
def _shipped(name: str) -> bool:
    return (SHIPPED / f"{name}.json").exists()


have_lapgan = pytest.mark.skipif(not _shipped("t2i-lapgan-flowers64"), reason="no shipped LAPGAN generator")
have_style = pytest.mark.skipif(not _shipped("style-t2i-flowers64"), reason="no shipped style encoder")


@pytest.fixture(scope="module")
def shipped_server():
    srv = ServerProcess({"GAN_MODELS_DIR": str(SHIPPED)}, timeout=240)
    yield srv
    srv.stop()


@pytest.mark.slow
@have_lapgan
def test_shipped_lapgan_through_the_server(shipped_server):
    url = shipped_server.url + "/text-to-image"
    body = {"prompt": "this flower has white petals and a yellow center", "generator": "lapgan", "seed": 11}
    a, b = httpx.post(url, json={**body, "detail_seed": 1}, timeout=60), httpx.post(url, json={**body, "detail_seed": 1}, timeout=60)
    assert a.status_code == 200 and a.content == b.content and a.headers["x-model"] == "t2i-lapgan-flowers64"
    c = httpx.post(url, json={**body, "detail_seed": 2}, timeout=60)
    d = httpx.post(url, json={**body, "seed": 12, "detail_seed": 1}, timeout=60)
    pa, pc, pd = (np.asarray(Image.open(io.BytesIO(r.content)), np.float32) for r in (a, c, d))
    assert a.content != c.content and np.abs(pa - pc).mean() < np.abs(pa - pd).mean()  # detail draws stay closer than new seeds
    card = json.loads((SHIPPED / "t2i-lapgan-flowers64.json").read_text())
    assert [i["name"] for i in card["inputs"]] == ["text_embedding", "noise", "noise_16", "noise_32", "noise_64"]


@pytest.mark.slow
@have_style
def test_shipped_style_encoder_through_the_server(shipped_server):
    url = shipped_server.url + "/text-to-image"
    card = json.loads((SHIPPED / "style-t2i-flowers64.json").read_text())
    assert card["metrics"]["heldout_classes"]["cosine_mean"] >= 0.7
    made = httpx.post(url, json={"prompt": "a flower with large red petals", "seed": 3}, timeout=60)
    style = base64.b64encode(made.content).decode()
    a = httpx.post(url, json={"prompt": "this flower has white petals and a yellow center", "style_image": style}, timeout=60)
    b = httpx.post(url, data={"prompt": "this flower has white petals and a yellow center"},
                   files={"style_image": ("s.png", made.content, "image/png")}, timeout=60)
    assert a.status_code == 200 and a.content == b.content and a.headers["x-style-encoder"] == "style-t2i-flowers64"
    bad = httpx.post(url, json={"prompt": "a red flower", "style_image": base64.b64encode(b"GIF89a broken").decode()}, timeout=60)
    assert 400 <= bad.status_code < 500


def test_the_client_passes_generator_detail_seeds_and_a_style_image(server, tmp_path):
    from app.client import Client

    style = tmp_path / "style.png"
    Image.new("RGB", (30, 30), (200, 40, 90)).save(style)
    with Client(server.url) as c:
        draws = c.text_to_image(PROMPT, n=2, seed=5, detail_seed=20, vary="detail", generator="lapgan")
        assert [(r.headers["x-seed"], r.headers["x-detail-seed"]) for r in draws] == [("5", "20"), ("5", "21")]
        assert close(np.asarray(draws[1].image()), standins.lap_image(PROMPT, 5, 21))
        [styled] = c.text_to_image(PROMPT, style_image=style)
        assert styled.headers["x-style-encoder"] == "style-t2i-test64"
        z = standins.style_z(np.full((64, 64, 3), (200, 40, 90), np.uint8))
        assert close(np.asarray(styled.image().convert("RGB")), standins.image(PROMPT, 0, z=z))


def test_the_default_generator_is_a_setting(tmp_path):
    from app.config import Settings
    from app.registry import Registry

    standins.write_t2i_models(tmp_path)
    standins.write_lapgan(tmp_path)
    for default, name in (("gan-int-cls", "t2i-test64"), ("lapgan", "t2i-lap-test64")):
        reg = Registry(Settings(models_dir=tmp_path, warmup=False, t2i_generator=default))
        reg.load()
        assert reg.generator(None).name == name
        assert reg.generator(None, "gan-int-cls").name == "t2i-test64"  # an explicit generator wins
