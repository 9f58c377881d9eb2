"""Prometheus metrics of the service (served at /metrics)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("gan_requests_total", "HTTP requests by route and status", ["route", "method", "status"])
LATENCY = Histogram(
    "gan_request_seconds", "HTTP request latency by route", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
QUEUE_DEPTH = Gauge("gan_queue_tiles", "tiles waiting in a model's batch queue", ["model"])
IN_FLIGHT = Gauge("gan_requests_in_flight", "admitted requests in flight per model", ["model"])
BATCH_SIZE = Histogram("gan_batch_size", "tiles per model call", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64))
MODEL_SECONDS = Histogram(
    "gan_model_seconds", "time of one model call (a batch)", ["model"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TILES_PER_REQUEST = Histogram(
    "gan_tiles_per_request", "tiles one request was split into", ["model"], buckets=(1, 2, 4, 8, 16, 64, 256, 1024, 4096)
)
IMAGE_PIXELS = Counter("gan_image_pixels_total", "input pixels of the images a model ran on", ["model"])
COMPUTED_PIXELS = Counter(
    "gan_computed_pixels_total", "input pixels a model computed (tiles' overlaps counted twice): over gan_image_pixels_total, "
    "the share of extra work tiling costs", ["model"]
)
CPU_STAGES = Gauge("gan_cpu_stages", "request CPU stages (decode, stitch, encode) queued or running (GAN_CPU_QUEUE)")
INFLIGHT_BYTES = Gauge("gan_inflight_bytes", "bytes reserved by the requests in flight (GAN_MAX_INFLIGHT_BYTES)")
BUDGET_REFUSED = Counter("gan_budget_refused_total", "requests refused (503) because the memory budget was full")
PROVIDER = Gauge("gan_model_info", "loaded models and the execution provider each runs on", ["model", "provider"])
PROMPT_CACHE = Counter("gan_prompt_cache_total", "text-to-image prompt embedding cache lookups", ["result"])
MODEL_REQUESTS = Counter("gan_model_requests_total", "requests admitted to a model's queue", ["model"])
MODEL_REJECTED = Counter("gan_model_rejected_total", "requests a model refused at once (503: its queue was full)", ["model"])
QUEUE_WAIT = Histogram(
    "gan_queue_wait_seconds", "time a tile waited in a model's batch queue before its model call started", ["model"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
