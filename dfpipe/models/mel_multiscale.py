"""Mel-MultiScale CNN ("Mel-AASIST"): multi-scale conv blocks with squeeze-excitation and
attentive statistics pooling over time (the study's ~2 M-parameter detector).

Where resolution drops (the CPU cost is at high resolution): a 2x2 max-pool of the
2-channel input and a 3x3 stem conv take it from 128x301 to 64x151 before block 1, and
every block ends with a 2x2 max-pool (64x151 -> 32x76 -> 16x38 -> 8x19); pooling over
time then sees 19 frames, 160 ms apart. At full resolution the same blocks train ~3.5x
slower on a CPU.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from dfpipe.config import MelMultiScaleConfig
from dfpipe.models.base import Batch, Detector


def _conv_bn(c_in: int, c_out: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2  # "same" padding
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c_out))


class SqueezeExcitation(nn.Module):
    """Channel gates from global average pooling (Hu et al. 2018), ``reduction`` as given."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class MultiScaleBlock(nn.Module):
    """Parallel 3x3, 5x5 and 7x7-dilated(3) branches, concatenated and fused by a 1x1 conv,
    squeeze-excitation, a residual shortcut, then a 2x2 max-pool: ``(B, c_in, F, T)`` ->
    ``(B, c_out, ceil(F/2), ceil(T/2))``."""

    def __init__(self, c_in: int, c_out: int, se_reduction: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn(c_in, c_out, 3), _conv_bn(c_in, c_out, 5),
                                       _conv_bn(c_in, c_out, 7, dilation=3)])
        self.fuse = _conv_bn(3 * c_out, c_out, 1)
        self.se = SqueezeExcitation(c_out, se_reduction)
        self.shortcut = _conv_bn(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(torch.cat([branch(x) for branch in self.branches], dim=1))
        y = self.se(self.fuse(y))
        return self.pool(torch.relu(y + self.shortcut(x)))


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling over time (Okabe et al. 2018): per-channel softmax
    weights over frames, then the weighted mean and std, ``(B, C, T)`` -> ``(B, 2C)``."""

    def __init__(self, channels: int, attention_dim: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(channels, attention_dim, 1), nn.Tanh(),
                                       nn.Conv1d(attention_dim, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.attention(x), dim=-1)
        mean = (x * weights).sum(-1)
        # clamp: the variance of a constant frame sequence can round below zero.
        std = ((x * x * weights).sum(-1) - mean * mean).clamp_min(1e-6).sqrt()
        return torch.cat([mean, std], dim=1)


class MultiScaleEncoder(nn.Module):
    """Stem + multi-scale blocks + frequency mean + attentive statistics pooling + linear:
    ``(B, in_channels, F, T)`` -> ``(B, embed_dim)`` (before dropout). Shared by
    Mel-MultiScale and the mel stream of WavLM + AASIST."""

    def __init__(self, config: MelMultiScaleConfig) -> None:
        super().__init__()
        # Pool the 2-channel input first: every wide activation then lives at half resolution.
        self.stem = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True),
                                  _conv_bn(config.in_channels, config.stem_channels, 3), nn.ReLU(inplace=True))
        widths = (config.stem_channels, *config.block_channels)
        self.blocks = nn.Sequential(*[MultiScaleBlock(c_in, c_out, config.se_reduction)
                                      for c_in, c_out in itertools.pairwise(widths)])
        self.pool = AttentiveStatsPool(widths[-1], config.attention_dim)
        self.project = nn.Sequential(nn.BatchNorm1d(2 * widths[-1]),
                                     nn.Linear(2 * widths[-1], config.embed_dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.blocks(self.stem(x)).mean(dim=2)  # (B, C, T): frequency averaged out
        return self.project(self.pool(frames))


class MelMultiScale(Detector):
    """Mel-MultiScale ("Mel-AASIST") detector.

    Args:
        config: :class:`~dfpipe.config.MelMultiScaleConfig` (defaults: ~2.1 M parameters).

    Input: ``batch.mel`` ``(B, 2, 128, 301)``. Output: ``(B,)`` spoof logits.
    """

    arch = "mel-multiscale"
    needs = frozenset({"mel"})

    def __init__(self, config: MelMultiScaleConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = MultiScaleEncoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embed_dim, 1)

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.dropout(self.encoder(batch.require("mel")))
