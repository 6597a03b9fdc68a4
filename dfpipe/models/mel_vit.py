"""Mel-ViT: a Vision Transformer on (mel, delta mel), the study's large mel model."""

from __future__ import annotations

import torch
from torch import nn

from dfpipe.config import MelViTConfig
from dfpipe.models.base import Batch, Detector


class MelViT(Detector):
    """Patch embedding + class token + learned positional embeddings + pre-norm
    transformer encoder; the class token's final state is the embedding.

    Args:
        config: :class:`~dfpipe.config.MelViTConfig` (defaults: ViT-Small, ~21.5 M parameters).

    Input: ``batch.mel`` ``(B, 2, 128, 301)``, time padded with zeros on the right to whole
    patches. Output: ``(B,)`` spoof logits.
    """

    arch = "mel-vit"
    needs = frozenset({"mel"})

    def __init__(self, config: MelViTConfig) -> None:
        super().__init__()
        self.config = config
        height, width = config.grid
        self.patches = nn.Conv2d(config.in_channels, config.embed_dim, config.patch_size, stride=config.patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.positions = nn.Parameter(torch.zeros(1, 1 + height * width, config.embed_dim))
        # ViT's initialisation: small random positions and class token (zeros would make
        # every patch position alike at the start).
        nn.init.trunc_normal_(self.positions, std=0.02)
        nn.init.trunc_normal_(self.class_token, std=0.02)
        layer = nn.TransformerEncoderLayer(config.embed_dim, config.heads, config.mlp_ratio * config.embed_dim,
                                           config.dropout, activation="gelu", batch_first=True, norm_first=True)
        # Pre-norm layers have no final norm of their own; the nested-tensor fast path does
        # not support them (it would only warn).
        self.encoder = nn.TransformerEncoder(layer, config.depth, norm=nn.LayerNorm(config.embed_dim),
                                             enable_nested_tensor=False)
        self.dropout = nn.Dropout(config.head_dropout)
        self.head = nn.Linear(config.embed_dim, 1)

    def embed(self, batch: Batch) -> torch.Tensor:
        mel = batch.require("mel")
        missing = self.config.grid[1] * self.config.patch_size[1] - mel.shape[-1]
        tokens = self.patches(nn.functional.pad(mel, (0, missing))).flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = torch.cat([self.class_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.positions
        return self.dropout(self.encoder(tokens)[:, 0])
