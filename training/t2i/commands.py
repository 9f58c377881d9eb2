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
