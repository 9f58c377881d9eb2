"""The PSNR-oriented upscalers' step (L1/MSE, Adam, cosine LR with warm-up, EMA) on the run scaffold (training/run.py:
run directory, resume, checkpoints, logging, validation, torchrun), and the loaders of trained generators
(``load_ema``: a checkpoint's or a shipped ONNX file's) that fine-tuning, export and evaluation share.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import data, metrics, nets
from training.config import TrainConfig
from training.run import Run, describe_device, ema_update, log


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(1.0, t)))


def split_holdout(paths: list[Path], n: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministically hold `n` images (at most a fifth of them) out of training for validation."""
    n = min(n, len(paths) // 5)
    order = np.random.default_rng(seed).permutation(len(paths))
    val = {int(i) for i in order[:n]}
    return [p for i, p in enumerate(paths) if i not in val], [p for i, p in enumerate(paths) if i in val]


@torch.no_grad()
def validate(net: torch.nn.Module, val_hr: list[np.ndarray], scale: int, device: torch.device) -> float:
    """Mean Y-PSNR (border = scale) of `net` on the held-out crops."""
    net.eval()
    if not val_hr:
        return float("nan")
    scores = []
    for hr in val_hr:
        lr = data.downscale(hr, scale)
        x = torch.from_numpy(data.to_tensor_batch([lr])).to(device)
        sr = net(x).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
        scores.append(metrics.psnr_y(np.round(sr * 255.0).astype(np.uint8), hr, border=scale))
    return float(np.mean(scores))


def center_crop(img: np.ndarray, size: int, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(h, size), min(w, size)
    y, x = (h - ch) // 2, (w - cw) // 2
    return data.mod_crop(img[y : y + ch, x : x + cw], scale)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run; ``stop_at`` ends early at that step, as an interruption would.

    Under ``torchrun --nproc_per_node N`` (DistributedDataParallel): every process draws the same batch of
    ``cfg.batch`` patches and trains on its 1/N slice; the averaged gradients are the whole batch's, so N
    processes train the same weights as one. The first process validates, logs and writes checkpoints."""
    run = Run(cfg.run_dir, threads=cfg.threads, seed=cfg.seed, progress=progress)
    part, device = run.part(cfg.batch), run.device

    paths = data.list_images(cfg.data)
    train_paths, val_paths = split_holdout(paths, cfg.val_images, cfg.seed)
    log.info("data: %d images (%d train, %d held out for validation) from %s", len(paths), len(train_paths), len(val_paths), cfg.data)
    make_lr = data.lr_maker(cfg.degradation, cfg.degradation_preset, cfg.h2l_model)
    sampler = data.PatchSampler(data.load_images(train_paths, progress, cfg.resize), cfg.hr_patch, cfg.scale, seed=cfg.seed,
                                make_lr=make_lr, gray=cfg.gray, upright=cfg.upright)
    log.info("training LR: %s", cfg.degradation if cfg.degradation == "bicubic" else
             f"{cfg.degradation} (preset {cfg.degradation_preset}, learned model {cfg.h2l_model or '-'})")
    if sampler.skipped:
        log.info("skipped %d images smaller than the %dpx patch", sampler.skipped, cfg.hr_patch)
    val_hr = [center_crop(im, cfg.val_crop, cfg.scale) for im in data.load_images(val_paths, progress=False, resize=cfg.resize)]
    if not val_hr:
        log.warning("too few images to hold any out: no validation PSNR for this run")

    net = nets.build(cfg.arch, {"scale": cfg.scale, **cfg.net}).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    run.track(net=net, ema=ema, opt=opt, sampler_rng=sampler.rng)
    if cfg.init and not (resume and run.ckpt_path.exists()):
        init_net, init_ck = load_ema(cfg.init)
        if init_ck["arch"] == cfg.arch and init_ck["net_config"] == nets.config_dict(net):
            net.load_state_dict(init_net.state_dict())
        elif init_ck["arch"] == cfg.arch == "span" and {**init_ck["net_config"], "blocks": net.config.blocks} == nets.config_dict(net):
            nets.deepen(init_net, net)  # more residual blocks: the new ones start as the identity
            log.info("grown from %d to %d blocks (the new blocks start as the identity)", init_ck["net_config"]["blocks"], net.config.blocks)
        else:
            raise ValueError(f"{cfg.init} holds {init_ck['arch']} {init_ck['net_config']}, not {cfg.arch} {nets.config_dict(net)}")
        ema.load_state_dict(net.state_dict())
        log.info("starting from the EMA weights of %s (step %d)", cfg.init, init_ck["step"])
    run.begin({"trainer": "sr", "train": asdict(cfg), "arch": cfg.arch, "net": nets.config_dict(net)}, resume)
    log.info(
        "net %s %s: %d params, %d FLOPs/input px, device %s, %d threads%s",
        cfg.arch, nets.config_dict(net), nets.count_params(net), nets.flops_per_input_pixel(net), device, torch.get_num_threads(),
        f", {run.world} processes (DDP)" if run.world > 1 else "",
    )
    model = run.wrap(net)
    loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    net.train()

    def step_fn(step: int) -> dict[str, float]:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        lr_np, hr_np = sampler.sample(cfg.batch)  # the same batch in every process; each trains on its slice
        lr_np, hr_np = lr_np[part], hr_np[part]
        target = data.unsharp_mask(hr_np, cfg.gt_usm, cfg.gt_usm_radius)  # LR was made from the HR as it is
        if cfg.gt_usm and cfg.gt_usm_on == "degraded":
            clean = data.is_bicubic(lr_np, hr_np, cfg.scale)
            target[clean] = hr_np[clean]
        loss = loss_fn(model(torch.from_numpy(lr_np).to(device)), torch.from_numpy(target).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema, net, step, cfg.ema)
        return {"loss": loss.item(), "lr": lr_at(step, cfg)}

    def validated() -> dict[str, float]:
        score = validate(ema, val_hr, cfg.scale, device)
        net.train()
        return {"val_psnr_ema": score}

    def report(rec: dict) -> str | None:
        if "val_psnr_ema" not in rec:
            return None
        return f"loss {rec['loss']:.4f} val Y-PSNR (EMA) {rec['val_psnr_ema']:.3f} dB, {rec['steps_per_s']:.2f} steps/s"

    def exportable() -> dict:
        return {"arch": cfg.arch, "net_config": nets.config_dict(net), "ema": ema.state_dict(), "train_config": asdict(cfg),
                "device": describe_device(device)}

    return run.fit(cfg.steps, step_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, exportable=exportable,
                   val_every=cfg.val_every, validate=validated, report=report, stop_at=stop_at)


def load_ema(ckpt_path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The EMA generator of a checkpoint (rebuilt from the config it carries) and the checkpoint itself.

    A shipped ``.onnx`` file works too (see ``load_onnx``), so a model whose run directory is gone can be fine-tuned.
    """
    if str(ckpt_path).endswith(".onnx"):
        return load_onnx(ckpt_path)
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    net = nets.build(ck["arch"], ck["net_config"])
    net.load_state_dict(ck["ema"])
    return net.eval(), ck


def load_onnx(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """The generator of an exported model: rebuilt from the card in its metadata, weights from its initializers
    (``onnx_state``). Returns the net and a checkpoint-like dict (arch, net_config, step = the steps its card records).
    """
    card, weights = onnx_state(path, "net.")
    net = nets.build(card["arch"], card["net_config"])
    load_onnx_weights(net, weights, path)
    return net.eval(), {"arch": card["arch"], "net_config": card["net_config"], "step": card.get("training", {}).get("steps", 0)}


def onnx_state(path: str | Path, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The card in an exported file's metadata_props and its weights by state_dict key.

    The export keeps parameter names (``<prefix><state_dict key>``). Two kinds are stored under generated names
    and found through their nodes: PReLU slopes (reshaped) and the weights of bias-free Linear layers (exported
    as MatMul with the weight transposed).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    if "card" not in meta:
        raise ValueError(f"{path}: no card in its metadata_props; not an export of this project")
    weights = {i.name.removeprefix(prefix): numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("PRelu", "MatMul") and node.input[1] in weights and node.input[1].startswith("onnx::"):
            module = node.output[0].split("/")[-2]  # '/net/upsample/upsample.2/PRelu_output_0' -> 'upsample.2'
            w = weights[node.input[1]]
            weights[module + ".weight"] = w.T if node.op_type == "MatMul" else w
    return json.loads(meta["card"]), weights


def load_onnx_weights(net: torch.nn.Module, weights: dict[str, np.ndarray], path: str | Path) -> None:
    """Load ``onnx_state`` weights into ``net``. Every key must be found with the right number of values, else this
    raises rather than fine-tune a half-loaded net; only BatchNorm's step counters (not in a graph) may be missing."""
    state = net.state_dict()
    missing = [k for k, v in state.items() if (k not in weights or weights[k].size != v.numel())
               and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path}: weights not found in the graph (or of another size): {', '.join(missing[:5])}")
    net.load_state_dict({k: torch.from_numpy(weights[k].reshape(v.shape).copy()) if k in weights else v for k, v in state.items()})
