"""Mel-CNN: the study's ~0.4 M-parameter baseline on (mel, delta mel)."""

from __future__ import annotations

import torch
from torch import nn

from dfpipe.config import MelCNNConfig
from dfpipe.models.base import Batch, Detector


class ConvStack(nn.Module):
    """``len(channels)`` x (3x3 conv, BN, ReLU, 2x2 max-pool), then mean over frequency and
    time: ``(B, in_channels, F, T)`` -> ``(B, channels[-1])``.

    Also the head of WavLM + CNN (over projected WavLM frames), hence its own class.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).mean(dim=(2, 3))


class MelCNN(Detector):
    """Conv stack over the 2-channel mel input -> 64-d embedding -> logit.

    Args:
        config: :class:`~dfpipe.config.MelCNNConfig` (defaults: ~0.41 M parameters).

    Input: ``batch.mel`` ``(B, 2, 128, 301)``. Output: ``(B,)`` spoof logits.
    """

    arch = "mel-cnn"
    needs = frozenset({"mel"})

    def __init__(self, config: MelCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ConvStack(config.in_channels, config.channels)
        self.embedding = nn.Sequential(nn.Linear(self.backbone.out_channels, config.embed_dim),
                                       nn.ReLU(inplace=True), nn.Dropout(config.dropout))
        self.head = nn.Linear(config.embed_dim, 1)

    def embed(self, batch: Batch) -> torch.Tensor:
        return self.embedding(self.backbone(batch.require("mel")))
