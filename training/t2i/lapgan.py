"""LAPGAN at 64 px (Denton et al. 2015): a Laplacian pyramid of caption-conditioned GANs.

Levels 8 -> 16 -> 32 -> 64 px. The coarsest generator G_3 makes an 8x8 image from (z, phi(t)), as
GAN-INT-CLS's generator does at 64 px. Each finer level k makes only a band:
    I_k = u(I_{k+1}) + h_k,    h_k = G_k(u(I_{k+1}), z_k, phi(t))
where u is a 2x bilinear upsampling and z_k a one-channel noise map at the level's size. Sampling runs the
levels coarse to fine, so different draws of the finer z_k start from the same coarse image (the paper's
coarse-to-fine variations; the service's ``seed`` / ``detail_seed``).

Training is the paper's: every level learns on its own from real images (the coarse input of a finer level is
the real image's next coarser level, u(d(I_k))), so one step trains all levels at once and their gradients
never cross. One discriminator per level sees (I_k, u(I_{k+1})) with the caption: matching-aware as in
GAN-INT-CLS (real image with a wrong caption counts as fake); each is ``nets.Discriminator`` sized to its level.

Sampling feeds each finer level a GENERATED coarse image instead, which a band that has only seen real ones
handles poorly (measured: the paper-style bands on real 8 px images give the judge top-5 0.38, on GAN-INT-CLS's
8 px images 0.22, less than GAN-INT-CLS's own 0.30). ``chain`` > 0 trains that share of the finer levels' images
on the chain sampling runs (each built on the level above's detached fake, coarse to fine); their discriminator
sees the fake with its own coarser level, u(d(I_k)), as it sees a real image, so it judges the image, not where
its input came from.

The training loop (train.py) is the same as GAN-INT-CLS's: both generators offer ``train_fakes(x, emb)`` and
both discriminators ``features`` / ``judge``, so the loop knows neither architecture.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from training.t2i.nets import Discriminator, T2IConfig

SIZES = (8, 16, 32, 64)  # coarse to fine


@dataclass
class LapConfig:
    emb_dim: int = 384
    z_dim: int = 100
    proj: int = 128           # the coarse level's text projection
    ngf: int = 32             # the coarse level's width
    fine: tuple[int, ...] = (48, 32, 16)  # widths of the 16, 32 and 64 px levels (a CPU budget: the 64 px level costs most)
    text: int = 8             # text channels broadcast over a finer level
    ndf: int = 16
    projection: bool = True
    fine_batch: int = 16      # training only: images of a batch the finer levels learn from (the coarse level takes all)

    def __post_init__(self) -> None:
        self.fine = tuple(self.fine)


def down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """A 64 px batch as its images at every level, coarse to fine (8, 16, 32, 64)."""
    levels = [x]
    while levels[0].shape[-1] > SIZES[0]:
        levels.insert(0, down(levels[0]))
    return levels


class CoarseG(nn.Module):
    """(z, phi(t)) -> 8x8 image in [-1,1]."""

    def __init__(self, c: LapConfig) -> None:
        super().__init__()
        self.c = c
        self.project = nn.Sequential(nn.Linear(c.emb_dim, c.proj), nn.LeakyReLU(0.2, inplace=True))
        self.fc = nn.Sequential(nn.Linear(c.proj + c.z_dim, c.ngf * 4 * 16, bias=False), nn.BatchNorm1d(c.ngf * 4 * 16), nn.ReLU(True))
        self.decode = nn.Sequential(nn.ConvTranspose2d(c.ngf * 4, c.ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c.ngf * 2), nn.ReLU(True),
                                    nn.Conv2d(c.ngf * 2, c.ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(c.ngf), nn.ReLU(True),
                                    nn.Conv2d(c.ngf, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([self.project(emb), z], 1))
        return self.decode(h.view(-1, self.c.ngf * 4, 4, 4))


class BandG(nn.Module):
    """(u(I_{k+1}), z_k, phi(t)) -> the band h_k at one finer level (no normalisation: it learns on real coarse
    images and samples on generated ones)."""

    def __init__(self, c: LapConfig, width: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(c.emb_dim, c.text), nn.LeakyReLU(0.2, inplace=True))
        self.body = nn.Sequential(nn.Conv2d(3 + 1 + c.text, width, 3, 1, 1), nn.ReLU(True),
                                  nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(True),
                                  nn.Conv2d(width, 3, 3, 1, 1))

    def forward(self, low: torch.Tensor, z: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        t = self.project(emb)[:, :, None, None].expand(-1, -1, low.shape[2], low.shape[3])
        return self.body(torch.cat([low, z, t], 1))


@dataclass
class Levels:
    """Images of a batch at every level (coarse to fine) and the coarse input of each (None at the coarsest):
    what the level discriminators judge."""

    images: list[torch.Tensor]
    lows: list[torch.Tensor | None]

    def detach(self) -> Levels:
        return Levels([x.detach() for x in self.images], [None if low is None else low.detach() for low in self.lows])

    def __len__(self) -> int:
        return len(self.images[0])


def real_levels(x: torch.Tensor, fine_batch: int | None = None) -> Levels:
    """The real images at every level; the finer levels only for the first ``fine_batch`` images."""
    images = pyramid(x)
    k = len(x) if fine_batch is None else min(fine_batch, len(x))
    return Levels([images[0], *(i[:k] for i in images[1:])], [None, *(up(i[:k]) for i in images[:-1])])


class LapGenerator(nn.Module):
    def __init__(self, config: LapConfig) -> None:
        super().__init__()
        self.config = config
        self.coarse = CoarseG(config)
        self.bands = nn.ModuleList(BandG(config, w) for w in config.fine)

    def forward(self, z: torch.Tensor, emb: torch.Tensor, *details: torch.Tensor) -> torch.Tensor:
        """[-1,1] images [N,3,64,64], sampled coarse to fine; ``details``: the noise maps of the 16, 32 and 64 px
        levels ([N,1,s,s]), random when not given."""
        return self.levels(z, emb, *details)[-1]

    def levels(self, z: torch.Tensor, emb: torch.Tensor, *details: torch.Tensor) -> list[torch.Tensor]:
        """The sampled image at every level, coarse to fine."""
        if not details:
            details = tuple(torch.randn(len(z), 1, s, s, device=z.device) for s in SIZES[1:])
        out = [self.coarse(z, emb)]
        for band, zk in zip(self.bands, details):
            low = up(out[-1])
            out.append(low + band(low, zk, emb))
        return out

    def train_fakes(self, x: torch.Tensor, emb: torch.Tensor, chain: float = 0.0) -> Levels:
        """Fakes at every level, each finer one built on the REAL image's coarser level (the paper's training);
        the finer levels for the first ``fine_batch`` images only (a CPU budget). ``chain``: the share of those
        images whose finer levels are built instead on the level above's fake (detached), as sampling does; their
        coarse input, for the discriminator, is u(d(fake)), as a real image's is u(d(real))."""
        n = len(emb)
        real = real_levels(x[:n], self.config.fine_batch)
        images = [self.coarse(torch.randn(n, self.config.z_dim, device=x.device), emb)]
        lows: list[torch.Tensor | None] = [None]
        m = round(chain * len(real.images[1]))  # the chained images come first
        for band, real_low in zip(self.bands, real.lows[1:]):
            k = len(real_low)
            low = torch.cat([up(images[-1][:m].detach()), real_low[m:]]) if m else real_low
            fake = low + band(low, torch.randn(k, 1, low.shape[2], low.shape[3], device=x.device), emb[:k])
            images.append(fake)
            lows.append(torch.cat([up(down(fake[:m])), real_low[m:]]) if m else real_low)
        return Levels(images, lows)

    def seeded_noise(self, seeds: list[int], detail_seeds: list[int] | None = None) -> tuple[torch.Tensor, ...]:
        """(z, noise_16, noise_32, noise_64) as the service draws them (numpy): z from the seed, each level's map
        from ``default_rng([detail_seed, size])``; the detail seed defaults to the seed."""
        detail_seeds = seeds if detail_seeds is None else detail_seeds
        z = np.stack([np.random.default_rng(s).standard_normal(self.config.z_dim) for s in seeds])
        maps = [np.stack([np.random.default_rng([d, s]).standard_normal((1, s, s)) for d in detail_seeds]) for s in SIZES[1:]]
        return tuple(torch.from_numpy(a.astype(np.float32)) for a in (z, *maps))


class LapDiscriminator(nn.Module):
    """One matching-aware discriminator per level; logits of all levels are concatenated (level-major), so the
    loop's mean over them averages the levels' losses."""

    def __init__(self, config: LapConfig, classes: int = 0) -> None:
        """``classes``: each level also gets the auxiliary class head (TAC-GAN), as GAN-INT-CLS's D."""
        super().__init__()
        self.fine_batch = config.fine_batch
        dc = T2IConfig(emb_dim=config.emb_dim, proj=config.proj, ndf=config.ndf, projection=config.projection)
        self.levels = nn.ModuleList(Discriminator(dc, classes, in_ch=3 if s == SIZES[0] else 6, size=s) for s in SIZES)

    def features(self, x: torch.Tensor | Levels) -> list[torch.Tensor]:
        lv = real_levels(x, self.fine_batch) if isinstance(x, torch.Tensor) else x
        return [d.features(i if low is None else torch.cat([i, low], 1)) for d, i, low in zip(self.levels, lv.images, lv.lows)]

    def judge(self, h: list[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        """Every level's logits, concatenated (a finer level has fewer images: the first of the batch)."""
        return torch.cat([d.judge(hk, emb[: len(hk)]) for d, hk in zip(self.levels, h)])

    def forward(self, x: torch.Tensor | Levels, emb: torch.Tensor) -> torch.Tensor:
        return self.judge(self.features(x), emb)

    def class_loss(self, h: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The auxiliary class loss, averaged over the levels."""
        return torch.stack([d.class_loss(hk, y[: len(hk)]) for d, hk in zip(self.levels, h)]).mean()


class ExportedLap(nn.Module):
    """The served graph: (text_embedding, noise, noise_16, noise_32, noise_64) -> image in [0,1]."""

    INPUTS = ("text_embedding", "noise", "noise_16", "noise_32", "noise_64")

    def __init__(self, g: LapGenerator) -> None:
        super().__init__()
        self.g = g

    def forward(self, text_embedding: torch.Tensor, noise: torch.Tensor, noise_16: torch.Tensor, noise_32: torch.Tensor,
                noise_64: torch.Tensor) -> torch.Tensor:
        return (self.g(noise, text_embedding, noise_16, noise_32, noise_64) * 0.5 + 0.5).clamp(0.0, 1.0)


def config_dict(c: LapConfig) -> dict:
    d = asdict(c)
    d["fine"] = list(c.fine)
    return d
