"""The text-to-image subcommands of ``python -m training`` (added to its parser by ``add_commands``)."""
from __future__ import annotations

import argparse
import json
import logging
import shlex

from training.t2i.data import DEFAULT_DATA, DEFAULT_ENCODER


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def cmd_export_encoder(args: argparse.Namespace) -> None:
    from training.t2i.encoder_export import export_encoder

    _logging()
    card = export_encoder(args.out, f"{args.data}/captions_reed.csv", args.parity_captions, quantize=not args.fp32)
    print(json.dumps({"precision": card["precision"], "parity": card["parity"], "onnx": card["onnx"]}, indent=2))


def add_commands(sub) -> None:
    e = sub.add_parser("t2i-export-encoder", help="text-to-image: export the all-MiniLM-L6-v2 sentence encoder to ONNX (int8 if parity holds) + tokenizer + card")
    e.add_argument("--out", default="models")
    e.add_argument("--data", default=DEFAULT_DATA, help="flowers64 folder (its captions_reed.csv gives the parity captions)")
    e.add_argument("--parity-captions", dest="parity_captions", type=int, default=1000)
    e.add_argument("--fp32", action="store_true", help="ship the float32 graph (no quantisation)")
    e.set_defaults(func=cmd_export_encoder)
    add_train_commands(sub)
    add_eval_commands(sub)
    add_style_commands(sub)


def cmd_style_train(args: argparse.Namespace) -> None:
    import dataclasses

    from training.t2i.config import StyleConfig
    from training.t2i.style import train

    names = {f.name for f in dataclasses.fields(StyleConfig)} - {"command", "run_dir"}
    cfg = StyleConfig(run_dir=args.run, command="python -m training " + shlex.join(args.argv), **{k: getattr(args, k) for k in names})
    train(cfg)


def cmd_style_export(args: argparse.Namespace) -> None:
    from training.t2i.style import export

    _logging()
    card = export(args.run, args.out, args.name, args.notes, args.threads, args.grid or None)
    print(json.dumps({"onnx": card["onnx"], "metrics": card["metrics"]}, indent=2))


def add_style_commands(sub) -> None:
    import dataclasses

    from training.t2i.config import StyleConfig

    d = {f.name: f.default for f in dataclasses.fields(StyleConfig)}
    t = sub.add_parser("t2i-style-train", help="text-to-image: train the style encoder S(x) (image -> noise) on a generator's own images")
    t.add_argument("--run", default=d["run_dir"])
    t.add_argument("--generator", default=d["generator"], help="the exported generator (NAME.onnx with its card) S learns to invert")
    for name in ("data", "encoder", "cache"):
        t.add_argument("--" + name, default=d[name])
    for name in ("width", "batch", "steps", "seed", "eval_items", "ckpt_every", "log_every", "threads", "limit"):
        t.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=d[name])
    t.add_argument("--lr", type=float, default=d["lr"])
    t.set_defaults(func=cmd_style_train)

    x = sub.add_parser("t2i-style-export", help="text-to-image: export a style run's best S(x) to ONNX, measure it from the file, write the card")
    x.add_argument("run")
    x.add_argument("--name", default="", help="default: style-<generator name>")
    x.add_argument("--out", default="models")
    x.add_argument("--notes", default="")
    x.add_argument("--grid", default="docs/t2i-style-grid.png", help="the style-transfer grid (rows: style images; columns: captions); '' for none")
    x.add_argument("--threads", type=int, default=1)
    x.set_defaults(func=cmd_style_export)


def _train_config(args: argparse.Namespace):
    import dataclasses

    from training.t2i.config import T2ITrainConfig

    names = {f.name for f in dataclasses.fields(T2ITrainConfig)} - {"net", "command", "run_dir"}
    net = {k: getattr(args, k) for k in ("z_dim", "proj", "ngf", "ndf", "fine", "text") if getattr(args, k) is not None}
    if args.projection:
        net["projection"] = True
    return T2ITrainConfig(run_dir=args.run, net=net, command="python -m training " + shlex.join(args.argv),
                          **{k: getattr(args, k) for k in names})


def cmd_train(args: argparse.Namespace) -> None:
    from training.t2i.train import train

    train(_train_config(args), progress=not args.no_progress)


def add_train_commands(sub) -> None:
    import dataclasses

    from training.t2i.config import T2ITrainConfig

    d = {f.name: f.default for f in dataclasses.fields(T2ITrainConfig) if f.default is not dataclasses.MISSING}
    t = sub.add_parser("t2i-train", help="text-to-image: train a 64 px generator (GAN-INT-CLS or LAPGAN) on flowers64 captions")
    t.add_argument("--run", default=d["run_dir"], help="run directory (config, ckpt.pt, stats.jsonl, train.log, samples/)")
    t.add_argument("--arch", default=d["arch"], choices=("gan-int-cls", "lapgan"),
                   help="gan-int-cls: one DCGAN-style generator; lapgan: a Laplacian pyramid of generators 8 -> 64 px")
    t.add_argument("--data", default=d["data"], help="flowers64 folder (labels.csv, images/, captions_reed.csv)")
    t.add_argument("--encoder", default=d["encoder"], help="the exported text encoder (captions are embedded with it once, cached)")
    t.add_argument("--cache", default=d["cache"], help="folder of the caption-embedding cache")
    for name in ("z_dim", "proj", "ngf", "ndf"):
        t.add_argument("--" + name.replace("_", "-"), dest=name, type=int)
    t.add_argument("--fine", type=int, nargs=3, help="lapgan: widths of the 16, 32 and 64 px level generators")
    t.add_argument("--text", type=int, help="lapgan: text channels broadcast over each finer level")
    t.add_argument("--projection", action="store_true", help="D: add the projection-discriminator term (text x image features)")
    t.add_argument("--init", default=d["init"], help="start G and its EMA from a shipped NAME.onnx generator (same net and held-out classes); D starts fresh")
    for name in ("heldout", "attr_per_image", "batch", "steps", "d_warmup", "seed", "limit", "sample_every", "ckpt_every", "log_every", "threads"):
        t.add_argument("--" + name.replace("_", "-"), dest=name, type=int, default=d[name])
    for name in ("lr", "lr_d", "beta1", "int_beta", "w_int", "w_cls", "ema", "chain"):
        t.add_argument("--" + name.replace("_", "-"), dest=name, type=float, default=d[name])
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_train)



def cmd_classifier(args: argparse.Namespace) -> None:
    from training.t2i.classifier import train_classifier

    _logging()
    result = train_classifier(args.data, args.out, args.width, args.epochs, args.batch, args.lr, args.seed, args.threads,
                              progress=not args.no_progress, command="python -m training " + shlex.join(args.argv))
    print(json.dumps(result, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from training.t2i.evaluate import evaluate, format_table

    card_path = Path(args.model).with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    tc = card.get("training", {})
    result = evaluate(args.model, args.classifier, args.data, args.encoder, args.cache, card.get("heldout_classes"),
                      attr_per_image=tc.get("attr_per_image", 3), grid=args.grid or None, threads=args.threads)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.write:
        from training.export import write_card

        result.pop("grid", None)
        result.pop("detail_grid", None)
        card["evaluation"] = {"command": "python -m training " + shlex.join(args.argv), **result}
        write_card(Path(args.model), card)


def cmd_export(args: argparse.Namespace) -> None:
    from training.t2i.evaluate import format_table
    from training.t2i.export import export_run

    _logging()
    card = export_run(args.run, args.out, args.name, args.classifier, evaluate_it=not args.no_evaluate, notes=args.notes,
                      grid=args.grid or None, threads=args.threads)
    if card["evaluation"]:
        print(format_table(card["evaluation"]))
    print(json.dumps({"onnx": card["onnx"], "steps": card["training"]["steps"]}, indent=2))


def cmd_evaluate_encoder(args: argparse.Namespace) -> None:
    from pathlib import Path

    from training.t2i.evaluate import encoder_class_retrieval

    _logging()
    result = encoder_class_retrieval(args.encoder, args.data, args.cache)
    print(json.dumps(result, indent=2))
    if args.write:  # the JSON card only: rewriting the ONNX metadata would change the file the generator's card pins
        card_path = Path(args.encoder).with_suffix(".json")
        card = json.loads(card_path.read_text())
        card["metrics"] = {"caption_class_retrieval": result, "command": "python -m training " + shlex.join(args.argv)}
        card_path.write_text(json.dumps(card, indent=2) + "\n")


def add_eval_commands(sub) -> None:
    from training.t2i.config import DEFAULT_PATH, TRAIN_OUT

    c = sub.add_parser("t2i-classifier", help="text-to-image: train the 102-class flower classifier used by t2i-evaluate")
    c.add_argument("--data", default=DEFAULT_DATA)
    c.add_argument("--out", default=TRAIN_OUT, help=f"where to save it (the shipped judge is {DEFAULT_PATH})")
    c.add_argument("--width", type=int, default=32)
    c.add_argument("--epochs", type=int, default=8)
    c.add_argument("--batch", type=int, default=64)
    c.add_argument("--lr", type=float, default=2e-3)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=cmd_classifier)

    v = sub.add_parser("t2i-evaluate", help="text-to-image: class accuracy, Frechet distances, colour accuracy, diversity of an exported generator, with baselines")
    v.add_argument("model", help="NAME.onnx (its card gives the held-out classes)")
    v.add_argument("--classifier", default=DEFAULT_PATH)
    v.add_argument("--data", default=DEFAULT_DATA)
    v.add_argument("--encoder", default=DEFAULT_ENCODER)
    v.add_argument("--cache", default="runs/t2i/cache")
    v.add_argument("--grid", default="", help="also write the captions x seeds grid PNG here")
    v.add_argument("--json", default="", help="also write the full result as JSON here")
    v.add_argument("--write", action="store_true", help="store the result as the card's evaluation (JSON card and the file's metadata)")
    v.add_argument("--threads", type=int, default=1)
    v.set_defaults(func=cmd_evaluate)

    n = sub.add_parser("t2i-evaluate-encoder", help="text-to-image: how much flower class the text encoder's caption embeddings carry")
    n.add_argument("--encoder", default=DEFAULT_ENCODER)
    n.add_argument("--data", default=DEFAULT_DATA)
    n.add_argument("--cache", default="runs/t2i/cache")
    n.add_argument("--write", action="store_true", help="store the result as the metrics of the encoder's JSON card")
    n.set_defaults(func=cmd_evaluate_encoder)

    x = sub.add_parser("t2i-export", help="text-to-image: export a t2i-train run's EMA generator to ONNX, evaluate it, write the card")
    x.add_argument("run")
    x.add_argument("--name", default="t2i-flowers64")
    x.add_argument("--out", default="models")
    x.add_argument("--classifier", default=DEFAULT_PATH)
    x.add_argument("--grid", default="docs/t2i-grid.png")
    x.add_argument("--notes", default="")
    x.add_argument("--no-evaluate", action="store_true", help="card without the evaluation (an early export)")
    x.add_argument("--threads", type=int, default=1)
    x.set_defaults(func=cmd_export)
