"""Training side: a tiny run reduces the loss, resume is exact, export holds the ONNX + card contract."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from tests.helpers import photo  # noqa: E402
from training import nets  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.export import check_parity, export_run  # noqa: E402
from training.train_sr import train  # noqa: E402


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(6):
        sub = d / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(photo(96, 80, seed=i)).save(sub / f"{i}.{'png' if i % 3 else 'jpg'}")
    return d


def tiny(image_dir, run_dir, steps, **kw) -> TrainConfig:
    base = dict(
        data=[str(image_dir)], run_dir=str(run_dir), scale=2, arch="srresnet", net={"channels": 8, "blocks": 1, "up_channels": 8},
        hr_patch=32, batch=4, steps=steps, lr=2e-3, warmup=2, val_images=1, val_crop=64, val_every=10,
        ckpt_every=10, log_every=5, threads=1, seed=3,
    )
    return TrainConfig(**{**base, **kw})


def losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_tiny_training_reduces_loss(image_dir, tmp_path):
    train(tiny(image_dir, tmp_path, 60), progress=False)
    ls = losses(tmp_path)
    assert len(ls) == 12 and np.mean(ls[-3:]) < 0.8 * np.mean(ls[:2])
    stats = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert "val_psnr_ema" in stats[-1] and (tmp_path / "train.log").exists()


def test_resume_matches_uninterrupted_run(image_dir, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tiny(image_dir, straight, 20), progress=False)
    train(tiny(image_dir, split, 20), progress=False, stop_at=17)  # interrupted after logging step 15
    train(tiny(image_dir, split, 20), resume=True, progress=False)
    a = torch.load(straight / "ckpt.pt", weights_only=False)
    b = torch.load(split / "ckpt.pt", weights_only=False)
    assert a["step"] == b["step"] == 20
    logged = [json.loads(x)["step"] for x in (split / "stats.jsonl").read_text().splitlines()]
    assert logged == [5, 10, 15, 20]  # steps 11-17 were redone from the step-10 checkpoint, 15 not logged twice
    for k in a["ema"]:
        assert torch.equal(a["ema"][k], b["ema"][k]), k


def test_flops_and_params_are_counted():
    net = nets.build("srresnet", {"scale": 4, "channels": 16, "blocks": 2, "up_channels": 8})
    assert nets.count_params(net) == sum(p.numel() for p in net.parameters())
    # head 3->16, 4 body convs 16->16, body tail, up 16->32 at 1x, up 8->32 at 2x (4 px), tail 8->3 at 4x (16 px)
    expected = 2 * 9 * (3 * 16 + 5 * 16 * 16 + 16 * 32 + 4 * 8 * 32 + 16 * 8 * 3)
    assert nets.flops_per_input_pixel(net) == expected


@pytest.fixture(scope="module")
def exported(image_dir, tmp_path_factory):
    """A tiny trained x2 run exported into models/, with a one-image benchmark set: (models dir, bench, card)."""
    tmp = tmp_path_factory.mktemp("exported")
    train(tiny(image_dir, tmp / "run", 10), progress=False)
    bench = tmp / "bench" / "Tiny"
    bench.mkdir(parents=True)
    Image.fromarray(photo(50, 42, seed=9)).save(bench / "x.png")
    card = export_run(tmp / "run", tmp / "models", "tiny-x2", bench=[str(bench)])
    return tmp / "models", bench, card


def test_export_contract(exported):
    import onnx
    import onnxruntime as ort

    models, _, card = exported
    path = models / "tiny-x2.onnx"
    saved = json.loads((models / "tiny-x2.json").read_text())
    assert saved == card and card["scale"] == 2 and card["task"] == "super-resolution"
    assert card["parity_max_abs_diff"] <= 1e-4 and card["metrics"]["Tiny"]["images"] == 1
    for key in ("params", "flops_per_input_pixel", "inputs", "outputs", "training", "onnx"):
        assert key in card
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() == card["onnx"]["sha256"]
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["scale"] == "2" and json.loads(meta["card"])["name"] == "tiny-x2"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    out = sess.run(None, {"image": np.random.rand(3, 3, 11, 7).astype(np.float32) * 3 - 1})[0]
    assert out.shape == (3, 3, 22, 14) and out.min() >= 0 and out.max() <= 1  # dynamic dims, clamped


def test_shipped_onnx_loads_back_as_a_torch_net_for_fine_tuning(exported, image_dir, tmp_path):
    from training.train_sr import load_ema

    models, _, card = exported
    net, ck = load_ema(models / "tiny-x2.onnx")  # weights by name, PReLU slopes found through their nodes
    assert ck["arch"] == card["arch"] and ck["net_config"] == card["net_config"] and ck["step"] == 10
    assert check_parity(net, models / "tiny-x2.onnx") <= 1e-4
    cfg = tiny(image_dir, tmp_path / "ft", 3, init=str(models / "tiny-x2.onnx"))
    train(cfg, progress=False)  # --init takes the shipped file
    assert "starting from the EMA weights of" in (tmp_path / "ft" / "train.log").read_text()
    from training.export import training_summary

    ck = torch.load(tmp_path / "ft" / "ckpt.pt", weights_only=False)
    assert training_summary(ck)["init_training"] == card["training"]  # the card says how the start was made


def test_a_span_net_grows_into_more_blocks_as_the_same_function(image_dir, tmp_path):
    """--init a span file with --blocks N above its own: the appended residual blocks start as the identity, so the
    grown net computes what the file does; any other change of config is refused."""
    small = nets.build("span", {"scale": 2, "channels": 8, "blocks": 2, "block": "res"})
    torch.nn.init.normal_(small.up.weight, std=0.1)
    big = nets.build("span", {"scale": 2, "channels": 8, "blocks": 4, "block": "res"})
    nets.deepen(small, big)
    x = torch.rand(2, 3, 13, 9)
    with torch.no_grad():
        assert torch.allclose(small(x), big(x), atol=1e-6)
    for other in ({"blocks": 1}, {"channels": 16, "blocks": 4}):
        with pytest.raises(ValueError, match="cannot grow"):
            nets.deepen(small, nets.build("span", {"scale": 2, "channels": 8, "blocks": 2, "block": "res"} | other))
    first = train(tiny(image_dir, tmp_path / "small", 2, arch="span", net={"channels": 8, "blocks": 2, "block": "res"}), progress=False)
    train(tiny(image_dir, tmp_path / "grown", 2, arch="span", net={"channels": 8, "blocks": 3, "block": "res"}, init=str(first)), progress=False)
    assert "grown from 2 to 3 blocks" in (tmp_path / "grown" / "train.log").read_text()
    with pytest.raises(ValueError, match="holds span"):
        train(tiny(image_dir, tmp_path / "wider", 2, arch="span", net={"channels": 16, "blocks": 3, "block": "res"}, init=str(first)), progress=False)


def test_network_interpolation_blends_the_weights(exported, image_dir, tmp_path):
    from training.export import interpolate_weights
    from training.train_sr import load_ema

    models, _, _ = exported
    train(tiny(image_dir, tmp_path / "other", 10, seed=5), progress=False)  # same net, other weights
    ours, ck = load_ema(models / "tiny-x2.onnx")
    theirs, _ = load_ema(tmp_path / "other" / "ckpt.pt")
    mixed, _ = load_ema(models / "tiny-x2.onnx")
    interpolate_weights(mixed, ck, str(tmp_path / "other" / "ckpt.pt"), 0.25)
    for k, v in mixed.state_dict().items():
        assert torch.allclose(v, 0.25 * ours.state_dict()[k] + 0.75 * theirs.state_dict()[k])
    with pytest.raises(ValueError, match="alpha"):
        interpolate_weights(mixed, ck, str(tmp_path / "other" / "ckpt.pt"), 1.5)
    big = tiny(image_dir, tmp_path / "big", 1, net={"channels": 16, "blocks": 1, "up_channels": 8})
    train(big, progress=False)
    with pytest.raises(ValueError, match="not srresnet"):
        interpolate_weights(mixed, ck, str(tmp_path / "big" / "ckpt.pt"), 0.5)
    card = export_run(tmp_path / "other", tmp_path / "m", "mix-x2", bench=[], interpolate=(str(models / "tiny-x2.onnx"), 0.5))
    assert card["training"]["interpolation"] == {"with": str(models / "tiny-x2.onnx"), "alpha": 0.5}


def test_fp16_variant_is_checked_against_fp32(exported):
    from training.export import export_fp16

    models, bench, _ = exported
    card = export_fp16(models / "tiny-x2.onnx", [str(bench)])
    saved = json.loads((models / "tiny-x2-fp16.json").read_text())
    assert saved == card and card["precision"] == "fp16" and card["variant_of"] == "tiny-x2"
    assert abs(card["fp16_parity"]["Tiny"]["diff_db"]) <= 0.05
    assert (models / "tiny-x2-fp16.onnx").stat().st_size < (models / "tiny-x2.onnx").stat().st_size


def test_parity_check_fails_on_mismatch(image_dir, tmp_path):
    from training.export import export_onnx

    net = nets.build("srresnet", {"scale": 2, "channels": 8, "blocks": 1, "up_channels": 8}).eval()
    export_onnx(net, tmp_path / "a.onnx")
    assert check_parity(net, tmp_path / "a.onnx") <= 1e-4
    with torch.no_grad():
        net.tail.bias += 0.01  # the file no longer matches the module
    with pytest.raises(RuntimeError, match="parity"):
        check_parity(net, tmp_path / "a.onnx")


def test_cli_train_resume_export_evaluate(image_dir, tmp_path, capsys):
    from training.cli import main

    run = tmp_path / "cli-run"
    common = ["--data", str(image_dir), "--run", str(run), "--scale", "2", "--arch", "srresnet", "--channels", "8", "--blocks", "1",
              "--up-channels", "8", "--patch", "32", "--batch", "2", "--val-every", "4", "--ckpt-every", "4",
              "--log-every", "2", "--threads", "1", "--no-progress"]
    main(["train-sr", *common, "--steps", "4"])
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["command"].startswith("python -m training train-sr") and saved["net"]["channels"] == 8
    assert saved["train"]["ckpt_every"] == 4 and saved["train"]["ema"] == TrainConfig.ema  # CLI defaults are TrainConfig's
    cfg = json.loads((run / "config.json").read_text())["train"]
    cfg["steps"] = 6
    (run / "config.json").write_text(json.dumps({**saved, "train": cfg}))
    main(["resume", str(run), "--no-progress"])
    assert torch.load(run / "ckpt.pt", weights_only=False)["step"] == 6
    bench = tmp_path / "b" / "One"
    bench.mkdir(parents=True)
    Image.fromarray(photo(40, 40, seed=5)).save(bench / "a.png")
    main(["export", str(run), "--name", "cli-x2", "--out", str(tmp_path / "m"), "--bench", str(bench)])
    capsys.readouterr()
    main(["evaluate", str(tmp_path / "m" / "cli-x2.onnx"), "--bench", str(bench)])
    table = capsys.readouterr().out
    assert "| One | 1 |" in table
    card = json.loads((tmp_path / "m" / "cli-x2.json").read_text())
    assert f"{card['metrics']['One']['psnr_y']:.2f}" in table  # evaluate reproduces the card
    main(["models-table", str(tmp_path / "m")])
    row = capsys.readouterr().out.splitlines()[2]
    assert row.startswith("| `cli-x2` | x2 |") and f"{card['metrics']['One']['psnr_y']:.2f}" in row and "6 steps" in row
    readme = tmp_path / "README.md"  # --readme rewrites the table in place, between the prose around it
    readme.write_text("# Models\n\n| model | scale | params | GFLOP per input MP | set | Y-PSNR / SSIM | gradient energy / "
                      "HR | bicubic | training |\n|---|---|\n| `old` | x4 | stale |\n\nWhich model to use.\n")
    main(["models-table", str(tmp_path / "m"), "--readme", str(readme)])
    text = readme.read_text()
    assert row in text and "`old`" not in text and text.startswith("# Models\n\n| model |") and text.endswith("|\n\nWhich model to use.\n")
    notes = tmp_path / "notes.md"
    notes.write_text("prose only\n")
    with pytest.raises(SystemExit, match="no models table"):
        main(["models-table", str(tmp_path / "m"), "--readme", str(notes)])
    assert notes.read_text() == "prose only\n"
    # Continuing from the shipped file needs no network flags: the init file's arch and config are taken.
    main(["train-sr", "--data", str(image_dir), "--run", str(tmp_path / "more"), "--scale", "2", "--init", str(tmp_path / "m" / "cli-x2.onnx"),
          "--patch", "32", "--batch", "2", "--steps", "2", "--threads", "1", "--no-progress"])
    more = json.loads((tmp_path / "more" / "config.json").read_text())
    assert more["arch"] == "srresnet" and more["net"] == card["net_config"]
    main(["export-int8", str(tmp_path / "m" / "cli-x2.onnx"), "--calib", str(image_dir), "--bench", str(bench), "--max-drop", "5"])
    assert json.loads((tmp_path / "m" / "cli-x2-int8.json").read_text())["precision"] == "int8"


def test_span_family_is_conv_only_and_exports_with_dynamic_sizes(image_dir, tmp_path):
    """The efficient net: every conv at LR resolution, within the FLOP budget, ONNX parity at odd sizes."""
    import onnx

    from training.export import export_onnx

    for scale in (2, 4):
        net = nets.build("span", {"scale": scale})
        assert nets.flops_per_input_pixel(net) <= 700_000 and nets.count_params(net) <= 1_500_000
        x = torch.rand(1, 3, 7, 9)
        with torch.no_grad():  # untrained: its anchor, torch's bicubic upscale (edges included), or nearest
            bicubic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
            assert torch.allclose(net(x), bicubic, atol=1e-5)
            nearest = nets.build("span", {"scale": scale, "anchor": "nearest"})
            assert torch.equal(nearest(x), x.repeat_interleave(scale, 2).repeat_interleave(scale, 3))
    net = nets.build("span", {"scale": 2, "channels": 8, "blocks": 2})
    torch.nn.init.normal_(net.up.weight, std=0.1)  # a non-trivial net
    export_onnx(net.eval(), tmp_path / "span.onnx")
    assert check_parity(net, tmp_path / "span.onnx") <= 1e-4
    ops = {n.op_type for n in onnx.load(str(tmp_path / "span.onnx")).graph.node}
    assert "Resize" not in ops and "Conv" in ops  # no interpolation op: the anchor is a channel repeat
    res = nets.build("span", {"scale": 4, "block": "res", "blocks": 6})
    # head 3->48, 12 body convs 48->48, 1x1 mix 144->48, up 48->48 (3 x 16 sub-pixels), the 5x5 bicubic anchor
    assert nets.flops_per_input_pixel(res) == 2 * (9 * 3 * 48 + 12 * 9 * 48 * 48 + 144 * 48 + 9 * 48 * 48 + 25 * 48)
    cfg = tiny(image_dir, tmp_path / "run", 20, arch="span", net={"channels": 8, "blocks": 2})
    train(cfg, progress=False)
    ls = losses(tmp_path / "run")
    assert np.mean(ls[-2:]) < np.mean(ls[:2])
    from training.quantize import float_nodes

    export_onnx(nets.build("span", {"scale": 2, "channels": 8, "blocks": 2}).eval(), tmp_path / "span-bicubic.onnx")
    graph = onnx.load(str(tmp_path / "span-bicubic.onnx")).graph.node
    kept = float_nodes(tmp_path / "span-bicubic.onnx")
    grouped = [n.name for n in graph if n.op_type == "Conv" and any(a.name == "group" and a.i == 3 for a in n.attribute)]
    last_add = [n.name for n in graph if n.op_type == "Add"][-1]
    assert kept == [*grouped, last_add] and len(grouped) == 1  # int8: every learned conv; float: the anchor and the sum


def test_int8_variant_is_quantized_and_checked_against_fp32(exported, image_dir, tmp_path):
    import onnx

    from training.quantize import export_int8

    models, bench, base = exported
    card = export_int8(models / "tiny-x2.onnx", [str(bench)], calib=[str(image_dir)], max_drop=0.5)
    saved = json.loads((models / "tiny-x2-int8.json").read_text())
    assert saved == card and card["precision"] == "int8" and card["variant_of"] == "tiny-x2"
    assert card["int8_parity"]["Tiny"]["diff_db"] >= -0.5
    ops = [n.op_type for n in onnx.load(str(models / "tiny-x2-int8.onnx")).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    kept = card["quantization"]["kept_float"]
    convs = [n.name for n in onnx.load(str(models / "tiny-x2.onnx")).graph.node if n.op_type == "Conv"]
    assert kept[0] == convs[0] and convs[-1] in kept  # the first conv and the output end stay float
    with pytest.raises(RuntimeError, match="int8 parity failed"):
        export_int8(models / "tiny-x2.onnx", [str(bench)], calib=[str(image_dir)], max_drop=-1.0)
    assert not (models / "tiny-x2-int8.onnx").exists()  # a failed variant is not left behind


def test_pipeline_presets_join_with_plus():
    """--degradation-preset light+medium: one of them drawn per patch (both strengths in one training run)."""
    from training import data
    from training.cli import main

    make = data.lr_maker("bicubic+pipeline", preset="light+heavy")
    rng = np.random.default_rng(0)
    outs = [make(photo(64, 64), 4, rng) for _ in range(6)]
    assert all(o.shape == (16, 16, 3) and o.dtype == np.uint8 for o in outs)
    with pytest.raises(SystemExit):
        main(["train-sr", "--run", "unused", "--degradation-preset", "light+strong"])


def test_two_processes_under_torchrun_train_the_weights_of_one(image_dir, tmp_path):
    """DistributedDataParallel on CPU (gloo): 2 processes, each on half of every batch, end with the weights that one
    process gets on the whole batches; only the first process writes the run's log, stats and checkpoints."""
    import torch

    from tests.helpers import train_alone_and_under_torchrun

    common = ["train-sr", "--data", str(image_dir), "--scale", "2", "--arch", "srresnet", "--channels", "8", "--blocks", "1",
              "--up-channels", "8", "--patch", "32", "--batch", "4", "--steps", "6", "--val-every", "6", "--ckpt-every", "3",
              "--log-every", "2", "--threads", "1", "--no-progress"]
    train_alone_and_under_torchrun(common, tmp_path)
    a, b = (torch.load(tmp_path / r / "ckpt.pt", weights_only=False) for r in ("one", "two"))
    assert a["step"] == b["step"] == 6
    for key in ("net", "ema"):
        for k in a[key]:
            assert torch.allclose(a[key][k], b[key][k], atol=1e-5), (key, k, (a[key][k] - b[key][k]).abs().max())
    rows = [json.loads(r) for r in (tmp_path / "two" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and "val_psnr_ema" in rows[-1]  # one writer, no duplicate rows
    assert "2 processes (DDP)" in (tmp_path / "two" / "train.log").read_text()
    assert abs(rows[-1]["loss"] - json.loads((tmp_path / "one" / "stats.jsonl").read_text().splitlines()[-1])["loss"]) < 1e-3


def test_sharpened_target_overshoots_edges_and_keeps_flat_areas():
    """--gt-usm W (Real-ESRGAN's sharpened ground truth): the pixel loss's HR target is unsharp-masked with weight W,
    only where the detail exceeds a threshold, so edges gain contrast and flat areas and faint noise stay as they are."""
    from training import data

    hr = np.full((2, 3, 64, 64), 0.3, np.float32)
    hr[:, :, :, 32:] = 0.7  # a vertical step edge
    hr[1] += np.random.default_rng(0).normal(0, 0.01, hr[1].shape).astype(np.float32)  # faint noise (under the threshold)
    out = data.unsharp_mask(hr, 0.5)
    assert out.shape == hr.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    row = out[0, 0, 32]
    assert row[31] < 0.3 - 0.02 and row[32] > 0.7 + 0.02  # overshoot on both sides of the edge
    assert np.abs(out[0, :, :, :4] - 0.3).max() < 1e-3  # far from the edge: unchanged (the mask is soft, not 0 or 1)
    assert np.array_equal(data.unsharp_mask(hr, 0.0), hr)
    flat = np.full((1, 3, 32, 32), 0.5, np.float32) + np.random.default_rng(1).normal(0, 0.005, (1, 3, 32, 32)).astype(np.float32)
    assert np.abs(data.unsharp_mask(flat, 0.5) - flat).max() < 0.01  # noise under the threshold is not amplified


def test_training_on_a_sharpened_target_is_recorded(image_dir, tmp_path):
    train(tiny(image_dir, tmp_path, 10, gt_usm=0.5, gt_usm_on="degraded", degradation="bicubic+pipeline"), progress=False)
    cfg = json.loads((tmp_path / "config.json").read_text())["train"]
    assert (cfg["gt_usm"], cfg["gt_usm_radius"], cfg["gt_usm_on"]) == (0.5, 11, "degraded")
    assert len(losses(tmp_path)) == 2


def test_patches_with_plain_bicubic_lr_are_told_apart_from_degraded_ones():
    """--gt-usm-on degraded: the clean (bicubic) share of a mixed batch keeps its HR as the target."""
    from training import data

    images = [photo(96, 96, seed=i) for i in range(3)]
    for make, expected in ((data.bicubic_lr, True), (data.pipeline_lr("light"), False)):
        lr, hr = data.PatchSampler(images, 32, 4, seed=1, make_lr=make, gray=0.5).sample(6)
        assert data.is_bicubic(lr, hr, 4).tolist() == [expected] * 6
    lr, hr = data.PatchSampler(images, 32, 4, seed=2, make_lr=data.lr_maker("bicubic+pipeline", "light")).sample(16)
    assert 0 < data.is_bicubic(lr, hr, 4).sum() < 16
