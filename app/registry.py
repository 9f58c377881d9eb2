"""The model registry: reads models/*.json cards, loads each NAME.onnx into a session with its batcher.

A card whose file is missing or whose sha256 does not match is reported and skipped, never served.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cards
from app import errors, kinds, metrics
from app.batching import Batcher
from app.config import Settings
from app.model import Model
from app.runtime import GPU_PROVIDERS, Session, choose_providers

log = logging.getLogger("app.registry")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[str, Model] = {}
        self.failed: dict[str, str] = {}
        self.ready = False
        self.pipeline: Model | None = None  # the classical degradation pipeline's worker (POST /degrade)

    def load(self, only: set[str] | None = None) -> None:
        """Every card in the models folder (``only``: just these names, as gan-upscale loads what it needs)."""
        s = self.settings
        self._load_pipeline()
        card_paths = sorted(Path(s.models_dir).glob("*.json"))
        if not card_paths:
            log.warning("no model cards found in %s", s.models_dir)
        gpu = choose_providers(s.providers)[0] in GPU_PROVIDERS
        for card_path in card_paths:
            name = card_path.stem
            if name.endswith(".tokenizer") or (only is not None and name not in only):  # (a text encoder's tokenizer file)
                continue
            try:
                card = json.loads(card_path.read_text())
                cards.validate(card)  # a card that breaks the schema (cards/model-card.schema.json) is not served
                variant = card.get("variant_of")  # a lower-precision copy of another model (not e.g. an int8-only encoder)
                if variant and card.get("precision") == "fp16" and (s.fp16 == "off" or (s.fp16 == "auto" and not gpu)):
                    log.info("skipping %s: fp16 variant, no GPU provider (GAN_FP16=%s)", name, s.fp16)
                    continue
                if variant and card.get("precision") == "int8" and (s.int8 == "off" or (s.int8 == "auto" and gpu)):
                    log.info("skipping %s: int8 variant for CPUs, a GPU provider runs here (GAN_INT8=%s)", name, s.int8)
                    continue
                onnx_path = card_path.with_name(card.get("onnx", {}).get("file", f"{name}.onnx"))
                if not onnx_path.exists():
                    raise FileNotFoundError(f"{onnx_path} is missing")
                want = card.get("onnx", {}).get("sha256")
                if s.verify_sha256 and not want:
                    raise ValueError(f"{card_path.name} has no onnx.sha256 to check {onnx_path.name} against (GAN_VERIFY_SHA256=false loads it anyway)")
                if s.verify_sha256 and _sha256(onnx_path) != want:
                    raise ValueError(f"{onnx_path.name} does not match the sha256 in its card")
                kind = kinds.of(card["task"])
                session = Session(str(onnx_path), s.providers, s.intra_op_threads)
                tokenizer = kind.tokenizer(card_path, card, s)
                batch = kind.max_batch(card, onnx_path, s, session.device != "cpu")
                batcher = Batcher(name, session.run, batch, s.max_wait_ms, s.max_queue, s.model_workers)
                self.models[name] = Model(name, card, session, batcher, tokenizer)
                metrics.PROVIDER.labels(name, session.provider).set(1)
                scale = f", x{card['scale']}" if card.get("scale") else ""
                log.info("loaded %s (%s%s) on %s", name, card.get("task"), scale, session.provider)
            except Exception as e:  # one broken model must not take the others down
                self.failed[name] = str(e)
                log.error("could not load model %s: %s", name, e)
        for kind in kinds.KINDS.values():  # in KINDS order: a generator is checked (and maybe dropped) before its style encoder
            for m in kind.loaded(self):
                try:
                    kind.check(m, self.models, self.failed)
                except ValueError as e:  # e.g. a generator is served only with its text encoder
                    self.drop(m.name, str(e))

    def _load_pipeline(self) -> None:
        import degradations as degradation
        from app.degrader import pipeline_runner

        presets = degradation.load_presets(self.settings.degradation_presets)  # a bad file stops startup
        card = {"name": "degrade-pipeline", "task": "degradation-pipeline", "scales": [1, 2, 4],
                "description": "The classical real-world degradation pipeline (degradations/pipeline.py), no model file: two stages of "
                               "blur, resize, noise and JPEG, then a final resize with sinc filter and JPEG. POST /degrade?method=pipeline.",
                "presets": {k: v.model_dump(mode="json") for k, v in presets.items()}}
        batcher = Batcher("degrade-pipeline", pipeline_runner(presets), 1, 0.0, self.settings.max_queue)
        self.pipeline = Model("degrade-pipeline", card, None, batcher)

    def warmup(self) -> None:
        if not self.settings.warmup:
            return
        for m in list(self.models.values()):
            try:
                kinds.of(m.task).warmup(m, self.settings)
            except Exception as e:  # a model that cannot run is not served; the others are
                self.drop(m.name, f"warm-up failed: {type(e).__name__}: {e}")

    def drop(self, name: str, why: str) -> None:
        """Stop serving a loaded model (a failed warm-up or check): logged with the reason, listed as failed."""
        m = self.models.pop(name)
        metrics.PROVIDER.remove(m.name, m.provider)
        self.failed[name] = why
        log.error("model %s is not served: %s", name, why)

    def missing_required(self) -> list[str]:
        """Models named in GAN_REQUIRED_MODELS that are not loaded: readiness fails while there are any."""
        return [n for n in self.settings.required_models if n not in self.models]

    def start(self) -> None:
        for m in self.workers:
            m.batcher.start()

    @property
    def workers(self) -> list[Model]:
        return [*self.models.values(), *([self.pipeline] if self.pipeline else [])]

    async def stop(self) -> None:
        for m in self.workers:
            await m.batcher.stop()

    def get(self, name: str) -> Model:
        try:
            return self.models[name] if self.pipeline is None or name != self.pipeline.name else self.pipeline
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise errors.not_found(f"unknown model '{name}'; loaded models: {known}") from None

    # -- what a request asks for: each kind picks among its own models (app/kinds.py) --------------------------
    def face_model(self) -> Model:
        """The model that upscales faces for /upscale?faces=true (GAN_FACE_MODEL)."""
        return kinds.UPSCALER.face_model(self)

    def upscaler(self, name: str | None, scale: float | None, mode: str | None = None) -> Model:
        return kinds.UPSCALER.pick(self, name, scale, mode)

    def generator(self, name: str | None, arch: str | None = None) -> Model:
        return kinds.TEXT_TO_IMAGE.pick(self, name, arch)

    def style_encoder(self, generator: Model) -> Model:
        return kinds.STYLE_ENCODER.pick(self, generator)

    def degrader(self, scale: int) -> Model:
        return kinds.DEGRADER.pick(self, scale)

    def cards(self) -> list[dict]:
        return [m.describe() for m in self.workers]
