"""Text to image: prompt -> tokens -> text encoder -> embedding (+ noise per image) -> 64 px generator
[-> the x4 upscaler for 256 px] -> encode.

- Generators: GAN-INT-CLS (one noise vector ``noise``) and LAPGAN, whose graph also takes one noise map per
  finer level (``noise_16``, ``noise_32``, ``noise_64``: the "detail levels"). The coarse noise comes from the
  seed, the detail maps from the detail seed (default: the seed): ``default_rng([detail_seed, size])``. So a
  user keeps a composition (seed) and redraws its detail (detail_seed).
- A style image (task ``style-encoder``, S(x) of GAN-INT-CLS): centre-cropped, resized to 64 px, S gives the
  noise z that replaces the seed's: the image's pose and background, the prompt's content.

- The encoder (task ``text-encoder``) and the generator (task ``text-to-image``) each run through their own
  batcher, so calls from concurrent requests share one session call. A prompt is one encoder "tile": its
  tokens padded to a length bucket (16, 32, 64, ..., the card's ``max_length``), so prompts of similar length
  batch together; the attention mask keeps the padding out of the (in-graph) mean pooling.
- Except for an encoder whose graph quantises activations at run time (``DynamicQuantizeLinear``, as ONNX
  Runtime's ``quantize_dynamic`` makes): one scale per call, computed over the whole batch, padding included,
  so a prompt's embedding would depend on the prompts it happens to be batched with (cosine ~0.994 to the same
  prompt alone) and the same prompt and seed would not give the same bytes from one request (or replica) to
  the next. Such an encoder runs one prompt per call at its exact length (on one CPU thread no slower: ~6 ms
  alone against ~10 ms per prompt in a batch of 4 padded to 32 tokens); the cache takes the repeats. The
  shipped encoder is weight-only int8 (float compute): it batches.
- Prompt embeddings are kept in an LRU cache (``GAN_T2I_CACHE_SIZE``): a repeated prompt skips the encoder.
- Image i of n gets seed + i: its noise is ``numpy.random.default_rng(seed + i).standard_normal(z_dim)``, so
  the same prompt and seed give the same bytes, and image i of a batch can be asked for alone.
- Size 4 x the generator's (256 px) runs each image through the default x4 upscaler, tiled like /upscale.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from app import cpu, errors, imaging, metrics
from app.batching import QueueFull
from app.config import Settings
from app.engine import tiled
from app.model import Model
from app.tiling import TilePlan

ENCODER_TASK, GENERATOR_TASK, STYLE_TASK = "text-encoder", "text-to-image", "style-encoder"
DEFAULT_ARCH = "gan-int-cls"  # what a generator card without "arch" is
STYLE_SIZE = 64
MIN_BUCKET = 16


# -- loading (called by the registry) -------------------------------------------------------------------------
def load_tokenizer(card_path: Path, card: dict, verify: bool = True) -> Tokenizer:
    """The encoder card's tokenizer file (HF ``tokenizers`` JSON), truncating at the card's ``max_length``;
    ``verify``: its sha256 must be the card's ``tokenizer_sha256``, as the model file's is checked."""
    if "tokenizer" not in card or "max_length" not in card:
        raise ValueError("a text-encoder card needs 'tokenizer' (a tokenizers JSON file) and 'max_length'")
    path = card_path.with_name(card["tokenizer"])
    if not path.exists():
        raise FileNotFoundError(f"{path} (the encoder's tokenizer) is missing")
    if verify and hashlib.sha256(path.read_bytes()).hexdigest() != card.get("tokenizer_sha256"):
        raise ValueError(f"{path.name} does not match the card's tokenizer_sha256 (GAN_VERIFY_SHA256=false loads it anyway)")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()  # we pad to length buckets ourselves
    tok.enable_truncation(int(card["max_length"]))
    return tok


def check_generator(model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
    """A text-to-image model is served only with its text encoder (card ``text_encoder``); raises why not."""
    name = model.card.get("text_encoder")
    if not name:
        raise ValueError("a text-to-image card needs 'text_encoder' (the name of its encoder model)")
    if name not in models:
        why = f" ({failed[name]})" if name in failed else ""
        raise ValueError(f"its text encoder '{name}' is not loaded{why}")
    if models[name].task != ENCODER_TASK:
        raise ValueError(f"its text encoder '{name}' is a {models[name].task} model, not a text-encoder")
    z_dim(model)


def check_style_encoder(model: Model, models: dict[str, Model], failed: dict[str, str]) -> None:
    """A style encoder is served only with its generator (card ``generator``), whose noise it must fit."""
    name = model.card.get("generator")
    if not name:
        raise ValueError("a style-encoder card needs 'generator' (the name of the text-to-image model it inverts)")
    gen = models.get(name)
    if gen is None or gen.task != GENERATOR_TASK:
        why = f" ({failed[name]})" if name in failed else ""
        raise ValueError(f"its generator '{name}' is not loaded{why}")
    if int(model.card.get("z_dim", -1)) != z_dim(gen):
        raise ValueError(f"its z_dim {model.card.get('z_dim')} is not its generator's {z_dim(gen)}")


def max_batch(card: dict, onnx_path: Path, default: int) -> int:
    """Items per session call for a model: 1 for a text encoder with dynamic quantisation (module docstring)."""
    return 1 if card.get("task") == ENCODER_TASK and dynamic_quantised(onnx_path) else default


def dynamic_quantised(onnx_path: Path) -> bool:
    """Whether the graph has a DynamicQuantizeLinear node (its op type is stored as a plain string; no onnx needed)."""
    with open(onnx_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b"DynamicQuantizeLinear") >= 0


# Zeros of the serving shapes through a session, one function per kind (app/kinds.py calls them).
def warmup_encoder(model: Model, batch: int) -> None:
    """The encoder at the smallest length bucket."""
    batch = min(batch, model.batcher.max_batch)
    length = bucket(1, int(model.card["max_length"]))
    model.net.run(*encoder_inputs(model, np.zeros((batch, length), np.int64), np.ones((batch, length), np.int64)))


def warmup_generator(model: Model, batch: int) -> None:
    zeros = {"text_embedding": np.zeros((batch, embedding_dim(model)), np.float32), "noise": np.zeros((batch, z_dim(model)), np.float32),
             **{f"noise_{s}": np.zeros((batch, 1, s, s), np.float32) for s in detail_levels(model)}}
    model.net.run(*(zeros[n] for n in model.net.input_names))


def warmup_style_encoder(model: Model, batch: int) -> None:
    model.net.run(np.zeros((batch, 3, STYLE_SIZE, STYLE_SIZE), np.float32))


# -- model inputs ---------------------------------------------------------------------------------------------
def z_dim(model: Model) -> int:
    """The noise length: the card's ``z_dim``, else the graph's fixed ``noise`` width."""
    if "z_dim" in model.card:
        return int(model.card["z_dim"])
    shape = next((i.shape for i in model.net.session.get_inputs() if i.name == "noise"), [None, None])
    if isinstance(shape[1], int):
        return shape[1]
    raise ValueError("a text-to-image card needs 'z_dim' (the length of its noise input)")


def embedding_dim(model: Model) -> int:
    shape = next(i.shape for i in model.net.session.get_inputs() if i.name == "text_embedding")
    return int(shape[1]) if isinstance(shape[1], int) else int(model.card.get("embedding_dim", 384))


def encoder_inputs(model: Model, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """The encoder's inputs in its graph's order (``token_type_ids``, where a graph has it, are zeros)."""
    by_name = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return tuple(by_name[n] for n in model.net.input_names)


def detail_levels(model: Model) -> list[int]:
    """The sizes of a generator's detail noise maps (inputs ``noise_<size>``), coarse to fine; [] for GAN-INT-CLS."""
    return sorted(int(n.split("_", 1)[1]) for n in model.net.input_names if n.startswith("noise_") and n[6:].isdigit())


def generator_inputs(model: Model, embedding: np.ndarray, noise: np.ndarray, detail_seed: int) -> tuple[np.ndarray, ...]:
    """The generator's inputs for one image, in its graph's order; detail maps drawn from ``detail_seed``."""
    by_name = {"text_embedding": embedding, "noise": noise}
    for s in detail_levels(model):
        by_name[f"noise_{s}"] = np.random.default_rng([detail_seed, s]).standard_normal((1, s, s)).astype(np.float32)
    return tuple(by_name[n] for n in model.net.input_names)


def style_input(pixels: np.ndarray) -> np.ndarray:
    """A decoded style image (H x W x 3 uint8/uint16) -> the style encoder's input: the centred square, resized
    to 64 px (area), 3 x 64 x 64 float32 in [0,1]."""
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(pixels[top : top + side, left : left + side])
    small, _ = imaging.resize(square, (STYLE_SIZE, STYLE_SIZE))
    scale = 65535.0 if small.dtype == np.uint16 else 255.0
    return (small.astype(np.float32) / scale).transpose(2, 0, 1)


def bucket(length: int, max_length: int) -> int:
    """The padded length of a prompt of ``length`` tokens: the next power of two from 16, at most max_length."""
    b = MIN_BUCKET
    while b < length:
        b *= 2
    return min(b, max_length)


def tokenize(tokenizer: Tokenizer, prompt: str, max_length: int, pad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask), int64, zero-padded to the length bucket (the mask keeps the padding out
    of the pooling); ``pad=False``: at the prompt's exact length."""
    ids = tokenizer.encode(prompt).ids
    length = bucket(len(ids), max_length) if pad else len(ids)
    out = np.zeros(length, np.int64)
    out[: len(ids)] = ids
    mask = np.zeros(length, np.int64)
    mask[: len(ids)] = 1
    return out, mask


def noise(seed: int, dim: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


# -- the prompt cache -----------------------------------------------------------------------------------------
class PromptCache:
    """LRU of prompt embeddings, keyed by (encoder, prompt); size 0 keeps nothing."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        metrics.PROMPT_CACHE.labels("hit" if hit is not None else "miss").inc()
        return hit

    def put(self, key: tuple[str, str], embedding: np.ndarray) -> None:
        if self.size <= 0:
            return
        self._items[key] = embedding
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# -- a request ------------------------------------------------------------------------------------------------
async def _all(futures: list[asyncio.Future]) -> list:
    """Await futures in order; on any early end (deadline, error) the ones still queued are cancelled."""
    try:
        return await asyncio.gather(*futures)
    finally:
        for f in futures:
            if not f.done():
                f.cancel()


async def embed(encoder: Model, prompt: str, cache: PromptCache, settings: Settings) -> tuple[np.ndarray, bool]:
    """The prompt's embedding and whether it came from the cache. A miss holds a slot on the encoder (503)."""
    key = (encoder.name, prompt)
    hit = cache.get(key)
    if hit is not None:
        return hit, True
    ids, mask = tokenize(encoder.tokenizer, prompt, int(encoder.card["max_length"]), pad=encoder.batcher.max_batch > 1)
    embedding = await _one(encoder, encoder_inputs(encoder, ids, mask), settings)
    cache.put(key, embedding)
    return embedding, False


def to_pixels(image: np.ndarray) -> np.ndarray:
    """Generator output 3 x H x W float in [0,1] -> H x W x 3 uint8."""
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)


@dataclass
class Ask:
    """What one request asks the generator for: ``n`` images of ``prompt``. Image i gets seed + i and
    detail_seed + i (``vary`` "seed"), or keeps the seed and gets detail_seed + i (``vary`` "detail": detail draws
    of one composition). ``style``: the style image's 3 x 64 x 64 input, whose S(x) replaces the seed's noise."""

    prompt: str
    n: int
    seed: int
    detail_seed: int
    vary: str = "seed"
    size: int = 64
    format: str = "png"
    quality: int = 90
    style: np.ndarray | None = None

    def draws(self) -> list[tuple[int, int]]:
        """(seed, detail seed) of each image."""
        return [(self.seed if self.vary == "detail" else self.seed + i, self.detail_seed + i) for i in range(self.n)]


@dataclass
class Generated:
    images: list[bytes]
    media_type: str
    seeds: list[int]
    detail_seeds: list[int]
    size: int
    upscaler: Model | None
    cached: bool


async def _one(model: Model, item: tuple[np.ndarray, ...], settings: Settings) -> np.ndarray:
    """One item through a model's batcher, holding one slot on it (503 when it is full)."""
    with contextlib.ExitStack() as slot:
        try:
            slot.enter_context(model.batcher.admit())
        except QueueFull:
            raise errors.overloaded(settings.retry_after_s) from None
        model.batcher.observe_request(1)
        [out] = await _all(model.batcher.submit([item]))
    return np.asarray(out, np.float32)


async def style_noise(style: Model, image: np.ndarray, settings: Settings) -> np.ndarray:
    """S(x): the noise a style image stands for."""
    return await _one(style, (image,), settings)


async def generate(generator: Model, encoder: Model, upscaler: Model | None, style: Model | None, ask: Ask,
                   cache: PromptCache, settings: Settings) -> Generated:
    """The images of ``ask``, at the generator's size or through ``upscaler`` (4 x); ``style``: the style encoder
    for ``ask.style``."""
    embedding, cached = await embed(encoder, ask.prompt, cache, settings)
    zd = z_dim(generator)
    styled = await style_noise(style, ask.style, settings) if style is not None and ask.style is not None else None
    draws = ask.draws()
    generator.batcher.observe_request(ask.n)
    outputs = await _all(generator.batcher.submit([
        generator_inputs(generator, embedding, styled if styled is not None else noise(s, zd), d) for s, d in draws]))
    pixels = [to_pixels(o) for o in outputs]
    del outputs
    if upscaler is not None:
        h, w = pixels[0].shape[:2]
        plan = TilePlan(h, w, settings.tile_size, settings.tile_overlap, upscaler.scale)
        tasks = [asyncio.ensure_future(tiled(upscaler, p, 255, plan)) for p in pixels]
        try:
            pixels = await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
    encoded = await asyncio.gather(*(cpu.run(imaging.encode, p, None, False, ask.format, ask.quality, None, None, settings.png_compress_level)
                                       for p in pixels))
    return Generated([b for b, _ in encoded], encoded[0][1], [s for s, _ in draws], [d for _, d in draws], pixels[0].shape[0],
                     upscaler, cached)
