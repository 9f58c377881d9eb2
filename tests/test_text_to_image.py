"""POST /text-to-image: tokenizing, the prompt cache, seeds, n > 1, size 256, bad input; the registry's text
models. Unit tests and a real server on exact stand-ins (tests/t2i_standins.py), then the shipped models."""
from __future__ import annotations

import asyncio
import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from app import errors
from app import text_to_image as t2i
from app.config import Settings
from app.main import create_app
from app.registry import Registry
from app.runtime import Session
from tests import t2i_standins as standins
from tests.helpers import ROOT, ServerProcess, metric_value, write_nearest_model

PROMPT = "this flower has bright yellow petals and a dark center"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("t2i-models")
    write_nearest_model(d, "nearest-x4", 4)
    return standins.write_t2i_models(d)


def image_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


# -- units --------------------------------------------------------------------------------------------------
def test_length_buckets():
    assert [t2i.bucket(n, 128) for n in (1, 16, 17, 33, 64, 65, 128, 500)] == [16, 16, 32, 64, 64, 128, 128, 128]
    assert t2i.bucket(20, 32) == 32 and t2i.bucket(40, 32) == 32 and t2i.bucket(3, 8) == 8


def test_tokenize_pads_to_a_bucket_and_truncates_at_max_length(models_dir):
    tok = t2i.load_tokenizer(models_dir / "text-encoder.json", json.loads((models_dir / "text-encoder.json").read_text()))
    ids, mask = t2i.tokenize(tok, "A red flower", standins.MAX_LENGTH)
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape == (16,)
    red, flower = standins.VOCAB["red"], standins.VOCAB["flower"]
    assert list(ids[:5]) == [2, standins.VOCAB["a"], red, flower, 3] and not ids[5:].any()  # [CLS] a red flower [SEP]
    assert list(mask) == [1] * 5 + [0] * 11
    ids, mask = t2i.tokenize(tok, " ".join(["red"] * 100), standins.MAX_LENGTH)
    assert ids.shape == (standins.MAX_LENGTH,) and mask.all() and ids[0] == 2 and ids[-1] == 3  # truncated, specials kept


def test_prompt_cache_is_lru_and_size_zero_keeps_nothing():
    c = t2i.PromptCache(2)
    for k in "abc":
        c.put(("e", k), np.full(2, ord(k), np.float32))
    assert c.get(("e", "a")) is None and c.get(("e", "b"))[0] == ord("b")  # a evicted; b now most recent
    c.put(("e", "d"), np.zeros(2, np.float32))
    assert c.get(("e", "c")) is None and c.get(("e", "b")) is not None and len(c) == 2
    none = t2i.PromptCache(0)
    none.put(("e", "a"), np.zeros(2, np.float32))
    assert none.get(("e", "a")) is None and len(none) == 0


def test_registry_loads_text_models_never_as_upscalers(models_dir):
    reg = Registry(Settings(models_dir=models_dir))
    reg.load()
    reg.warmup()  # token and embedding inputs: must not be warmed up as image models
    assert reg.failed == {}  # the tokenizer file is not taken for a card
    assert {"text-encoder", "t2i-test64", "nearest-x4"} <= set(reg.models)
    assert reg.models["text-encoder"].tokenizer is not None
    assert reg.upscaler(None, 4).name == "nearest-x4" and reg.generator(None).name == "t2i-test64"
    for name in ("text-encoder", "t2i-test64"):
        with pytest.raises(errors.ApiError) as e:
            reg.upscaler(name, None)
        assert e.value.status == 422
    with pytest.raises(errors.ApiError) as e:
        reg.generator("nearest-x4")
    assert e.value.status == 422


def test_generator_without_its_encoder_fails_with_a_reason_others_serve(tmp_path):
    write_nearest_model(tmp_path, "nearest-x4", 4)
    standins.write_generator(tmp_path, encoder="no-such-encoder")
    reg = Registry(Settings(models_dir=tmp_path))
    reg.load()
    assert "nearest-x4" in reg.models and "t2i-test64" not in reg.models
    assert "text encoder 'no-such-encoder' is not loaded" in reg.failed["t2i-test64"]
    with pytest.raises(errors.ApiError) as e:
        reg.generator(None)
    assert e.value.status == 422 and "no text-to-image model" in e.value.message


def test_z_dim_from_the_card_else_from_the_graph(tmp_path):
    standins.write_t2i_models(tmp_path)
    card = json.loads((tmp_path / "t2i-test64.json").read_text())
    del card["z_dim"]
    (tmp_path / "t2i-test64.json").write_text(json.dumps(card))
    reg = Registry(Settings(models_dir=tmp_path))
    reg.load()
    assert t2i.z_dim(reg.models["t2i-test64"]) == standins.Z_DIM and not reg.failed


def test_encoder_without_its_tokenizer_fails_and_so_does_its_generator(tmp_path):
    standins.write_t2i_models(tmp_path)
    (tmp_path / "text-encoder.tokenizer.json").unlink()
    reg = Registry(Settings(models_dir=tmp_path))
    reg.load()
    assert "tokenizer" in reg.failed["text-encoder"] and "missing" in reg.failed["text-encoder"]
    assert "text encoder 'text-encoder' is not loaded" in reg.failed["t2i-test64"] and not reg.models


def test_a_changed_tokenizer_or_a_card_without_sha256_is_refused(tmp_path, monkeypatch):
    """The tokenizer file is checked against the card's tokenizer_sha256 as the model file is against its sha256;
    a card with no sha256 is not loaded unchecked. An int8-only encoder is no CPU variant: GPUs load it too."""
    standins.write_t2i_models(tmp_path)
    tok = tmp_path / "text-encoder.tokenizer.json"
    tok.write_text(tok.read_text().replace('"red"', '"rot"'))
    reg = Registry(Settings(models_dir=tmp_path))
    reg.load()
    assert "tokenizer_sha256" in reg.failed["text-encoder"]
    standins.write_t2i_models(tmp_path)  # fresh files
    card = json.loads((tmp_path / "text-encoder.json").read_text())
    (tmp_path / "text-encoder.json").write_text(json.dumps({**card, "precision": "int8"}))
    monkeypatch.setattr("app.registry.choose_providers", lambda p: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    reg = Registry(Settings(models_dir=tmp_path, providers=["CPUExecutionProvider"]))
    reg.load()
    assert "text-encoder" in reg.models and not reg.failed
    del card["onnx"]["sha256"]
    (tmp_path / "text-encoder.json").write_text(json.dumps(card))
    reg = Registry(Settings(models_dir=tmp_path))
    reg.load()
    assert "no onnx.sha256" in reg.failed["text-encoder"]


def test_repeated_prompt_skips_the_encoder(models_dir):
    """The encoder's session is called once per distinct prompt; the cache answers the rest."""
    settings = Settings(models_dir=models_dir, warmup=False)
    reg = Registry(settings)
    reg.load()
    enc, gen = reg.models["text-encoder"], reg.models["t2i-test64"]
    calls: list[int] = []
    run = enc.batcher.run
    enc.batcher.run = lambda *x: calls.append(len(x[0])) or run(*x)

    async def go():
        reg.start()
        cache = t2i.PromptCache(8)
        try:
            a = await t2i.generate(gen, enc, None, None, t2i.Ask("a red flower", 1, 5, 5), cache, settings)
            b = await t2i.generate(gen, enc, None, None, t2i.Ask("a red flower", 2, 5, 5), cache, settings)
            c = await t2i.generate(gen, enc, None, None, t2i.Ask("a white flower", 1, 5, 5), cache, settings)
            return a, b, c
        finally:
            await reg.stop()

    a, b, c = asyncio.run(go())
    assert calls == [1, 1]  # "a red flower" once, "a white flower" once
    assert (a.cached, b.cached, c.cached) == (False, True, False)
    assert a.images[0] == b.images[0] and b.seeds == [5, 6] and a.images[0] != c.images[0]
    assert np.abs(image_of(a.images[0]).astype(int) - standins.image("a red flower", 5)).max() <= 1


@pytest.mark.parametrize("dynamic", [False, True])
def test_encoder_batches_concurrent_prompts_unless_dynamically_quantised(tmp_path, dynamic):
    """Concurrent prompts of one length bucket share an encoder call. An encoder with DynamicQuantizeLinear
    (one activation scale over the whole batch) runs one unpadded prompt per call instead, so batch-mates
    cannot change an embedding: the same prompt and seed give the same bytes alone or among others."""
    standins.write_encoder(tmp_path, dynamic=dynamic)
    standins.write_generator(tmp_path)
    settings = Settings(models_dir=tmp_path, warmup=False, max_wait_ms=50)
    reg = Registry(settings)
    reg.load()
    enc, gen = reg.models["text-encoder"], reg.models["t2i-test64"]
    shapes: list[tuple] = []
    run = enc.batcher.run
    enc.batcher.run = lambda ids, mask: shapes.append(ids.shape) or run(ids, mask)
    prompts = ["a red flower", "a white flower with green leaves", "the large pink flower", "a dark orange center"]

    async def go():
        reg.start()
        try:
            together = await asyncio.gather(*(t2i.generate(gen, enc, None, None, t2i.Ask(p, 1, 0, 0), t2i.PromptCache(8), settings)
                                              for p in prompts))
            alone = [await t2i.generate(gen, enc, None, None, t2i.Ask(p, 1, 0, 0), t2i.PromptCache(8), settings) for p in prompts]
            return together, alone
        finally:
            await reg.stop()

    together, alone = asyncio.run(go())
    assert enc.batcher.max_batch == (1 if dynamic else settings.batch_for(text=True, gpu=False))
    if dynamic:
        assert sorted(shapes[:4]) == sorted((1, len(p.split()) + 2) for p in prompts)  # one unpadded prompt per call
    else:
        assert shapes[0] == (4, 16)  # the four together, padded to the 16-token bucket
    for p, a, b in zip(prompts, together, alone):
        assert a.images[0] == b.images[0]
        if not dynamic:
            assert np.abs(image_of(a.images[0]).astype(int) - standins.image(p, 0)).max() <= 1


def test_dynamic_quantisation_really_makes_the_stand_in_batch_dependent(tmp_path):
    """What the rule above guards against, shown on the dynamic stand-in itself."""
    standins.write_encoder(tmp_path, dynamic=True)
    s = Session(str(tmp_path / "text-encoder.onnx"), ["CPUExecutionProvider"], 1)
    assert t2i.dynamic_quantised(tmp_path / "text-encoder.onnx")
    ids = np.array([[2, 5, 9, 3], [2, 20, 21, 3]], np.int64)
    mask = np.ones_like(ids)
    assert not np.array_equal(s.run(ids, mask)[0], s.run(ids[:1], mask[:1])[0])


# -- in-process app: admission and deadline -------------------------------------------------------------------
def test_full_generator_queue_is_503_and_deadline_is_504(models_dir):
    body = {"prompt": "a red flower", "seed": 1}
    with TestClient(create_app(Settings(models_dir=models_dir, max_queue=2))) as c:
        gen = c.app.state.registry.models["t2i-test64"]
        gen.batcher.in_flight = 2  # every slot taken
        r = c.post("/text-to-image", json=body)
        assert r.status_code == 503 and error_of(r)["code"] == "overloaded" and r.headers["retry-after"] == "1"
        gen.batcher.in_flight = 0
        assert c.post("/text-to-image", json=body).status_code == 200
    with TestClient(create_app(Settings(models_dir=models_dir, request_timeout_s=1e-6))) as c:
        r = c.post("/text-to-image", json={"prompt": "a pink flower"})
        assert r.status_code == 504 and error_of(r)["code"] == "timeout"


# -- the real server on the stand-ins ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(models_dir):
    srv = ServerProcess({"GAN_MODELS_DIR": str(models_dir), "GAN_TILE_SIZE": "32", "GAN_TILE_OVERLAP": "8"})
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def gen(client, **body) -> httpx.Response:
    return client.post("/text-to-image", json=body)


def test_one_image_is_the_exact_image_with_headers(client):
    r = gen(client, prompt=f"  {PROMPT} ", seed=3)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-model"] == "t2i-test64" and r.headers["x-seed"] == "3" and r.headers["x-text-encoder"] == "text-encoder"
    assert "x-upscaler" not in r.headers and r.headers["x-size"] == "64"
    out = image_of(r.content)
    assert out.shape == (64, 64, 3)
    assert np.abs(out.astype(int) - standins.image(PROMPT, 3)).max() <= 1  # stripped prompt, noise of seed 3


def test_same_seed_same_bytes_other_seed_or_prompt_other_bytes(client):
    a, b = gen(client, prompt="a red flower", seed=11), gen(client, prompt="a red flower", seed=11)
    c, d = gen(client, prompt="a red flower", seed=12), gen(client, prompt="a purple flower", seed=11)
    assert a.content == b.content and len({a.content, c.content, d.content}) == 3


def test_without_seed_a_random_one_is_reported_and_reproduces(client):
    r = gen(client, prompt="a white flower")
    seed = int(r.headers["x-seed"])
    assert seed >= 0 and gen(client, prompt="a white flower", seed=seed).content == r.content


def test_n_images_answer_json_with_seeds_in_order(client):
    r = gen(client, prompt="a pink flower", n=3, seed=10, format="webp")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["seeds"] == [10, 11, 12] and body["model"] == "t2i-test64" and len(body["images"]) == 3
    assert body["media_type"] == "image/webp" and body["size"] == 64
    images = [base64.b64decode(b) for b in body["images"]]
    assert len(set(images)) == 3
    assert images[1] == gen(client, prompt="a pink flower", seed=11, format="webp").content  # image i of n = seed + i


def test_size_256_is_the_64_image_through_the_x4_upscaler(client):
    small = gen(client, prompt="an orange flower", seed=4)
    big = gen(client, prompt="an orange flower", seed=4, size=256)
    assert big.status_code == 200 and big.headers["x-upscaler"] == "nearest-x4" and big.headers["x-size"] == "256"
    assert np.array_equal(image_of(big.content), image_of(small.content).repeat(4, 0).repeat(4, 1))
    r = gen(client, prompt="an orange flower", seed=4, size=256, n=2)
    assert r.json()["upscaler"] == "nearest-x4" and image_of(base64.b64decode(r.json()["images"][0])).shape == (256, 256, 3)


@pytest.mark.parametrize("fmt,ctype", [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_formats(client, fmt, ctype):
    r = gen(client, prompt="a red flower", seed=1, format=fmt, quality=80)
    assert r.status_code == 200 and r.headers["content-type"] == ctype and image_of(r.content).shape == (64, 64, 3)


def test_repeated_prompt_skips_the_encoder_on_the_server(client):
    def encoder_batches() -> float:
        return metric_value(client.get("/metrics").text.replace('model="text-encoder"', "ENC"), "gan_batch_size_count{ENC}")

    before = encoder_batches()
    first = gen(client, prompt="a large round yellow flower", seed=1)
    assert first.headers["x-prompt-cache"] == "miss" and encoder_batches() == before + 1
    again = gen(client, prompt="a large round yellow flower", seed=2, n=2)
    assert again.headers["x-prompt-cache"] == "hit" and encoder_batches() == before + 1
    assert 'gan_requests_total{method="POST",route="/text-to-image",status="200"}' in client.get("/metrics").text


def test_listed_ready_and_not_upscalers(client):
    cards = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert cards["text-encoder"]["task"] == "text-encoder" and cards["t2i-test64"]["task"] == "text-to-image"
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["failed"] == {} and "t2i-test64" in ready["models"]
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    r = client.post("/upscale?model=t2i-test64", content=png.getvalue())
    assert r.status_code == 422 and error_of(r)["code"] == "invalid_parameters"
    assert client.post("/upscale", content=png.getvalue()).headers["x-model"] == "nearest-x4"


@pytest.mark.parametrize("body,field", [
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 301}, "prompt"),
    ({"prompt": "a red flower", "n": 0}, "n"),
    ({"prompt": "a red flower", "n": 17}, "n"),
    ({"prompt": "a red flower", "n": "2"}, "n"),
    ({"prompt": "a red flower", "n": True}, "n"),
    ({"prompt": "a red flower", "size": 128}, "size"),
    ({"prompt": "a red flower", "seed": -1}, "seed"),
    ({"prompt": "a red flower", "seed": 1.5}, "seed"),
    ({"prompt": "a red flower", "format": "gif"}, "format"),
    ({"prompt": "a red flower", "quality": 0}, "quality"),
    ({"prompt": "a red flower", "style_image": "x"}, "style_image"),
    ({"prompt": 5}, "prompt"),
])
def test_bad_fields_are_422_naming_the_field(client, body, field):
    r = gen(client, **body)
    assert r.status_code == 422, r.text
    err = error_of(r)
    assert err["code"] == "invalid_parameters" and field in err["message"]


def test_bad_bodies_are_clear_4xx(client):
    def post(content, ctype):
        return client.post("/text-to-image", content=content, headers={"content-type": ctype} if ctype else {})

    cases = [
        (post(b"{not json", "application/json"), 400, "bad_request"),
        (post(b"", "application/json"), 400, "bad_request"),
        (post(b'["a red flower"]', "application/json"), 400, "bad_request"),
        (post(b"\xff\xfe", "application/json"), 400, "bad_request"),
        (post(b"[" * 5000 + b"]" * 5000, "application/json"), 400, "bad_request"),  # was a 500 (RecursionError)
        (post(b'{"prompt": "a red flower"}', "text/plain"), 415, "unsupported_media_type"),
        (post(b'{"prompt": "a red flower"}', None), 415, "unsupported_media_type"),
        (client.post("/text-to-image", data={"prompt": "a red flower"}), 415, "unsupported_media_type"),
        (post(json.dumps({"prompt": "a" * 300, "pad": "x" * 3_200_000}).encode(), "application/json"), 413, "too_large"),
        (gen(client, prompt="a red flower", model="nearest-x4"), 422, "invalid_parameters"),
        (gen(client, prompt="a red flower", model="nope"), 404, "not_found"),
        (client.get("/text-to-image"), 405, "method_not_allowed"),
    ]
    for r, status, code in cases:
        assert (r.status_code, error_of(r)["code"]) == (status, code), r.text
    assert post(b'{"prompt": "a red flower", "seed": 1}', "application/json; charset=utf-8").status_code == 200


def test_openapi_shows_the_request_schema_with_an_example(client):
    op = client.get("/openapi.json").json()["paths"]["/text-to-image"]["post"]
    content = op["requestBody"]["content"]["application/json"]
    assert set(content["schema"]["properties"]) >= {"prompt", "n", "seed", "size", "format"}
    assert content["schema"]["properties"]["prompt"]["maxLength"] == 300 and content["example"]["prompt"]


def test_a_generator_without_its_encoder_is_reported_and_the_rest_serves(tmp_path):
    write_nearest_model(tmp_path, "nearest-x4", 4)
    standins.write_generator(tmp_path, encoder="missing-encoder")
    srv = ServerProcess({"GAN_MODELS_DIR": str(tmp_path)})
    try:
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["failed"]["t2i-test64"] == "failed to load"
        assert "'missing-encoder' is not loaded" in srv.output()  # the reason is in the log
        assert "t2i-test64" not in {m["name"] for m in httpx.get(srv.url + "/v1/models").json()["models"]}
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "a red flower"})
        assert r.status_code == 422 and "no text-to-image model" in error_of(r)["message"]
        png = io.BytesIO()
        Image.new("RGB", (8, 8)).save(png, "PNG")
        assert httpx.post(srv.url + "/upscale", content=png.getvalue()).status_code == 200
    finally:
        srv.stop()


# -- the shipped models -----------------------------------------------------------------------------------------
SHIPPED = ROOT / "models"
have_shipped = pytest.mark.skipif(
    not all((SHIPPED / f).exists() for f in ("text-encoder.onnx", "text-encoder.tokenizer.json", "t2i-flowers64.onnx")),
    reason="the text-to-image models are not shipped yet")
have_encoder = pytest.mark.skipif(
    not all((SHIPPED / f).exists() for f in ("text-encoder.onnx", "text-encoder.json", "text-encoder.tokenizer.json")),
    reason="the text encoder is not shipped yet")


@pytest.fixture(scope="module")
def shipped_encoder():
    card = json.loads((SHIPPED / "text-encoder.json").read_text())
    session = Session(str(SHIPPED / card["onnx"]["file"]), ["CPUExecutionProvider"], 1)
    tok = t2i.load_tokenizer(SHIPPED / "text-encoder.json", card)
    enc = SimpleNamespace(net=session)  # what encoder_inputs needs of a Model

    def embed(*prompts: str, pad: bool = False) -> np.ndarray:
        """One session call for the prompts, padded to a common length (the bucket with ``pad``)."""
        tokens = [t2i.tokenize(tok, p, card["max_length"], pad=pad) for p in prompts]
        n = max(len(i) for i, _ in tokens)
        ids, mask = (np.stack([np.pad(t[k], (0, n - len(t[k]))) for t in tokens]) for k in (0, 1))
        out = session.run(*t2i.encoder_inputs(enc, ids, mask))
        return out[0] if len(prompts) == 1 else out

    return card, embed


@have_encoder
def test_shipped_encoder_card_and_embeddings(shipped_encoder):
    """The shipped encoder as the service runs it: 384-d unit vectors, blind to padding, and meaningful."""
    card, embed = shipped_encoder
    assert card["task"] == "text-encoder" and card["dim"] == 384 and card["max_length"] == 128
    a = embed("a red flower")
    assert a.shape == (384,) and a.dtype == np.float32 and abs(np.linalg.norm(a) - 1) < 1e-3
    assert float(a @ embed("a red flower", pad=True)) > 0.9999  # padding is masked out
    assert not t2i.dynamic_quantised(SHIPPED / card["onnx"]["file"])  # weight-only int8: it batches
    batch = embed("a red flower", "a pink flower with many thin petals", pad=True)
    assert np.abs(batch[0] - embed("a red flower", pad=True)).max() < 1e-5  # batch-mates do not change an embedding
    near, far = embed("a flower with red petals"), embed("a yellow school bus parked on the street")
    assert float(a @ near) > float(a @ far) + 0.2
    assert embed(" ".join(["petal"] * 400)).shape == (384,)  # truncated at max_length, not an error


@pytest.fixture(scope="module")
def shipped_server():
    srv = ServerProcess({"GAN_MODELS_DIR": str(SHIPPED), "GAN_T2I_CACHE_SIZE": "0"}, timeout=240)  # every request encodes
    yield srv
    srv.stop()


@pytest.mark.slow
@have_shipped
def test_shipped_models_end_to_end(shipped_server):
    """The real server on models/: text-encoder + t2i-flowers64 (+ sr-x4 for 256 px)."""
    with httpx.Client(base_url=shipped_server.url, timeout=120) as c:
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and {"text-encoder", "t2i-flowers64"} <= set(ready["models"]), ready
        assert not any(k.startswith(("text-encoder", "t2i-")) for k in ready["failed"]), ready["failed"]
        body = {"prompt": "this flower has bright yellow petals and a dark center", "seed": 7}
        one = c.post("/text-to-image", json=body)
        assert one.status_code == 200, one.text
        assert one.headers["x-model"] == "t2i-flowers64" and one.headers["x-text-encoder"] == "text-encoder"
        img = image_of(one.content)
        assert img.shape == (64, 64, 3) and img.std() > 5  # an image, not a flat colour
        again = c.post("/text-to-image", json=body)
        assert again.content == one.content and again.headers["x-prompt-cache"] == "miss"  # same seed, same bytes
        assert c.post("/text-to-image", json={**body, "seed": 8}).content != one.content

        # Encoded again while other prompts are in flight: still the same bytes (no batch-mates in its embedding).
        others = ["a red rose", "a white daisy with a yellow center", "pink petals", "an orange lily with dark spots"]
        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(lambda b: c.post("/text-to-image", json=b), [{"prompt": p, "seed": 7} for p in others] + [body]))
        assert all(r.status_code == 200 for r in answers) and answers[-1].content == one.content

        many = c.post("/text-to-image", json={**body, "n": 4})
        assert many.status_code == 200 and many.json()["seeds"] == [7, 8, 9, 10]
        imgs = [image_of(base64.b64decode(b)).astype(int) for b in many.json()["images"]]
        assert np.abs(imgs[0] - img).max() <= 1  # image 0 of 4 is the seed-7 image (batched with others)
        spread = np.mean([np.abs(imgs[i] - imgs[j]).mean() for i in range(4) for j in range(i + 1, 4)])
        assert spread > 3, spread  # distinct seeds give distinct images

        big = c.post("/text-to-image", json={**body, "size": 256})
        assert big.status_code == 200 and big.headers["x-upscaler"].startswith("sr-x4")
        up = image_of(big.content).astype(float)
        assert up.shape == (256, 256, 3)
        down = up.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
        assert np.corrcoef(down.ravel(), img.ravel())[0, 1] > 0.9  # the 64 px image, enlarged (and sharpened): same content
