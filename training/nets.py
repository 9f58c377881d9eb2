"""Generators.

- ``srresnet``: the SRResNet family (Ledig et al. 2017): conv head, residual blocks, global skip, PixelShuffle x2
  steps at growing resolution, conv tail. About 2.9 MFLOP per input pixel at 16 x 64.
- ``span``: the efficient family (after SPAN, Wan et al. 2024, and ABPN's anchor, Du et al. 2021): every conv at LR
  resolution, plain residual blocks (or SPAN's parameter-free attention blocks), one conv to 3 x scale^2 channels
  added to a fixed anchor (bicubic, or nearest-neighbour) before a single PixelShuffle. About 0.56 MFLOP per input
  pixel at 48 channels, 6 residual blocks (the shipped sr-x4).
- ``h2l``: the learned High-to-Low degradation generator.

Every network is built from a frozen config dataclass, and checkpoints store that config (as nanoGPT
stores its model args), so ``build(config)`` recreates the exact module for resume, evaluate and export.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SRResNetConfig:
    scale: int = 4
    channels: int = 64  # width of the body, at LR resolution
    blocks: int = 16  # residual blocks
    up_channels: int = 32  # width of each PixelShuffle stage (cheaper than the body width at high resolution)
    image_skip: bool = True  # add a bilinear upscale of the input, so the body learns the residual detail

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {self.scale}")


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with identity skip (SRResNet without batch norm, as EDSR showed is better for SR)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class SRResNet(nn.Module):
    """Input RGB in [0,1] [N,3,H,W] -> output RGB [N,3,sH,sW]; clamping to [0,1] is done by the export wrapper."""

    def __init__(self, config: SRResNetConfig) -> None:
        super().__init__()
        self.config = config
        c, u = config.channels, config.up_channels
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(c) for _ in range(config.blocks)])
        self.body_tail = nn.Conv2d(c, c, 3, padding=1)
        steps = int(math.log2(config.scale))
        up: list[nn.Module] = []
        in_ch = c
        for _ in range(steps):
            up += [nn.Conv2d(in_ch, u * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(u)]
            in_ch = u
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(u, 3, 3, padding=1)
        # Start the residual branch near zero so the untrained network is the bilinear upscale.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body_tail(self.body(feat))  # global skip
        out = self.tail(self.upsample(feat))
        if self.config.image_skip:
            out = out + F.interpolate(x, scale_factor=self.config.scale, mode="bilinear", align_corners=False)
        return out


@dataclass(frozen=True)
class SPANConfig:
    scale: int = 4
    channels: int = 48
    blocks: int = 4
    # span: 3 convs with SiLU and parameter-free attention, as SPAN | span-residual: the same plus an identity skip
    # (so an untrained block passes its input on) | res: conv-ReLU-conv residual blocks
    block: str = "span"
    anchor: str = "bicubic"  # what the net adds its residual to: the bicubic or the nearest-neighbour upscale

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {self.scale}")
        if self.block not in ("span", "span-residual", "res"):
            raise ValueError(f"block must be span, span-residual or res, got {self.block!r}")
        if self.anchor not in ("bicubic", "nearest"):
            raise ValueError(f"anchor must be bicubic or nearest, got {self.anchor!r}")


class AttentionBlock(nn.Module):
    """Three 3x3 convs; the last one's output o gates itself: (o + x) * (sigmoid(o) - 1/2), SPAN's parameter-free
    attention (no pooling, no extra weights: every op is a conv or elementwise, so it exports and quantizes simply)."""

    def __init__(self, channels: int, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.conv3(F.silu(self.conv2(F.silu(self.conv1(x)))))
        out = (o + x) * (torch.sigmoid(o) - 0.5)
        return x + out if self.residual else out


def upscale_kernel(scale: int, size: int = 5) -> torch.Tensor:
    """Weights of a grouped size x size conv (3 -> 3 x scale^2 channels) that, on an input padded by size // 2
    with edge replication and followed by PixelShuffle(scale), is torch's bicubic upscale (align_corners=False,
    which clamps at the borders as edge padding does): read off its response to a unit impulse."""
    r = size // 2
    impulse = torch.zeros(1, 1, size, size, dtype=torch.float64)
    impulse[0, 0, r, r] = 1.0
    up = F.interpolate(impulse, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0]
    # Sub-pixel (i, j) of LR pixel (y, x) weighs input (y + dy, x + dx) by the impulse response at output pixel
    # ((r - dy) s + i, (r - dx) s + j): the phase (i, j) of the response, flipped.
    k = torch.stack([up[i::scale, j::scale].flip(0, 1) for i in range(scale) for j in range(scale)])
    return k.float().repeat(3, 1, 1).unsqueeze(1)


class SPAN(nn.Module):
    """Input RGB in [0,1] [N,3,H,W] -> output RGB [N,3,sH,sW]; every conv runs at input resolution.

    The head's features, the first block's and the last block's are concatenated and mixed by a 1x1 conv (SPAN's
    feature aggregation); one 3x3 conv makes the 3 x s^2 sub-pixel channels, to which the anchor is added in the
    same layout (``anchor``: bicubic, or the input repeated s^2 times for nearest), so the net learns the residual.
    """

    def __init__(self, config: SPANConfig) -> None:
        super().__init__()
        self.config = config
        c, s = config.channels, config.scale
        self.head = nn.Conv2d(3, c, 3, padding=1)
        if config.block == "res":
            self.body = nn.ModuleList(ResidualBlock(c) for _ in range(config.blocks))
        else:
            self.body = nn.ModuleList(AttentionBlock(c, config.block == "span-residual") for _ in range(config.blocks))
        self.mix = nn.Conv2d(3 * c, c, 1)
        self.up = nn.Conv2d(c, 3 * s * s, 3, padding=1)
        self.shuffle = nn.PixelShuffle(s)
        nn.init.zeros_(self.up.weight)  # the untrained net is its anchor
        nn.init.zeros_(self.up.bias)
        if config.anchor == "bicubic":  # a fixed grouped conv: not a parameter, never trained
            self.register_buffer("anchor_kernel", upscale_kernel(s), persistent=False)

    def anchor(self, x: torch.Tensor) -> torch.Tensor:
        """The upscale the net adds its residual to, as 3 x s^2 sub-pixel channels (before PixelShuffle)."""
        s = self.config.scale
        if self.config.anchor == "nearest":
            return x.repeat_interleave(s * s, dim=1)
        r = self.anchor_kernel.shape[-1] // 2
        return F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), self.anchor_kernel, groups=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        h = first = self.body[0](feat)
        for blk in self.body[1:]:
            h = blk(h)
        mixed = self.mix(torch.cat([feat, first, h], dim=1))
        return self.shuffle(self.up(mixed) + self.anchor(x))


@dataclass(frozen=True)
class H2LConfig:
    """High-to-Low generator (Bulat et al. 2018): HR + noise vector -> realistic LR at 1/scale."""

    scale: int = 4
    channels: int = 64  # width at LR resolution (half of it before the last downsampling)
    hr_blocks: int = 1  # residual blocks at each resolution above LR
    lr_blocks: int = 4  # residual blocks at LR resolution
    z_dim: int = 64
    noise_period: int = 32  # the noise vector becomes a learned P x P map at HR resolution, tiled over the image

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {self.scale}")


class H2LGenerator(nn.Module):
    """(image [N,3,H,W] in [0,1], noise [N,z]) -> LR [N,3,H/s,W/s]; H and W multiples of the scale.

    The noise vector is projected to a P x P map (as Bulat et al. project it to the HR grid) and tiled
    periodically, so any image size works. The output is a box downscale of the input plus a learned
    residual, so colours stay put and the net learns only the degradation.
    """

    def __init__(self, config: H2LConfig) -> None:
        super().__init__()
        self.config = config
        c, p = config.channels, config.noise_period
        self.noise_map = nn.Linear(config.z_dim, p * p)
        steps = int(math.log2(config.scale))
        layers: list[nn.Module] = [nn.Conv2d(4, c // 2, 3, padding=1)]
        width = c // 2
        for i in range(steps):
            layers += [ResidualBlock(width) for _ in range(config.hr_blocks)]
            out = c if i == steps - 1 else c // 2
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width = out
        layers += [ResidualBlock(c) for _ in range(config.lr_blocks)]
        layers += [nn.Conv2d(c, 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        n, _, h, w = image.shape
        p = self.config.noise_period
        m = self.noise_map(noise).view(n, 1, p, p)
        m = m.repeat(1, 1, h // p + 1, w // p + 1)[:, :, :h, :w]
        s = self.config.scale
        return F.avg_pool2d(image, s) + self.body(torch.cat([image, m], dim=1))


ARCHS = {"srresnet": (SRResNetConfig, SRResNet), "span": (SPANConfig, SPAN), "h2l": (H2LConfig, H2LGenerator)}


def build(arch: str, config: dict) -> nn.Module:
    cfg_cls, net_cls = ARCHS[arch]
    return net_cls(cfg_cls(**config))


def config_dict(net: nn.Module) -> dict:
    return asdict(net.config)


def deepen(src: nn.Module, dst: nn.Module) -> None:
    """Load a trained span net with plain residual blocks into a deeper one of the same config: the blocks it has
    keep their weights, the appended ones start as the identity (their second conv at zero), so ``dst`` computes
    what ``src`` does and training goes on from there (function-preserving growth, as Net2Net's deeper nets).
    Raises ValueError for any other pair of configs."""
    a, b = config_dict(src), config_dict(dst)
    if not (isinstance(src, SPAN) and isinstance(dst, SPAN) and a["block"] == "res" and b["blocks"] > a["blocks"]
            and {**a, "blocks": b["blocks"]} == b):
        raise ValueError(f"cannot grow {a} into {b}: only a span net of residual blocks into more blocks, all else equal")
    missing, unexpected = dst.load_state_dict(src.state_dict(), strict=False)
    if unexpected or any(not k.startswith("body.") for k in missing):
        raise ValueError(f"unexpected weights when growing {a} into {b}: {unexpected or missing}")
    with torch.no_grad():
        for blk in dst.body[a["blocks"]:]:
            blk.conv2.weight.zero_()
            blk.conv2.bias.zero_()


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def flops_per_input_pixel(net: nn.Module, size: int = 32) -> int:
    """Multiply-adds x 2 of one forward pass, per input pixel, counted with forward hooks on conv layers."""
    if isinstance(net, H2LGenerator):
        size = net.config.noise_period  # its input must be a multiple of the scale
    anchor = getattr(net, "anchor_kernel", None)  # SPAN's fixed bicubic anchor: a grouped conv outside nn.Conv2d
    return _conv_flops(net, size) + (2 * anchor.numel() if anchor is not None else 0)


def _conv_flops(net: nn.Module, size: int) -> int:
    total = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += 2 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    inputs = [torch.zeros(1, 3, size, size)]
    if isinstance(net, H2LGenerator):
        inputs.append(torch.zeros(1, net.config.z_dim))
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total // (size * size)
