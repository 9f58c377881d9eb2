"""Adversarial fine-tuning of a PSNR-oriented upscaler (SRGAN family) -> e.g. ``srgan-x4``.

Generator loss = w_l1 * L1(content) + w_adv * adversarial + w_fm * feature matching on the
discriminator's features (standing in for a VGG perceptual loss: no pretrained VGG can be fetched here)
+ w_tv * total variation. The discriminator is a VGG-style patch net or a U-Net (global + per-pixel
outputs, with CutMix consistency), both spectrally normalised. The generator starts from the EMA weights
of a trained PSNR run; its own EMA is what gets exported. Same run directory layout as train_sr.
"""
from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import data, discriminators, losses, metrics, nets
from training.config import GanConfig
from training.run import Run, describe_device, ema_update, log, set_rates
from training.train_sr import center_crop, load_ema, split_holdout


@torch.no_grad()
def validate(net: torch.nn.Module, val_hr: list[np.ndarray], scale: int, device: torch.device) -> dict:
    """Y-PSNR and the gradient energy of the output relative to HR's (1.0 = as much detail as HR)."""
    net.eval()
    psnr, ratio = [], []
    for hr in val_hr:
        x = torch.from_numpy(data.to_tensor_batch([data.downscale(hr, scale)])).to(device)
        sr = np.round(net(x).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy() * 255.0).astype(np.uint8)
        psnr.append(metrics.psnr_y(sr, hr, scale))
        ratio.append(metrics.gradient_energy(sr, scale) / max(1e-6, metrics.gradient_energy(hr, scale)))
    return {"val_psnr_ema": float(np.mean(psnr)), "val_grad_ratio_ema": float(np.mean(ratio))}


def train(cfg: GanConfig, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> Path:
    """Train (or resume) the run on the scaffold; under torchrun each process trains its part of every batch."""
    run = Run(cfg.run_dir, threads=cfg.threads, seed=cfg.seed, progress=progress)
    part, device = run.part(cfg.batch), run.device

    init_net, init_ck = load_ema(cfg.init)
    scale = init_net.config.scale
    paths = data.list_images(cfg.data)
    train_paths, val_paths = split_holdout(paths, cfg.val_images, cfg.seed)
    make_lr = data.lr_maker(cfg.degradation, cfg.degradation_preset, cfg.h2l_model)
    sampler = data.PatchSampler(data.load_images(train_paths, progress, cfg.resize), cfg.hr_patch, scale, seed=cfg.seed,
                                make_lr=make_lr, gray=cfg.gray, upright=cfg.upright)
    val_hr = [center_crop(im, cfg.val_crop, scale) for im in data.load_images(val_paths, progress=False, resize=cfg.resize)]

    net = init_net.to(device).train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    disc = discriminators.build(cfg.disc, cfg.disc_channels).to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)  # CutMix boxes
    run.track(net=net, ema=ema, disc=disc, opt=opt_g, opt_d=opt_d, sampler_rng=sampler.rng, cutmix_rng=gen)
    if run.begin({"trainer": "gan", "train": asdict(cfg), "arch": init_ck["arch"], "net": nets.config_dict(net),
                  "init_step": init_ck["step"]}, resume):
        set_rates({opt_g: cfg.lr, opt_d: cfg.lr_d})
        log.info("rates from here on: lr %.1e, D %.1e", cfg.lr, cfg.lr_d)
    log.info("GAN fine-tuning %s x%d from %s (step %d); D=%s (%d params), loss %s, device %s%s",
             init_ck["arch"], scale, cfg.init, init_ck["step"], cfg.disc, nets.count_params(disc), cfg.gan_loss,
             describe_device(device), f", {run.world} processes (DDP)" if run.world > 1 else "")
    g_model, d_model = run.wrap(net), run.wrap(disc)
    unet = cfg.disc == "unet"

    def step_fn(step: int) -> dict[str, float]:
        lr_np, hr_np = sampler.sample(cfg.batch)  # the same batch in every process; each trains on its part
        lr_t, hr_t = torch.from_numpy(lr_np[part]).to(device), torch.from_numpy(hr_np[part]).to(device)
        sr = g_model(lr_t)

        # Discriminator step.
        disc.requires_grad_(True)
        real_out, _ = d_model(hr_t)
        fake_out, _ = d_model(sr.detach())
        loss_d = losses.d_loss(cfg.gan_loss, real_out, fake_out)
        parts = {"d": loss_d.item()}
        if unet and cfg.w_cutmix:
            pix, cons = losses.cutmix_losses(d_model, hr_t, sr.detach(), real_out[1], fake_out[1], gen)
            loss_d = loss_d + cfg.w_cutmix * (pix + cons)
            parts |= {"d_cutmix": pix.item(), "d_consistency": cons.item()}
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # Generator step: D frozen and run as itself (no gradient of D's to synchronise).
        disc.requires_grad_(False)
        real_out, real_feats = disc(hr_t)
        fake_out, fake_feats = disc(sr)
        l1 = F.l1_loss(sr, hr_t)
        adv = losses.g_loss(cfg.gan_loss, [r.detach() for r in real_out], fake_out)
        fm = losses.feature_matching(real_feats, fake_feats)
        tv = losses.total_variation(sr)
        loss_g = cfg.w_l1 * l1 + cfg.w_adv * adv + cfg.w_fm * fm + cfg.w_tv * tv
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema_update(ema, net, step, cfg.ema)
        return parts | {"g": loss_g.item(), "l1": l1.item(), "adv": adv.item(), "fm": fm.item(), "tv": tv.item()}

    def validated() -> dict[str, float]:
        out = validate(ema, val_hr, scale, device)
        net.train()
        return out

    def report(rec: dict) -> str | None:
        if "val_psnr_ema" not in rec:
            return None
        return (f"l1 {rec['l1']:.4f} adv {rec['adv']:.3f} fm {rec['fm']:.4f} D {rec['d']:.3f} | val Y-PSNR (EMA) "
                f"{rec['val_psnr_ema']:.3f} dB, gradient energy {rec['val_grad_ratio_ema']:.3f} x HR")

    def exportable() -> dict:
        return {"arch": init_ck["arch"], "net_config": nets.config_dict(net), "ema": ema.state_dict(), "train_config": asdict(cfg),
                "device": describe_device(device)}

    return run.fit(cfg.steps, step_fn, log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, exportable=exportable,
                   val_every=cfg.val_every, validate=validated, report=report, stop_at=stop_at)
