"""The text-to-image training loop (GAN-INT-CLS, Reed et al. 2016) for the 64 px generators: GAN-INT-CLS's
DCGAN-style generator (nets.py) or LAPGAN's pyramid of level generators (lapgan.py), chosen by ``arch``.

Each step:
  D sees (real image, right text) as real, and (real image, wrong text) and (fake, right text) as fake
  (GAN-CLS, the matching-aware discriminator); G is trained to make D call (fake, right text) real and, on
  half a batch, (fake from an interpolated embedding beta*t1 + (1-beta)*t2, that embedding) real too (GAN-INT).
Non-saturating logistic losses, spectral norm in D, Adam(0.5, 0.999), an EMA of G (what gets exported;
its BatchNorm statistics are re-estimated on the EMA weights before sampling, BigGAN's "standing statistics").
Captions are embedded once by the exported ONNX text encoder (data.embed_cached): G learns from the very
embeddings the service feeds it. 20 classes are held out entirely (class-disjoint) for the zero-shot check.

Run directory as for the upscalers: config.json, ckpt.pt (resumable), stats.jsonl, train.log, and
samples/step-NNNNNN.png (fixed captions x fixed seeds).
"""
from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from training.run import Run, describe_device, ema_update, log, set_rates
from training.t2i import data as t2i_data
from training.t2i import lapgan, nets
from training.t2i.config import T2ITrainConfig
from training.t2i.nets import count_params
from training.train_sr import load_onnx_weights, onnx_state

N_CLASS_IDS = 103  # the auxiliary classifier's outputs: class ids 1..102 (0 unused)

# arch -> (net config, generator, discriminator, config_dict): the loop below runs any of them
ARCHS = {
    "gan-int-cls": (nets.T2IConfig, nets.Generator, nets.Discriminator, nets.config_dict),
    "lapgan": (lapgan.LapConfig, lapgan.LapGenerator, lapgan.LapDiscriminator, lapgan.config_dict),
}

# The fixed captions of the sample grids (and of docs/t2i-grid.png).
GRID_CAPTIONS = [
    "this flower has bright yellow petals and a dark center",
    "a flower with large red petals",
    "this flower has white petals and a yellow center",
    "this flower has purple petals with thin stamen",
    "the petals of this flower are pink with a yellow center",
    "an orange flower with many thin petals",
    "this flower has blue petals that are bell-shaped",
    "a white flower with long pointed petals and a green center",
]


class CaptionSampler:
    """Batches of (real image, right caption embedding, wrong caption embedding) from the training images."""

    def __init__(self, ds: t2i_data.Flowers, pool: np.ndarray, seed: int) -> None:
        self.ds, self.pool = ds, pool
        self.rng = np.random.default_rng(seed)
        self.x = torch.from_numpy(t2i_data.to_tensor(ds.images[pool]))
        self.cls = ds.class_ids[pool]
        text_of = {i: [] for i in range(len(pool))}
        where = {int(img): k for k, img in enumerate(pool)}
        for t, img in enumerate(ds.text_image):
            k = where.get(int(img))
            if k is not None:
                text_of[k].append(t)
        self.texts = [np.array(text_of[k]) for k in range(len(pool))]

    def caption(self, k: int) -> int:
        return int(self.texts[k][self.rng.integers(len(self.texts[k]))])

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, right caption embeddings, wrong caption embeddings, class ids of the images)"""
        k = self.rng.integers(len(self.pool), size=n)
        other = self.rng.integers(len(self.pool), size=n)
        for _ in range(10):  # the wrong caption comes from another class
            same = self.cls[other] == self.cls[k]
            if not same.any():
                break
            other[same] = self.rng.integers(len(self.pool), size=int(same.sum()))
        right = [self.caption(int(i)) for i in k]
        wrong = [self.caption(int(i)) for i in other]
        x = self.x[k]
        flip = torch.from_numpy(self.rng.random(n) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, torch.from_numpy(self.ds.emb[right]), torch.from_numpy(self.ds.emb[wrong]), torch.from_numpy(self.cls[k].astype(np.int64))


def train_pool(ds: t2i_data.Flowers, heldout: list[int]) -> np.ndarray:
    """Training images: the train split of the classes not held out."""
    return np.flatnonzero((ds.split == "train") & ~np.isin(ds.class_ids, heldout))


@torch.no_grad()
def standing_stats(g: torch.nn.Module, emb: np.ndarray, batches: int = 20, batch: int = 64, seed: int = 0) -> torch.nn.Module:
    """A copy of ``g`` whose BatchNorm statistics are the average over ``batches`` batches of its own
    activations (random noise, embeddings drawn from ``emb``), in eval mode: what is sampled and exported."""
    g = copy.deepcopy(g)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    for m in g.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    g.train()
    with torch.random.fork_rng(devices=[]):  # a generator that draws its own noise (LAPGAN's details) leaves no trace
        for _ in range(batches):
            e = torch.from_numpy(emb[rng.integers(len(emb), size=batch)])
            g(torch.randn(batch, g.config.z_dim, generator=gen), e)
    return g.eval()


def noise(n: int, z_dim: int, seeds: list[int] | None = None) -> torch.Tensor:
    """Standard normal noise, one generator per seed (the service draws a sample's noise from its seed)."""
    seeds = list(range(n)) if seeds is None else seeds
    return torch.from_numpy(np.stack([np.random.default_rng(s).standard_normal(z_dim).astype(np.float32) for s in seeds]))


@torch.no_grad()
def sample_grid(g: torch.nn.Module, emb: np.ndarray, seeds: list[int]) -> np.ndarray:
    """uint8 grid: one row per embedding, one column per seed, 2 px gaps."""
    rows = []
    z, *details = g.seeded_noise(seeds)
    for e in emb:
        x = g(z, torch.from_numpy(np.repeat(e[None], len(seeds), 0)), *details)
        rows.append(t2i_data.to_uint8(x.numpy() * 0.5 + 0.5))
    n, s = len(seeds), 64
    grid = np.full((len(rows) * (s + 2), n * (s + 2), 3), 255, np.uint8)
    for r, imgs in enumerate(rows):
        for c, im in enumerate(imgs):
            grid[r * (s + 2) : r * (s + 2) + s, c * (s + 2) : c * (s + 2) + s] = im
    return grid


def load_data(cfg: T2ITrainConfig, progress: bool) -> t2i_data.Flowers:
    ds = t2i_data.load(cfg.data, cfg.attr_per_image, cfg.seed, cfg.limit or None, progress)
    ds.emb = t2i_data.embed_cached(ds.texts, cfg.encoder, cfg.cache)
    return ds


def train(cfg: T2ITrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run on the scaffold; ``stop_at`` ends early at that step, as an interruption would.
    One process: BatchNorm in G and GAN-INT's pairing inside a batch would differ on parts of batches."""
    run = Run(cfg.run_dir, threads=cfg.threads, seed=cfg.seed, progress=progress, processes=False)
    device = run.device
    ds = load_data(cfg, progress)
    heldout = t2i_data.heldout_classes(cfg.heldout, cfg.seed)
    pool = train_pool(ds, heldout)
    sampler = CaptionSampler(ds, pool, cfg.seed)
    log.info("data: %d images, %d captions (%d attribute); training on %d train-split images of %d classes; held out: %s",
             len(ds.names), len(ds.texts), int(ds.text_is_attr.sum()), len(pool), len(set(ds.class_ids[pool])), heldout)
    grid_emb = t2i_data.embed_cached(GRID_CAPTIONS, cfg.encoder, cfg.cache)

    config_cls, g_cls, d_cls, config_dict = ARCHS[cfg.arch]
    net_cfg = config_cls(**cfg.net)
    g, d = g_cls(net_cfg).to(device), d_cls(net_cfg, N_CLASS_IDS if cfg.w_cls else 0).to(device)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999))
    run.track(g=g, d=d, g_ema=g_ema, opt_g=opt_g, opt_d=opt_d, sampler_rng=sampler.rng)
    if cfg.init and not (resume and run.ckpt_path.exists()):
        init_from_onnx(cfg.init, g, config_dict(net_cfg), heldout)
        g_ema.load_state_dict(g.state_dict())
        log.info("starting G and its EMA from %s; D from scratch, %d D-only steps first", cfg.init, cfg.d_warmup)
    if run.begin({"trainer": "t2i", "arch": cfg.arch, "train": asdict(cfg), "net": config_dict(net_cfg), "heldout_classes": heldout},
                 resume):
        set_rates({opt_g: cfg.lr, opt_d: cfg.lr_d})
    log.info("%s: G %d params, D %d params, device %s", cfg.arch, count_params(g), count_params(d), describe_device(device))

    fakes_of = (lambda x, e: g.train_fakes(x, e, cfg.chain)) if cfg.chain else g.train_fakes
    train_embs = ds.emb[np.isin(ds.text_image, pool)]
    g.train()
    d.train()
    half = max(1, cfg.batch // 2)

    def step_fn(step: int) -> dict[str, float]:
        x, e, e_wrong, y = (t.to(device) for t in sampler.sample(cfg.batch))
        fake = fakes_of(x, e)

        # D: real/right -> real; real/wrong and fake/right -> fake (GAN-CLS)
        h_real = d.features(x)  # one pass over the real images serves the right and the wrong text
        d_real, d_wrong, d_fake = d.judge(h_real, e), d.judge(h_real, e_wrong), d(fake.detach(), e)
        loss_d = F.softplus(-d_real).mean() + 0.5 * (F.softplus(d_wrong).mean() + F.softplus(d_fake).mean())
        loss_cls_d = d.class_loss(h_real, y) if cfg.w_cls else torch.zeros(())
        loss_d = loss_d + cfg.w_cls * loss_cls_d
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        if step < cfg.d_warmup:  # a fresh D (--init) first catches up with the trained G; G and its EMA wait
            loss_adv, loss_int, loss_cls = F.softplus(-d_fake).mean().detach(), torch.zeros(()), torch.zeros(())
        else:  # G: fake/right -> real, and fakes from interpolated embeddings -> real (GAN-INT)
            e_int = cfg.int_beta * e[:half] + (1 - cfg.int_beta) * e[half:][: half].roll(1, 0) if cfg.batch > 1 else e
            fake_int = fakes_of(x[: len(e_int)], e_int)
            h_fake = d.features(fake)
            loss_adv = F.softplus(-d.judge(h_fake, e)).mean()
            loss_int = F.softplus(-d(fake_int, e_int)).mean()
            loss_cls = d.class_loss(h_fake, y) if cfg.w_cls else torch.zeros(())
            loss_g = loss_adv + cfg.w_int * loss_int + cfg.w_cls * loss_cls
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema_update(g_ema, g, step, cfg.ema)
        return {"loss_d": loss_d.item(), "loss_g": loss_adv.item(), "loss_int": loss_int.item(),
                **({"cls_real": loss_cls_d.item(), "cls_fake": loss_cls.item()} if cfg.w_cls else {}),
                "d_real": torch.sigmoid(d_real).mean().item(), "d_wrong": torch.sigmoid(d_wrong).mean().item(),
                "d_fake": torch.sigmoid(d_fake).mean().item()}

    def report(rec: dict) -> str | None:
        if rec["step"] % (cfg.log_every * 4) and rec["step"] != cfg.steps:
            return None
        return (f"loss D {rec['loss_d']:.3f} G {rec['loss_g']:.3f} INT {rec['loss_int']:.3f} | D(real,right) {rec['d_real']:.2f} "
                f"D(real,wrong) {rec['d_wrong']:.2f} D(fake) {rec['d_fake']:.2f} | {rec['steps_per_s']:.2f} steps/s")

    def exportable() -> dict:
        return {"arch": cfg.arch, "net_config": config_dict(net_cfg), "g_export": standing_stats(g_ema, train_embs, seed=cfg.seed).state_dict(),
                "train_config": asdict(cfg), "heldout_classes": heldout, "device": describe_device(device)}

    def save_samples() -> None:
        (run.dir / "samples").mkdir(exist_ok=True)
        grid = sample_grid(standing_stats(g_ema, train_embs, seed=cfg.seed), grid_emb, list(range(8)))
        Image.fromarray(grid).save(run.dir / "samples" / f"step-{run.step:06d}.png")

    return run.fit(cfg.steps, step_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, exportable=exportable, report=report,
                   every=((cfg.sample_every, save_samples),), stop_at=stop_at)


def init_from_onnx(path: str, g: torch.nn.Module, net_config: dict, heldout: list[int]) -> None:
    """Load a shipped generator's weights into ``g``; its card must match the network and the held-out classes
    (a generator that has seen the held-out classes would void the zero-shot check)."""
    card, weights = onnx_state(path, "g.")
    if card.get("net_config") != net_config:
        raise ValueError(f"{path} holds {card.get('net_config')}, not {net_config}")
    if card.get("heldout_classes") != heldout:
        raise ValueError(f"{path} was trained with held-out classes {card.get('heldout_classes')}, not {heldout}")
    load_onnx_weights(g, weights, path)


def load_generator(ckpt_path: str | Path, which: str = "g_export") -> tuple[torch.nn.Module, dict]:
    """A generator of a checkpoint in eval mode, and the checkpoint. ``g_export``: the EMA weights with
    standing BatchNorm statistics (what is exported); ``g``: the raw training weights."""
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    config_cls, g_cls, _, _ = ARCHS[ck["arch"]]
    g = g_cls(config_cls(**ck["net_config"]))
    g.load_state_dict(ck[which])
    return g.eval(), ck
