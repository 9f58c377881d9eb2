"""Export a trained generator to ONNX with its card.

The contract (read by app/registry.py): ``NAME.onnx`` with input ``image`` float32 [N,3,H,W] RGB in [0,1]
and output ``output`` float32 [N,3,sH,sW] in [0,1] (clamped inside the graph), dynamic N/H/W, opset 17;
``NAME.json`` beside it, the card. The card (without its sha256) is also stored in the ONNX file's
metadata_props, with the scalar fields the runtime needs as their own keys.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

import cards
from training import nets
from training.train_sr import load_ema

OPSET = 17
PARITY_ATOL = 1e-4
PARITY_SHAPES = [(1, 3, 17, 23), (2, 3, 32, 32), (1, 3, 48, 64)]


class Clamped(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*inputs).clamp(0.0, 1.0)


def _is_h2l(net: torch.nn.Module) -> bool:
    return isinstance(net, nets.H2LGenerator)


def _example_inputs(net: torch.nn.Module, shape: tuple[int, ...], gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Named inputs of the exported graph: ``image`` and, for the High-to-Low generator, ``noise``."""
    inputs = {"image": torch.rand(*shape, generator=gen)}
    if _is_h2l(net):
        inputs["noise"] = torch.randn(shape[0], net.config.z_dim, generator=gen)
    return inputs


def export_onnx(net: torch.nn.Module, path: Path) -> None:
    wrapped = Clamped(net).eval()
    inputs = _example_inputs(net, (1, 3, 32, 32))
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "out_height", 3: "out_width"}}
    if "noise" in inputs:
        axes["noise"] = {0: "batch"}
    torch.onnx.export(
        wrapped, tuple(inputs.values()), str(path), input_names=list(inputs), output_names=["output"],
        dynamic_axes=axes, opset_version=OPSET, dynamo=False,
    )


def check_parity(net: torch.nn.Module, path: Path, shapes=PARITY_SHAPES, atol: float = PARITY_ATOL) -> float:
    """Max abs difference ORT vs PyTorch over random inputs of several shapes; raises if above atol."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    if _is_h2l(net):  # its input sides must be multiples of the scale
        s = net.config.scale
        shapes = [(n, c, h - h % s + s, w - w % s + s) for n, c, h, w in shapes]
    for shape in shapes:
        inputs = _example_inputs(net, shape, gen)
        with torch.no_grad():
            ref = Clamped(net).eval()(*inputs.values()).numpy()
        got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} for input {shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > atol:
        raise RuntimeError(f"ONNX/PyTorch parity failed: max abs diff {worst:.2e} > {atol:.0e}")
    return worst


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_card(onnx_path: Path, card: dict) -> None:
    """The card into the file's metadata_props, then beside it as NAME.json with the file's new sha256 and size."""
    card["onnx"].pop("sha256", None)
    card["onnx"].pop("bytes", None)
    write_metadata(onnx_path, card)
    card["onnx"]["sha256"] = sha256_file(onnx_path)
    card["onnx"]["bytes"] = onnx_path.stat().st_size
    onnx_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def write_metadata(path: Path, card: dict) -> None:
    """Store the card and its key scalars in the ONNX file's metadata_props (as Ultralytics does). Every exporter
    comes through here: a card that does not validate (cards.ModelCard) is refused before anything is written."""
    cards.validate(card)
    import onnx

    model = onnx.load(str(path))
    props = {"card": json.dumps(card), "name": card["name"], "task": card["task"]}
    if "scale" in card:  # upscalers and degraders; the text-to-image models have none
        props["scale"] = str(card["scale"])
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    model.producer_name = "gan-upscale-service training"
    onnx.save(model, str(path))


# Run-bookkeeping fields of a training config that do not describe how the model was trained.
_NOT_TRAINING = {"run_dir", "command", "threads", "val_every", "ckpt_every", "log_every", "val_crop"}


def training_summary(ck: dict, run_dir: Path | None = None) -> dict:
    """The card's ``training`` section: the command (and any resumes that changed the settings), every
    setting that shaped the model (as they were at the end), steps, time, device."""
    tc = ck["train_config"]
    config = run_dir / "config.json" if run_dir else None
    resumed = json.loads(config.read_text()).get("resumed_with", []) if config and config.exists() else []
    init, init_card = tc.get("init", ""), {}
    if init.endswith(".onnx") and Path(init).with_suffix(".json").exists():  # started from an exported model: how it was made
        init_card = json.loads(Path(init).with_suffix(".json").read_text())
    elif init.endswith(".pt") and Path(init).exists():  # started from another run's checkpoint: that run's summary
        init_card = {"training": training_summary(torch.load(init, map_location="cpu", weights_only=False), Path(init).parent)}
    return {
        "command": tc["command"],
        **({"resumed_with": resumed} if resumed else {}),
        **({"init_training": init_card.get("training", {})} if init_card else {}),
        **{k: v for k, v in tc.items() if k not in _NOT_TRAINING and v not in ("", None, {})},
        "steps": ck["step"],
        "wall_time_s": round(ck.get("elapsed", 0.0)),
        "device": ck.get("device", "not recorded"),
    }


def default_description(arch: str, tc: dict, scale: int) -> str:
    if arch == "h2l":
        return (f"Learned High-to-Low degradation x{scale} (Bulat et al. 2018): HR photo + noise vector -> a "
                "low-resolution image degraded like real web photos (trained unpaired against real low-quality photos).")
    net = {"span": "Efficient (SPAN-style, conv-only)", "srresnet": "SRResNet"}.get(arch, arch)
    realistic = (f"trained on realistic LR ({tc['degradation']}: classical degradation pipeline and/or learned "
                 "High-to-Low net)") if tc.get("degradation", "bicubic") != "bicubic" else ""
    adversarial = (f"fine-tuned adversarially ({tc['disc']} discriminator, {tc['gan_loss']} loss, feature matching, "
                   "TV)") if "disc" in tc else ""
    if realistic:
        return f"{net} x{scale} {' and '.join(filter(None, (realistic, adversarial)))}. Best for real photos: JPEG, noise, blur."
    if adversarial:
        return f"{net} x{scale} {adversarial}: sharper, photo-realistic texture at some PSNR cost."
    return (f"PSNR-oriented {net} x{scale} (L1 on bicubic-downscaled LR). Best for clean, "
            "bicubic-like inputs; soft on heavily compressed or noisy photos.")


FACE_USE = (
    "Upscales small faces x4 (trained on aligned 32 px face crops; in whole photos, POST /upscale?faces=true, on "
    "face squares of 16-64 px), from clean or mildly degraded (blur, noise, JPEG) inputs. Trained on UTKFace crops "
    "(all ages, several ethnicities; colour and 15% grayscale). "
    "Limitations: the output is a plausible face, not evidence of identity: details it adds (eyes, teeth, skin) are "
    "invented from what faces usually look like and must not be used to identify anyone, in forensics or as proof. "
    "Profiles, occlusions, very low light and faces unlike its training data come out worse."
)


def interpolate_weights(net: torch.nn.Module, ck: dict, other: str, alpha: float) -> None:
    """Network interpolation (ESRGAN, Wang et al. 2018): set ``net``'s weights to alpha x its own + (1 - alpha) x
    those of ``other`` (a checkpoint or exported .onnx of the same net), e.g. a GAN fine-tune and the PSNR model
    it started from, to choose a point between fidelity and sharpness without retraining."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"interpolation alpha {alpha} is not in [0, 1]")
    base, base_ck = load_ema(other)
    if (base_ck["arch"], base_ck["net_config"]) != (ck["arch"], ck["net_config"]):
        raise ValueError(f"{other} is {base_ck['arch']} {base_ck['net_config']}, not {ck['arch']} {ck['net_config']}")
    theirs = base.state_dict()
    net.load_state_dict({k: alpha * v + (1.0 - alpha) * theirs[k] for k, v in net.state_dict().items()})


def export_run(run: str | Path, out_dir: str | Path, name: str, bench: list[str], notes: str = "",
               description: str = "", real_photos: dict[str, list[Path]] | None = None, compare: list[str] = (),
               faces: list[str] = (), interpolate: tuple[str, float] | None = None) -> dict:
    """Export a run to NAME.onnx + card. ``real_photos`` (sets of real low-quality photos) adds NIQE of the
    model's outputs on them, next to bicubic and the ``compare`` models, measured in the same run; ``faces``
    (folders of held-out aligned faces) makes it a face model, with the face table of evaluate_faces;
    ``interpolate`` = (other model, alpha) exports alpha x this run's weights + (1 - alpha) x the other's."""
    from training.evaluate import evaluate_onnx

    run, out_dir = Path(run), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run / "ckpt.pt" if run.is_dir() else run
    net, ck = load_ema(ckpt)
    tc = ck["train_config"]
    if interpolate:
        interpolate_weights(net, ck, *interpolate)
    onnx_path = out_dir / f"{name}.onnx"
    export_onnx(net, onnx_path)
    parity = check_parity(net, onnx_path)
    scale = net.config.scale
    image = {"name": "image", "dtype": "float32", "shape": ["N", 3, "H", "W"], "range": [0, 1], "color": "RGB"}
    if _is_h2l(net):
        task, out_shape = "degradation", ["N", 3, f"H/{scale}", f"W/{scale}"]
        inputs = [{**image, "note": f"H and W multiples of {scale}"},
                  {"name": "noise", "dtype": "float32", "shape": ["N", net.config.z_dim], "distribution": "standard normal"}]
    else:
        task, out_shape, inputs = "super-resolution", ["N", 3, f"{scale}H", f"{scale}W"], [image]
    card = {
        "name": name,
        "task": task,
        "scale": scale,
        "description": description or default_description(ck["arch"], tc, scale),
        "arch": ck["arch"],
        "net_config": ck["net_config"],
        "params": nets.count_params(net),
        "flops_per_input_pixel": nets.flops_per_input_pixel(net),
        "inputs": inputs,
        "outputs": [{"name": "output", "dtype": "float32", "shape": out_shape, "range": [0, 1], "color": "RGB"}],
        "training": training_summary(ck, run if run.is_dir() else None)
        | ({"interpolation": {"with": interpolate[0], "alpha": interpolate[1]}} if interpolate else {}),
        "metrics": {},
        "parity_max_abs_diff": parity,
        "onnx": {"file": onnx_path.name, "opset": OPSET},
        "created": dt.date.today().isoformat(),
        "notes": notes,
    }
    if task == "degradation":
        from training.evaluate_degradation import evaluate_h2l

        card["metrics"] = evaluate_h2l(onnx_path, bench, tc["lr_data"], tc["holdout"], tc["seed"], scale)
    else:
        card["metrics"] = evaluate_onnx(onnx_path, bench, scale)
        if real_photos:
            from training.evaluate_real import evaluate_real

            card["metrics"]["real_photos_niqe"] = evaluate_real([*compare, onnx_path], real_photos, scale)
        if faces:
            from training.evaluate_faces import HR_SIZE, evaluate_faces

            card |= {"domain": "faces", "trained_on": f"aligned faces, {HR_SIZE // scale} px LR -> {HR_SIZE} px",
                     "intended_use_and_limitations": FACE_USE}
            card["metrics"]["faces"] = evaluate_faces([*compare, onnx_path], list(faces))
    write_card(onnx_path, card)
    return card


FP16_MAX_PSNR_DROP = 0.05


def export_fp16(fp32_path: str | Path, bench: list[str]) -> dict:
    """A float16 variant of an exported model (inputs/outputs stay float32), for GPUs.

    Accepted only if, on every benchmark set, its Y-PSNR is within 0.05 dB of the float32 file's and
    no output is NaN (also on extreme inputs). Writes NAME-fp16.onnx + card beside the original.
    """
    import onnx
    import onnxruntime as ort
    from onnxconverter_common import float16

    fp32_path = Path(fp32_path)
    base = json.loads(fp32_path.with_suffix(".json").read_text())
    name = f"{base['name']}-fp16"
    out = fp32_path.with_name(f"{name}.onnx")
    model = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    del model.metadata_props[:]
    onnx.save(model, str(out))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for x in (np.zeros((1, 3, 16, 16), np.float32), np.ones((1, 3, 16, 16), np.float32),
              np.random.default_rng(0).random((2, 3, 24, 20), dtype=np.float32)):
        if np.isnan(sess.run(None, {"image": x})[0]).any():
            raise RuntimeError(f"{out.name} produces NaN")
    return write_variant(fp32_path, out, "fp16", bench, lambda diff: abs(diff) > FP16_MAX_PSNR_DROP,
                         " Float16 weights and compute (I/O float32): for GPUs.")


def write_variant(fp32_path: Path, out: Path, precision: str, bench: list[str], fails, note: str, extra: dict | None = None) -> dict:
    """The card of ``out``, a lower-precision copy of the exported ``fp32_path``: measured on the benchmark sets
    beside the float file; refused (the file removed) where ``fails(psnr difference in dB)`` on any set."""
    from training.evaluate import evaluate_onnx

    base = json.loads(fp32_path.with_suffix(".json").read_text())
    metrics = evaluate_onnx(out, bench, base["scale"])
    reference = evaluate_onnx(fp32_path, bench, base["scale"])
    parity = {}
    for bench_name, m in metrics.items():
        ref = reference[bench_name]["psnr_y"]
        parity[bench_name] = {"fp32_psnr_y": ref, f"{precision}_psnr_y": m["psnr_y"], "diff_db": round(m["psnr_y"] - ref, 4)}
        if fails(m["psnr_y"] - ref):
            out.unlink()
            raise RuntimeError(f"{precision} parity failed on {bench_name}: {m['psnr_y']} vs {ref} dB")
    card = {
        **base, "name": out.stem, "precision": precision, "variant_of": base["name"],
        "description": base.get("description", "") + note, "metrics": metrics, f"{precision}_parity": parity,
        **(extra or {}), "onnx": {"file": out.name, "opset": base["onnx"]["opset"]},
    }
    card.pop("parity_max_abs_diff", None)
    write_metadata(out, card)
    card["onnx"]["sha256"] = sha256_file(out)
    card["onnx"]["bytes"] = out.stat().st_size
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card
