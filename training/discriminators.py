"""Discriminators for the GAN trainers, with spectral norm (Miyato et al. 2018) on every hidden layer.

The first and the last layer are left unnormalised, as in Real-ESRGAN's U-Net discriminator: with every
layer normalised, the discriminators here stayed at chance for hundreds of steps (measured on both
the SR and the High-to-Low task), which short CPU runs cannot afford.

Every discriminator returns ``(outputs, features)``: ``outputs`` is a list of logit tensors (one for a
patch discriminator; a global and a per-pixel one for the U-Net), ``features`` the intermediate
activations used for feature matching.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, sn: bool = True) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2 if stride == 1 else 1)
    return spectral_norm(conv) if sn else conv


class PatchDiscriminator(nn.Module):
    """VGG-style: pairs of 3x3 convs, the second of each pair strided, ending in a map of patch logits."""

    def __init__(self, channels: int = 32, downsamples: int = 3) -> None:
        super().__init__()
        stages, cin = [], 3
        for i in range(downsamples):
            cout = channels * 2**i
            stages.append(nn.Sequential(_conv(cin, cout, sn=i > 0), nn.LeakyReLU(0.2), _conv(cout, cout, 4, 2), nn.LeakyReLU(0.2)))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(_conv(cin, cin), nn.LeakyReLU(0.2), _conv(cin, 1, sn=False))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return [self.head(x)], feats


class UNetDiscriminator(nn.Module):
    """U-Net discriminator (Schonfeld et al. 2020): the encoder ends in a global real/fake logit, the
    decoder (with skip connections) gives a real/fake logit per pixel."""

    def __init__(self, channels: int = 32, downsamples: int = 3) -> None:
        super().__init__()
        self.head = nn.Sequential(_conv(3, channels, sn=False), nn.LeakyReLU(0.2))
        self.down, widths = nn.ModuleList(), [channels]
        for i in range(downsamples):
            cin, cout = channels * 2**i, channels * 2 ** (i + 1)
            self.down.append(nn.Sequential(_conv(cin, cout, 4, 2), nn.LeakyReLU(0.2), _conv(cout, cout), nn.LeakyReLU(0.2)))
            widths.append(cout)
        self.global_head = nn.Linear(widths[-1], 1)
        self.up = nn.ModuleList()
        for i in reversed(range(downsamples)):
            cin, cout = widths[i + 1] + widths[i], widths[i]
            self.up.append(nn.Sequential(_conv(cin, cout), nn.LeakyReLU(0.2)))
        self.pixel_head = _conv(channels, 1, sn=False)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        skips = [self.head(x)]
        for stage in self.down:
            skips.append(stage(skips[-1]))
        bottom = skips[-1]
        global_logit = self.global_head(bottom.sum(dim=(2, 3)))
        y = bottom
        for stage, skip in zip(self.up, reversed(skips[:-1])):
            y = F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], dim=1))
        return [global_logit, self.pixel_head(y)], skips[1:]


KINDS = {"vgg": PatchDiscriminator, "unet": UNetDiscriminator}


def build(kind: str, channels: int = 32, downsamples: int = 3) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"unknown discriminator '{kind}' (choose from {', '.join(KINDS)})")
    return KINDS[kind](channels, downsamples)
