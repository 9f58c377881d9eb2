"""The OpenAPI document matches the service: a property-based client draws requests from /openapi.json's own
parameter and body schemas (valid and invalid values) and checks every answer against what the document says:
no 5xx, a documented status, the documented error body, a documented content type and headers."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from app.config import Settings
from app.main import create_app
from app.routes.openapi import ErrorResponse
from tests.helpers import photo

EXAMPLES = 25  # per route, in CI too: each example is one request to the in-process app


def _images() -> list[bytes]:
    out = []
    for fmt, im in (("PNG", Image.fromarray(photo(24, 16))), ("JPEG", Image.fromarray(photo(20, 20))),
                    ("PNG", Image.fromarray(np.full((9, 7), 30000, np.uint16))),
                    ("PNG", Image.fromarray(np.dstack([photo(8, 8), np.full((8, 8), 99, np.uint8)]), "RGBA"))):
        buf = io.BytesIO()
        im.save(buf, fmt)
        out.append(buf.getvalue())
    return out + [b"", b"not an image", out[0][:40]]


BODIES = _images()


@pytest.fixture(scope="module")
def client(sr_models):
    with TestClient(create_app(Settings(models_dir=sr_models, tile_size=32, tile_overlap=8))) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client):
    return client.get("/openapi.json").json()


def value_for(schema: dict) -> st.SearchStrategy:
    """A valid value of a parameter's schema, as a query string holds it."""
    if "enum" in schema:
        return st.sampled_from([str(v) for v in schema["enum"]])
    kind = schema.get("type")
    if kind == "number":
        return st.floats(schema.get("minimum", -1e6), schema.get("maximum", 1e6), allow_nan=False).map(lambda f: f"{f:.3f}")
    if kind == "integer":
        return st.integers(schema.get("minimum", 0), schema.get("maximum", 2**31)).map(str)
    if kind == "boolean":
        return st.sampled_from(["true", "false"])
    return st.sampled_from(["sr-x2", "sr-x4", "nope"])  # strings: model names, known and not


def param_strategy(schema: dict) -> st.SearchStrategy:
    """Absent, valid, or invalid (out of range, wrong type, junk)."""
    invalid = st.sampled_from(["", "-1", "1e9", "nan", "abc", "0.5", "9", "true"])
    return st.one_of(st.none(), value_for(schema), invalid)


def check_answer(spec: dict, path: str, method: str, r) -> None:
    op = spec["paths"][path][method]
    assert r.status_code < 500, (r.status_code, r.text[:300])
    documented = op["responses"]
    assert str(r.status_code) in documented, (path, r.status_code, r.text[:200])
    ctype = r.headers.get("content-type", "").split(";")[0]
    if r.status_code >= 400:
        ErrorResponse.model_validate(r.json())  # the documented error body, whatever the status
        return
    content = documented[str(r.status_code)].get("content", {})
    assert ctype in content, (path, ctype, list(content))
    doc_headers = {h.lower() for h in documented[str(r.status_code)].get("headers", {})}
    if doc_headers:
        sent = {h for h in r.headers if h.startswith("x-")}
        assert sent <= doc_headers, sent - doc_headers


def image_route_test(path: str):
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def run(client, spec, data):
        op = spec["paths"][path]["post"]
        params = {}
        for p in op["parameters"]:
            v = data.draw(param_strategy(p["schema"]), label=p["name"])
            if v is not None:
                params[p["name"]] = v
        body = data.draw(st.sampled_from(BODIES), label="body")
        as_form = data.draw(st.booleans(), label="multipart")
        if as_form:
            r = client.post(path, params=params, files={"image": ("x", body, "application/octet-stream")})
        else:
            r = client.post(path, params=params, content=body)
        check_answer(spec, path, "post", r)
        if path == "/v1/jobs" and r.status_code == 202:
            client.delete(r.headers["location"])  # keep the store from filling up
    return run


test_upscale_matches_its_openapi = image_route_test("/upscale")
test_degrade_matches_its_openapi = image_route_test("/degrade")
test_jobs_submission_matches_its_openapi = image_route_test("/v1/jobs")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_text_to_image_matches_its_openapi(client, spec, data):
    schema = spec["paths"]["/text-to-image"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    body = {}
    for name, prop in schema["properties"].items():
        v = data.draw(st.one_of(st.none(), st.text(max_size=5), st.integers(-5, 400), st.sampled_from(prop.get("enum", [1]))), label=name)
        if v is not None:
            body[name] = v
    r = client.post("/text-to-image", content=json.dumps(body), headers={"content-type": "application/json"})
    check_answer(spec, "/text-to-image", "post", r)


def test_every_route_documents_its_errors_and_has_an_example(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "HTTPValidationError" not in json.dumps(op), (method, path)  # FastAPI's 422 body: never sent
            if path in ("/healthz", "/readyz", "/metrics", "/", "/v1/models"):
                continue
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    assert p.get("example") or p["schema"].get("examples"), (path, p["name"])
            body = op.get("requestBody", {}).get("content", {})
            if "application/json" in body:
                assert body["application/json"].get("example"), path
            if path in ("/upscale", "/degrade", "/v1/jobs"):
                assert any("example" in p for p in op["parameters"]), path
            errors = [s for s in op["responses"] if s.startswith(("4", "5"))]
            assert errors, (method, path)
            for s in errors:
                ref = json.dumps(op["responses"][s])
                assert "ErrorResponse" in ref, (method, path, s)
