"""int8 variants of exported upscalers for CPUs: static quantization with ONNX Runtime's tools.

QDQ format, per-channel int8 weights in a 7-bit range (``reduce_range``: on x86 CPUs without VNNI, AVX2's u8 x s8
products saturate at 16 bits; with full-range weights the span net lost 0.3 dB on Set5, with 7 bits 0.01), uint8
activations whose ranges are calibrated on LR patches of training photos (never the benchmark sets), clipped at the
99.99th percentile of each tensor's values there (with the full min-max range, rare outliers widen the step: 8-block
sr-x2 lost 0.09 dB on Set5 with min-max, 0.0 with the percentile; Set14 0.035 dB either way). What sees the raw
image or writes the output can stay float (``keep_float``, ``float_nodes``): there 8 bits cost the most quality for
the least compute (for the span net, its fixed anchor and the final sum). The variant is accepted
only if its Y-PSNR on every benchmark set is within ``MAX_PSNR_DROP`` dB of the float file's.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from training import data

MAX_PSNR_DROP = 0.1
CALIB_PERCENTILE = 99.99


class PatchReader:
    """An onnxruntime CalibrationDataReader over random LR patches (bicubic downscales of HR training patches)."""

    def __init__(self, folders: list[str], scale: int, count: int, patch: int, seed: int, input_name: str = "image") -> None:
        rng = np.random.default_rng(seed)
        paths = data.list_images(folders)
        batches = []
        for i in rng.choice(len(paths), size=count, replace=len(paths) < count):
            hr = data.load_rgb(paths[int(i)])
            hp = patch * scale
            if min(hr.shape[:2]) < hp:
                hr = data.resize_short_side(hr, hp)
            y, x = int(rng.integers(hr.shape[0] - hp + 1)), int(rng.integers(hr.shape[1] - hp + 1))
            batches.append(data.to_tensor_batch([data.downscale(hr[y : y + hp, x : x + hp], scale)]))
        self._feeds = iter([{input_name: b} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def float_nodes(model_path: Path) -> list[str]:
    """The nodes kept in float. The span net: its fixed bicubic anchor (the one grouped conv, on the raw image) and
    the sum of the sub-pixel conv's output and the anchor (an 8-bit step on that sum lands in every output pixel;
    quantized, the span net's Set5 fell from 33.5 to 18.5 dB on one image); every learned conv is int8 (with its
    1x1 mixing and sub-pixel convs in float as well, sr-x4-int8 ran 1.6x fp32; int8, 0.02 dB lower on Set5).
    Other nets (no anchor conv): the first conv and the output end from the second-to-last conv on."""
    import onnx

    nodes = onnx.load(str(model_path)).graph.node
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if len(convs) < 3:
        return []
    anchors = [nodes[i].name for i in convs if any(a.name == "group" and a.i > 1 for a in nodes[i].attribute)]
    if anchors:
        return anchors + [n.name for n in nodes[convs[-1]:] if n.op_type in ("Add", "Sum")]
    tail = [n.name for n in nodes[convs[-2]:] if n.op_type in ("Conv", "Add", "Mul", "Sum")]
    return [nodes[convs[0]].name, *tail]


def quantize_file(fp32_path: Path, out_path: Path, calib: list[str], scale: int, keep_float: bool = True,
                  count: int = 64, patch: int = 64, seed: int = 0) -> dict:
    """Write the int8 QDQ model; returns what was done (for the card)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        exclude = float_nodes(pre) if keep_float else []
        quantize_static(
            str(pre), str(out_path), PatchReader(calib, scale, count, patch, seed), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True,
            calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=exclude,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibPercentile": CALIB_PERCENTILE},
        )
    return {"format": "QDQ", "weights": "int8 with a 7-bit range (reduce_range), per channel",
            "activations": f"uint8, per tensor, calibrated range clipped at the {CALIB_PERCENTILE}th percentile",
            "calibration": {"folders": calib, "patches": count, "lr_patch": patch, "seed": seed},
            "kept_float": exclude}


def export_int8(fp32_path: str | Path, bench: list[str], calib: list[str], keep_float: bool = True,
                max_drop: float = MAX_PSNR_DROP) -> dict:
    """NAME-int8.onnx + card beside NAME.onnx, checked on the benchmark sets against the float file."""
    from training.export import write_variant

    fp32_path = Path(fp32_path)
    base = json.loads(fp32_path.with_suffix(".json").read_text())
    out = fp32_path.with_name(f"{base['name']}-int8.onnx")
    how = quantize_file(fp32_path, out, calib, base["scale"], keep_float)
    return write_variant(fp32_path, out, "int8", bench, lambda diff: -diff > max_drop,
                         " int8 weights and activations (I/O float32): for CPUs.", {"quantization": how})
