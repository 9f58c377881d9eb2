"""evaluate-restoration: the degradation family is fixed and seeded, covers what it claims, and is scored right."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import photo
from training import evaluate_restoration as er


@pytest.mark.parametrize("scale", [2, 4])
def test_every_degradation_is_deterministic_and_has_the_lr_size(scale):
    hr = photo(96, 64, seed=4)
    for d in er.FAMILY:
        a = d.apply(hr, scale, np.random.default_rng(er._seed(d.name, "x")))
        b = d.apply(hr, scale, np.random.default_rng(er._seed(d.name, "x")))
        assert a.shape == (64 // scale, 96 // scale, 3) and a.dtype == np.uint8 and np.array_equal(a, b), d.name


def test_the_family_spans_the_issue_and_holds_some_kinds_out():
    f = er.FAMILY
    assert any(d.blur and d.blur[0] != d.blur[1] for d in f) and any(d.blur and d.blur[0] == d.blur[1] for d in f)
    sigmas = [s for d in f if d.blur for s in d.blur[:2]]
    assert min(sigmas) <= 0.5 and max(sigmas) >= 3.0
    assert {d.down for d in f} >= {"bicubic", "bilinear", "area"}
    assert any(d.poisson for d in f) and any(d.noise and not d.poisson for d in f) and any(d.gray_noise for d in f)
    jpegs = [d.jpeg for d in f if d.jpeg]
    assert min(jpegs) == 30 and max(jpegs) >= 90
    assert any(d.blur and d.noise and d.jpeg for d in f)  # combinations
    held = [d for d in f if d.held_out]
    assert held and all(d.down == "lanczos" or d.disk or d.webp for d in held)  # kinds training never draws


def test_noise_makes_an_image_worse_and_scores_are_averaged_per_degradation(tmp_path):
    from PIL import Image

    bench = tmp_path / "bench"
    bench.mkdir()
    for i in range(2):
        Image.fromarray(photo(64, 48, seed=i)).save(bench / f"{i}.png")
    family = (er.Degradation("clean"), er.Degradation("noisy", noise=15), er.Degradation("webp", webp=30, held_out=True))
    results = er.evaluate({"bicubic": er.bicubic_upscaler(2)}, [str(bench)], 2, family)
    rows = results["bench"]
    assert rows["noisy"]["bicubic"][0] < rows["clean"]["bicubic"][0]
    avg = er.summary(results, family)["bench"]["bicubic"]
    assert avg["psnr_y"] == pytest.approx((rows["clean"]["bicubic"][0] + rows["noisy"]["bicubic"][0]) / 2, abs=1e-3)
    assert avg["held_out_psnr_y"] == pytest.approx(rows["webp"]["bicubic"][0], abs=1e-3)
    table = er.format_tables(results, family)
    assert "webp (held out)" in table and "average (trained kinds)" in table
    card = tmp_path / "m.json"
    card.write_text(json.dumps({"name": "m", "metrics": {}}))
    results_m = er.evaluate({"bicubic": er.bicubic_upscaler(2), "m": er.bicubic_upscaler(2)}, [str(bench)], 2)
    er.write_cards(results_m, {"m": tmp_path / "m.onnx"}, 2)
    stored = json.loads(card.read_text())["restoration_x2"]
    assert stored["sets"]["bench"]["m"]["psnr_y"] == stored["sets"]["bench"]["bicubic"]["psnr_y"] and stored["models"] == ["bicubic", "m"]
    assert "down lanczos" in stored["held_out"]


def test_combinations_are_the_realistic_rows_and_get_their_own_average(tmp_path):
    """Issue 21 judges on realistic degradations (blur, downscale, noise, compression together): the trained
    combinations get an average of their own, apart from the single kinds and the held-out ones."""
    combined = [d.name for d in er.FAMILY if d.combined]
    assert len(combined) == 5 and all("+" in name for name in combined)
    assert not any(d.combined for d in er.FAMILY if "+" not in d.name)
    assert not any(d.held_out for d in er.FAMILY if d.combined)  # the held-out combination stays in its own average
    from PIL import Image

    bench = tmp_path / "bench"
    bench.mkdir()
    Image.fromarray(photo(64, 48, seed=0)).save(bench / "0.png")
    family = (er.Degradation("clean"), er.Degradation("blur + jpeg", blur=(1.5, 1.5, 0), jpeg=50),
              er.Degradation("noise + jpeg", noise=10, jpeg=40), er.Degradation("webp", webp=30, held_out=True))
    results = er.evaluate({"bicubic": er.bicubic_upscaler(2)}, [str(bench)], 2, family)
    rows = results["bench"]
    avg = er.summary(results, family)["bench"]["bicubic"]
    want = (rows["blur + jpeg"]["bicubic"][0] + rows["noise + jpeg"]["bicubic"][0]) / 2
    assert avg["combined_psnr_y"] == pytest.approx(want, abs=1e-3)
    assert "average (combinations)" in er.format_tables(results, family)


@pytest.mark.parametrize("command", ["evaluate-restoration", "evaluate"])
def test_a_model_given_after_bench_is_a_clear_usage_error(tmp_path, capsys, command):
    """--bench takes folders: a model file swallowed by it (``--bench Set14 model.onnx``) stops the command with a
    message that says so, before any model is loaded, not with a traceback from the image reader (every --bench)."""
    from training.cli import main

    model = tmp_path / "sr-x2.onnx"
    model.write_bytes(b"not read")
    with pytest.raises(SystemExit):
        main([command, "--bench", str(tmp_path), str(model)])
    message = capsys.readouterr().err
    assert "not a folder" in message and "sr-x2.onnx" in message and "before --bench" in message
