"""OpenAPI that matches what the routes do: the options of an image task as typed query parameters and
multipart fields (from its Pydantic model: types, enums, ranges), every error status with the real error body
(``{"error": {"code", "message"}}``), the response headers, and an example for every request."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every error the service answers (4xx, 5xx) has this body."""

    error: ErrorDetail


ERRORS = {
    400: "the body is not a readable image (or JSON), or is empty",
    401: "GAN_API_KEY is set and the request has no valid 'Authorization: Bearer <key>'",
    404: "no such model (or job)",
    408: "the body was not received within GAN_BODY_TIMEOUT_S",
    409: "the job is not done yet (Retry-After), or it failed",
    413: "the body, the image or its output is over a limit (GAN_MAX_*); or, code use_jobs, more work than the "
         "request's deadline allows at the model's measured speed: send it to POST /v1/jobs",
    415: "not an image in a supported format (PNG, JPEG, WebP, BMP, TIFF, GIF), or not JSON",
    422: "an option is out of range or unknown, or names a model that cannot do the work",
    429: "the load balancer's rate limit (nginx, in the compose and Kubernetes set-ups)",
    503: "the server or the model is full, warming up or draining; retry after Retry-After seconds",
    504: "the request passed GAN_REQUEST_TIMEOUT_S",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: these error statuses, each with the error body's schema."""
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        out[s] = {"model": ErrorResponse, "description": ERRORS[s]}
        if s in (409, 503):
            out[s]["headers"] = RETRY_AFTER
    return out


IMAGE_ERRORS = errors(400, 401, 404, 408, 413, 415, 422, 429, 503, 504)


def _param_schema(prop: dict) -> dict:
    """A property's schema without the ``null`` branch of an optional field (a query parameter is absent instead)."""
    prop = dict(prop)
    branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        prop = {**branches[0], **prop}
    prop.pop("title", None)
    return prop


def image_operation(options: type[BaseModel], description: str, headers: dict[str, str], example: dict[str, Any],
                    extra_params: dict[str, dict] | None = None) -> dict:
    """``openapi_extra`` of an image route: the options as query parameters and multipart fields, the body as a
    multipart form (field ``image``) or the raw image bytes, and the image answer with its headers."""
    props = {k: _param_schema(v) for k, v in options.model_json_schema()["properties"].items()}
    props = {**(extra_params or {}), **props}
    params = [{"name": k, "in": "query", "required": False, "description": v.get("description", ""),
               "schema": {k2: v2 for k2, v2 in v.items() if k2 != "description"}, **({"example": example[k]} if k in example else {})}
              for k, v in props.items()]
    image = {"type": "string", "format": "binary"}
    return {
        "parameters": params,
        "requestBody": {
            "required": True,
            "description": "the image: as the raw body (any image/* type), or as the multipart field 'image' with the "
                           "options as further fields (the query string wins over a field of the same name)",
            "content": {
                "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {"image": image, **props}}},
                "image/*": {"schema": image},
            },
        },
        "responses": {"200": {
            "description": description,
            "content": {t: {"schema": image} for t in IMAGE_TYPES},
            "headers": {h: {"description": d, "schema": {"type": "string"}} for h, d in headers.items()},
        }},
    }


COMMON_HEADERS = {
    "X-Model": "the model that did the work",
    "X-Input-Size": "WIDTHxHEIGHT of the input",
    "X-Output-Size": "WIDTHxHEIGHT of the output",
    "X-Processing-Time-Ms": "time the server spent on the request",
    "X-Request-ID": "the request's ID (the client's X-Request-ID when valid, else a new one); in every log line",
    "X-Frames-Used": "animated input: which frame was used, e.g. '1 of 12'",
}
