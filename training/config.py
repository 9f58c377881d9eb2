"""The training run's configuration (torch-free, so the CLI can show defaults without importing torch)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    data: list[str]
    run_dir: str
    scale: int = 4
    arch: str = "span"  # span (the efficient family) | srresnet
    net: dict = field(default_factory=dict)  # overrides of the network config (channels, blocks, ...)
    hr_patch: int = 128
    batch: int = 16
    steps: int = 10000
    lr: float = 5e-4
    lr_min: float = 1e-6
    warmup: int = 200
    loss: str = "l1"  # l1 | mse
    gt_usm: float = 0.0  # the loss's target is the HR patch unsharp-masked with this weight (Real-ESRGAN: 0.5); 0: as it is
    gt_usm_radius: int = 11  # the unsharp mask's blur, in HR pixels (odd; Real-ESRGAN: 51)
    gt_usm_on: str = "all"  # all | degraded (patches whose LR is the plain bicubic downscale keep the HR as it is)
    ema: float = 0.999
    seed: int = 0
    val_images: int = 8  # images held out of `data` for periodic validation
    val_crop: int = 256
    val_every: int = 1000
    ckpt_every: int = 500
    log_every: int = 50
    threads: int = 0  # torch intra-op threads; 0 = torch default
    command: str = ""
    # How training LR is made from HR: bicubic | pipeline (the classical degradation pipeline) |
    # learned (the High-to-Low net given by h2l_model) | mixed (pipeline or learned, half each) |
    # any of these joined by "+" (e.g. bicubic+pipeline: each with equal odds).
    degradation: str = "bicubic"
    degradation_preset: str = "medium"
    h2l_model: str = ""  # NAME.onnx of an exported High-to-Low generator
    init: str = ""  # start from the EMA weights of this checkpoint (fine-tuning)
    resize: int = 0  # resize every image to this short side when loading (0: as they are), e.g. whole aligned faces
    gray: float = 0.0  # share of training patches made grayscale
    upright: bool = False  # augment with left-right flips only (aligned faces), not all 8 flips/rotations


@dataclass
class GanConfig:
    """Adversarial fine-tuning of a trained upscaler (SRGAN/ESRGAN style)."""

    data: list[str]
    run_dir: str
    init: str  # checkpoint of the PSNR-oriented generator to start from (its EMA weights)
    disc: str = "unet"  # unet | vgg
    disc_channels: int = 16  # base width; the U-Net at 32 is ~3.5x slower per step on CPU than at 16
    gan_loss: str = "ragan"  # vanilla | ragan | hinge
    hr_patch: int = 96
    batch: int = 8
    steps: int = 2000
    lr: float = 5e-5  # generator
    lr_d: float = 1e-4
    w_l1: float = 1.0
    w_adv: float = 0.03
    w_fm: float = 1.0
    w_tv: float = 1e-5
    w_cutmix: float = 1.0  # U-Net only: per-pixel CutMix loss and consistency, each with this weight
    degradation: str = "bicubic"  # how LR is made, as TrainConfig.degradation
    degradation_preset: str = "medium"
    h2l_model: str = ""
    resize: int = 0
    gray: float = 0.0
    upright: bool = False
    ema: float = 0.999
    seed: int = 0
    val_images: int = 8
    val_crop: int = 256
    val_every: int = 200
    ckpt_every: int = 100
    log_every: int = 25
    threads: int = 0
    command: str = ""


@dataclass
class H2LTrainConfig:
    """The learned High-to-Low degradation GAN (Bulat et al. 2018), trained on unpaired HR and real LR."""

    hr_data: list[str]
    lr_data: list[str]  # real low-quality photos (the target domain)
    run_dir: str
    scale: int = 4
    net: dict = field(default_factory=dict)  # overrides of H2LConfig (channels, hr_blocks, lr_blocks, z_dim, noise_period)
    hr_patch: int = 96
    batch: int = 12
    steps: int = 2000
    lr: float = 2e-4
    lr_d: float = 2e-4
    gan_loss: str = "hinge"
    w_gan: float = 0.1
    w_pix: float = 1.0  # L1 between the low-pass of the output and of the bicubic downscale of the HR input
    hp_blur: int = 3  # the discriminator sees each patch minus its hp_blur x hp_blur box blur (odd)
    lp_blur: int = 5  # the pixel loss compares lp_blur x lp_blur box blurs (odd): frequencies above are the GAN's
    disc_channels: int = 32
    ema: float = 0.999
    seed: int = 0
    holdout: int = 200  # real LR images kept out of training, for the statistics check (the test set of the card)
    val_images: int = 100  # further real LR images kept out of training, to choose the snapshot (best.pt) on
    val_every: int = 250
    ckpt_every: int = 100
    log_every: int = 25
    threads: int = 0
    command: str = ""
