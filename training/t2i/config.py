"""The text-to-image training run's settings (no torch: the command line reads its defaults)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.t2i import data as t2i_data

DEFAULT_PATH = str(Path(__file__).with_name("judge.pt"))  # the shipped flower classifier (t2i-evaluate's judge)
TRAIN_OUT = "runs/t2i-classifier/classifier.pt"


@dataclass
class T2ITrainConfig:
    data: str = t2i_data.DEFAULT_DATA
    encoder: str = t2i_data.DEFAULT_ENCODER
    cache: str = "runs/t2i/cache"     # caption embeddings, per encoder file
    run_dir: str = "runs/t2i-flowers64"
    arch: str = "gan-int-cls"         # or "lapgan" (training/t2i/lapgan.py)
    net: dict = field(default_factory=dict)  # the arch's net config overrides (z_dim, proj, ngf, ndf, ...)
    heldout: int = 20                 # classes held out of training entirely
    attr_per_image: int = 3           # attribute captions per image (added to its ~10 human captions)
    batch: int = 64
    steps: int = 3000
    lr: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    int_beta: float = 0.5             # GAN-INT: t = beta*t1 + (1-beta)*t2
    w_int: float = 1.0
    w_cls: float = 0.0                # > 0: TAC-GAN auxiliary class loss (D classifies real images; G's fakes must match)
    ema: float = 0.999
    seed: int = 0
    limit: int = 0                    # use only the first images of the data set (tests)
    init: str = ""                    # start G (and its EMA) from a shipped NAME.onnx generator; D starts fresh
    d_warmup: int = 0                 # first steps train D only (G frozen): a fresh D meets a trained G
    chain: float = 0.0                # lapgan: share of the finer levels' images built on generated coarse ones (lapgan.py)
    sample_every: int = 250
    ckpt_every: int = 200
    log_every: int = 25
    threads: int = 1
    command: str = ""

    def __post_init__(self) -> None:  # at the command line, before any data is loaded
        if not 0 <= self.chain <= 1 or (self.chain and self.arch != "lapgan"):
            raise ValueError(f"chain is a share in [0, 1], for lapgan only (got {self.chain} for {self.arch})")


@dataclass
class StyleConfig:
    """The style encoder S(x) run (training/t2i/style.py)."""

    generator: str = "models/t2i-flowers64.onnx"
    data: str = t2i_data.DEFAULT_DATA
    encoder: str = t2i_data.DEFAULT_ENCODER
    cache: str = "runs/t2i/cache"
    run_dir: str = "runs/style-t2i-flowers64"
    width: int = 32
    batch: int = 64
    steps: int = 4000
    lr: float = 1e-3
    seed: int = 0
    eval_items: int = 1000
    ckpt_every: int = 250
    log_every: int = 50
    threads: int = 1
    limit: int = 0
    command: str = ""
