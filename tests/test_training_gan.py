"""The GAN trainers on tiny data: SRGAN fine-tuning (both discriminators), the High-to-Low degradation
GAN, real-world LR sources for train-sr; their resume, export contracts and CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from tests.helpers import photo  # noqa: E402
from training import data, discriminators, losses  # noqa: E402
from training.config import GanConfig, H2LTrainConfig, TrainConfig  # noqa: E402
from training.export import export_run  # noqa: E402


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """HR photos, real-LR-like photos (small, JPEG q=30) and a one-image benchmark folder."""
    root = tmp_path_factory.mktemp("gan-data")
    for sub in ("hr", "lq", "bench"):
        (root / sub).mkdir()
    for i in range(6):
        Image.fromarray(photo(96, 96, seed=i)).save(root / "hr" / f"{i}.png")
    for i in range(10):
        Image.fromarray(photo(48, 40, seed=20 + i)).save(root / "lq" / f"{i}.jpg", quality=30)
    Image.fromarray(photo(80, 72, seed=99)).save(root / "bench" / "x.png")
    return root


@pytest.fixture(scope="module")
def sr_ckpt(dirs, tmp_path_factory):
    from training.train_sr import train

    run = tmp_path_factory.mktemp("sr-init")
    train(TrainConfig(data=[str(dirs / "hr")], run_dir=str(run), scale=2, arch="srresnet", net={"channels": 8, "blocks": 1, "up_channels": 8},
                      hr_patch=32, batch=2, steps=4, val_images=1, val_crop=48, ckpt_every=4, log_every=2, threads=1), progress=False)
    return run / "ckpt.pt"


def gan_cfg(dirs, sr_ckpt, run, disc, steps, **kw):
    return GanConfig(data=[str(dirs / "hr")], run_dir=str(run), init=str(sr_ckpt), disc=disc, disc_channels=8, hr_patch=32,
                     batch=2, steps=steps, val_images=1, val_crop=48, val_every=4, ckpt_every=2, log_every=2, threads=1, **kw)


@pytest.mark.parametrize("disc", ["unet", "vgg"])
def test_gan_finetune_runs_resumes_exactly_and_exports(dirs, sr_ckpt, tmp_path, disc):
    from training.train_gan import train

    straight, split = tmp_path / "straight", tmp_path / "split"
    train(gan_cfg(dirs, sr_ckpt, straight, disc, 6), progress=False)
    train(gan_cfg(dirs, sr_ckpt, split, disc, 6), progress=False, stop_at=4)
    train(gan_cfg(dirs, sr_ckpt, split, disc, 6), resume=True, progress=False)
    a, b = (torch.load(p / "ckpt.pt", weights_only=False) for p in (straight, split))
    for part in ("ema", "disc"):
        for k in a[part]:
            assert torch.allclose(a[part][k], b[part][k], atol=1e-6), (part, k)
    rows = [json.loads(x) for x in (straight / "stats.jsonl").read_text().splitlines()]
    assert {"d", "adv", "fm", "tv", "l1"} <= set(rows[-1]) and "val_grad_ratio_ema" in rows[-1]
    if disc == "unet":
        assert "d_cutmix" in rows[-1] and "d_consistency" in rows[-1]
    card = export_run(straight, tmp_path / "models", f"gan-{disc}", bench=[str(dirs / "bench")])
    assert card["task"] == "super-resolution" and card["training"]["disc"] == disc and disc in card["description"]
    assert {"grad_ratio", "psnr_y"} <= set(card["metrics"]["bench"])


def test_discriminator_outputs_and_losses():
    x = torch.rand(2, 3, 32, 32)
    (patch,), feats = discriminators.build("vgg", 8)(x)
    assert patch.shape == (2, 1, 4, 4) and len(feats) == 3
    (glob, pixel), _ = discriminators.build("unet", 8)(x)
    assert glob.shape == (2, 1) and pixel.shape == (2, 1, 32, 32)
    r, f = [torch.full((2, 1), 3.0)], [torch.full((2, 1), -3.0)]
    for kind in losses.GAN_LOSSES:  # a discriminator that is right has a lower loss than one that is wrong
        assert losses.d_loss(kind, r, f) < losses.d_loss(kind, f, r)
        assert losses.g_loss(kind, r, f) > losses.g_loss(kind, f, r)
    mask = losses.cutmix_mask(4, 16, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert losses.total_variation(torch.ones(1, 3, 8, 8)) == 0


def h2l_cfg(dirs, run, steps):
    return H2LTrainConfig(hr_data=[str(dirs / "hr")], lr_data=[str(dirs / "lq")], run_dir=str(run), scale=2,
                          net={"channels": 8, "lr_blocks": 1, "z_dim": 4, "noise_period": 16}, hr_patch=32, batch=2,
                          steps=steps, disc_channels=8, holdout=2, val_every=2, ckpt_every=2, log_every=2, threads=1)


@pytest.fixture(scope="module")
def h2l_export(dirs, tmp_path_factory):
    from training.train_h2l import train

    tmp = tmp_path_factory.mktemp("h2l")
    train(h2l_cfg(dirs, tmp / "run", 4), progress=False)
    card = export_run(tmp / "run", tmp / "models", "tiny-degrade-x2", bench=[str(dirs / "bench")])
    return tmp, card


def test_h2l_export_contract(h2l_export):
    import onnx
    import onnxruntime as ort

    tmp, card = h2l_export
    path = tmp / "models" / "tiny-degrade-x2.onnx"
    assert card["task"] == "degradation" and card["scale"] == 2 and card["parity_max_abs_diff"] <= 1e-4
    assert [i["name"] for i in card["inputs"]] == ["image", "noise"] and card["inputs"][1]["shape"] == ["N", 4]
    assert {"bicubic", "pipeline", "learned"} <= set(card["metrics"]) and "frechet" in card["metrics"]["learned"]
    ratio = card["metrics"]["learned"]["ratio_to_bicubic"]  # paired bootstrap against bicubic
    assert ratio["value"] >= 0 and ratio["ci95"][0] <= ratio["ci95"][1] and "ratio_to_bicubic" not in card["metrics"]["bicubic"]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["task"] == "degradation"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image", "noise"]
    x = np.random.rand(3, 3, 22, 38).astype(np.float32)
    z = np.random.randn(3, 4).astype(np.float32)
    out = sess.run(None, {"image": x, "noise": z})[0]
    assert out.shape == (3, 3, 11, 19) and 0 <= out.min() and out.max() <= 1
    rows = [json.loads(r) for r in (tmp / "run" / "stats.jsonl").read_text().splitlines()]
    assert {"val_frechet_ema", "val_frechet_bicubic"} <= set(rows[-1])


def test_h2l_keeps_the_best_validated_snapshot_and_exports_it(dirs, h2l_export):
    tmp, _ = h2l_export
    vals = {r["step"]: r["val_frechet_ema"] for r in map(json.loads, (tmp / "run" / "stats.jsonl").read_text().splitlines())
            if "val_frechet_ema" in r}
    assert len(vals) == 2
    best = torch.load(tmp / "run" / "best.pt", weights_only=False)
    assert best["step"] == min(vals, key=vals.get) and best["best"]["val_frechet_ema"] == min(vals.values())
    assert torch.load(tmp / "run" / "ckpt.pt", weights_only=False)["best"] == best["best"]
    card = export_run(tmp / "run" / "best.pt", tmp / "models", "tiny-degrade-best", bench=[str(dirs / "bench")])
    assert card["training"]["steps"] == best["step"] and card["metrics"]["learned"]["frechet"] >= 0


def test_h2l_frequency_bands_are_settings(dirs, tmp_path):
    from dataclasses import replace

    from training.train_h2l import box_blur, high_pass, train

    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    assert box_blur(x, 9).shape == x.shape and high_pass(torch.full_like(x, 0.3), 5).abs().max() < 1e-6
    assert high_pass(x, 5).abs().mean() > high_pass(x, 3).abs().mean()  # a wider blur leaves more to the adversary
    with pytest.raises(ValueError, match="odd"):
        train(replace(h2l_cfg(dirs, tmp_path / "even", 2), lp_blur=4), progress=False)
    train(replace(h2l_cfg(dirs, tmp_path / "wide", 2), hp_blur=5, lp_blur=9), progress=False)
    saved = json.loads((tmp_path / "wide" / "config.json").read_text())["train"]
    assert (saved["hp_blur"], saved["lp_blur"]) == (5, 9)
    assert torch.load(tmp_path / "wide" / "best.pt", weights_only=False)["train_config"]["hp_blur"] == 5


def test_h2l_resume_is_exact(dirs, tmp_path):
    from training.train_h2l import train

    straight, split = tmp_path / "a", tmp_path / "b"
    train(h2l_cfg(dirs, straight, 6), progress=False)
    train(h2l_cfg(dirs, split, 6), progress=False, stop_at=4)
    train(h2l_cfg(dirs, split, 6), resume=True, progress=False)
    a, b = (torch.load(p / "ckpt.pt", weights_only=False) for p in (straight, split))
    for k in a["ema"]:
        assert torch.allclose(a["ema"][k], b["ema"][k], atol=1e-6), k


def test_lr_sources_are_seeded_and_sized(h2l_export):
    tmp, _ = h2l_export
    hr = photo(64, 48, seed=5)
    for kind in ("bicubic", "pipeline", "learned", "mixed"):
        make = data.lr_maker(kind, "medium", tmp / "models" / "tiny-degrade-x2.onnx")
        a, b = make(hr, 2, np.random.default_rng(1)), make(hr, 2, np.random.default_rng(1))
        assert a.shape == (24, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b), kind
    with pytest.raises(ValueError, match="h2l_model"):
        data.lr_maker("mixed")


def test_train_sr_on_realistic_lr_from_a_checkpoint(dirs, sr_ckpt, h2l_export, tmp_path):
    from training.train_sr import train

    tmp, _ = h2l_export
    cfg = TrainConfig(data=[str(dirs / "hr")], run_dir=str(tmp_path / "real"), scale=2, arch="srresnet", net={"channels": 8, "blocks": 1, "up_channels": 8},
                      hr_patch=32, batch=2, steps=2, val_images=1, val_crop=48, ckpt_every=2, log_every=2, threads=1,
                      degradation="mixed", h2l_model=str(tmp / "models" / "tiny-degrade-x2.onnx"), init=str(sr_ckpt))
    train(cfg, progress=False)
    assert "starting from the EMA weights" in (tmp_path / "real" / "train.log").read_text()
    card = export_run(tmp_path / "real", tmp_path / "models", "tiny-real-x2", bench=[str(dirs / "bench")])
    assert card["training"]["degradation"] == "mixed" and "realistic LR" in card["description"]
    wrong = TrainConfig(**{**cfg.__dict__, "run_dir": str(tmp_path / "w"), "net": {"channels": 16, "blocks": 1, "up_channels": 8}})
    with pytest.raises(ValueError, match="holds srresnet"):
        train(wrong, progress=False)


def test_cli_train_gan_and_h2l_and_resume(dirs, sr_ckpt, tmp_path):
    from training.cli import main

    common = ["--threads", "1", "--no-progress", "--log-every", "2", "--ckpt-every", "2", "--val-every", "2"]
    main(["train-gan", "--data", str(dirs / "hr"), "--run", str(tmp_path / "g"), "--init", str(sr_ckpt), "--disc", "vgg",
          "--disc-channels", "8", "--patch", "32", "--batch", "2", "--steps", "2", "--val-images", "1", "--val-crop", "48", *common])
    main(["resume", str(tmp_path / "g")])  # already at its last step: resumes and ends at once
    saved = json.loads((tmp_path / "g" / "config.json").read_text())
    assert saved["trainer"] == "gan" and saved["train"]["command"].startswith("python -m training train-gan")
    main(["train-h2l", "--hr-data", str(dirs / "hr"), "--lr-data", str(dirs / "lq"), "--run", str(tmp_path / "h"), "--scale", "2",
          "--patch", "32", "--channels", "8", "--lr-blocks", "1", "--z-dim", "4", "--batch", "2", "--steps", "2", "--holdout", "2",
          "--disc-channels", "8", *common])
    assert json.loads((tmp_path / "h" / "config.json").read_text())["trainer"] == "h2l"
    assert torch.load(tmp_path / "h" / "ckpt.pt", weights_only=False)["step"] == 2
    main(["resume", str(tmp_path / "h"), "--steps", "4", "--lr", "1e-4", "--lr-d", "2e-4"])  # extend at lower rates
    saved = json.loads((tmp_path / "h" / "config.json").read_text())
    assert saved["train"]["steps"] == 4 and saved["train"]["lr"] == 1e-4 and saved["resumed_with"][0].endswith("--lr-d 2e-4")
    ck = torch.load(tmp_path / "h" / "ckpt.pt", weights_only=False)
    assert ck["step"] == 4 and ck["opt"]["param_groups"][0]["lr"] == 1e-4 and ck["opt_d"]["param_groups"][0]["lr"] == 2e-4
    main(["resume", str(tmp_path / "h"), "--steps", "6", "--set", "w_gan=0.2", "--set", "hp_blur=5"])  # any scalar setting
    saved = json.loads((tmp_path / "h" / "config.json").read_text())
    assert saved["train"]["w_gan"] == 0.2 and saved["train"]["hp_blur"] == 5 and saved["resumed_with"][-1].endswith("hp_blur=5")
    assert torch.load(tmp_path / "h" / "ckpt.pt", weights_only=False)["train_config"]["hp_blur"] == 5
    for bad in ("nope=1", "hp_blur=wide", "hr_data=x", "w_gan"):
        with pytest.raises(SystemExit, match="--set"):
            main(["resume", str(tmp_path / "h"), "--set", bad])
