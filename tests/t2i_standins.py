"""Tiny exact stand-ins for the text-to-image models (same contracts as the shipped ones), built with
onnx.helper and an in-memory `tokenizers` word-level tokenizer, plus numpy references of what they compute.

- encoder: embedding table lookup, mean over the attention mask, L2 normalisation (as all-MiniLM's pooling).
- generator: sigmoid([text_embedding, noise] @ W) as a 3x8x8 image, enlarged x8 (nearest) to 3x64x64.
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


def write_generator(models_dir: Path, name: str = "t2i-test64", encoder: str = "text-encoder") -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    w = weights()
    nodes = [
        helper.make_node("Concat", ["text_embedding", "noise"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["small"]),
        helper.make_node("Resize", ["small", "", "scales"], ["image"], mode="nearest"),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["N", DIM]),
         helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["N", Z_DIM])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
                     helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 3, 8, 8]),
                     helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 8.0, 8.0])],
    )
    return _save(graph, models_dir, name, {"task": "text-to-image", "size": 64, "z_dim": Z_DIM, "text_encoder": encoder,
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


def image(prompt: str, seed: int) -> np.ndarray:
    """The 64x64x3 uint8 image the stand-ins give for ``prompt`` and ``seed`` (noise as the service draws it)."""
    z = np.random.default_rng(seed).standard_normal(Z_DIM).astype(np.float32)
    x = np.concatenate([embedding(prompt), z]).astype(np.float64)
    small = 1 / (1 + np.exp(-(x @ weights()))).reshape(3, 8, 8)
    return np.round(small.repeat(8, 1).repeat(8, 2) * 255).astype(np.uint8).transpose(1, 2, 0)
