"""The real-world and GAN models of models/ (issue 4): degrade-x4, real-x4, srgan-x4.

Their cards carry what was measured when they were exported; the bars of the issue are checked on the
cards, and the cheap measurements are re-measured here from the files.
"""
from __future__ import annotations

import hashlib
import io
import json

import httpx
import numpy as np
import onnx
import pytest
from PIL import Image

from tests.helpers import ROOT, SHARED, ServerProcess

MODELS = ROOT / "models"
needs_data = pytest.mark.skipif(not (SHARED / "bench" / "Set5").is_dir(), reason="needs ../shared/data")


def card(name: str) -> dict:
    return json.loads((MODELS / f"{name}.json").read_text())


def total_steps(training: dict) -> int:
    """Steps of every stage the card records (the last one and each init_training below it)."""
    return training["steps"] + (total_steps(training["init_training"]) if "init_training" in training else 0)


@pytest.mark.parametrize("name,task,inputs", [
    ("degrade-x4", "degradation", ["image", "noise"]),
    ("real-x4", "super-resolution", ["image"]),
    ("real-x4-l1", "super-resolution", ["image"]),
    ("real-x2-l1", "super-resolution", ["image"]),
    ("real-x2", "super-resolution", ["image"]),
    ("srgan-x4", "super-resolution", ["image"]),
])
def test_cards_match_files_and_contract(name, task, inputs):
    c = card(name)
    path = MODELS / c["onnx"]["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == c["onnx"]["sha256"]
    assert c["task"] == task and c["scale"] == int(name.split("-x")[1][0]) and c["parity_max_abs_diff"] <= 1e-4
    assert c["training"]["command"].startswith("python -m training") and c["training"]["steps"] >= 500
    assert total_steps(c["training"]) >= 1000  # a fine-tune stage may be shorter; the model behind it is not
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["card"])["metrics"] == c["metrics"] and meta["task"] == task
    assert [i.name for i in model.graph.input] == inputs


def test_learned_degradation_is_closer_to_real_photos_than_bicubic():
    m = card("degrade-x4")["metrics"]
    assert m["learned"]["frechet"] < m["bicubic"]["frechet"] < m["pipeline"]["frechet"], m
    assert m["learned"]["ratio_to_bicubic"]["ci95"][1] < 1, m["learned"]  # the whole bootstrap interval below bicubic's


@needs_data
def test_srgan_trades_little_psnr_for_detail():
    """Set5/Set14 of sr-x4 measured here (its card predates the gradient-energy column), srgan-x4's from its card."""
    from training.evaluate import evaluate_onnx

    sets = [str(SHARED / "bench" / b) for b in ("Set5", "Set14")]
    sr, gan = evaluate_onnx(MODELS / "sr-x4.onnx", sets), card("srgan-x4")["metrics"]
    assert gan["Set5"]["psnr_y"] >= sr["Set5"]["psnr_y"] - 1.5
    for bench in ("Set5", "Set14"):  # gradient energy relative to HR: closer to 1 than the PSNR model
        assert abs(1 - gan[bench]["grad_ratio"]) < abs(1 - sr[bench]["grad_ratio"]), (bench, sr[bench], gan[bench])


def test_real_x4_card_records_niqe_on_real_photos():
    """The bar of issue 4: on real low-quality photos, NIQE (the no-reference measure chosen before training; lower is
    more natural) favours real-x4 over the bicubic-trained sr-x4, on both sets; issue 21's: real-x4 <= 6.4 on
    RealSRSet (met). Its other NIQE bar, real-x4-l1 <= sr-x4, is in the next test (real-x4's card was written with
    the earlier real-x4-l1, which missed it)."""
    niqe = card("real-x4")["metrics"]["real_photos_niqe"]
    assert {k: r["images"] for k, r in niqe.items()} == {"RealSRSet": 20, "Flickr1000 (held out, 30)": 30}
    for r in niqe.values():
        assert r["real-x4"] < r["sr-x4"] < r["bicubic"], r
    assert niqe["RealSRSet"]["real-x4"] <= 6.4


def test_real_x4_l1_is_not_softer_than_sr_x4_on_real_photos():
    """Issue 21's NIQE bar for the faithful model: at most sr-x4's on RealSRSet (measured in one run with sr-x4 and
    real-x4 when real-x4-l1 was exported). Met since the sharpened-target stage (train-sr --gt-usm, degraded patches
    only); the file before it scored 7.57 against 7.21."""
    niqe = card("real-x4-l1")["metrics"]["real_photos_niqe"]
    assert {k: r["images"] for k, r in niqe.items()} == {"RealSRSet": 20, "Flickr1000 (held out, 30)": 30}
    real_sr_set = niqe["RealSRSet"]
    assert real_sr_set["real-x4-l1"] <= real_sr_set["sr-x4"] < real_sr_set["bicubic"], real_sr_set
    assert real_sr_set["real-x4"] < real_sr_set["real-x4-l1"], real_sr_set  # the crisp model stays the crisper
    assert card("real-x4-l1")["training"]["gt_usm"] == 2.0 and card("real-x4-l1")["training"]["gt_usm_on"] == "degraded"


@needs_data
@pytest.mark.slow
def test_real_x4_niqe_reproduces_from_the_files():
    from training.evaluate_real import evaluate_real, inputs

    sets = inputs([str(SHARED / "lowquality" / "RealSRSet")], [], 0, 20)
    got = evaluate_real([MODELS / "sr-x4.onnx", MODELS / "real-x4-l1.onnx", MODELS / "real-x4.onnx"], sets)["RealSRSet"]
    want = card("real-x4-l1")["metrics"]["real_photos_niqe"]["RealSRSet"]
    # every number of real-x4-l1's card (all three measured in one run when it was exported) reproduces
    for model in ("sr-x4", "real-x4-l1", "real-x4"):
        assert got[model] == pytest.approx(want[model], abs=0.01), model
    assert got["real-x4"] < got["sr-x4"] - 0.5 and got["real-x4-l1"] <= got["sr-x4"]


@needs_data
def test_srgan_set5_reproduces_from_the_file():
    from training.evaluate import evaluate_onnx

    got = evaluate_onnx(MODELS / "srgan-x4.onnx", [str(SHARED / "bench" / "Set5")])["Set5"]
    want = card("srgan-x4")["metrics"]["Set5"]
    assert got["psnr_y"] == pytest.approx(want["psnr_y"], abs=0.01) and got["grad_ratio"] == pytest.approx(want["grad_ratio"], abs=2e-3)


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess({"GAN_MODELS_DIR": str(MODELS)})
    yield srv
    srv.stop()


@needs_data
def test_models_through_the_server(server):
    from training import data

    hr = data.mod_crop(data.load_rgb(SHARED / "bench" / "Set14" / "monarch.png"), 4)[:256, :256]
    body = io.BytesIO()
    Image.fromarray(hr).save(body, "PNG")
    for method in ("pipeline", "learned"):
        r = httpx.post(f"{server.url}/degrade?method={method}&seed=7", content=body.getvalue(), timeout=120)
        assert r.status_code == 200 and r.headers["x-model"] == ("degrade-x4" if method == "learned" else "degrade-pipeline")
        lr = np.asarray(Image.open(io.BytesIO(r.content)))
        assert lr.shape == (64, 64, 3)
        again = httpx.post(f"{server.url}/degrade?method={method}&seed=7", content=body.getvalue(), timeout=120)
        assert again.content == r.content
    degraded = again.content  # the learned degradation's 64x64 image, upscaled back by the real-world models
    for model in ("real-x4", "srgan-x4"):
        r = httpx.post(f"{server.url}/upscale?model={model}", content=degraded, timeout=120)
        assert r.status_code == 200 and r.headers["x-model"] == model and Image.open(io.BytesIO(r.content)).size == (256, 256)
    for mode, scale, model, size in (("faithful", 4, "real-x4-l1", 256), ("crisp", 2, "real-x2", 128),
                                     ("faithful", 1.5, "real-x2-l1", 96)):  # mode picks the real-photo model of the scale
        r = httpx.post(f"{server.url}/upscale?mode={mode}&scale={scale}", content=degraded, timeout=120)
        assert r.status_code == 200 and r.headers["x-model"] == model and Image.open(io.BytesIO(r.content)).size == (size, size)
    ready = httpx.get(server.url + "/readyz").json()["models"]
    assert {"degrade-x4", "real-x4", "real-x4-l1", "real-x2", "real-x2-l1", "srgan-x4", "sr-x4", "sr-x2"} <= set(ready)


def test_real_x4_l1_restores_real_degradations_and_stays_close_on_clean_input():
    """Against ground truth on the family of realistic degradations (evaluate-restoration, on the shipped files
    together): on the kinds it trained on, the faithful real-photo model beats sr-x4 and bicubic on average; on the
    held-out kinds it beats bicubic (sr-x4 stays ahead there: they are mostly mild blurs and resamplings); on clean
    bicubic LR it stays within 1.5 dB of sr-x4 (issue 21). On the realistic combinations it is 0.17-0.25 dB above
    sr-x4 (0.25-0.33 before the sharpened-target stage that met the NIQE bar; on the trained kinds' average +0.07-0.10,
    +0.16-0.21 before it): issue 21's +1.0 dB is not reached."""
    c = card("real-x4-l1")
    sets = c["restoration_x4"]["sets"]
    assert "Set5" in sets and c["restoration_x4"]["held_out"]
    for bench, rows in sets.items():
        ours = rows["real-x4-l1"]
        assert ours["psnr_y"] > rows["sr-x4"]["psnr_y"] + 0.05 and ours["psnr_y"] > rows["bicubic"]["psnr_y"], (bench, rows)
        assert ours["combined_psnr_y"] > rows["sr-x4"]["combined_psnr_y"] + 0.15, (bench, rows)
        assert ours["held_out_psnr_y"] > rows["bicubic"]["held_out_psnr_y"], (bench, rows)
    assert c["metrics"]["Set5"]["psnr_y"] >= card("sr-x4")["metrics"]["Set5"]["psnr_y"] - 1.5


def test_real_x2_models_restore_realistic_x2_degradations():
    """Issue 21 at x2, against ground truth (evaluate-restoration --scale 2, the shipped files together): on the
    realistic combinations the crisp real-x2 is 1.00 dB above sr-x2 on Set14 (the bar; Set5 1.40) and the faithful
    real-x2-l1 0.89 (Set5 1.29); both beat sr-x2 on the trained kinds' average, and real-x2-l1 stays within 1.5 dB of
    it on clean Set5 (real-x2, trained harder on degraded LR, is 2.5 dB under there: clean inputs belong to sr-x2)."""
    sets = card("real-x2-l1")["restoration_x2"]["sets"]
    assert {"Set5", "Set14"} <= set(sets) and card("real-x2")["restoration_x2"]["sets"] == sets
    for bench, rows in sets.items():
        for name in ("real-x2-l1", "real-x2"):
            assert rows[name]["psnr_y"] > rows["sr-x2"]["psnr_y"] + 0.3, (bench, name, rows)
    s14 = sets["Set14"]
    assert s14["real-x2"]["combined_psnr_y"] >= s14["sr-x2"]["combined_psnr_y"] + 1.0, s14
    assert s14["real-x2-l1"]["combined_psnr_y"] >= s14["sr-x2"]["combined_psnr_y"] + 0.85, s14
    assert card("real-x2-l1")["metrics"]["Set5"]["psnr_y"] >= card("sr-x2")["metrics"]["Set5"]["psnr_y"] - 1.5


@needs_data
@pytest.mark.slow
def test_real_x4_l1_restoration_reproduces_from_the_files():
    from training.evaluate_restoration import run, summary

    got = summary(run([MODELS / "sr-x4.onnx", MODELS / "real-x4-l1.onnx"], [str(SHARED / "bench" / "Set5")], 4))["Set5"]
    want = card("real-x4-l1")["restoration_x4"]["sets"]["Set5"]
    for model in ("bicubic", "real-x4-l1"):
        assert got[model]["psnr_y"] == pytest.approx(want[model]["psnr_y"], abs=0.01), model


@needs_data
@pytest.mark.slow
def test_real_x2_restoration_reproduces_from_the_files():
    from training.evaluate_restoration import run, summary

    got = summary(run([MODELS / "real-x2-l1.onnx", MODELS / "real-x2.onnx"], [str(SHARED / "bench" / "Set5")], 2))["Set5"]
    want = card("real-x2")["restoration_x2"]["sets"]["Set5"]
    for model in ("bicubic", "real-x2-l1", "real-x2"):
        for key in ("psnr_y", "combined_psnr_y"):
            assert got[model][key] == pytest.approx(want[model][key], abs=0.01), (model, key)
