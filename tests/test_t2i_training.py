"""Text-to-image training side: data and hold-out, nets, the GAN-INT-CLS loop (and its resume), export to the
serving contract, the evaluation's measures, and the shipped encoder and generator files."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from training.t2i import captions as cap  # noqa: E402
from training.t2i import data as t2i_data  # noqa: E402
from training.t2i import evaluate as ev  # noqa: E402
from training.t2i.nets import Discriminator, Exported, Generator, T2IConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
ENCODER = MODELS / "text-encoder.onnx"
TINY = T2IConfig(ngf=8, ndf=8, proj=16, z_dim=12)
COLOURS = {"red": (200, 20, 25), "yellow": (245, 220, 30), "white": (245, 245, 240), "purple": (120, 50, 190),
           "pink": (240, 110, 190), "orange": (240, 130, 20)}
needs_encoder = pytest.mark.skipif(not ENCODER.exists(), reason="models/text-encoder.onnx not shipped yet")


def _flower(rgb, rng) -> np.ndarray:
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32 + rng.integers(-4, 5), xx - 32 + rng.integers(-4, 5))
    img = np.empty((64, 64, 3), np.uint8)
    img[:] = (40, 110 + rng.integers(0, 40), 30)
    img[r < 22 + rng.integers(-3, 4)] = rgb
    img[r < 5] = (70, 45, 10)
    return img


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A flowers64-shaped folder: 6 classes, one petal colour each, 8 train + 2 test images, 2 human captions each."""
    from PIL import Image

    root = tmp_path_factory.mktemp("flowers64")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    labels, caps = [], []
    for k, (colour, rgb) in enumerate(COLOURS.items()):
        for j in range(10):
            name = f"image_{k * 10 + j + 1:05d}.jpg"
            Image.fromarray(_flower(rgb, rng)).save(root / "images" / name, quality=95)
            labels.append({"image": name, "class_id": k + 1, "class_name": f"{colour} testflower", "split": "train" if j < 8 else "test"})
            caps += [{"image": name, "caption": f"this flower has {colour} petals and a brown center", "class_id": k + 1, "class_confidence": "high"},
                     {"image": name, "caption": f"a round flower with {colour} petals", "class_id": k + 1, "class_confidence": "high"}]
    for fname, rows in (("labels.csv", labels), ("captions_reed.csv", caps)):
        with open(root / fname, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return root


def test_heldout_classes_are_seeded_and_disjoint():
    a = t2i_data.heldout_classes(20, 0)
    assert a == t2i_data.heldout_classes(20, 0) and a != t2i_data.heldout_classes(20, 1)
    assert len(set(a)) == 20 and all(1 <= c <= 102 for c in a)


def test_train_pool_excludes_heldout_classes_and_other_splits(tiny_data):
    from training.t2i.train import train_pool

    ds = t2i_data.load(tiny_data, attr_per_image=2)
    pool = train_pool(ds, [2, 5])
    assert len(pool) == 4 * 8
    assert not np.isin(ds.class_ids[pool], [2, 5]).any() and (ds.split[pool] == "train").all()
    # every image: its 2 human captions + 2 attribute captions, the attribute ones naming the measured colour
    assert len(ds.texts) == 60 * 4 and ds.text_is_attr.sum() == 120
    for t in np.flatnonzero(ds.text_is_attr):
        colour = ds.class_names[int(ds.class_ids[ds.text_image[t]])].split()[0]
        assert any(w in ds.texts[t] for w in cap.SYNONYMS[colour]), ds.texts[t]


def test_generator_and_discriminator_shapes_and_conditioning():
    torch.manual_seed(0)
    g, d = Generator(TINY).eval(), Discriminator(TINY)
    z, e = torch.randn(3, TINY.z_dim), torch.nn.functional.normalize(torch.randn(3, 384), dim=1)
    x = g(z, e)
    assert x.shape == (3, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert not torch.allclose(g(z, e.roll(1, 0)), x)  # the text changes the image
    assert d(x, e).shape == (3,) and not torch.allclose(d(x, e), d(x, e.roll(1, 0)))  # D sees the text
    y = Exported(g)(e, z)
    assert torch.allclose(y, x * 0.5 + 0.5, atol=1e-6) and y.min() >= 0 and y.max() <= 1
    proj = Discriminator(dataclasses.replace(TINY, projection=True))  # + the projection term <embed(e), sum h>
    assert proj.embed is not None and proj(x, e).shape == (3,)
    assert not torch.allclose(proj(x, e), proj(x, e.roll(1, 0)))


def _cfg(tiny_data, run_dir, **kw):
    from training.t2i.train import T2ITrainConfig

    base = dict(data=str(tiny_data), encoder=str(ENCODER), cache=str(Path(run_dir).parent / "cache"), run_dir=str(run_dir),
                net={"ngf": 8, "ndf": 8, "proj": 16, "z_dim": 12}, heldout=1, attr_per_image=1, batch=8, steps=4,
                sample_every=2, ckpt_every=2, log_every=1, threads=1)
    return T2ITrainConfig(**{**base, **kw})


@needs_encoder
def test_training_writes_the_run_and_resume_continues_exactly(tiny_data, tmp_path):
    from training.t2i.train import train

    whole = train(_cfg(tiny_data, tmp_path / "whole"), progress=False)
    part = _cfg(tiny_data, tmp_path / "part")
    train(part, progress=False, stop_at=2)
    assert torch.load(tmp_path / "part" / "ckpt.pt", weights_only=False)["step"] == 2
    train(part, resume=True, progress=False)
    a, b = (torch.load(p, weights_only=False) for p in (whole, tmp_path / "part" / "ckpt.pt"))
    assert a["step"] == b["step"] == 4
    for key in ("g", "d", "g_ema", "g_export"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    run = tmp_path / "part"
    assert json.loads((run / "config.json").read_text())["trainer"] == "t2i"
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(np.isfinite(r["loss_d"]) for r in rows)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert "resumed from" in (run / "train.log").read_text()


@needs_encoder
def test_export_meets_the_serving_contract(tiny_data, tmp_path):
    import onnx
    import onnxruntime as ort

    from training.export import sha256_file
    from training.t2i.export import export_run
    from training.t2i.train import train

    ckpt = train(_cfg(tiny_data, tmp_path / "run", steps=2), progress=False)
    card = export_run(ckpt.parent, tmp_path / "models", "t2i-test", evaluate_it=False, grid=None)
    on_disk = json.loads((tmp_path / "models" / "t2i-test.json").read_text())
    assert on_disk == card and card["task"] == "text-to-image" and card["size"] == 64 and card["z_dim"] == 12
    assert card["text_encoder"] == "text-encoder" and card["training"]["steps"] == 2 and card["heldout_classes"]
    onnx_path = tmp_path / "models" / "t2i-test.onnx"
    assert card["onnx"]["sha256"] == sha256_file(onnx_path)
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["card"])["name"] == "t2i-test" and meta["task"] == "text-to-image" and "scale" not in meta
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1]) for i in sess.get_inputs()] == [("text_embedding", 384), ("noise", 12)]
    rng = np.random.default_rng(0)
    e = rng.standard_normal((5, 384)).astype(np.float32)
    out = sess.run(["image"], {"text_embedding": e, "noise": rng.standard_normal((5, 12)).astype(np.float32)})[0]
    assert out.shape == (5, 3, 64, 64) and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    # t2i-evaluate --write: a new evaluation goes into both cards, and the JSON card pins the rewritten file
    from training.export import write_card

    card["evaluation"] = {"command": "python -m training t2i-evaluate ...", "table": {}}
    write_card(onnx_path, card)
    on_disk = json.loads((tmp_path / "models" / "t2i-test.json").read_text())
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert on_disk["evaluation"]["table"] == {} and json.loads(meta["card"])["evaluation"] == on_disk["evaluation"]
    assert on_disk["onnx"]["sha256"] == sha256_file(onnx_path) and on_disk["onnx"]["bytes"] == onnx_path.stat().st_size


def test_the_shipped_judge_is_the_default_classifier():
    """The cards' class accuracies and Frechet distances were measured with the shipped judge (a rebuild on another
    CPU gives other floats), so t2i-evaluate reproduces them by default."""
    from training.t2i.classifier import DEFAULT_PATH, load_classifier

    net, result = load_classifier()
    assert Path(DEFAULT_PATH) == ROOT / "training" / "t2i" / "judge.pt"
    assert result == json.loads((ROOT / "training" / "t2i" / "judge.json").read_text()) and result["test_top5"] > 0.75
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 102)
    command = json.loads((MODELS / "t2i-flowers64.json").read_text())["evaluation"]["command"]
    assert command.startswith("python -m training t2i-evaluate models/t2i-flowers64.onnx") and "--classifier" not in command


@needs_encoder
def test_auxiliary_class_loss_trains_a_class_head_and_resumes(tiny_data, tmp_path):
    """--w-cls (TAC-GAN): D gets a class head over the 103 class ids; both losses are logged; G's export is unchanged."""
    from training.t2i.train import N_CLASS_IDS, train

    ck = torch.load(train(_cfg(tiny_data, tmp_path / "cls", w_cls=1.0), progress=False), weights_only=False)
    assert ck["d"]["classify.weight_orig"].shape == (N_CLASS_IDS, 8 * 8)
    assert not any(k.startswith("classify") for k in ck["g_export"])
    rows = [json.loads(r) for r in (tmp_path / "cls" / "stats.jsonl").read_text().splitlines()]
    assert all(r["cls_real"] > 0 and r["cls_fake"] > 0 for r in rows)
    d = Discriminator(TINY, N_CLASS_IDS)
    assert d.class_logits(d.features(torch.rand(2, 3, 64, 64))).shape == (2, N_CLASS_IDS)
    assert Discriminator(TINY).classify is None


@needs_encoder
def test_training_can_start_from_a_shipped_generator_with_d_warm_up(tiny_data, tmp_path):
    """--init: G and its EMA start from an exported generator (weights read back from the graph); --d-warmup: the
    fresh D trains alone first; the new card records how the start was made."""
    from training.t2i.export import export_run
    from training.t2i.train import train

    first = train(_cfg(tiny_data, tmp_path / "first", steps=2), progress=False)
    export_run(first.parent, tmp_path / "models", "t2i-first", evaluate_it=False, grid=None)
    start = {k: v for k, v in torch.load(first, weights_only=False)["g_export"].items() if "running" not in k and "num_batches" not in k}
    cfg = _cfg(tiny_data, tmp_path / "cont", init=str(tmp_path / "models" / "t2i-first.onnx"), d_warmup=2, steps=4)
    train(cfg, progress=False, stop_at=2)
    ck = torch.load(tmp_path / "cont" / "ckpt.pt", weights_only=False)
    for key in ("g", "g_ema"):  # G and its EMA waited for D
        assert all(torch.equal(ck[key][k], v) for k, v in start.items()), key
    fresh_d = torch.load(first, weights_only=False)["d"]
    assert any(not torch.equal(ck["d"][k], fresh_d[k]) for k in fresh_d)
    train(cfg, resume=True, progress=False)
    ck = torch.load(tmp_path / "cont" / "ckpt.pt", weights_only=False)
    assert ck["step"] == 4 and not all(torch.equal(ck["g"][k], v) for k, v in start.items())  # then G trains
    rows = [json.loads(r) for r in (tmp_path / "cont" / "stats.jsonl").read_text().splitlines()]
    assert [r["loss_int"] for r in rows[:2]] == [0.0, 0.0] and rows[3]["loss_int"] > 0
    card = export_run(tmp_path / "cont", tmp_path / "models", "t2i-cont", evaluate_it=False, grid=None)
    assert card["training"]["init"].endswith("t2i-first.onnx") and card["training"]["d_warmup"] == 2
    assert card["training"]["init_training"]["steps"] == 2
    with pytest.raises(ValueError, match="held-out classes"):  # a generator that saw the held-out classes is refused
        train(_cfg(tiny_data, tmp_path / "bad", init=cfg.init, heldout=2), progress=False)
    with pytest.raises(ValueError, match="holds"):
        train(_cfg(tiny_data, tmp_path / "bad2", init=cfg.init, net={"ngf": 16, "ndf": 8, "proj": 16, "z_dim": 12}), progress=False)


@needs_encoder
def test_evaluate_runs_on_a_tiny_set(tiny_data, tmp_path):
    from training.t2i.classifier import train_classifier
    from training.t2i.export import export_run
    from training.t2i.train import train

    res = train_classifier(str(tiny_data), str(tmp_path / "clf.pt"), width=4, epochs=2, batch=16, threads=1, progress=False)
    assert 0 <= res["test_top1"] <= res["test_top5"] <= 1 and res["test_images"] == 12
    ckpt = train(_cfg(tiny_data, tmp_path / "run", steps=2), progress=False)
    export_run(ckpt.parent, tmp_path / "models", "t2i-test", evaluate_it=False, grid=None)
    r = ev.evaluate(tmp_path / "models" / "t2i-test.onnx", tmp_path / "clf.pt", str(tiny_data), str(ENCODER),
                    str(tmp_path / "cache"), heldout=[6], attr_per_image=1, colour_per_class=5, diversity_captions=3,
                    diversity_seeds=3, grid=tmp_path / "grid.png")
    assert set(r["table"]) == {"model", "shuffled", "mean-text", "real test images"}
    assert r["set"]["items"] == 10  # test images of the 5 seen classes
    for m in r["table"].values():
        assert 0 <= m["top1"] <= m["top5"] <= 1 and m["frechet"] >= 0
    seen = r["colour"]["seen (test split)"]
    assert seen["captions"] == 20 and seen["real_image_agreement"] == 1.0  # 5 colours x 2 test images x 2 captions; clean colours
    assert r["colour"]["held-out classes"]["captions"] == 5  # "orange" petals, class 6
    assert r["diversity"]["generated_same_caption"] > 0 and (tmp_path / "grid.png").exists()
    assert "| model |" in ev.format_table(r)


@needs_encoder
def test_encoder_class_retrieval_on_a_tiny_set(tiny_data, tmp_path):
    r = ev.encoder_class_retrieval(ENCODER, str(tiny_data), str(tmp_path / "cache"))
    assert r["classes"] == 6 and r["captions"] == 6 * 2 * 2 and r["chance_top5"] == round(5 / 6, 4)
    assert r["top1"] == 1.0  # one colour word per class: every test caption is nearest its own class


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((200_000, 1)), 3 + 2 * rng.standard_normal((200_000, 1))
    assert ev.frechet(a, b) == pytest.approx(9 + 1 + 4 - 2 * 2, rel=0.01)  # |mu|^2 + s1^2 + s2^2 - 2 s1 s2
    x = rng.standard_normal((500, 8))
    assert abs(ev.frechet(x, x)) < 1e-6
    assert ev.frechet(x, x + 1) == pytest.approx(8.0, rel=1e-6)


def test_colour_of_caption():
    assert ev.colour_of_caption("this flower has bright yellow petals and a dark center") == "yellow"
    assert ev.colour_of_caption("a flower with pink petal and green leaves") == "pink"
    assert ev.colour_of_caption("this flower has white petals and a yellow center") is None  # two named colours
    assert ev.colour_of_caption("the flower is red") is None  # not said of the petals
    assert ev.colour_of_caption("a flower with purple petals and purple stamen") == "purple"


# --- the shipped files -----------------------------------------------------------------------------------------

@needs_encoder
def test_shipped_text_encoder_card_and_behaviour():
    from training.export import sha256_file
    from training.t2i.encoder_export import OnnxEncoder

    card = json.loads((MODELS / "text-encoder.json").read_text())
    assert card["task"] == "text-encoder" and card["dim"] == 384 and card["max_length"] == 128
    assert card["onnx"]["sha256"] == sha256_file(ENCODER) and card["onnx"]["bytes"] < 40_000_000
    q = card["parity"]["int8_onnx_cosine"]
    assert card["precision"] == "int8" and q["min"] >= 0.99 and q["mean"] >= q["min"]
    retrieval = card["metrics"]["caption_class_retrieval"]  # measured on this file (t2i-evaluate-encoder)
    assert retrieval["classes"] == 102 and retrieval["top5"] > 5 * retrieval["chance_top5"]
    tok = json.loads((MODELS / card["tokenizer"]).read_text())
    assert tok["truncation"]["max_length"] == 128
    enc = OnnxEncoder(ENCODER)
    e = enc(["this flower has bright yellow petals", "a yellow flower", "the stock market fell sharply today", "word " * 400])
    assert e.shape == (4, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    sims = e @ e.T
    assert sims[0, 1] > 0.7 and sims[0, 2] < 0.3
    single = enc(["a yellow flower"])  # padding in a batch does not change an embedding
    assert np.allclose(single[0], e[1], atol=1e-4)


needs_generator = pytest.mark.skipif(not (MODELS / "t2i-flowers64.onnx").exists(), reason="t2i-flowers64 not shipped yet")


def _shipped_generator():
    import onnxruntime as ort

    card = json.loads((MODELS / "t2i-flowers64.json").read_text())
    return card, ort.InferenceSession(str(MODELS / card["onnx"]["file"]), providers=["CPUExecutionProvider"])


@needs_generator
def test_shipped_generator_card_and_contract():
    import onnx

    from training.export import sha256_file

    card, sess = _shipped_generator()
    path = MODELS / card["onnx"]["file"]
    assert card["task"] == "text-to-image" and card["size"] == 64 and card["text_encoder"] == "text-encoder"
    assert card["onnx"]["sha256"] == sha256_file(path) and card["onnx"]["bytes"] < 20_000_000
    assert len(card["heldout_classes"]) == 20 and card["training"]["steps"] > 0
    assert [(i.name, i.shape[1]) for i in sess.get_inputs()] == [("text_embedding", 384), ("noise", card["z_dim"])]
    assert [o.name for o in sess.get_outputs()] == ["image"]
    embedded = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["card"])
    assert embedded["evaluation"] == card["evaluation"] and embedded["training"] == card["training"]


@needs_generator
def test_shipped_generator_meets_the_evaluation_targets():
    """Issue 7's targets, on the numbers t2i-evaluate wrote into the card: colour >= 70%, class top-5 >= 5x chance,
    joint Frechet below both baselines (the plain one cannot tell the shuffled baseline apart), no collapse."""
    ev = _shipped_generator()[0]["evaluation"]
    table = ev["table"]
    assert table["model"]["top5"] >= 5 * ev["set"]["chance_top5"], table["model"]
    assert all(c["accuracy"] >= 0.7 for c in ev["colour"].values()), ev["colour"]
    assert table["model"]["joint_frechet"] < 0.9 * min(table["shuffled"]["joint_frechet"], table["mean-text"]["joint_frechet"])
    assert table["model"]["frechet"] < table["mean-text"]["frechet"] / 2
    assert ev["diversity"]["min_over_captions"] > 0.5 * ev["diversity"]["real_same_class"], ev["diversity"]


@needs_generator
@needs_encoder
def test_shipped_generator_follows_colour_words_and_varies_with_the_seed():
    from training.t2i.encoder_export import OnnxEncoder
    from training.t2i.train import noise

    card, sess = _shipped_generator()
    if not card["evaluation"]:
        pytest.skip("an early export (no evaluation in its card yet)")
    enc = OnnxEncoder(ENCODER)
    hits, n = 0, 0
    for colour in ("yellow", "red", "white", "purple"):
        e = enc([f"this flower has {colour} petals"])
        x = sess.run(["image"], {"text_embedding": np.repeat(e, 8, 0), "noise": noise(8, card["z_dim"]).numpy()})[0]
        imgs = t2i_data.to_uint8(x)
        hits += sum(cap.dominant_colour(im) == colour for im in imgs)
        n += len(imgs)
        d = [np.abs(imgs[i].astype(float) - imgs[j]).mean() for i in range(8) for j in range(i + 1, 8)]
        assert min(d) > 2.0  # distinct seeds, distinct images (no collapse)
    assert hits / n >= 0.5, f"{hits}/{n} generated flowers have the asked petal colour"


# -- LAPGAN and the style encoder ------------------------------------------------------------------------------
LAP_NET = {"ngf": 8, "ndf": 8, "proj": 16, "z_dim": 12, "fine": [8, 8, 8], "text": 4, "fine_batch": 2}


def test_lapgan_levels_add_bands_to_the_upsampled_coarser_image():
    from training.t2i import lapgan

    torch.manual_seed(0)
    g = lapgan.LapGenerator(lapgan.LapConfig(**LAP_NET)).eval()
    z, e = torch.randn(3, 12), torch.nn.functional.normalize(torch.randn(3, 384), dim=1)
    details = [torch.randn(3, 1, s, s) for s in (16, 32, 64)]
    with torch.no_grad():
        levels = g.levels(z, e, *details)
        assert [x.shape[-1] for x in levels] == [8, 16, 32, 64]
        for k in range(1, 4):  # I_k = u(I_{k+1}) + G_k(u(I_{k+1}), z_k, t)
            low = lapgan.up(levels[k - 1])
            assert torch.allclose(levels[k], low + g.bands[k - 1](low, details[k - 1], e), atol=1e-6)
        # the coarse image depends on z only; another detail draw keeps it and changes the 64 px image
        other = g.levels(z, e, *[torch.randn_like(d) for d in details])
        assert torch.equal(other[0], levels[0]) and not torch.allclose(other[-1], levels[-1])
        # training: each finer level is built on the REAL image's coarser level, for the first fine_batch images
        x = torch.rand(3, 3, 64, 64) * 2 - 1
        fakes = g.train_fakes(x, e)
        real = lapgan.real_levels(x, 2)
        assert [tuple(f.shape) for f in fakes.images] == [(3, 3, 8, 8), (2, 3, 16, 16), (2, 3, 32, 32), (2, 3, 64, 64)]
        assert all(torch.equal(a, b) for a, b in zip(fakes.lows[1:], real.lows[1:]))
        assert torch.equal(real.lows[1], lapgan.up(lapgan.down(lapgan.down(lapgan.down(x[:2])))))
        # chain: the first half of the fine batch is built on the level above's fake, as sampling does, and the
        # discriminator gets that fake's own coarser level; the rest stays on the real pyramid
        torch.manual_seed(1)
        chained = g.train_fakes(x, e, chain=0.5)
        torch.manual_seed(1)
        coarse = g.coarse(torch.randn(3, 12), e)
        low = torch.cat([lapgan.up(coarse[:1]), real.lows[1][1:]])
        assert torch.allclose(chained.images[1], low + g.bands[0](low, torch.randn(2, 1, 16, 16), e[:2]), atol=1e-6)
        for k in (1, 2, 3):
            assert torch.equal(chained.lows[k][1:], real.lows[k][1:])
            assert torch.allclose(chained.lows[k][:1], lapgan.up(lapgan.down(chained.images[k][:1])))
        assert not torch.allclose(chained.images[2][:1] - lapgan.up(chained.images[1][:1]),
                                  chained.images[2][:1] - real.lows[2][:1])  # level 32 built on the generated 16 px image
    d = lapgan.LapDiscriminator(lapgan.LapConfig(**LAP_NET), classes=5)
    h = d.features(x)
    assert d.judge(h, e).shape == (3 + 3 * 2,) and d(fakes.detach(), e).shape == (9,)
    assert d.class_loss(h, torch.tensor([0, 1, 2])).shape == ()


@needs_encoder
def test_lapgan_trains_resumes_exports_and_evaluates_its_levels(tiny_data, tmp_path):
    import onnxruntime as ort

    from training.t2i.evaluate import OnnxGenerator, level_spread
    from training.t2i.export import export_run
    from training.t2i.train import train

    cfg = dict(arch="lapgan", net=LAP_NET, w_cls=1.0, chain=0.5)
    whole = train(_cfg(tiny_data, tmp_path / "whole", **cfg), progress=False)
    part = _cfg(tiny_data, tmp_path / "part", **cfg)
    train(part, progress=False, stop_at=2)
    train(part, resume=True, progress=False)
    a, b = (torch.load(p, weights_only=False) for p in (whole, tmp_path / "part" / "ckpt.pt"))
    assert a["arch"] == "lapgan" and all(torch.equal(a["g_ema"][k], b["g_ema"][k]) for k in a["g_ema"])
    card = export_run(whole.parent, tmp_path / "models", "lap-test", evaluate_it=False, grid=None)
    assert card["arch"] == "lapgan" and "LAPGAN" in card["description"]
    assert [i["name"] for i in card["inputs"]] == ["text_embedding", "noise", "noise_16", "noise_32", "noise_64"]
    path = tmp_path / "models" / "lap-test.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["text_embedding", "noise", "noise_16", "noise_32", "noise_64"]
    gen = OnnxGenerator(path)
    assert gen.levels == [16, 32, 64] and gen.z_dim == 12
    e = np.repeat(np.random.default_rng(0).standard_normal((1, 384)).astype(np.float32), 2, 0)
    same = gen(e, [4, 4], detail_seeds=[9, 9])
    assert np.array_equal(same[0], same[1])  # the same seeds give the same image
    spread = level_spread(gen, e[:1], 3)
    assert set(spread) == {"coarse (8 px)", "detail (all finer levels)", "16 px only", "32 px only", "64 px only"}
    assert all(v >= 0 for v in spread.values())


@needs_encoder
def test_style_encoder_trains_on_the_generators_images_and_exports(tiny_data, tmp_path):
    import onnxruntime as ort

    from training.t2i.config import StyleConfig
    from training.t2i.export import export_run
    from training.t2i.style import export, train
    from training.t2i.train import train as train_gan

    gan = train_gan(_cfg(tiny_data, tmp_path / "gan", steps=2), progress=False)
    export_run(gan.parent, tmp_path / "models", "t2i-tiny", evaluate_it=False, grid=None)
    card_path = tmp_path / "models" / "t2i-tiny.json"  # the tiny data has 6 classes: hold out the 6th for S's check
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "heldout_classes": [6]}))
    cfg = StyleConfig(generator=str(tmp_path / "models" / "t2i-tiny.onnx"), data=str(tiny_data), encoder=str(ENCODER),
                      cache=str(tmp_path / "cache"), run_dir=str(tmp_path / "style"), width=8, batch=16, steps=30, lr=3e-3,
                      eval_items=64, ckpt_every=10, log_every=5)
    train(cfg)
    card = export(tmp_path / "style", tmp_path / "models", grid=tmp_path / "style-grid.png")
    from PIL import Image

    assert Image.open(tmp_path / "style-grid.png").size == (6 * 132 + 4, 70 + 6 * 132)  # 6 style rows x (style + 5 captions)
    assert card["name"] == "style-t2i-tiny" and card["task"] == "style-encoder" and card["generator"] == "t2i-tiny" and card["z_dim"] == 12
    m = card["metrics"]["heldout_classes"]
    assert m["items"] == 64 and -1 <= m["cosine_mean"] <= 1 and m["mse"] > 0
    rows = [json.loads(r) for r in (tmp_path / "style" / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns (z is recoverable from a generator that uses it)
    sess = ort.InferenceSession(str(tmp_path / "models" / "style-t2i-tiny.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"image": np.random.default_rng(0).random((2, 3, 64, 64), np.float32)})[0]
    assert out.shape == (2, 12)


LAPGAN = MODELS / "t2i-lapgan-flowers64.json"


@pytest.mark.skipif(not LAPGAN.exists(), reason="no shipped LAPGAN generator")
def test_shipped_lapgan_card_side_by_side_with_gan_int_cls():
    """The numbers t2i-evaluate wrote into both cards (same judge, captions, seeds and baselines). LAPGAN follows the
    colour words (issue 24: >= 0.8), does not collapse and reaches the issue's class top-5 of 0.25 (0.277, after its
    finer levels learned on generated coarse images too: chain); GAN-INT-CLS's 0.30 is still higher, so GAN-INT-CLS
    stays the default generator."""
    lap = json.loads(LAPGAN.read_text())
    ev, base = lap["evaluation"], json.loads((MODELS / "t2i-flowers64.json").read_text())["evaluation"]
    assert lap["arch"] == "lapgan" and lap["heldout_classes"] == json.loads((MODELS / "t2i-flowers64.json").read_text())["heldout_classes"]
    assert ev["set"] == base["set"] and ev["classifier"] == base["classifier"]
    assert all(c["accuracy"] >= 0.8 for c in ev["colour"].values()), ev["colour"]
    assert ev["table"]["model"]["top5"] >= 0.25 >= 5 * ev["set"]["chance_top5"]
    assert ev["table"]["model"]["top5"] < base["table"]["model"]["top5"]  # why the default stays GAN-INT-CLS
    assert ev["table"]["model"]["joint_frechet"] < ev["table"]["shuffled"]["joint_frechet"]
    assert ev["diversity"]["generated_same_caption"] >= 0.9 * base["diversity"]["generated_same_caption"]  # no collapse
    levels = ev["diversity"]["levels"]  # redrawing a finer level changes less than redrawing the composition
    assert levels["coarse (8 px)"] > levels["detail (all finer levels)"] > levels["64 px only"] > 0
    from app.config import Settings

    assert Settings().t2i_generator == "gan-int-cls"
