"""Benchmark an exported upscaler: Y-PSNR / SSIM per set, next to bicubic (see shared design notes).

Runs the shipped artifact itself (ONNX Runtime), not the PyTorch module, so a card's numbers are the
numbers of the file the service loads. HR is mod-cropped to the scale; LR is its bicubic downscale.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training import data, metrics


def onnx_upscaler(model_path: str | Path):
    """A function uint8 HxWx3 -> uint8 (sH)x(sW)x3 backed by an ONNX Runtime CPU session."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name

    def run(lr: np.ndarray) -> np.ndarray:
        out = sess.run(None, {in_name: data.to_tensor_batch([lr])})[0][0]
        return np.round(np.clip(out, 0, 1).transpose(1, 2, 0) * 255.0).astype(np.uint8)

    return run, sess


def model_scale(sess) -> int:
    meta = sess.get_modelmeta().custom_metadata_map
    return int(meta["scale"])


def evaluate(upscale, bench_dirs: list[str], scale: int) -> dict:
    results = {}
    for d in bench_dirs:
        if not data.list_images([d]):
            raise ValueError(f"no images in benchmark folder {d}")
        rows = []
        for path in data.list_images([d]):
            hr = data.mod_crop(data.load_rgb(path), scale)
            lr = data.downscale(hr, scale)
            sr = upscale(lr)
            bic = data.bicubic_resize(lr, (hr.shape[1], hr.shape[0]))
            hr_grad = metrics.gradient_energy(hr, scale)
            rows.append([
                metrics.psnr_y(sr, hr, scale), metrics.ssim_y(sr, hr, scale),
                metrics.psnr_y(bic, hr, scale), metrics.ssim_y(bic, hr, scale),
                metrics.gradient_energy(sr, scale) / hr_grad, metrics.gradient_energy(bic, scale) / hr_grad,
            ])
        m = np.mean(rows, axis=0)
        results[Path(d).name] = {
            "images": len(rows), "psnr_y": round(float(m[0]), 3), "ssim_y": round(float(m[1]), 4),
            "bicubic_psnr_y": round(float(m[2]), 3), "bicubic_ssim_y": round(float(m[3]), 4),
            # mean gradient magnitude relative to HR's (1.0 = as much high-frequency energy as the original)
            "grad_ratio": round(float(m[4]), 4), "bicubic_grad_ratio": round(float(m[5]), 4),
        }
    return results


def evaluate_onnx(model_path: str | Path, bench_dirs: list[str], scale: int | None = None) -> dict:
    run, sess = onnx_upscaler(model_path)
    return evaluate(run, bench_dirs, scale or model_scale(sess))


def format_table(results: dict) -> str:
    lines = ["| set | images | Y-PSNR | SSIM | gradient energy / HR | bicubic Y-PSNR | bicubic SSIM | bicubic gradient energy / HR |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['images']} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['grad_ratio']:.3f} | {r['bicubic_psnr_y']:.2f} | "
            f"{r['bicubic_ssim_y']:.4f} | {r['bicubic_grad_ratio']:.3f} |"
        )
    return "\n".join(lines)


def _training_cell(t: dict) -> str:
    """'N steps, M min, device', with the run it was fine-tuned from first when that was an exported model."""
    cell = f"{t.get('steps')} steps, {t.get('wall_time_s', 0) / 60:.0f} min, {t.get('device')}"
    if "init_training" in t:
        cell = f"{_training_cell(t['init_training'])}, then {cell}"
    if "interpolation" in t:
        a, other = t["interpolation"]["alpha"], Path(t["interpolation"]["with"]).stem
        cell += f"; weights blended {a:g} : {1 - a:g} with {other}'s (network interpolation)"
    return cell


def models_table(card_paths: list[Path]) -> str:
    """Markdown table of model cards: params, FLOPs and Y-PSNR/SSIM per benchmark next to bicubic."""
    lines = ["| model | scale | params | GFLOP per input MP | set | Y-PSNR / SSIM | gradient energy / HR | bicubic | training |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in card_paths:
        c = json.loads(Path(path).read_text())
        if c.get("task") != "super-resolution":
            continue
        t = c.get("training", {})
        first = True
        for bench, m in c.get("metrics", {}).items():
            if "psnr_y" not in m:  # e.g. NIQE on real photos: not a benchmark row
                continue
            head = (f"`{c['name']}` | x{c['scale']} | {c['params'] / 1e6:.2f}M | {c['flops_per_input_pixel'] / 1e3:.0f} | "
                    if first else " | | | | ")
            grad = f"{m['grad_ratio']:.3f}" if "grad_ratio" in m else "-"
            tail = _training_cell(t) if first else ""
            lines.append(f"| {head}{bench} | {m['psnr_y']:.2f} / {m['ssim_y']:.4f} | {grad} | {m['bicubic_psnr_y']:.2f} / {m['bicubic_ssim_y']:.4f} | {tail} |")
            first = False
    return "\n".join(lines)


def replace_models_table(markdown: str, table: str) -> str:
    """``markdown`` with its models table (the header row of ``models_table`` and the table rows after it) replaced by
    ``table``; the prose around it is kept as it is. A document without that table is an error, not a no-op."""
    header = table.splitlines()[0]
    lines = markdown.split("\n")
    if header not in lines:
        raise ValueError("no models table to replace (its header row is not in the document)")
    start = lines.index(header)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join([*lines[:start], *table.splitlines(), *lines[end:]])


if __name__ == "__main__":
    import sys

    print(json.dumps(evaluate_onnx(sys.argv[1], sys.argv[2:]), indent=2))
