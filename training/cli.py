"""Command line: ``python -m training COMMAND``; ``--help`` lists the commands, ``COMMAND --help`` their options."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

DEFAULT_DATA = ["../shared/data/train"]
DEFAULT_REAL_LR = ["../shared/data/lowquality/Flickr1000"]
DEFAULT_FACES_TEST = ["../shared/data/faces/UTKFace/test"]
DEFAULT_BENCH = ["../shared/data/bench/Set5", "../shared/data/bench/Set14", "../shared/data/bench/BSD68"]


def bench_folder(value: str) -> str:
    """argparse type of every --bench: a benchmark folder. A file there is usually a model swallowed by the option's
    list (``--bench Set14 model.onnx``): a usage error that says so, not a traceback from the image reader."""
    if not Path(value).is_dir():
        raise argparse.ArgumentTypeError(f"not a folder: {value} (benchmark folders only; give the models before --bench)")
    return value


def _net_overrides(args: argparse.Namespace) -> dict:
    keys = ("channels", "blocks", "up_channels", "block", "anchor")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def cmd_train_sr(args: argparse.Namespace) -> None:
    from training.config import TrainConfig
    from training.train_sr import train

    arch, net = args.arch, _net_overrides(args)
    if args.init and arch is None:  # continue the network the init file holds (its arch and config)
        from training.train_sr import load_ema

        _, ck = load_ema(args.init)
        arch, net = ck["arch"], {k: v for k, v in ck["net_config"].items() if k != "scale"} | net
    cfg = TrainConfig(
        data=args.data, run_dir=args.run, scale=args.scale, arch=arch or "span", net=net, hr_patch=args.patch,
        batch=args.batch, steps=args.steps, lr=args.lr, loss=args.loss, gt_usm=args.gt_usm, gt_usm_radius=args.gt_usm_radius,
        gt_usm_on=args.gt_usm_on, ema=args.ema, seed=args.seed,
        val_images=args.val_images, val_every=args.val_every, ckpt_every=args.ckpt_every, log_every=args.log_every, threads=args.threads,
        degradation=args.degradation, degradation_preset=args.degradation_preset, h2l_model=args.h2l_model, init=args.init,
        resize=args.resize, gray=args.gray, upright=args.upright, command="python -m training " + shlex.join(args.argv),
    )
    train(cfg, progress=not args.no_progress)


def cmd_train_gan(args: argparse.Namespace) -> None:
    from training.config import GanConfig
    from training.train_gan import train

    fields = {f.name for f in dataclasses.fields(GanConfig)} - {"data", "run_dir", "command"}
    cfg = GanConfig(data=args.data, run_dir=args.run, command="python -m training " + shlex.join(args.argv),
                    **{k: getattr(args, k) for k in fields})
    train(cfg, progress=not args.no_progress)


def cmd_train_h2l(args: argparse.Namespace) -> None:
    from training.config import H2LTrainConfig
    from training.train_h2l import train

    net = {k: getattr(args, k) for k in ("channels", "lr_blocks", "z_dim") if getattr(args, k) is not None}
    fields = {f.name for f in dataclasses.fields(H2LTrainConfig)} - {"hr_data", "lr_data", "run_dir", "net", "command"}
    cfg = H2LTrainConfig(hr_data=args.hr_data, lr_data=args.lr_data, run_dir=args.run, net=net,
                         command="python -m training " + shlex.join(args.argv), **{k: getattr(args, k) for k in fields})
    train(cfg, progress=not args.no_progress)


def _trainer(kind: str):
    """(config class, train function) of a run kind, as recorded in its config.json."""
    if kind == "gan":
        from training.config import GanConfig
        from training.train_gan import train
        return GanConfig, train
    if kind == "h2l":
        from training.config import H2LTrainConfig
        from training.train_h2l import train
        return H2LTrainConfig, train
    if kind == "t2i":
        from training.t2i.config import T2ITrainConfig
        from training.t2i.train import train
        return T2ITrainConfig, train
    if kind == "style":
        from training.t2i.config import StyleConfig
        from training.t2i.style import train
        return StyleConfig, train
    from training.config import TrainConfig
    from training.train_sr import train
    return TrainConfig, train


def _setting(cfg: dict, item: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``resume --set``: a scalar field of the run's config, VALUE read as its type."""
    key, sep, text = item.partition("=")
    if not sep or key not in cfg or isinstance(cfg[key], (list, dict)):
        scalars = sorted(k for k, v in cfg.items() if not isinstance(v, (list, dict)))
        raise SystemExit(f"--set {item!r}: give KEY=VALUE with KEY one of {', '.join(scalars)}")
    old = cfg[key]
    try:
        if isinstance(old, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return key, text.lower() in ("true", "1")
        return key, type(old)(text) if old is not None else text
    except ValueError:
        raise SystemExit(f"--set {item!r}: {key} is a {type(old).__name__}") from None


def cmd_resume(args: argparse.Namespace) -> None:
    saved = json.loads((Path(args.run) / "config.json").read_text())
    cfg_cls, train = _trainer(saved.get("trainer", "sr"))
    changed = {k: v for k, v in (("threads", args.threads), ("steps", args.steps), ("lr", args.lr), ("lr_d", args.lr_d)) if v is not None}
    defaults = {f.name: f.default for f in dataclasses.fields(cfg_cls) if f.default is not dataclasses.MISSING}
    cfg = defaults | saved["train"]  # a field added since the run began takes its default (and can be --set)
    if Path(cfg["run_dir"]).resolve() != Path(args.run).resolve():  # a copied (or moved) run continues where it is now
        changed["run_dir"] = args.run
    if "lr_d" in changed and "lr_d" not in cfg:
        raise SystemExit("--lr-d applies to GAN runs only")
    changed |= dict(_setting(cfg, item) for item in args.set)
    cfg |= changed
    if changed.keys() - {"threads"}:  # the run's config now says what the rest of it is trained with
        saved["train"] = cfg
        saved.setdefault("resumed_with", []).append(" ".join(["python -m training", *args.argv]))
        (Path(args.run) / "config.json").write_text(json.dumps(saved, indent=2))
    train(cfg_cls(**cfg), resume=True, progress=not args.no_progress)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from training.evaluate import evaluate_onnx, format_table

    results = evaluate_onnx(args.model, args.bench, args.scale)
    print(format_table(results))


def cmd_export_fp16(args: argparse.Namespace) -> None:
    from training.export import export_fp16

    card = export_fp16(args.model, args.bench)
    print(json.dumps(card["fp16_parity"], indent=2))


def cmd_export_int8(args: argparse.Namespace) -> None:
    from training.quantize import export_int8

    card = export_int8(args.model, args.bench, args.calib, keep_float=not args.all_int8, max_drop=args.max_drop)
    print(json.dumps(card["int8_parity"], indent=2))


def cmd_evaluate_degradation(args: argparse.Namespace) -> None:
    from training.evaluate_degradation import evaluate_h2l, format_table

    print(format_table(evaluate_h2l(args.model, args.hr, args.lr_data, args.holdout, args.seed)))


def cmd_fit_niqe(args: argparse.Namespace) -> None:
    import numpy as np

    from training import data, niqe

    m = niqe.fit(data.load_images(data.list_images(args.data), progress=True))
    np.savez(args.out, **m)
    print(f"fitted on {int(m['patches'])} sharp patches -> {args.out}")


def cmd_evaluate_real(args: argparse.Namespace) -> None:
    from training.evaluate_real import comparison_sheet, evaluate_real, format_table, inputs

    sets = inputs(args.inputs, args.heldout_from, args.holdout, args.count)
    if not args.sheet_only:
        print(format_table(evaluate_real(args.models, sets)))
    if args.sheet:
        every = [p for paths in sets.values() for p in paths]
        if args.sheet_images:  # by file name, from any set (held-out photos included), in the order given
            by_name = {p.name: p for p in every}
            missing = [n for n in args.sheet_images if n not in by_name]
            if missing:
                raise SystemExit(f"--sheet-images: not among the inputs: {', '.join(missing)}")
            rows = [by_name[n] for n in args.sheet_images]
        else:
            rows = next(iter(sets.values()))[: args.sheet_rows]
        print("comparison sheet:", comparison_sheet(args.models, rows, args.sheet))


def cmd_evaluate_faces(args: argparse.Namespace) -> None:
    from training.evaluate_faces import comparison_sheet, evaluate_faces, format_table

    print(format_table(evaluate_faces(args.models, args.faces, args.seed)))
    if args.sheet:
        print("comparison sheet:", comparison_sheet(args.models, args.faces, args.sheet, args.sheet_rows, args.seed))


def cmd_evaluate_restoration(args: argparse.Namespace) -> None:
    from training import evaluate_restoration as er

    models = [Path(m) for m in args.models] or er.default_models(args.models_dir, args.scale)
    results = er.run(models, args.bench, args.scale)
    print(er.format_tables(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.write_cards:
        er.write_cards(results, {m.stem: m for m in models}, args.scale)
        print("cards updated:", ", ".join(str(m.with_suffix(".json")) for m in models))


def cmd_models_table(args: argparse.Namespace) -> None:
    from training.evaluate import models_table, replace_models_table

    table = models_table(sorted(Path(args.models).glob("*.json")))
    if not args.readme:
        print(table)
        return
    readme = Path(args.readme)
    try:
        readme.write_text(replace_models_table(readme.read_text(), table))
    except ValueError as e:
        raise SystemExit(f"{readme}: {e}") from None
    print(f"{readme}: models table rewritten")


def cmd_export(args: argparse.Namespace) -> None:
    from training.export import export_run

    real = None
    if args.real_photos:
        from training.evaluate_real import inputs

        real = inputs(args.real_photos, args.heldout_from, 200, args.count)
    card = export_run(args.run, args.out, args.name, bench=args.bench, notes=args.notes, description=args.description,
                      real_photos=real, compare=args.compare, faces=args.faces,
                      interpolate=(args.interp_with, args.interp_alpha) if args.interp_with else None)
    print(json.dumps(card["metrics"], indent=2))


def _degradation(kind: str) -> str:
    if not set(kind.split("+")) <= {"bicubic", "pipeline", "learned", "mixed"}:
        raise argparse.ArgumentTypeError(f"'{kind}': use bicubic, pipeline, learned or mixed, or several joined by '+'")
    return kind


def _odd(text: str) -> int:
    if not text.isdigit() or int(text) % 2 == 0:
        raise argparse.ArgumentTypeError(f"'{text}': use an odd number of pixels")
    return int(text)


def _preset(name: str) -> str:
    if not set(name.split("+")) <= {"light", "medium", "heavy"}:
        raise argparse.ArgumentTypeError(f"'{name}': use light, medium or heavy, or several joined by '+'")
    return name


def _add_lr_options(p: argparse.ArgumentParser, d: dict) -> None:
    """How the trainers make LR from HR, and what they do to the HR images first."""
    p.add_argument("--degradation", type=_degradation, default=d["degradation"],
                   help="how LR is made from HR: bicubic, the classical pipeline, a learned High-to-Low net, mixed "
                        "(pipeline or learned), or several joined by '+' (e.g. bicubic+pipeline), each with equal odds")
    p.add_argument("--degradation-preset", dest="degradation_preset", type=_preset, default=d["degradation_preset"],
                   help="strength of the classical pipeline: light, medium or heavy, or several joined by '+' (one drawn per patch)")
    p.add_argument("--h2l-model", dest="h2l_model", default="", help="NAME.onnx of an exported High-to-Low generator (learned/mixed)")
    p.add_argument("--resize", type=int, default=d["resize"], help="resize each image to this short side when loading (e.g. whole faces)")
    p.add_argument("--gray", type=float, default=d["gray"], help="share of training patches made grayscale")
    p.add_argument("--upright", action="store_true", help="flip left-right only, never rotate (aligned faces)")


def main(argv: list[str] | None = None) -> None:
    from training.config import TrainConfig

    d = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train-sr", help="train a PSNR-oriented upscaler (L1 on bicubic or degraded LR)")
    t.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="folders of HR training images (recursive)")
    t.add_argument("--run", "--run-dir", dest="run", required=True, help="run directory (config, checkpoints, stats.jsonl, train.log); --run-dir under torchrun, whose own --run-path takes --run")
    t.add_argument("--scale", type=int, choices=(2, 4), default=d["scale"])
    t.add_argument("--arch", choices=("span", "srresnet"),
                   help="span (default): the efficient family, all convs at LR resolution; srresnet: the 2016 net. "
                        "With --init, the init file's network unless given")
    t.add_argument("--channels", type=int)
    t.add_argument("--blocks", type=int)
    t.add_argument("--block", choices=("span", "span-residual", "res"),
                   help="span: parameter-free attention blocks (SPAN); span-residual: the same with an identity skip; res: plain residual blocks")
    t.add_argument("--anchor", choices=("bicubic", "nearest"), help="span: the upscale the net adds its residual to")
    t.add_argument("--up-channels", dest="up_channels", type=int, help="srresnet only: width of each PixelShuffle stage")
    t.add_argument("--patch", type=int, default=d["hr_patch"], help="HR patch size in pixels")
    t.add_argument("--batch", type=int, default=d["batch"])
    t.add_argument("--steps", type=int, default=d["steps"])
    t.add_argument("--lr", type=float, default=d["lr"])
    t.add_argument("--loss", choices=("l1", "mse"), default=d["loss"])
    t.add_argument("--gt-usm", dest="gt_usm", type=float, default=d["gt_usm"],
                   help="compare the output with the HR patch unsharp-masked with this weight (Real-ESRGAN's sharpened "
                        "ground truth, 0.5 there): crisper output, a little less PSNR; 0: the HR as it is")
    t.add_argument("--gt-usm-radius", dest="gt_usm_radius", type=_odd, default=d["gt_usm_radius"],
                   help="the unsharp mask's blur in HR pixels (odd; Real-ESRGAN: 51)")
    t.add_argument("--gt-usm-on", dest="gt_usm_on", choices=("all", "degraded"), default=d["gt_usm_on"],
                   help="sharpen every patch's target, or only those whose LR is degraded (the bicubic share of a mixed "
                        "--degradation keeps the HR as it is, so clean inputs stay faithful)")
    t.add_argument("--ema", type=float, default=d["ema"])
    t.add_argument("--seed", type=int, default=d["seed"])
    t.add_argument("--val-images", type=int, default=d["val_images"], help="images held out of --data for validation")
    t.add_argument("--val-every", type=int, default=d["val_every"])
    t.add_argument("--ckpt-every", type=int, default=d["ckpt_every"])
    t.add_argument("--log-every", type=int, default=d["log_every"])
    t.add_argument("--threads", type=int, default=d["threads"], help="torch CPU threads (0: torch's default)")
    _add_lr_options(t, d)
    t.add_argument("--init", default="", help="start from the EMA weights of this checkpoint, or of a shipped NAME.onnx (fine-tuning)")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train_sr)

    from training.config import GanConfig

    g_defaults = {f.name: f.default for f in dataclasses.fields(GanConfig) if f.default is not dataclasses.MISSING}
    g = sub.add_parser("train-gan", help="fine-tune a trained upscaler adversarially (SRGAN family)")
    g.add_argument("--data", nargs="+", default=DEFAULT_DATA, help="folders of HR training images (recursive)")
    g.add_argument("--run", "--run-dir", dest="run", required=True, help="run directory (--run-dir under torchrun)")
    g.add_argument("--init", required=True, help="checkpoint (ckpt.pt) of the PSNR-oriented run to start from, or its exported NAME.onnx")
    g.add_argument("--disc", choices=("unet", "vgg"), default=g_defaults["disc"], help="U-Net (global + per-pixel, CutMix) or VGG-style patch discriminator")
    g.add_argument("--gan-loss", dest="gan_loss", choices=("vanilla", "ragan", "hinge"), default=g_defaults["gan_loss"])
    g.add_argument("--patch", dest="hr_patch", type=int, default=g_defaults["hr_patch"])
    for name in ("disc_channels", "batch", "steps", "seed", "val_images", "val_crop", "val_every", "ckpt_every", "log_every", "threads"):
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=g_defaults[name])
    for name in ("lr", "lr_d", "w_l1", "w_adv", "w_fm", "w_tv", "w_cutmix", "ema"):
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=float, default=g_defaults[name])
    _add_lr_options(g, g_defaults)
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=cmd_train_gan)

    from training.config import H2LTrainConfig

    h_defaults = {f.name: f.default for f in dataclasses.fields(H2LTrainConfig) if f.default is not dataclasses.MISSING}
    h = sub.add_parser("train-h2l", help="train the learned High-to-Low degradation GAN on unpaired HR and real LR photos")
    h.add_argument("--hr-data", nargs="+", default=DEFAULT_DATA, help="folders of clean HR photos")
    h.add_argument("--lr-data", nargs="+", default=DEFAULT_REAL_LR, help="folders of real low-quality photos (target domain)")
    h.add_argument("--run", "--run-dir", dest="run", required=True, help="run directory (--run-dir under torchrun)")
    h.add_argument("--scale", type=int, choices=(2, 4), default=h_defaults["scale"])
    h.add_argument("--patch", dest="hr_patch", type=int, default=h_defaults["hr_patch"], help="HR patch (a multiple of 8 x scale)")
    h.add_argument("--gan-loss", dest="gan_loss", choices=("vanilla", "ragan", "hinge"), default=h_defaults["gan_loss"])
    for name in ("channels", "lr_blocks", "z_dim"):
        h.add_argument("--" + name.replace("_", "-"), dest=name, type=int)
    for name in ("batch", "steps", "disc_channels", "seed", "holdout", "val_images", "hp_blur", "lp_blur", "val_every", "ckpt_every", "log_every", "threads"):
        h.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=h_defaults[name])
    for name in ("lr", "lr_d", "w_gan", "w_pix", "ema"):
        h.add_argument("--" + name.replace("_", "-"), dest=name, type=float, default=h_defaults[name])
    h.add_argument("--no-progress", action="store_true")
    h.set_defaults(func=cmd_train_h2l)

    r = sub.add_parser("resume", help="continue any run (train-sr, train-gan, train-h2l, t2i-train, t2i-style-train) from its last checkpoint with its saved config")
    r.add_argument("run")
    r.add_argument("--threads", type=int)
    r.add_argument("--steps", type=int, help="train to this many steps in all (extend or shorten the run)")
    r.add_argument("--lr", type=float, help="from here on, this learning rate (the generator's, for GAN runs)")
    r.add_argument("--lr-d", dest="lr_d", type=float, help="GAN runs: the discriminator's learning rate from here on")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="from here on, this value of a config field (e.g. --set w_cls=2); repeatable; recorded in config.json")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_resume)

    e = sub.add_parser("evaluate", help="Y-PSNR/SSIM of an exported ONNX upscaler on benchmark folders, beside bicubic")
    e.add_argument("model", help="path to NAME.onnx")
    e.add_argument("--bench", nargs="+", type=bench_folder, default=DEFAULT_BENCH)
    e.add_argument("--scale", type=int, help="defaults to the scale in the model's metadata")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="export a run's EMA generator to ONNX, check parity, evaluate, write the card")
    x.add_argument("run")
    x.add_argument("--name", required=True, help="model name, e.g. sr-x4")
    x.add_argument("--out", default="models")
    x.add_argument("--bench", nargs="+", type=bench_folder, default=DEFAULT_BENCH)
    x.add_argument("--notes", default="")
    x.add_argument("--description", default="", help="the card's description (default: one written from the run's config)")
    x.add_argument("--real-photos", nargs="*", default=[], help="folders of real low-quality photos: add NIQE on them to the card")
    x.add_argument("--heldout-from", nargs="*", default=DEFAULT_REAL_LR, help="with --real-photos: also the images held out of these (H2L split)")
    x.add_argument("--count", type=int, default=30, help="with --real-photos: how many held-out images")
    x.add_argument("--compare", nargs="*", default=[], help="with --real-photos or --faces: other NAME.onnx to score in the same run")
    x.add_argument("--faces", nargs="*", default=[], help="folders of held-out aligned faces: a face model, with the face table in its card")
    x.add_argument("--interp-with", dest="interp_with", default="", help="network interpolation: blend the run's weights with "
                   "this checkpoint or NAME.onnx of the same net (e.g. the PSNR model a GAN run started from)")
    x.add_argument("--interp-alpha", dest="interp_alpha", type=float, default=1.0, help="with --interp-with: the run's share (0-1)")
    x.set_defaults(func=cmd_export)

    argv = sys.argv[1:] if argv is None else argv
    f = sub.add_parser("export-fp16", help="float16 variant of an exported model, checked against it on benchmarks")
    f.add_argument("model", help="path to NAME.onnx (float32, with its card)")
    f.add_argument("--bench", nargs="+", type=bench_folder, default=DEFAULT_BENCH[:1])
    f.set_defaults(func=cmd_export_fp16)

    q8 = sub.add_parser("export-int8", help="int8 (QDQ) variant of an exported upscaler for CPUs, checked against it on benchmarks")
    q8.add_argument("model", help="path to NAME.onnx (float32, with its card)")
    q8.add_argument("--calib", nargs="+", default=DEFAULT_DATA, help="folders of training photos: calibration patches come from them")
    q8.add_argument("--bench", nargs="+", type=bench_folder, default=DEFAULT_BENCH)
    q8.add_argument("--all-int8", action="store_true", help="quantize the first and last convs too (default: they stay float)")
    q8.add_argument("--max-drop", type=float, default=0.1, help="refuse the variant if any set loses more Y-PSNR (dB)")
    q8.set_defaults(func=cmd_export_int8)

    v = sub.add_parser("evaluate-degradation", help="distance of bicubic / pipeline / learned LR to held-out real low-quality photos")
    v.add_argument("model", help="path to an exported High-to-Low NAME.onnx")
    v.add_argument("--hr", nargs="+", default=DEFAULT_BENCH, help="HR folders to degrade")
    v.add_argument("--lr-data", nargs="+", default=DEFAULT_REAL_LR, help="the real LR folders the model was trained against")
    v.add_argument("--holdout", type=int, default=200, help="real images held out of training (as in the run's config)")
    v.add_argument("--seed", type=int, default=0)
    v.set_defaults(func=cmd_evaluate_degradation)

    q = sub.add_parser("fit-niqe", help="fit NIQE's pristine model on clean photos (writes training/niqe_pristine.npz)")
    q.add_argument("--data", nargs="+", default=DEFAULT_DATA)
    q.add_argument("--out", default=str(Path(__file__).with_name("niqe_pristine.npz")))
    q.set_defaults(func=cmd_fit_niqe)

    u = sub.add_parser("evaluate-real", help="NIQE of upscalers' outputs on real low-quality photos (no ground truth), and a comparison sheet")
    u.add_argument("models", nargs="+", help="NAME.onnx upscalers (x4)")
    u.add_argument("--inputs", nargs="+", default=["../shared/data/lowquality/RealSRSet"])
    u.add_argument("--heldout-from", nargs="*", default=DEFAULT_REAL_LR, help="real LR folders the High-to-Low GAN trained on")
    u.add_argument("--holdout", type=int, default=200, help="images it held out (its --holdout)")
    u.add_argument("--count", type=int, default=30, help="how many of the held-out images to score")
    u.add_argument("--sheet", default="", help="write a comparison sheet PNG here")
    u.add_argument("--sheet-rows", type=int, default=6)
    u.add_argument("--sheet-images", nargs="*", default=[], help="the sheet's rows by file name (any input set), instead of the first --sheet-rows")
    u.add_argument("--sheet-only", action="store_true", help="only the sheet (no NIQE table)")
    u.set_defaults(func=cmd_evaluate_real)

    fc = sub.add_parser("evaluate-faces", help="face upscalers on held-out faces: bicubic and degraded 32 px LR -> 128 px, beside bicubic")
    fc.add_argument("models", nargs="+", help="NAME.onnx x4 upscalers (e.g. models/sr-x4.onnx models/face-x4.onnx)")
    fc.add_argument("--faces", nargs="+", default=DEFAULT_FACES_TEST)
    fc.add_argument("--seed", type=int, default=0, help="seed of the degraded LR")
    fc.add_argument("--sheet", default="", help="write a comparison sheet PNG here (LR | bicubic | models | HR)")
    fc.add_argument("--sheet-rows", type=int, default=6)
    fc.set_defaults(func=cmd_evaluate_faces)

    rs = sub.add_parser("evaluate-restoration", help="ground truth on realistic degradations (blur, downscale kernels, noise, "
                        "JPEG, combinations; some held out of training): Y-PSNR/SSIM of bicubic and upscalers per degradation")
    rs.add_argument("models", nargs="*", help="NAME.onnx upscalers (default: sr-xN and real-xN* in --models-dir)")
    rs.add_argument("--scale", type=int, choices=(2, 4), default=4)
    rs.add_argument("--models-dir", default="models")
    rs.add_argument("--bench", nargs="+", type=bench_folder, default=DEFAULT_BENCH)
    rs.add_argument("--json", default="", help="write the per-degradation results here")
    rs.add_argument("--write-cards", action="store_true", help="store the averages of all models of the run in each model's card (restoration_xN)")
    rs.set_defaults(func=cmd_evaluate_restoration)

    m = sub.add_parser("models-table", help="markdown table of the model cards in a folder (for the README)")
    m.add_argument("models", nargs="?", default="models")
    m.add_argument("--readme", default="", help="rewrite the models table of this markdown file in place (e.g. README.md) instead of printing it")
    m.set_defaults(func=cmd_models_table)

    from training.t2i.commands import add_commands as add_t2i_commands

    add_t2i_commands(sub)  # t2i-export-encoder, t2i-train, t2i-classifier, t2i-evaluate, t2i-export

    args = p.parse_args(argv)
    args.argv = argv
    args.func(args)


if __name__ == "__main__":
    main()
