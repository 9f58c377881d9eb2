"""Raw model throughput: ONNX Runtime session vs the same network in PyTorch eager, against sgemm.

    python -m bench.model [--model models/sr-x4.onnx] [--tile 96] [--batches 1 8]

PyTorch eager is how Real-ESRGAN-style scripts run a generator: the network is rebuilt from the card's
architecture and config (random weights: speed does not depend on them). Needs the train extra.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import machine, median_time, sgemm_gflops, table


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models/sr-x4.onnx")
    p.add_argument("--tile", type=int, default=96)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    card = json.loads(Path(args.model).with_suffix(".json").read_text())
    flops_px = card["flops_per_input_pixel"]
    peak = sgemm_gflops()
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])

    import torch

    from training import nets

    net = nets.build(card["arch"], card["net_config"]).eval()
    rows = []
    for b in args.batches:
        x = np.random.rand(b, 3, args.tile, args.tile).astype(np.float32)
        xt = torch.from_numpy(x)
        t_ort = median_time(lambda: sess.run(None, {"image": x}), repeat=args.repeat)
        with torch.inference_mode():
            t_pt = median_time(lambda: net(xt).clamp(0, 1), repeat=args.repeat)
        gflop = flops_px * b * args.tile**2 / 1e9
        for name, t in (("onnxruntime", t_ort), ("pytorch eager", t_pt)):
            rows.append([name, b, f"{args.tile}->{args.tile * card['scale']}", b / t, gflop / t, f"{100 * gflop / t / peak:.0f}%"])
        rows.append(["ratio ORT/PyTorch", b, "", t_pt / t_ort, "", ""])
    print(f"# {card['name']}: {flops_px / 1e6:.2f} MFLOP per input pixel; {machine()}; sgemm {peak:.0f} GFLOP/s; torch threads {torch.get_num_threads()}")
    print(table(["runtime", "batch", "tile", "tiles/s", "GFLOP/s", "of sgemm"], rows))


if __name__ == "__main__":
    main()
