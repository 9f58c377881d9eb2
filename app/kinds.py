"""Model kinds: what differs between tasks when a model is loaded, checked, warmed up and picked for a request,
one class per kind (in the spirit of LitServe's LitAPI). The registry looks a card's ``task`` up in KINDS and calls
its kind; it matches no task names itself. A new kind of model is one class here (plus its request code and route).

- ``tokenizer``: anything besides the ONNX file the kind loads (a text encoder's tokenizer).
- ``max_batch``: items per session call.
- ``check``: run once every model is loaded, in KINDS order (a generator needs its text encoder, a style encoder
  its generator); raising ValueError drops the model with that reason.
- ``warmup``: the first run of the serving shapes, so the first request does not pay for it.
- ``pick`` (each kind its own arguments): the model a request asks for, among the loaded ones of the kind.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from app import errors
from app import text_to_image as t2i
from app.config import Settings
from app.degrader import output_tile
from app.model import Model


class Loaded(Protocol):
    """What a kind reads of the registry to pick a model."""

    models: dict[str, Model]
    failed: dict[str, str]
    settings: Settings

    def get(self, name: str) -> Model: ...


def scales_for(scale: float | None) -> tuple[int, int]:
    """The model scale that serves an asked scale (x2 up to 2, else x4), then the other one."""
    return (2, 4) if scale is not None and scale <= 2 else (4, 2)


def default_upscalers(model_scale: int) -> tuple[str, ...]:
    """The default upscaler's names for a model scale, in order of preference."""
    return f"sr-x{model_scale}-fp16", f"sr-x{model_scale}-int8", f"sr-x{model_scale}"


def real_photo_upscaler(model_scale: int, mode: str) -> str:
    """The real-photo upscaler's name for ``mode``: faithful = real-xN-l1 (pixel loss), crisp = real-xN (adversarial)."""
    return f"real-x{model_scale}" + {"faithful": "-l1", "crisp": ""}[mode]


class Kind:
    task: ClassVar[str]
    text: ClassVar[bool] = False  # token or embedding inputs, no image tiles (its batch size follows GAN_MAX_BATCH's text default)

    def tokenizer(self, card_path: Path, card: dict, settings: Settings) -> Any:
        return None

    def max_batch(self, card: dict, onnx_path: Path, settings: Settings, gpu: bool) -> int:
        return settings.batch_for(self.text, gpu)

    def check(self, model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
        return None

    def warmup(self, model: Model, settings: Settings) -> None:
        raise NotImplementedError

    def loaded(self, reg: Loaded) -> list[Model]:
        return [m for m in reg.models.values() if m.task == self.task]

    def named(self, reg: Loaded, name: str, what: str) -> Model:
        """The model called ``name``, 404 if unknown, 422 if it is of another kind."""
        model = reg.get(name)
        if model.task != self.task:
            raise errors.unprocessable(f"model '{name}' is a {model.task} model, not {what}")
        return model


class ImageKind(Kind):
    """A model that runs image tiles (N, 3, H, W)."""

    def tiles(self, model: Model, tile_size: int) -> tuple[int, int]:
        """(the tile its batches run at, the smallest input a CPU warm-up needs)."""
        return tile_size, 64

    def warmup(self, model: Model, settings: Settings) -> None:
        """Initialise the session, then time one more run: the model's speed is known before its first request,
        so that request is refused at once (413 use_jobs) if it cannot end before its deadline."""
        tile, small = self.tiles(model, settings.tile_size)
        if model.net.device == "cpu":  # shapes vary (whole images): one small run initialises the session
            model.net.warmup(1, min(tile, small))
            timed = 1, min(tile, 2 * small)
        else:
            for batch in sorted({1, model.batcher.max_batch}):  # the tile shapes seen alone and under load
                model.net.warmup(batch, tile)
            timed = model.batcher.max_batch, tile
        t0 = time.perf_counter()
        model.net.warmup(*timed)
        model.batcher.record_speed(timed[0] * timed[1] ** 2, time.perf_counter() - t0)


class Upscaler(ImageKind):
    task = "super-resolution"

    def pick(self, reg: Loaded, name: str | None, scale: float | None, mode: str | None = None) -> Model:
        """By name (any scale: its output is resized); by ``mode`` for real photos (faithful: real-xN-l1, crisp:
        real-xN); else the default upscaler for the scale: sr-x2 up to x2, sr-x4 above (the other when only one
        is loaded)."""
        if name:
            if mode:
                raise errors.unprocessable("give either model or mode, not both")
            return self.named(reg, name, "an upscaler")
        native, other = scales_for(scale)
        if mode:
            for s in (native, other):
                if real_photo_upscaler(s, mode) in reg.models:
                    return reg.models[real_photo_upscaler(s, mode)]
            raise errors.unprocessable(f"mode={mode} needs a real-photo model ({real_photo_upscaler(native, mode)}), "
                                       "which is not loaded")
        for s in (native, other):
            # fp16 is only loaded where a GPU runs it, int8 only where the CPU does (GAN_FP16, GAN_INT8)
            for preferred in default_upscalers(s):
                if preferred in reg.models:
                    return reg.models[preferred]
            for m in self.loaded(reg):
                if m.scale == s and "domain" not in m.card:  # not e.g. the face model
                    return m
        if not reg.models:
            raise errors.unavailable(reg.settings.retry_after_s, "no model is loaded; see /readyz")
        raise errors.unprocessable("no general upscaler (x2 or x4) is loaded")

    def face_model(self, reg: Loaded) -> Model:
        """The model that upscales faces for /upscale?faces=true (GAN_FACE_MODEL)."""
        name = reg.settings.face_model
        if name not in reg.models:
            why = f": {reg.failed[name]}" if name in reg.failed else ""
            raise errors.unprocessable(f"faces=true needs the face model '{name}' (GAN_FACE_MODEL), which is not loaded{why}")
        return reg.models[name]


class Degrader(ImageKind):
    task = "degradation"

    def tiles(self, model: Model, tile_size: int) -> tuple[int, int]:
        """Tiles are planned on its output grid (app/degrader.py): the input tile is that times the scale."""
        return output_tile(tile_size, model.scale) * model.scale, 64 * model.scale

    def pick(self, reg: Loaded, scale: int) -> Model:
        """The learned degradation model for a reduction by ``scale``: the one of that scale, else the smallest
        one above it (the input is enlarged first, see app/degrader.py)."""
        found = sorted(self.loaded(reg), key=lambda m: m.scale)
        if not found:
            raise errors.unprocessable("no learned degradation model is loaded; use method=pipeline")
        for m in found:
            if m.scale == scale:
                return m
        return next((m for m in found if m.scale > scale), found[-1])


class TextKind(Kind):
    text = True
    warm: ClassVar[Callable[[Model, int], None]]  # one run of zeros at a batch size (app/text_to_image.py)

    def max_batch(self, card: dict, onnx_path: Path, settings: Settings, gpu: bool) -> int:
        return t2i.max_batch(card, onnx_path, settings.batch_for(True, gpu))

    def warmup(self, model: Model, settings: Settings) -> None:
        for batch in sorted({1, model.batcher.max_batch}):
            type(self).warm(model, batch)


class TextEncoder(TextKind):
    task = t2i.ENCODER_TASK
    warm = t2i.warmup_encoder

    def tokenizer(self, card_path: Path, card: dict, settings: Settings) -> Any:
        return t2i.load_tokenizer(card_path, card, settings.verify_sha256)


class TextToImage(TextKind):
    task = t2i.GENERATOR_TASK
    warm = t2i.warmup_generator

    def check(self, model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
        t2i.check_generator(model, models, failed)

    def pick(self, reg: Loaded, name: str | None, arch: str | None = None) -> Model:
        """By name; else the first loaded one (by name) of ``arch``, or of the default architecture
        (GAN_T2I_GENERATOR) when none is asked, then any. A card without ``arch`` is GAN-INT-CLS."""
        def arch_of(m: Model) -> str:
            return m.card.get("arch", t2i.DEFAULT_ARCH)

        if name:
            model = self.named(reg, name, "a text-to-image model")
            if arch and arch_of(model) != arch:
                raise errors.unprocessable(f"model '{name}' is a {arch_of(model)} generator, not {arch}")
            return model
        found = self.loaded(reg)
        if not found:
            raise errors.unprocessable("no text-to-image model is loaded on this server (/readyz lists models that failed to load)")
        if arch:
            found = [m for m in found if arch_of(m) == arch]
            if not found:
                raise errors.unprocessable(f"no {arch} generator is loaded on this server")
        return sorted(found, key=lambda m: arch_of(m) != reg.settings.t2i_generator)[0]


class StyleEncoder(TextKind):
    task = t2i.STYLE_TASK
    warm = t2i.warmup_style_encoder

    def check(self, model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
        t2i.check_style_encoder(model, models, failed)

    def pick(self, reg: Loaded, generator: Model) -> Model:
        """The style encoder made for ``generator`` (its card's ``generator``)."""
        for m in self.loaded(reg):
            if m.card.get("generator") == generator.name:
                return m
        raise errors.unprocessable(f"style_image needs a style encoder for '{generator.name}', and none is loaded")


UPSCALER, DEGRADER, TEXT_ENCODER, TEXT_TO_IMAGE, STYLE_ENCODER = Upscaler(), Degrader(), TextEncoder(), TextToImage(), StyleEncoder()
KINDS: dict[str, Kind] = {k.task: k for k in (UPSCALER, DEGRADER, TEXT_ENCODER, TEXT_TO_IMAGE, STYLE_ENCODER)}


def of(task: str) -> Kind:
    try:
        return KINDS[task]
    except KeyError:
        raise ValueError(f"unknown task '{task}' (known: {', '.join(KINDS)})") from None
