"""The client library against the real server: inputs of every kind, typed errors, 503 retries."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from PIL import Image

from app.client import AsyncClient, Client, InvalidParameters, NotFound, Unavailable, UnsupportedMedia, error_from
from tests.helpers import photo, png_bytes
from tests.test_serving_core import BIG, saturate, start


def test_upscale_takes_a_path_bytes_or_an_image(test_server, tmp_path):
    im = Image.fromarray(photo(20, 10))
    im.save(tmp_path / "a.png")
    with Client(test_server.url) as c:
        for source in (tmp_path / "a.png", str(tmp_path / "a.png"), png_bytes(im), im):
            r = c.upscale(source, scale=2.5, format="webp")
            assert r.media_type == "image/webp" and r.image().size == (50, 25)
            assert r.headers["x-model-scale"] == "4" and r.headers["x-resize"].startswith("area")
        assert r.save(tmp_path / "out.webp").read_bytes() == r.content
        assert c.upscale(im, model="nearest-x2").image().size == (40, 20)
        assert any(m["name"] == "nearest-x4" for m in c.models())
        d = c.degrade(Image.fromarray(photo(32, 32)), scale=2, seed=7, format="png")
        assert d.image().size == (16, 16) and d.headers["x-seed"] == "7"


def test_errors_are_typed_from_the_json_body(test_server):
    with Client(test_server.url) as c:
        with pytest.raises(InvalidParameters) as e:
            c.upscale(png_bytes(Image.new("RGB", (8, 8))), scale=9)
        assert e.value.status == 422 and e.value.code == "invalid_parameters" and "scale" in e.value.message
        with pytest.raises(UnsupportedMedia):
            c.upscale(b"plain text")
        with pytest.raises(NotFound, match="unknown model 'nope'"):
            c.upscale(png_bytes(Image.new("RGB", (8, 8))), model="nope")
        with pytest.raises(InvalidParameters, match="mode=faithful needs a real-photo model"):  # mode reaches the server
            c.upscale(png_bytes(Image.new("RGB", (8, 8))), mode="faithful")


def test_async_client(test_server):
    async def go():
        async with AsyncClient(test_server.url) as c:
            rs = await asyncio.gather(*(c.upscale(png_bytes(Image.fromarray(photo(16, 16, seed=i))), scale=2) for i in range(4)))
            return [r.image().size for r in rs]

    assert asyncio.run(go()) == [(32, 32)] * 4


def test_503_is_retried_after_retry_after_then_raised_when_retries_run_out(tmp_path_factory):
    """A full model answers 503 + Retry-After: the client waits and retries; with no retries left it raises."""
    from tests.helpers import write_slow_model

    d = tmp_path_factory.mktemp("slow-client")
    write_slow_model(d)
    srv = start(d, max_queue=1)
    try:
        t, first = saturate(srv)
        with Client(srv.url, retries=0) as c, pytest.raises(Unavailable) as e:
            c.upscale(BIG, scale=2)
        assert e.value.code == "overloaded" and e.value.retry_after == 1.0
        t0 = time.time()
        with Client(srv.url, retries=120, max_wait_s=300) as c:  # waits for the first request to finish
            r = c.upscale(png_bytes(Image.fromarray(photo(16, 16))), scale=2)
        assert r.image().size == (32, 32) and time.time() - t0 >= 1.0  # at least one Retry-After was honoured
        t.join()
        assert first[0].status_code == 200
    finally:
        srv.stop()


def test_retries_are_bounded_by_max_wait():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.time())
        return httpx.Response(503, json={"error": {"code": "unavailable", "message": "warming up"}}, headers={"Retry-After": "0.2"})

    with Client("http://svc", retries=10, max_wait_s=0.5, transport=httpx.MockTransport(handler)) as c, pytest.raises(Unavailable):
        c.upscale(b"x")
    assert len(calls) == 3  # 0.2 + 0.2 s waited; a third wait would pass max_wait_s


def test_a_non_json_error_body_still_gives_a_typed_error():
    e = error_from(httpx.Response(413, text="<html>Request Entity Too Large</html>"))
    assert e.status == 413 and e.code == "http_error" and "Too Large" in e.message
    assert type(e).__name__ == "TooLarge"


def test_text_to_image_one_or_many(tmp_path):
    """n = 1 answers the image bytes, n > 1 JSON with base64 images: the client gives a list of images either way."""
    from tests import t2i_standins as standins
    from tests.helpers import ServerProcess, write_nearest_model

    write_nearest_model(tmp_path, "nearest-x4", 4)
    standins.write_t2i_models(tmp_path)
    srv = ServerProcess({"GAN_MODELS_DIR": str(tmp_path)})
    try:
        with Client(srv.url) as c:
            [one] = c.text_to_image("a red flower", seed=5)
            assert one.image().size == (64, 64) and one.headers["x-seed"] == "5"
            many = c.text_to_image("a red flower", n=3, seed=5, size=256, format="jpeg")
            assert [m.image().size for m in many] == [(256, 256)] * 3 and [m.headers["x-seed"] for m in many] == ["5", "6", "7"]
            assert many[0].media_type == "image/jpeg"
            with pytest.raises(InvalidParameters):
                c.text_to_image("")
    finally:
        srv.stop()
