"""GAN-INT-CLS networks at 64 px (Reed et al. 2016), DCGAN-style.

G(z, phi(t)): the sentence embedding is projected by a fully connected layer (+ leaky ReLU) to ``proj`` dims,
concatenated with the noise z, and decoded by transposed convolutions 4 -> 8 -> 16 -> 32 -> 64 to RGB (tanh).
D(x, phi(t)): strided convolutions 64 -> 4; the projected embedding, replicated over the 4x4 grid, is
concatenated with the image features there, mixed by a 1x1 convolution and scored by a 4x4 one; with
``projection``, plus the inner product of another projection of the embedding with the summed 4x4 features
(the projection discriminator's term, a stronger text signal); optionally an auxiliary class head on the
pooled features (TAC-GAN, Dash et al. 2017). Spectral norm on every layer of D. Both are rebuilt from their
config (the checkpoint carries it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


@dataclass
class T2IConfig:
    emb_dim: int = 384
    z_dim: int = 100
    proj: int = 128
    ngf: int = 32
    ndf: int = 32
    projection: bool = False  # D also adds <text projection, pooled image features> (Miyato & Koyama 2018)


class Generator(nn.Module):
    def __init__(self, config: T2IConfig) -> None:
        super().__init__()
        self.config = c = config
        self.project = nn.Sequential(nn.Linear(c.emb_dim, c.proj), nn.LeakyReLU(0.2, inplace=True))
        self.fc = nn.Sequential(nn.Linear(c.proj + c.z_dim, c.ngf * 8 * 16, bias=False), nn.BatchNorm1d(c.ngf * 8 * 16), nn.ReLU(True))

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.decode = nn.Sequential(*up(c.ngf * 8, c.ngf * 4), *up(c.ngf * 4, c.ngf * 2), *up(c.ngf * 2, c.ngf),
                                    nn.ConvTranspose2d(c.ngf, 3, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """[-1,1] images [N,3,64,64]."""
        h = self.fc(torch.cat([self.project(emb), z], 1))
        return self.decode(h.view(-1, self.config.ngf * 8, 4, 4))

    def train_fakes(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Fakes for a training step (the real images ``x`` only give the device)."""
        return self(torch.randn(len(emb), self.config.z_dim, device=x.device), emb)

    def seeded_noise(self, seeds: list[int], detail_seeds: list[int] | None = None) -> tuple[torch.Tensor, ...]:
        """(z,) as the service draws it: ``numpy.random.default_rng(seed).standard_normal(z_dim)``; this generator
        has no detail levels."""
        z = np.stack([np.random.default_rng(s).standard_normal(self.config.z_dim) for s in seeds])
        return (torch.from_numpy(z.astype(np.float32)),)


class Discriminator(nn.Module):
    def __init__(self, config: T2IConfig, classes: int = 0, in_ch: int = 3, size: int = 64) -> None:
        """``classes`` > 0 adds an auxiliary classifier on the pooled 4x4 features (TAC-GAN): logits over class
        ids 0..classes-1, trained on real images, which then tells G which class a fake looks like. ``in_ch`` and
        ``size``: the input (LAPGAN's level discriminators); strided convolutions bring any size to 4x4, widths
        doubling up to ndf * 8."""
        super().__init__()
        c = config
        sn = spectral_norm

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]

        n = int(math.log2(size // 4))
        widths = [in_ch] + [c.ndf * 2 ** (4 - n + i) for i in range(n)]
        self.features = nn.Sequential(*(layer for i in range(n) for layer in down(widths[i], widths[i + 1])))
        self.project = nn.Sequential(sn(nn.Linear(c.emb_dim, c.proj)), nn.LeakyReLU(0.2, inplace=True))
        self.joint = nn.Sequential(sn(nn.Conv2d(c.ndf * 8 + c.proj, c.ndf * 8, 1)), nn.LeakyReLU(0.2, inplace=True),
                                   sn(nn.Conv2d(c.ndf * 8, 1, 4)))
        self.embed = sn(nn.Linear(c.emb_dim, c.ndf * 8, bias=False)) if c.projection else None
        self.classify = sn(nn.Linear(c.ndf * 8, classes)) if classes else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """Logit [N] that x is a real image matching the text."""
        return self.judge(self.features(x), emb)

    def judge(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The logit from image features ``h`` (4x4) and a text embedding (one image, several texts: features once)."""
        t = self.project(emb)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        logit = self.joint(torch.cat([h, t], 1)).flatten()
        if self.embed is not None:
            logit = logit + (self.embed(emb) * h.sum((2, 3))).sum(1)
        return logit

    def class_logits(self, h: torch.Tensor) -> torch.Tensor:
        """The auxiliary classifier's logits [N, classes] from image features ``h``."""
        return self.classify(h.sum((2, 3)))

    def class_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the auxiliary classifier on image features ``h`` against class ids ``y``."""
        return F.cross_entropy(self.class_logits(h), y)


class Exported(nn.Module):
    """The served graph: (text_embedding, noise) -> image in [0,1]."""

    def __init__(self, g: Generator) -> None:
        super().__init__()
        self.g = g

    def forward(self, text_embedding: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (self.g(noise, text_embedding) * 0.5 + 0.5).clamp(0.0, 1.0)


def config_dict(c: T2IConfig) -> dict:
    return asdict(c)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
