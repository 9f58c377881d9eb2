"""Every knob of the service, read from the environment (prefix ``GAN_``) or a ``.env`` file.

Example: ``GAN_PORT=9000 GAN_MAX_BATCH=16 python -m app``. The README lists them all.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GAN_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    otel_endpoint: str = Field("", description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces; empty: no tracing")
    otel_service_name: str = "gan-image-service"
    log_format: Literal["text", "json"] = Field("text", description="text lines, or JSON lines (python-json-logger)")
    models_dir: Path = Path(__file__).resolve().parent.parent / "models"
    # ONNX Runtime execution providers in order of preference; ones not available on this machine are skipped.
    providers: list[str] = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    intra_op_threads: int = Field(0, ge=0, description="ORT intra-op threads per session; 0 = all cores")
    verify_sha256: bool = True
    # Bearer API key for every route but /healthz, /readyz and the web page; empty: no key asked.
    api_key: SecretStr = SecretStr("")
    docs: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    # Models that must be loaded and warmed for /readyz to answer 200 (comma-separated names); empty: any one.
    required_models: Annotated[list[str], NoDecode] = []
    # Float16 model variants (cards with "precision": "fp16"): auto = load them where a GPU provider runs
    # them, and prefer them as the default for their scale; on = always load; off = never.
    fp16: Literal["auto", "on", "off"] = "auto"
    # int8 model variants (cards with "precision": "int8"): auto = load them where the CPU provider runs, and
    # prefer them as the default for their scale; on = always load; off = never (the float models serve).
    int8: Literal["auto", "on", "off"] = "auto"

    # Limits on what a request may ask for.
    max_body_bytes: int = Field(25 * 1024 * 1024, gt=0)
    max_input_pixels: int = Field(16_000_000, gt=0)
    max_input_side: int = Field(16_384, gt=0, description="longest accepted input side, in pixels")
    max_output_pixels: int = Field(64_000_000, gt=0)
    # Memory held by all requests in flight together (bodies, decoded inputs, outputs, encodings): past it, 503.
    max_inflight_bytes: int = Field(2 * 1024**3, gt=0)
    body_timeout_s: float = Field(30.0, gt=0, description="time allowed to receive a request body (408 after)")
    # CPU stages of requests (decode, stitch, encode) run in this many threads; a new request is refused (503)
    # when cpu_queue stages are already waiting.
    cpu_workers: int = Field(4, ge=1)
    cpu_queue: int = Field(64, ge=1)
    # uvicorn: open connections before new ones get 503, and the largest request head (headers) accepted.
    max_connections: int = Field(512, ge=1)
    max_header_bytes: int = Field(64 * 1024, ge=1024)

    # Tiling (in input pixels): an image side up to tile_size runs whole, at its own size; a longer side is cut
    # into the fewest equal tiles of at most tile_size, neighbours sharing at least tile_overlap pixels.
    tile_size: int = Field(512, ge=16)
    tile_overlap: int = Field(12, ge=0)

    # zlib level of PNG answers (0-9). 2 encodes a 512 px result about 3x as fast as Pillow's default 6 (which takes
    # about as long as sr-x4 itself on a CPU), for files about 12% larger.
    png_compress_level: int = Field(2, ge=0, le=9)

    # Dynamic batching, per model.
    # Items per model call. 0 = auto: 8 where a GPU runs the models; on a CPU 1 for image models (one tile already
    # keeps every core busy, and a batch of 8 ran 0.9x as fast per tile) and 8 for the small text models.
    max_batch: int = Field(0, ge=0)
    max_wait_ms: float = Field(5.0, ge=0)
    # Session calls of one model that may run at once (its batches of different requests side by side).
    model_workers: int = Field(1, ge=1)
    max_queue: int = Field(32, ge=1, description="requests in flight per model before new ones get 503")
    request_timeout_s: float = Field(120.0, gt=0)
    retry_after_s: int = Field(1, ge=0)
    warmup: bool = True

    # Async jobs (POST /v1/jobs): bounded by count and bytes; results over jobs_spill_bytes go to files in
    # jobs_dir (a temporary folder when unset) up to jobs_disk_bytes; ended jobs are forgotten after jobs_ttl_s.
    jobs_max: int = Field(100, ge=1)
    jobs_max_bytes: int = Field(1024**3, gt=0)
    jobs_spill_bytes: int = Field(16 * 1024**2, ge=0)
    jobs_disk_bytes: int = Field(10 * 1024**3, ge=0)
    jobs_dir: Path | None = None
    jobs_ttl_s: float = Field(3600.0, gt=0)
    jobs_concurrency: int = Field(1, ge=1, description="jobs computing at once; the rest wait, queued")

    # POST /text-to-image: prompt embeddings kept (LRU), so a repeated prompt skips the text encoder; 0 = none.
    t2i_cache_size: int = Field(1024, ge=0)
    # the generator architecture a request gets when it names neither model nor generator
    t2i_generator: Literal["gan-int-cls", "lapgan"] = "gan-int-cls"

    # POST /degrade, method=pipeline: a JSON file {"light"|"medium"|"heavy": {parameter ranges}} replacing
    # those presets of degradations/pipeline.py (keys as its Pipeline model; unknown keys are an error at startup).
    degradation_presets: Path | None = None

    # POST /upscale?faces=true: the face model, and the sizes of face (its crop square, in input pixels)
    # it takes; smaller or larger faces keep the general model's result.
    face_model: str = "face-x4"
    face_min_px: int = Field(16, ge=8)
    face_max_px: int = Field(64, ge=8)

    def batch_for(self, text: bool, gpu: bool) -> int:
        """GAN_MAX_BATCH, or its automatic value for a text model or an image model, on a GPU or a CPU."""
        if self.max_batch:
            return self.max_batch
        return 8 if gpu or text else 1

    @field_validator("required_models", mode="before")
    @classmethod
    def _names(cls, v: object) -> object:
        return [n.strip() for n in v.split(",") if n.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.tile_overlap * 2 >= self.tile_size:
            raise ValueError(f"GAN_TILE_OVERLAP ({self.tile_overlap}) must be less than half of GAN_TILE_SIZE ({self.tile_size})")
        if self.face_min_px > self.face_max_px:
            raise ValueError(f"GAN_FACE_MIN_PX ({self.face_min_px}) is above GAN_FACE_MAX_PX ({self.face_max_px})")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
