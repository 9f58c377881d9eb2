"""Training curves side by side: validation Y-PSNR against training time, from runs' stats.jsonl.

    python -m bench.curves runs/cmp/srresnet runs/cmp/span48x4 ... [--minutes 2 4 6 8 10 12] [--set5 ../shared/data/bench/Set5]

Prints one markdown table: per run its net (params, MFLOP per input pixel), steps per second, and the
validation PSNR (EMA weights, held-out training photos) reached by each mark of training time (the last
validation at or before it). With ``--set5``, the run's last checkpoint is also measured on Set5 (needs torch).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.common import table


def curve(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "val_psnr_ema" in r]


def at(points: list[dict], seconds: float) -> str:
    before = [p for p in points if p["elapsed_s"] <= seconds]
    return f"{before[-1]['val_psnr_ema']:.2f} ({before[-1]['step']})" if before else "-"


def set5(run: Path, folder: str) -> str:
    import tempfile

    from training.evaluate import evaluate_onnx
    from training.export import export_onnx
    from training.train_sr import load_ema

    net, ck = load_ema(run / "ckpt.pt")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        export_onnx(net, path)
        return f"{evaluate_onnx(path, [folder], ck['net_config']['scale'])[Path(folder).name]['psnr_y']:.2f} ({ck['step']})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--minutes", type=float, nargs="+", default=[2, 4, 6, 8, 10, 12])
    p.add_argument("--set5", default="", help="a Set5 folder: also measure each run's last checkpoint on it")
    args = p.parse_args()
    rows = []
    for run in map(Path, args.runs):
        cfg = json.loads((run / "config.json").read_text())
        points = curve(run)
        rate = points[-1]["step"] / points[-1]["elapsed_s"] if points else 0.0
        net = f"{cfg['arch']} " + " ".join(f"{k}={v}" for k, v in cfg["net"].items() if k != "scale")
        log = (run / "train.log").read_text()
        params = log.split(" params, ")[0].rsplit(": ", 1)[-1] if " params, " in log else "?"
        flops = log.split(" params, ")[1].split(" FLOPs")[0] if " params, " in log else "?"
        row = [run.name, net, f"{int(params) / 1e3:.0f}K" if params.isdigit() else params,
               f"{int(flops) / 1e6:.2f}" if flops.isdigit() else flops, f"{rate:.2f}",
               *(at(points, m * 60) for m in args.minutes)]
        if args.set5:
            row.append(set5(run, args.set5))
        rows.append(row)
    headers = ["run", "net", "params", "MFLOP / px", "steps/s", *(f"val dB at {m:g} min (step)" for m in args.minutes)]
    print(table(headers + (["Set5 dB (step)"] if args.set5 else []), rows))


if __name__ == "__main__":
    main()
