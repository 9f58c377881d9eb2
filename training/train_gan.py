"""Adversarial fine-tuning of a PSNR-oriented upscaler (SRGAN family) -> e.g. ``srgan-x4``.

Generator loss = w_l1 * L1(content) + w_adv * adversarial + w_fm * feature matching on the
discriminator's features (standing in for a VGG perceptual loss: no pretrained VGG can be fetched here)
+ w_tv * total variation. The discriminator is a VGG-style patch net or a U-Net (global + per-pixel
outputs, with CutMix consistency), both spectrally normalised. The generator starts from the EMA weights
of a trained PSNR run; its own EMA is what gets exported. Same run directory layout as train_sr.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training import data, discriminators, losses, metrics, nets
from training.config import GanConfig
from training.train_sr import (
    Meter,
    _truncate_stats,
    center_crop,
    describe_device,
    ema_update,
    load_ema,
    log,
    restore,
    save_checkpoint,
    split_holdout,
    start_run,
)


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
    run_dir = Path(cfg.run_dir)
    device = start_run(run_dir, cfg.threads, cfg.seed)

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
    step, elapsed = 0, 0.0
    ckpt_path = run_dir / "ckpt.pt"
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        restore(ck, net=net, ema=ema, disc=disc, opt=opt_g, opt_d=opt_d)
        sampler.rng.bit_generator.state = ck["sampler_rng"]
        gen.set_state(ck["cutmix_rng"])
        step, elapsed = ck["step"], ck.get("elapsed", 0.0)
        for opt, lr in ((opt_g, cfg.lr), (opt_d, cfg.lr_d)):  # the config, not the checkpoint, sets the rates
            for group in opt.param_groups:
                group["lr"] = lr
        log.info("resumed from %s at step %d (lr %.1e, D %.1e)", ckpt_path, step, cfg.lr, cfg.lr_d)
        _truncate_stats(run_dir / "stats.jsonl", step)
    else:
        (run_dir / "config.json").write_text(json.dumps(
            {"trainer": "gan", "train": asdict(cfg), "arch": init_ck["arch"], "net": nets.config_dict(net), "init_step": init_ck["step"]}, indent=2))
    log.info("GAN fine-tuning %s x%d from %s (step %d); D=%s (%d params), loss %s, device %s",
             init_ck["arch"], scale, cfg.init, init_ck["step"], cfg.disc, nets.count_params(disc), cfg.gan_loss,
             describe_device(device))

    def checkpoint() -> None:
        save_checkpoint(
            ckpt_path, arch=init_ck["arch"], net_config=nets.config_dict(net), net=net.state_dict(), ema=ema.state_dict(),
            disc=disc.state_dict(), opt=opt_g.state_dict(), opt_d=opt_d.state_dict(),
            sampler_rng=sampler.rng.bit_generator.state, torch_rng=torch.get_rng_state(), cutmix_rng=gen.get_state(),
            step=step, elapsed=meter.elapsed, train_config=asdict(cfg), device=describe_device(device),
        )

    stats = open(run_dir / "stats.jsonl", "a" if step else "w")
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, dynamic_ncols=True, desc=run_dir.name)
    meter = Meter(elapsed)
    unet = cfg.disc == "unet"
    while step < min(cfg.steps, stop_at or cfg.steps):
        lr_np, hr_np = sampler.sample(cfg.batch)
        lr_t, hr_t = torch.from_numpy(lr_np).to(device), torch.from_numpy(hr_np).to(device)
        sr = net(lr_t)

        # Discriminator step.
        disc.requires_grad_(True)
        real_out, _ = disc(hr_t)
        fake_out, _ = disc(sr.detach())
        loss_d = losses.d_loss(cfg.gan_loss, real_out, fake_out)
        parts = {"d": loss_d.item()}
        if unet and cfg.w_cutmix:
            pix, cons = losses.cutmix_losses(disc, hr_t, sr.detach(), real_out[1], fake_out[1], gen)
            loss_d = loss_d + cfg.w_cutmix * (pix + cons)
            parts |= {"d_cutmix": pix.item(), "d_consistency": cons.item()}
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # Generator step.
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
        parts |= {"g": loss_g.item(), "l1": l1.item(), "adv": adv.item(), "fm": fm.item(), "tv": tv.item()}
        meter.add(parts)
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            rec = meter.record(step)
            bar.set_postfix(l1=f"{rec['l1']:.4f}", d=f"{rec['d']:.3f}")
            if step % cfg.val_every == 0 or step == cfg.steps:
                rec |= validate(ema, val_hr, scale, device)
                net.train()
                log.info("step %d l1 %.4f adv %.3f fm %.4f D %.3f | val Y-PSNR (EMA) %.3f dB, gradient energy %.3f x HR",
                         step, rec["l1"], rec["adv"], rec["fm"], rec["d"], rec["val_psnr_ema"], rec["val_grad_ratio_ema"])
            meter.restart_clock()
            stats.write(json.dumps(rec) + "\n")
            stats.flush()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint()
    bar.close()
    stats.close()
    log.info("done: %d steps in %.0f s", step, meter.elapsed)
    return ckpt_path
