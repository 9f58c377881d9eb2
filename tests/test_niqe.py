"""NIQE (training/niqe.py): the distribution fits recover known shapes; the shipped pristine model ranks
degraded images worse than clean ones; the real-photo evaluation and its sheet run end to end."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, SHARED, photo, write_nearest_model
from training import niqe


def test_ggd_recovers_gaussian_and_laplacian_shapes():
    rng = np.random.default_rng(0)
    a, var = niqe.ggd(rng.normal(0, 2, 200_000))
    assert abs(a - 2.0) < 0.05 and abs(var - 4.0) < 0.1
    a, _ = niqe.ggd(rng.laplace(0, 1, 200_000))
    assert abs(a - 1.0) < 0.05
    # an asymmetric Gaussian puts mass on each side in proportion to that side's scale
    a, mean, lv, rv = niqe.aggd(np.concatenate([-np.abs(rng.normal(0, 1, 50_000)), np.abs(rng.normal(0, 3, 150_000))]))
    assert abs(a - 2.0) < 0.1 and rv > 5 * lv and mean > 0


@pytest.mark.skipif(not (SHARED / "bench" / "Set14").is_dir(), reason="needs ../shared/data")
def test_shipped_model_ranks_degradations_worse():
    from training import data

    model = niqe.load()
    assert model["mu"].shape == (36,) and model["cov"].shape == (36, 36)
    hr = data.load_rgb(SHARED / "bench" / "Set14" / "lenna.png") if (SHARED / "bench" / "Set14" / "lenna.png").exists() \
        else data.load_rgb(data.list_images([SHARED / "bench" / "Set14"])[0])
    h, w = hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4
    hr = hr[:h, :w]
    blurred = data.bicubic_resize(data.downscale(hr, 4), (w, h))
    noisy = np.clip(hr + np.random.default_rng(0).normal(0, 20, hr.shape), 0, 255).astype(np.uint8)
    clean = niqe.score(hr, model)
    assert clean < niqe.score(blurred, model) and clean < niqe.score(noisy, model)


def test_fit_and_too_small():
    imgs = [photo(200, 200, seed=i) for i in range(3)]
    m = niqe.fit(imgs)
    assert m["mu"].shape == (36,) and int(m["patches"]) >= 3
    with pytest.raises(ValueError, match="at least 96"):
        niqe.patch_features(photo(50, 50))


def test_evaluate_real_and_sheet(tmp_path):
    from training.evaluate_real import comparison_sheet, evaluate_real, format_table

    models = tmp_path / "m"
    path = write_nearest_model(models, "nearest-x4", 4)
    imgs = tmp_path / "in"
    imgs.mkdir()
    for i in range(2):
        Image.fromarray(photo(40, 36, seed=i)).save(imgs / f"{i}.png")
    res = evaluate_real([path], {"in": sorted(imgs.glob("*.png"))})
    assert set(res["in"]) == {"images", "bicubic", "nearest-x4"} and res["in"]["images"] == 2
    assert "NIQE nearest-x4" in format_table(res)
    sheet = comparison_sheet([path], sorted(imgs.glob("*.png")), tmp_path / "sheet.png", crop=32)
    assert Image.open(sheet).size == (3 * 128, 2 * (128 + 18) + 18)


def test_evaluate_real_sheet_rows_by_name_from_the_command_line(tmp_path):
    import subprocess
    import sys

    path = write_nearest_model(tmp_path / "m", "nearest-x4", 4)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for i in range(2):
            Image.fromarray(photo(80, 80, seed=i)).save(tmp_path / folder / f"{folder}{i}.png")
    cmd = [sys.executable, "-m", "training", "evaluate-real", str(path), "--inputs", str(tmp_path / "a"), str(tmp_path / "b"),
           "--heldout-from", "--sheet-only", "--sheet", str(tmp_path / "sheet.png")]
    done = subprocess.run([*cmd, "--sheet-images", "b1.png", "a0.png"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "NIQE" not in done.stdout and Image.open(tmp_path / "sheet.png").size == (3 * 256, 2 * (256 + 18) + 18)
    bad = subprocess.run([*cmd, "--sheet-images", "nope.png"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "nope.png" in bad.stderr
