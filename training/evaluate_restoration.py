"""Ground-truth evaluation of real-world restoration: known degradations of benchmark images, scored against the HR.

Each degradation is a fixed recipe (HR blur -> downscale -> noise -> compression), so every model sees the
same LR: the noise and the image are seeded by (degradation, image). Y-PSNR / SSIM follow the shared design
notes (Y channel, border = scale). The family spans what the issue names: isotropic and anisotropic Gaussian
blur (sigma 0.5-3 in HR pixels), several downscale kernels, Gaussian and Poisson noise (colour and grey,
sigma 1-15), JPEG 30-95, and combinations of them.

Held out of training (``held_out=True``): degradations that the training pipeline in ``degradations`` never
draws: a Lanczos downscale, a defocus (disk) blur and WebP compression. Their average is reported apart, so
a model that only learned the training distribution shows it. The trained combinations (``combined``: two or more
of blur, resampling, noise and compression, as a real photo carries them) get an average of their own as well.
"""
from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from degradations.pipeline import blur, gaussian_kernel, jpeg
from training import data, metrics

Upscaler = Callable[[np.ndarray], np.ndarray]
# Antialiased downscale kernels (Pillow widens each filter by the scale, as MATLAB's imresize does)
DOWN = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX,
        "lanczos": Image.Resampling.LANCZOS}


@dataclasses.dataclass(frozen=True)
class Degradation:
    """One recipe, applied in the classical order: blur (HR) -> downscale -> noise -> compression."""

    name: str
    blur: tuple[float, float, float] | None = None  # Gaussian sigma_x, sigma_y, theta (degrees), in HR pixels
    disk: float = 0.0  # defocus: radius in HR pixels of a uniform disk (held out: training never blurs so)
    down: str = "bicubic"  # a key of DOWN
    noise: float = 0.0  # Gaussian sigma on the 0..255 scale; with poisson=True, the Poisson scale instead
    poisson: bool = False
    gray_noise: bool = False
    jpeg: int = 0  # JPEG quality (0: none)
    webp: int = 0  # WebP quality (0: none); held out
    held_out: bool = False

    @property
    def combined(self) -> bool:
        """A realistic combination (two or more of blur, a resampling kernel other than bicubic, noise,
        compression), trained kinds only: what a real photo carries, and what issue 21 judges on."""
        parts = (bool(self.blur or self.disk), self.down != "bicubic", bool(self.noise), bool(self.jpeg or self.webp))
        return sum(parts) >= 2 and not self.held_out

    def apply(self, hr: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
        img = hr.astype(np.float32) / 255.0
        if self.blur:
            sx, sy, theta = self.blur
            img = blur(img, gaussian_kernel(2 * int(np.ceil(3 * max(sx, sy))) + 1, sx, sy, np.deg2rad(theta)))
        if self.disk:
            r = int(np.ceil(self.disk))
            yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
            k = (np.hypot(xx, yy) <= self.disk).astype(np.float32)
            img = blur(img, k / k.sum())
        h, w = hr.shape[:2]
        u8 = Image.fromarray(np.round(np.clip(img, 0, 1) * 255.0).astype(np.uint8))
        img = np.asarray(u8.resize((w // scale, h // scale), DOWN[self.down]), np.float32) / 255.0
        if self.noise:
            shape = img.shape[:2] + ((1,) if self.gray_noise else (3,))
            if self.poisson:
                base = img.mean(axis=2, keepdims=True) if self.gray_noise else img
                photons = np.clip(base, 0, 1) * 255.0 / self.noise
                img = img + ((rng.poisson(photons) - photons) * self.noise / 255.0).astype(np.float32)
            else:
                img = img + rng.normal(0.0, self.noise / 255.0, shape).astype(np.float32)
            img = np.clip(img, 0.0, 1.0)
        if self.jpeg:
            img = jpeg(img, self.jpeg)
        u8 = np.round(np.clip(img, 0, 1) * 255.0).astype(np.uint8)
        if self.webp:
            ok, buf = cv2.imencode(".webp", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, self.webp])
            u8 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return u8


D = Degradation
FAMILY: tuple[Degradation, ...] = (
    D("clean (bicubic)"),
    D("blur iso 1.0", blur=(1.0, 1.0, 0)),
    D("blur iso 2.0", blur=(2.0, 2.0, 0)),
    D("blur iso 3.0", blur=(3.0, 3.0, 0)),
    D("blur aniso 2.5x0.8 30deg", blur=(2.5, 0.8, 30)),
    D("blur aniso 0.5x2.0 -60deg", blur=(0.5, 2.0, -60)),
    D("down bilinear", down="bilinear"),
    D("down area", down="area"),
    D("noise gauss 5", noise=5),
    D("noise gauss 15", noise=15),
    D("noise gauss 10 grey", noise=10, gray_noise=True),
    D("noise poisson 1.0", noise=1.0, poisson=True),
    D("jpeg 30", jpeg=30),
    D("jpeg 60", jpeg=60),
    D("jpeg 90", jpeg=90),
    D("blur 1.5 + noise 5 + jpeg 75", blur=(1.5, 1.5, 0), noise=5, jpeg=75),
    D("blur 2 + noise 10 + jpeg 50", blur=(2.0, 2.0, 0), noise=10, jpeg=50),
    D("aniso + poisson 0.5 grey + jpeg 60", blur=(1.8, 0.7, 45), noise=0.5, poisson=True, gray_noise=True, jpeg=60),
    D("area + noise 3 + jpeg 85", blur=(0.8, 0.8, 0), down="area", noise=3, jpeg=85),
    D("blur 1.2 + bilinear + noise 8 grey + jpeg 40", blur=(1.2, 1.2, 0), down="bilinear", noise=8, gray_noise=True, jpeg=40),
    # held out of training: kinds the training pipeline never draws
    D("down lanczos", down="lanczos", held_out=True),
    D("defocus disk 2", disk=2.0, held_out=True),
    D("webp 50", webp=50, held_out=True),
    D("defocus 1.5 + lanczos + noise 6 + webp 60", disk=1.5, down="lanczos", noise=6, webp=60, held_out=True),
)


def _seed(degradation: str, image: str) -> int:
    return zlib.crc32(f"{degradation}|{image}".encode())


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lr: data.bicubic_resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale))


def evaluate(upscalers: dict[str, Upscaler], bench_dirs: list[str], scale: int,
             family: tuple[Degradation, ...] = FAMILY) -> dict:
    """{set: {degradation: {model: [psnr_y, ssim_y]}}} averaged over the set's images."""
    results: dict = {}
    for d in bench_dirs:
        paths = data.list_images([d])
        if not paths:
            raise ValueError(f"no images in benchmark folder {d}")
        hrs = [(p.name, data.mod_crop(data.load_rgb(p), scale)) for p in paths]
        per_set: dict = {}
        for deg in family:
            scores: dict[str, list] = {name: [] for name in upscalers}
            for image, hr in hrs:
                lr = deg.apply(hr, scale, np.random.default_rng(_seed(deg.name, image)))
                for name, up in upscalers.items():
                    sr = up(lr)
                    scores[name].append((metrics.psnr_y(sr, hr, scale), metrics.ssim_y(sr, hr, scale)))
            per_set[deg.name] = {name: [round(float(v), 4) for v in np.mean(s, axis=0)] for name, s in scores.items()}
        results[Path(d).name] = per_set
    return results


def _averages(family: tuple[Degradation, ...]) -> list[tuple[str, str, set[str]]]:
    """(card key prefix, table label, degradation names) of each average: the trained kinds, the trained
    combinations and the held-out kinds; an empty group gets no average."""
    held = {d.name for d in family if d.held_out}
    groups = [("", "trained kinds", {d.name for d in family} - held),
              ("combined_", "combinations", {d.name for d in family if d.combined}), ("held_out_", "held out", held)]
    return [g for g in groups if g[2]]


def summary(results: dict, family: tuple[Degradation, ...] = FAMILY) -> dict:
    """{set: {model: {psnr_y, ssim_y, combined_psnr_y, combined_ssim_y, held_out_psnr_y, held_out_ssim_y,
    degradations}}}: the averages over the family's trained kinds, its trained combinations and its held-out kinds."""
    out: dict = {}
    for bench, per_set in results.items():
        models = next(iter(per_set.values())).keys()
        out[bench] = {}
        for m in models:
            row: dict = {"degradations": len(per_set)}
            for prefix, _, names in _averages(family):
                mean = np.array([v[m] for k, v in per_set.items() if k in names]).mean(0)
                row |= {f"{prefix}psnr_y": round(float(mean[0]), 3), f"{prefix}ssim_y": round(float(mean[1]), 4)}
            out[bench][m] = row
    return out


def format_tables(results: dict, family: tuple[Degradation, ...] = FAMILY) -> str:
    held = {d.name for d in family if d.held_out}
    avg = summary(results, family)
    parts = []
    for bench, per_set in results.items():
        models = list(next(iter(per_set.values())))
        lines = [f"### {bench}: Y-PSNR / SSIM", "", "| degradation | " + " | ".join(models) + " |",
                 "|---|" + "---|" * len(models)]
        for deg, row in per_set.items():
            name = f"{deg} (held out)" if deg in held else deg
            lines.append(f"| {name} | " + " | ".join(f"{row[m][0]:.2f} / {row[m][1]:.3f}" for m in models) + " |")
        for prefix, label, _ in _averages(family):
            lines.append(f"| **average ({label})** | " + " | ".join(
                f"**{avg[bench][m][prefix + 'psnr_y']:.2f}** / {avg[bench][m][prefix + 'ssim_y']:.3f}" for m in models) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def default_models(models_dir: str | Path, scale: int) -> list[Path]:
    """sr-xN and every real-xN* model in the folder (not their fp16/int8 variants)."""
    root = Path(models_dir)
    found = [root / f"sr-x{scale}.onnx", *sorted(root.glob(f"real-x{scale}*.onnx"))]
    return [p for p in found if p.exists() and not p.stem.endswith(("-fp16", "-int8"))]


def run(model_paths: list[Path], bench_dirs: list[str], scale: int) -> dict:
    from training.evaluate import model_scale, onnx_upscaler

    upscalers: dict[str, Upscaler] = {"bicubic": bicubic_upscaler(scale)}
    for path in model_paths:
        up, sess = onnx_upscaler(path)
        if model_scale(sess) != scale:
            raise ValueError(f"{path} upscales x{model_scale(sess)}, not x{scale}")
        upscalers[Path(path).stem] = up
    return evaluate(upscalers, bench_dirs, scale)


def write_cards(results: dict, model_paths: dict[str, Path], scale: int) -> None:
    """Put the run's averages (every model's and bicubic's, measured together) into each model's card under
    ``restoration_xN``: beside ``metrics`` (what export measured, also embedded in the ONNX file), as it is measured
    after export, on the shipped files together."""
    avg = summary(results)
    for path in model_paths.values():
        card_path = path.with_suffix(".json")
        card = json.loads(card_path.read_text())
        card[f"restoration_x{scale}"] = {
            "command": f"python -m training evaluate-restoration --scale {scale}",
            "held_out": [d.name for d in FAMILY if d.held_out],
            "models": list(next(iter(avg.values()))),
            "sets": avg,
        }
        card_path.write_text(json.dumps(card, indent=2) + "\n")
