"""Model kinds: what differs between tasks when a model is loaded, checked and warmed up, one class per kind
(in the spirit of LitServe's LitAPI). The registry looks a card's ``task`` up in KINDS and calls its kind; it
matches no task names itself. A new kind of model is one class here (plus its request code and route).

- ``tokenizer``: anything besides the ONNX file the kind loads (a text encoder's tokenizer).
- ``max_batch``: items per session call.
- ``check``: run once every model is loaded, in KINDS order (a generator needs its text encoder, a style encoder
  its generator); raising ValueError drops the model with that reason.
- ``warmup``: the first run of the serving shapes, so the first request does not pay for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from app import text_to_image as t2i
from app.config import Settings
from app.degrader import output_tile
from app.model import Model


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


class ImageKind(Kind):
    """A model that runs image tiles (N, 3, H, W)."""

    def tiles(self, model: Model, tile_size: int) -> tuple[int, int]:
        """(the tile its batches run at, the smallest input a CPU warm-up needs)."""
        return tile_size, 64

    def warmup(self, model: Model, settings: Settings) -> None:
        tile, small = self.tiles(model, settings.tile_size)
        if model.net.device == "cpu":  # shapes vary (whole images): one small run initialises the session
            model.net.warmup(1, min(tile, small))
            return
        for batch in sorted({1, model.batcher.max_batch}):  # the tile shapes seen alone and under load
            model.net.warmup(batch, tile)


class Upscaler(ImageKind):
    task = "super-resolution"


class Degrader(ImageKind):
    task = "degradation"

    def tiles(self, model: Model, tile_size: int) -> tuple[int, int]:
        """Tiles are planned on its output grid (app/degrader.py): the input tile is that times the scale."""
        return output_tile(tile_size, model.scale) * model.scale, 64 * model.scale


class TextKind(Kind):
    text = True

    def max_batch(self, card: dict, onnx_path: Path, settings: Settings, gpu: bool) -> int:
        return t2i.max_batch(card, onnx_path, settings.batch_for(True, gpu))

    def warmup(self, model: Model, settings: Settings) -> None:
        for batch in sorted({1, model.batcher.max_batch}):
            t2i.warmup(model, batch)


class TextEncoder(TextKind):
    task = t2i.ENCODER_TASK

    def tokenizer(self, card_path: Path, card: dict, settings: Settings) -> Any:
        return t2i.load_tokenizer(card_path, card, settings.verify_sha256)


class TextToImage(TextKind):
    task = t2i.GENERATOR_TASK

    def check(self, model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
        t2i.check_generator(model, models, failed)


class StyleEncoder(TextKind):
    task = t2i.STYLE_TASK

    def check(self, model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
        t2i.check_style_encoder(model, models, failed)


KINDS: dict[str, Kind] = {k.task: k for k in (Upscaler(), Degrader(), TextEncoder(), TextToImage(), StyleEncoder())}


def of(task: str) -> Kind:
    try:
        return KINDS[task]
    except KeyError:
        raise ValueError(f"unknown task '{task}' (known: {', '.join(KINDS)})") from None
