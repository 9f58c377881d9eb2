"""One readable training loop for the PSNR-oriented upscalers (L1/MSE, Adam, cosine LR, EMA).

A run directory holds everything about one run (stylegan2-ada style):
  config.json   the full TrainConfig and network config
  ckpt.pt       latest checkpoint: net + EMA + optimiser + sampler RNG state + step (resumable)
  stats.jsonl   one JSON line per log interval / validation
  train.log     human-readable log
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training import data, metrics, nets
from training.config import TrainConfig

log = logging.getLogger("training")




def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # torchrun: one GPU per process
    return torch.device("cpu")


def distributed() -> tuple[int, int]:
    """(rank, world size). Under ``torchrun`` (WORLD_SIZE > 1) this starts the process group: NCCL on GPUs, gloo
    on CPUs. Alone: (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def mean_over_ranks(value: float, world: int) -> float:
    if world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _truncate_stats(path: Path, step: int) -> None:
    """On resume, drop log rows past the checkpoint: those steps are about to be trained again."""
    if path.exists():
        rows = []
        for r in path.read_text().splitlines():
            try:
                if json.loads(r)["step"] <= step:
                    rows.append(r)
            except (ValueError, KeyError):  # a line cut off by the interruption
                pass
        path.write_text("".join(r + "\n" for r in rows))


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


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-save never leaves a broken checkpoint


def setup_logging(run_dir: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(fmt)
    log.addHandler(fh)
    sh = logging.StreamHandler(sys.stderr)
    sh.setFormatter(fmt)
    log.addHandler(sh)


def start_run(run_dir: Path, threads: int, seed: int, log_here: bool = True) -> torch.device:
    """Create the run directory and its log (``log_here``: only the first of several processes writes it), set
    torch's threads and seed; the device to train on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if log_here:
        setup_logging(run_dir)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return pick_device()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, step: int, decay: float) -> None:
    """Move the EMA's weights towards the net's; buffers (BatchNorm statistics) are copied."""
    decay = min(decay, (1 + step) / (10 + step))  # EMA warm-up: early weights are not averaged in for long
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.lerp_(p, 1 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)


class Meter:
    """Running means of named losses between log lines, the step rate, and the training time so far
    (validation excluded: call ``restart_clock`` after it)."""

    def __init__(self, elapsed: float = 0.0) -> None:
        self.elapsed, self.sums, self.n, self.t0 = elapsed, {}, 0, time.time()

    def add(self, parts: dict[str, float]) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def record(self, step: int) -> dict:
        now = time.time()
        self.elapsed += now - self.t0
        rec = {"step": step, **{k: v / self.n for k, v in self.sums.items()}, "steps_per_s": self.n / (now - self.t0),
               "elapsed_s": self.elapsed}
        self.sums, self.n, self.t0 = {}, 0, now
        return rec

    def restart_clock(self) -> None:
        self.t0 = time.time()


def restore(ck: dict, **modules) -> None:
    """Load each module / optimiser from the checkpoint entry of the same name, and torch's RNG."""
    for key, m in modules.items():
        m.load_state_dict(ck[key])
    torch.set_rng_state(ck["torch_rng"].cpu())  # map_location may have moved it; CUDA RNG is not restored


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run; ``stop_at`` ends early at that step, as an interruption would.

    Under ``torchrun --nproc_per_node N`` (DistributedDataParallel): every process draws the same batch of
    ``cfg.batch`` patches and trains on its 1/N slice; the averaged gradients are the whole batch's, so N
    processes train the same weights as one. The first process validates, logs and writes checkpoints."""
    rank, world = distributed()
    if cfg.batch % world:
        raise ValueError(f"batch {cfg.batch} does not split over {world} processes")
    lead = rank == 0
    run_dir = Path(cfg.run_dir)
    device = start_run(run_dir, cfg.threads, cfg.seed, log_here=lead)

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
    step, elapsed = 0, 0.0
    ckpt_path = run_dir / "ckpt.pt"
    if cfg.init and not (resume and ckpt_path.exists()):
        init_net, init_ck = load_ema(cfg.init)
        if init_ck["arch"] != cfg.arch or init_ck["net_config"] != nets.config_dict(net):
            raise ValueError(f"{cfg.init} holds {init_ck['arch']} {init_ck['net_config']}, not {cfg.arch} {nets.config_dict(net)}")
        net.load_state_dict(init_net.state_dict())
        ema.load_state_dict(init_net.state_dict())
        log.info("starting from the EMA weights of %s (step %d)", cfg.init, init_ck["step"])
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        restore(ck, net=net, ema=ema, opt=opt)
        sampler.rng.bit_generator.state = ck["sampler_rng"]
        step, elapsed = ck["step"], ck.get("elapsed", 0.0)
        log.info("resumed from %s at step %d", ckpt_path, step)
        if lead:
            _truncate_stats(run_dir / "stats.jsonl", step)
    elif lead:
        (run_dir / "config.json").write_text(
            json.dumps({"trainer": "sr", "train": asdict(cfg), "arch": cfg.arch, "net": nets.config_dict(net)}, indent=2)
        )
    log.info(
        "net %s %s: %d params, %d FLOPs/input px, device %s, %d threads%s",
        cfg.arch, nets.config_dict(net), nets.count_params(net), nets.flops_per_input_pixel(net), device, torch.get_num_threads(),
        f", {world} processes (DDP)" if world > 1 else "",
    )
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    part = slice(rank * cfg.batch // world, (rank + 1) * cfg.batch // world)

    def checkpoint() -> None:
        save_checkpoint(
            ckpt_path, arch=cfg.arch, net_config=nets.config_dict(net), net=net.state_dict(), ema=ema.state_dict(),
            opt=opt.state_dict(), sampler_rng=sampler.rng.bit_generator.state, torch_rng=torch.get_rng_state(),
            step=step, elapsed=elapsed, train_config=asdict(cfg), device=describe_device(device),
        )

    loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    stats = open(run_dir / "stats.jsonl", "a" if step else "w") if lead else None  # a fresh run starts a fresh log
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or not lead, dynamic_ncols=True, desc=run_dir.name)
    run_loss, run_n, t0 = 0.0, 0, time.time()
    net.train()
    while step < min(cfg.steps, stop_at or cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        lr_np, hr_np = sampler.sample(cfg.batch)  # the same batch in every process; each trains on its slice
        lr_t, hr_t = torch.from_numpy(lr_np[part]).to(device), torch.from_numpy(hr_np[part]).to(device)
        loss = loss_fn(model(lr_t), hr_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema, net, step, cfg.ema)
        step += 1
        run_loss, run_n = run_loss + loss.item(), run_n + 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.time()
            elapsed += now - t0
            rate = run_n / (now - t0)
            t0 = now
            rec = {"step": step, "loss": mean_over_ranks(run_loss / run_n, world), "lr": lr_at(step - 1, cfg), "steps_per_s": rate,
                   "elapsed_s": elapsed}
            bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.1e}")
            run_loss, run_n = 0.0, 0
            if stats is None:  # not the first process: it only trains
                continue
            if step % cfg.val_every == 0 or step == cfg.steps:
                rec["val_psnr_ema"] = validate(ema, val_hr, cfg.scale, device)
                net.train()
                log.info("step %d loss %.4f val Y-PSNR (EMA) %.3f dB, %.2f steps/s", step, rec["loss"], rec["val_psnr_ema"], rate)
                t0 = time.time()  # validation time is not training time
            stats.write(json.dumps(rec) + "\n")
            stats.flush()
        if lead and (step % cfg.ckpt_every == 0 or step == cfg.steps):
            checkpoint()
    bar.close()
    if stats is not None:
        stats.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # the last checkpoint is on disk before any process returns
        dist.destroy_process_group()
    log.info("done: %d steps in %.0f s", step, elapsed)
    return ckpt_path


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
