"""The training run's configuration (torch-free, so the CLI can show defaults without importing torch)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    data: list[str]
    run_dir: str
    scale: int = 4
    arch: str = "srresnet"
    net: dict = field(default_factory=dict)  # overrides of the network config (channels, blocks, ...)
    hr_patch: int = 128
    batch: int = 16
    steps: int = 10000
    lr: float = 5e-4
    lr_min: float = 1e-6
    warmup: int = 200
    loss: str = "l1"  # l1 | mse
    ema: float = 0.999
    seed: int = 0
    val_images: int = 8  # images held out of `data` for periodic validation
    val_crop: int = 256
    val_every: int = 1000
    ckpt_every: int = 500
    log_every: int = 50
    threads: int = 0  # torch intra-op threads; 0 = torch default
    command: str = ""
