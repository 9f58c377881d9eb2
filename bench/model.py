"""Raw model speed: a Pareto table of every upscaler, and ONNX Runtime against PyTorch eager.

    python -m bench.model [--models models] [--size 256] [--repeat 5]      # the Pareto table
    python -m bench.model --eager models/sr-x4.onnx [--tile 96] [--batches 1 8]

The Pareto table: for every super-resolution card in the folder (fp16 variants, which are for GPUs, left out),
params, MFLOP per input pixel, CPU milliseconds per input megapixel (one whole image of size x size through
ONNX Runtime, median of --repeat, every model timed in this one run, the float file beside its int8 variant)
and the Y-PSNR its card records on Set5 / Set14 / BSD68. ``--eager`` rebuilds one card's network in PyTorch
(random weights: speed does not depend on them; needs the train extra) and times both runtimes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import machine, median_time, sgemm_gflops, table

SETS = ("Set5", "Set14", "BSD68")


def ms_per_mp(path: Path, size: int, repeat: int, threads: int = 0) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    return 1000 * median_time(lambda: sess.run(None, {"image": x}), repeat=repeat) / (size * size / 1e6)


def pareto(folder: Path, size: int, repeat: int, threads: int = 0) -> None:
    cards = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if not p.name.endswith(".tokenizer.json")]
    cards = [c for c in cards if c.get("task") == "super-resolution" and c.get("precision") != "fp16"]
    peak = sgemm_gflops()
    rows, fp32_ms = [], {}
    for c in sorted(cards, key=lambda c: (c.get("variant_of", c["name"]), c.get("precision", ""))):
        ms = ms_per_mp(folder / c["onnx"]["file"], size, repeat, threads)
        flops = c["flops_per_input_pixel"]
        base = c.get("variant_of")
        speed = f"{fp32_ms[base] / ms:.2f}x" if base in fp32_ms else ""
        if not base:
            fp32_ms[c["name"]] = ms
        psnr = [f"{c['metrics'][s]['psnr_y']:.2f}" if s in c.get("metrics", {}) else "-" for s in SETS]
        rows.append([c["name"], f"x{c['scale']}", c.get("precision", "fp32"), f"{c['params'] / 1e3:.0f}K", f"{flops / 1e6:.2f}",
                     f"{ms:.0f}", speed, f"{flops * 1e6 / (ms / 1000) / 1e9:.0f}", *psnr])
    print(f"# upscalers in {folder}: {size}x{size} input, whole image, ONNX Runtime CPU, {threads or 'all'} intra-op threads; "
          f"{machine()}; sgemm {peak:.0f} GFLOP/s")
    print(table(["model", "scale", "precision", "params", "MFLOP / input px", "ms / input MP", "vs fp32", "GFLOP/s",
                 *(f"{s} Y-PSNR" for s in SETS)], rows))


def eager(model: str, tile: int, batches: list[int], repeat: int) -> None:
    import torch

    from training import nets

    card = json.loads(Path(model).with_suffix(".json").read_text())
    flops_px = card["flops_per_input_pixel"]
    peak = sgemm_gflops()
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    net = nets.build(card["arch"], card["net_config"]).eval()
    rows = []
    for b in batches:
        x = np.random.rand(b, 3, tile, tile).astype(np.float32)
        xt = torch.from_numpy(x)
        t_ort = median_time(lambda x=x: sess.run(None, {"image": x}), repeat=repeat)
        with torch.inference_mode():
            t_pt = median_time(lambda xt=xt: net(xt).clamp(0, 1), repeat=repeat)
        gflop = flops_px * b * tile**2 / 1e9
        for name, t in (("onnxruntime", t_ort), ("pytorch eager", t_pt)):
            rows.append([name, b, f"{tile}->{tile * card['scale']}", b / t, gflop / t, f"{100 * gflop / t / peak:.0f}%"])
        rows.append(["ratio ORT/PyTorch", b, "", t_pt / t_ort, "", ""])
    print(f"# {card['name']}: {flops_px / 1e6:.2f} MFLOP per input pixel; {machine()}; sgemm {peak:.0f} GFLOP/s; torch threads {torch.get_num_threads()}")
    print(table(["runtime", "batch", "tile", "tiles/s", "GFLOP/s", "of sgemm"], rows))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="models", help="folder of cards (the Pareto table)")
    p.add_argument("--size", type=int, default=256, help="input side of the Pareto table's image")
    p.add_argument("--eager", metavar="MODEL", help="NAME.onnx: ORT against PyTorch eager instead of the table")
    p.add_argument("--tile", type=int, default=96)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads for the table (0: all cores)")
    args = p.parse_args()
    if args.eager:
        eager(args.eager, args.tile, args.batches, args.repeat)
    else:
        pareto(Path(args.models), args.size, args.repeat, args.threads)


if __name__ == "__main__":
    main()
