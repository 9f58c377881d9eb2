"""Tiny exact stand-ins for the text-to-image models (same contracts as the shipped ones), built with
onnx.helper and an in-memory `tokenizers` word-level tokenizer, plus numpy references of what they compute.

- encoder: embedding table lookup, mean over the attention mask, L2 normalisation (as all-MiniLM's pooling).
- generator: sigmoid([text_embedding, noise] @ W) as a 3x8x8 image, enlarged x8 (nearest) to 3x64x64.
- LAPGAN-like generator: the same coarse image plus DETAIL x (each detail map enlarged to 64 px), clipped to [0,1].
- style encoder: the per-channel mean of the image, times V (3 x z_dim).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

DIM, Z_DIM, MAX_LENGTH = 384, 8, 32
WORDS = ("a the this flower has red yellow white purple pink orange petals and dark center bright with green leaves "
         "large small round").split()
VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}


def _save(graph, models_dir: Path, name: str, card: dict) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = models_dir / f"{name}.onnx"
    onnx.save(model, str(path))
    card = {"name": name, **card, "onnx": {"file": path.name, "opset": 17, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}}
    (models_dir / f"{name}.json").write_text(json.dumps(card))
    return path


def tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def table() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((len(VOCAB), DIM)).astype(np.float32)


def weights() -> np.ndarray:
    return (np.random.default_rng(1).standard_normal((DIM + Z_DIM, 3 * 8 * 8)) * 0.5).astype(np.float32)


def write_encoder(models_dir: Path, name: str = "text-encoder", dynamic: bool = False) -> Path:
    """``dynamic``: the token vectors go through DynamicQuantizeLinear (one uint8 scale over the whole batch,
    as onnxruntime's quantize_dynamic does), so an embedding depends on its batch-mates."""
    models_dir.mkdir(parents=True, exist_ok=True)
    tokenizer().save(str(models_dir / f"{name}.tokenizer.json"))
    quant = [helper.make_node("DynamicQuantizeLinear", ["tokens"], ["q", "qscale", "qzero"]),
             helper.make_node("DequantizeLinear", ["q", "qscale", "qzero"], ["tokens_q"])] if dynamic else []
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tokens"], axis=0),          # N,L,D
        *quant,
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),   # N,L
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),                    # N,L,1
        helper.make_node("Mul", ["tokens_q" if dynamic else "tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),      # N,D
        helper.make_node("ReduceSum", ["maskf", "axis1"], ["count"], keepdims=1),        # N,1
        helper.make_node("Div", ["summed", "count"], ["mean"]),
        helper.make_node("LpNormalization", ["mean"], ["embedding"], axis=-1, p=2),
    ]
    t = table()
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "L"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])],
        initializer=[helper.make_tensor("table", TensorProto.FLOAT, t.shape, t.ravel()),
                     helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("axis2", TensorProto.INT64, [1], [2])],
    )
    tok_sha = hashlib.sha256((models_dir / f"{name}.tokenizer.json").read_bytes()).hexdigest()
    return _save(graph, models_dir, name, {"task": "text-encoder", "tokenizer": f"{name}.tokenizer.json", "tokenizer_sha256": tok_sha,
                                            "max_length": MAX_LENGTH, "dim": DIM, "description": "test stand-in"})


def _coarse_graph(output: str) -> tuple[list, list, list]:
    """(nodes, inputs, initializers) of sigmoid([text_embedding, noise] @ W) as 3x8x8, enlarged x8 into ``output``."""
    w = weights()
    nodes = [
        helper.make_node("Concat", ["text_embedding", "noise"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["small"]),
        helper.make_node("Resize", ["small", "", "scales"], [output], mode="nearest"),
    ]
    inputs = [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["N", DIM]),
              helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", Z_DIM])]
    init = [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
            helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 3, 8, 8]),
            helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 8.0, 8.0])]
    return nodes, inputs, init


def write_generator(models_dir: Path, name: str = "t2i-test64", encoder: str = "text-encoder") -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    nodes, inputs, init = _coarse_graph("image")
    graph = helper.make_graph(nodes, name, inputs, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
                              initializer=init)
    return _save(graph, models_dir, name, {"task": "text-to-image", "size": 64, "z_dim": Z_DIM, "text_encoder": encoder,
                                            "description": "test stand-in"})


DETAIL = 0.05
LEVELS = (16, 32, 64)


def style_weights() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((3, Z_DIM)).astype(np.float32)


def write_lapgan(models_dir: Path, name: str = "t2i-lap-test64", encoder: str = "text-encoder") -> Path:
    """Inputs as the exported LAPGAN: text_embedding, noise, noise_16, noise_32, noise_64."""
    models_dir.mkdir(parents=True, exist_ok=True)
    coarse, inputs, init = _coarse_graph("coarse")
    nodes = [
        *coarse,
        *(helper.make_node("Resize", [f"noise_{s}", "", f"up_{s}"], [f"big_{s}"], mode="nearest") for s in LEVELS),
        helper.make_node("Sum", [f"big_{s}" for s in LEVELS], ["maps"]),
        helper.make_node("Mul", ["maps", "detail"], ["band"]),
        helper.make_node("Add", ["coarse", "band"], ["raw"]),
        helper.make_node("Clip", ["raw", "zero", "one"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [*inputs, *(helper.make_tensor_value_info(f"noise_{s}", TensorProto.FLOAT, ["N", 1, s, s]) for s in LEVELS)],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        initializer=[*init,
                     *(helper.make_tensor(f"up_{s}", TensorProto.FLOAT, [4], [1.0, 1.0, 64 / s, 64 / s]) for s in LEVELS),
                     helper.make_tensor("detail", TensorProto.FLOAT, [], [DETAIL]),
                     helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                     helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    return _save(graph, models_dir, name, {"task": "text-to-image", "arch": "lapgan", "size": 64, "z_dim": Z_DIM,
                                            "text_encoder": encoder, "description": "test stand-in"})


def write_style_encoder(models_dir: Path, generator: str = "t2i-test64", name: str = "") -> Path:
    v = style_weights()
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "v"], ["noise"])]
    name = name or f"style-{generator}"
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", Z_DIM])],
        initializer=[helper.make_tensor("v", TensorProto.FLOAT, v.shape, v.ravel())],
    )
    return _save(graph, models_dir, name, {"task": "style-encoder", "generator": generator, "size": 64, "z_dim": Z_DIM,
                                            "description": "test stand-in"})


def write_t2i_models(models_dir: Path) -> Path:
    write_encoder(models_dir)
    write_generator(models_dir)
    return models_dir


# -- what the stand-ins compute, in numpy ---------------------------------------------------------------------
def embedding(prompt: str) -> np.ndarray:
    tok = tokenizer()
    tok.enable_truncation(MAX_LENGTH)
    ids = tok.encode(prompt.strip()).ids
    v = table()[ids].mean(0)
    return v / np.linalg.norm(v)


def _coarse(prompt: str, z: np.ndarray) -> np.ndarray:
    x = np.concatenate([embedding(prompt), z]).astype(np.float64)
    small = 1 / (1 + np.exp(-(x @ weights()))).reshape(3, 8, 8)
    return small.repeat(8, 1).repeat(8, 2)


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def image(prompt: str, seed: int, z: np.ndarray | None = None) -> np.ndarray:
    """The 64x64x3 uint8 image the stand-ins give for ``prompt`` and ``seed`` (noise as the service draws it),
    or for the noise ``z``."""
    z = np.random.default_rng(seed).standard_normal(Z_DIM).astype(np.float32) if z is None else z
    return _uint8(_coarse(prompt, z))


def lap_image(prompt: str, seed: int, detail_seed: int, z: np.ndarray | None = None) -> np.ndarray:
    """What the LAPGAN stand-in gives: detail maps drawn as the service draws them."""
    z = np.random.default_rng(seed).standard_normal(Z_DIM).astype(np.float32) if z is None else z
    maps = sum(np.random.default_rng([detail_seed, s]).standard_normal((1, s, s)).astype(np.float32).repeat(64 // s, 1).repeat(64 // s, 2)
               for s in LEVELS)
    return _uint8(_coarse(prompt, z) + DETAIL * maps)


def style_z(pixels64: np.ndarray) -> np.ndarray:
    """The style stand-in's noise for a 64x64x3 uint8 image."""
    return ((pixels64.astype(np.float32) / 255).mean((0, 1)) @ style_weights()).astype(np.float32)
