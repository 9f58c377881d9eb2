"""The learned High-to-Low degradation GAN (Bulat et al., ECCV 2018) -> e.g. ``degrade-x4``.

Unpaired: HR patches come from clean photos, real LR patches from real low-quality photos. The generator
maps (HR, noise vector) to an LR image; a spectral-norm patch discriminator tells its outputs from the
real LR patches. Loss = w_gan * adversarial + w_pix * L1(low-pass of output, low-pass of the bicubic
downscale of HR).

Frequency separation (Fritsche, Gu & Timofte, "Frequency Separation for Real-World Super-Resolution",
2019): the discriminator sees only the high-frequency residual of each patch (image minus its box blur,
3x3 by default: ``hp_blur``), because noise, blur, ringing and JPEG blocks live there;
the pixel loss constrains only the low frequencies (5x5 box blur by default: ``lp_blur``), so content and
colour stay and the texture is the adversary's to shape. Wider bands (e.g. 5 and 9) also hand the mid
frequencies, where real photos' softness lives, to the adversary. Measured before this was adopted: on
the raw patches of the data here, a discriminator told real low-quality patches from bicubic ones 56% of
the time after 500 steps, and 78% after 300 steps on the residual. (Normalising each patch's residual
learned faster still, but hid the noise level from the discriminator: the generator's noise amplitude
drifted, measured.)
Validation: the Frechet distance of degradation statistics (training/degradation_stats.py) between the
EMA generator's outputs and real photos held out for validation, next to plain bicubic downscaling; the best
snapshot is kept as best.pt. A further ``holdout`` of real photos is the test set (evaluate_degradation.py),
never seen in training or snapshot choice.
"""
from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import data, discriminators, losses, nets
from training import degradation_stats as dstats
from training.config import H2LTrainConfig
from training.run import Run, describe_device, ema_update, log, set_rates
from training.train_sr import split_holdout

HP_GAIN = 10.0  # the residual is small (a few % of the range): bring it to order 1 for the discriminator


def box_blur(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (size // 2,) * 4, mode="reflect"), size, 1)


def high_pass(x: torch.Tensor, size: int) -> torch.Tensor:
    """What the discriminator sees: x minus its size x size box blur (amplified; its amplitude is the noise level)."""
    return HP_GAIN * (x - box_blur(x, size))


class RealPatchSampler:
    """Random patches of real LR photos at 8-aligned offsets (the JPEG grid stays put), flipped/rotated."""

    def __init__(self, images: list[np.ndarray], patch: int, seed: int) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= patch]
        if not self.images:
            raise ValueError(f"no real LR image is at least {patch}px on its short side")
        self.patch = patch
        self.rng = np.random.default_rng(seed + 1)

    def sample(self, batch: int) -> np.ndarray:
        out = []
        for idx in self.rng.integers(len(self.images), size=batch):
            crop = dstats.aligned_crops(self.images[idx], self.patch, 1, self.rng)[0]
            out.append(np.ascontiguousarray(data.augment(crop, self.rng)))
        return data.to_tensor_batch(out)


@torch.no_grad()
def generate(net: torch.nn.Module, hr: list[np.ndarray], seed: int, device: torch.device) -> list[np.ndarray]:
    """LR images (uint8) from uint8 HR images, with seeded noise vectors."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for im in hr:
        x = torch.from_numpy(data.to_tensor_batch([im])).to(device)
        z = torch.randn(1, net.config.z_dim, generator=gen).to(device)
        y = net(x, z).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
        out.append(np.round(y * 255.0).astype(np.uint8))
    return out


def train(cfg: H2LTrainConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run on the scaffold; under torchrun each process trains its part of every batch."""
    if cfg.hr_patch % (8 * cfg.scale):
        raise ValueError(f"hr_patch must be a multiple of {8 * cfg.scale} (LR patches on the 8x8 JPEG grid)")
    if cfg.hp_blur % 2 == 0 or cfg.lp_blur % 2 == 0 or min(cfg.hp_blur, cfg.lp_blur) < 3:
        raise ValueError(f"hp_blur and lp_blur must be odd and at least 3, not {cfg.hp_blur} and {cfg.lp_blur}")
    run = Run(cfg.run_dir, threads=cfg.threads, seed=cfg.seed, progress=progress)
    part, device = run.part(cfg.batch), run.device

    hr_train, hr_val = split_holdout(data.list_images(cfg.hr_data), 8, cfg.seed)
    lr_train, lr_test = split_holdout(data.list_images(cfg.lr_data), cfg.holdout, cfg.seed)  # the card's test set
    lr_train, lr_val = split_holdout(lr_train, cfg.val_images, cfg.seed + 1)  # chooses best.pt; disjoint from the test set
    log.info("data: %d HR images (+%d held out), %d real LR images (+%d for validation, +%d for the test)",
             len(hr_train), len(hr_val), len(lr_train), len(lr_val), len(lr_test))
    hr_sampler = data.PatchSampler(data.load_images(hr_train, progress), cfg.hr_patch, cfg.scale, seed=cfg.seed)
    real_sampler = RealPatchSampler(data.load_images(lr_train, progress), cfg.hr_patch // cfg.scale, cfg.seed)
    val_lr = 32
    real_feats = np.array([dstats.features(c) for c in dstats.crops(data.load_images(lr_val, False), val_lr, 2, cfg.seed)])
    val_hr = dstats.crops(data.load_images(hr_val, False), val_lr * cfg.scale, 16, cfg.seed)
    bicubic_feats = np.array([dstats.features(data.downscale(c, cfg.scale)) for c in val_hr])
    bicubic_frechet = dstats.compare(real_feats, bicubic_feats)["frechet"]
    log.info("validation: %d real LR patches, %d HR patches; bicubic's Frechet distance to real: %.3f", len(real_feats), len(val_hr), bicubic_frechet)

    net = nets.build("h2l", {"scale": cfg.scale, **cfg.net}).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    disc = discriminators.build("vgg", cfg.disc_channels, downsamples=2).to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(0.5, 0.99))
    run.track(net=net, ema=ema, disc=disc, opt=opt_g, opt_d=opt_d, sampler_rng=hr_sampler.rng, real_rng=real_sampler.rng)
    if run.begin({"trainer": "h2l", "train": asdict(cfg), "arch": "h2l", "net": nets.config_dict(net)}, resume):
        set_rates({opt_g: cfg.lr, opt_d: cfg.lr_d})
        log.info("rates from here on: lr %.1e, D %.1e", cfg.lr, cfg.lr_d)
    log.info("H2L x%d %s: %d params; D %d params; device %s%s", cfg.scale, nets.config_dict(net), nets.count_params(net),
             nets.count_params(disc), describe_device(device), f", {run.world} processes (DDP)" if run.world > 1 else "")
    g_model, d_model = run.wrap(net), run.wrap(disc)
    net.train()

    def step_fn(step: int) -> dict[str, float]:
        bic_np, hr_np = hr_sampler.sample(cfg.batch)  # the same batches in every process; each trains on its part
        bic, hr = torch.from_numpy(bic_np[part]).to(device), torch.from_numpy(hr_np[part]).to(device)
        real = torch.from_numpy(real_sampler.sample(cfg.batch)[part]).to(device)
        fake = g_model(hr, torch.randn(cfg.batch, net.config.z_dim)[part].to(device))

        disc.requires_grad_(True)
        real_hp = high_pass(real, cfg.hp_blur)
        loss_d = losses.d_loss(cfg.gan_loss, d_model(real_hp)[0], d_model(high_pass(fake.detach(), cfg.hp_blur))[0])
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        disc.requires_grad_(False)  # D frozen and run as itself (no gradient of D's to synchronise)
        adv = losses.g_loss(cfg.gan_loss, [r.detach() for r in disc(real_hp)[0]], disc(high_pass(fake, cfg.hp_blur))[0])
        pix = F.l1_loss(box_blur(fake, cfg.lp_blur), box_blur(bic, cfg.lp_blur))
        loss_g = cfg.w_gan * adv + cfg.w_pix * pix
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema_update(ema, net, step, cfg.ema)
        return {"d": loss_d.item(), "adv": adv.item(), "pix": pix.item()}

    def validated() -> dict[str, float]:
        fake_feats = np.array([dstats.features(x) for x in generate(ema, val_hr, cfg.seed, device)])
        return {"val_frechet_ema": dstats.compare(real_feats, fake_feats)["frechet"], "val_frechet_bicubic": bicubic_frechet}

    def report(rec: dict) -> str | None:
        """The adversarial game does not settle (the validation distance swings by 0.3 between checks), so the EMA
        generator with the lowest validation distance so far is kept as best.pt: export that file."""
        if "val_frechet_ema" not in rec:
            return None
        return (f"adv {rec['adv']:.3f} pix {rec['pix']:.4f} D {rec['d']:.3f} | Frechet to real: EMA {rec['val_frechet_ema']:.3f} "
                f"(bicubic {bicubic_frechet:.3f}; best {run.best['val_frechet_ema']:.3f} at step {run.best['step']})")

    def exportable() -> dict:
        """What export needs (the EMA generator and how it was trained): all of best.pt, part of ckpt.pt."""
        return {"arch": "h2l", "net_config": nets.config_dict(net), "ema": ema.state_dict(), "train_config": asdict(cfg),
                "device": describe_device(device), "bicubic_frechet": bicubic_frechet}

    return run.fit(cfg.steps, step_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, exportable=exportable,
                   val_every=cfg.val_every, validate=validated, keep_best=("val_frechet_ema", "min"), report=report,
                   stop_at=stop_at)
