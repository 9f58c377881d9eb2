"""A hostile run against the real server: property-based requests (hypothesis) with random and mutated images,
random options, raw and multipart bodies, on /upscale, /degrade and /text-to-image. A bounded number of examples
per route (HOSTILE_EXAMPLES, default 40); the run ends with no 5xx and the server still healthy."""
from __future__ import annotations

import io
import os

import httpx
import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.helpers import ServerProcess, metric_value, photo  # noqa: E402

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _seed_images() -> list[bytes]:
    out = []
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("PNG", "RGBA"), ("GIF", "P"), ("WEBP", "RGB"), ("TIFF", "RGB"), ("BMP", "L")):
        buf = io.BytesIO()
        im = Image.fromarray(photo(20, 14))
        (im.convert(mode) if mode != "RGB" else im).save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


@st.composite
def images(draw) -> bytes:
    """A valid small image, mutated: bytes flipped, cut short, junk appended, or random bytes altogether."""
    kind = draw(st.sampled_from(["valid", "flip", "truncate", "append", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "append":
        data += draw(st.binary(min_size=1, max_size=512))
    return bytes(data)


options = st.dictionaries(
    st.sampled_from(["scale", "model", "format", "quality", "faces", "seed", "method", "strength", "x"]),
    st.one_of(st.text(max_size=12), st.integers(-5, 300).map(str), st.sampled_from(["2", "4", "png", "jpeg", "webp", "true", "learned"])),
    max_size=4,
)


@pytest.fixture(scope="module")
def server(nearest_models):
    srv = ServerProcess({"GAN_MODELS_DIR": str(nearest_models), "GAN_MAX_BODY_BYTES": "200000",
                         "GAN_MAX_INPUT_PIXELS": "200000", "GAN_TILE_SIZE": "32", "GAN_TILE_OVERLAP": "8"})
    yield srv
    text = httpx.get(srv.url + "/metrics").text
    srv.stop()
    assert metric_value(text, 'gan_requests_total{method="POST",route="/upscale",status="500"}') == 0


def check(r: httpx.Response) -> None:
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert set(r.json()) == {"error"}, r.text[:300]


@pytest.mark.parametrize("route", ["/upscale", "/degrade"])
def test_image_routes_never_answer_5xx(server, route):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        @FUZZ
        @given(body=images(), opts=options, multipart=st.booleans())
        def one(body: bytes, opts: dict, multipart: bool) -> None:
            if multipart:
                r = c.post(route, files={"image": ("x", body)}, data=opts)
            else:
                r = c.post(route, params=opts, content=body)
            check(r)

        one()
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200


def test_json_route_never_answers_5xx(server):
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                               max_leaves=10)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        @FUZZ
        @given(body=st.one_of(st.dictionaries(st.sampled_from(["prompt", "n", "seed", "size", "format", "model", "x"]), json_values, max_size=4),
                              json_values))
        def one(body) -> None:
            check(c.post("/text-to-image", json=body))

        one()
        assert c.get("/healthz").status_code == 200


def test_degrade_on_random_arrays_keeps_its_size_contract(server):
    """Valid images of odd sizes through both degradations: 200 with the asked size, or a 4xx."""
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for w, h in [(1, 1), (3, 40), (40, 3), (17, 23), (64, 64)]:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
            for scale in (1, 2, 4):
                r = c.post(f"/degrade?scale={scale}&seed=1", content=buf.getvalue())
                check(r)
                if r.status_code == 200:
                    assert r.headers["x-output-size"] == f"{w // scale}x{h // scale}"
