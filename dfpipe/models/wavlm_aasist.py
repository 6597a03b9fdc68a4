"""WavLM + AASIST: partly fine-tuned WavLM-Large fused with the mel multi-scale encoder and
an LFCC stream (the study's ~350 M-parameter detector)."""

from __future__ import annotations

import torch
from torch import nn

from dfpipe.config import WavLMAASISTConfig
from dfpipe.models.base import Batch, Detector
from dfpipe.models.mel_multiscale import MultiScaleEncoder
from dfpipe.models.wavlm import WavLMFrames


class LFCCStream(nn.Module):
    """Two 1-D convs over LFCC frames, then mean and std over time:
    ``(B, n_lfcc, T)`` -> ``(B, 2 * channels)``."""

    def __init__(self, coefficients: int, channels: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(coefficients, channels, 3, padding=1, bias=False), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
            nn.Conv1d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm1d(channels), nn.ReLU(inplace=True),
        )

    def forward(self, lfcc: torch.Tensor) -> torch.Tensor:
        frames = self.convs(lfcc)
        return torch.cat([frames.mean(-1), frames.std(-1, unbiased=False)], dim=1)


class WavLMAASIST(Detector):
    """Three streams, concatenated and fused by an MLP (hidden ``fusion_hidden``):

    - WavLM frames projected to ``wavlm_dim`` (256) and averaged over time;
    - the mel + delta input through :class:`~dfpipe.models.mel_multiscale.MultiScaleEncoder`;
    - LFCC through :class:`LFCCStream`.

    Args:
        config: :class:`~dfpipe.config.WavLMAASISTConfig` (layers 12-23 of WavLM train).

    Input: ``batch.waveform`` ``(B, 48000)``, ``batch.mel`` ``(B, 2, 128, 301)``,
    ``batch.lfcc`` ``(B, 60, 301)``. Output: ``(B,)`` spoof logits.

    Raises:
        DfpipeError: when the WavLM weights are missing.
    """

    has_pretrained = True
    arch = "wavlm-aasist"
    needs = frozenset({"waveform", "mel", "lfcc"})

    def __init__(self, config: WavLMAASISTConfig, *, pretrained: bool = True,
                 backbone_config: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.frames = WavLMFrames(config.wavlm, config.unfreeze_layers, pretrained=pretrained,
                                  hf_config=backbone_config)
        self.wavlm_project = nn.Linear(self.frames.hidden_size, config.wavlm_dim)
        self.mel = MultiScaleEncoder(config.mel)
        self.lfcc = LFCCStream(config.lfcc_coefficients, config.lfcc_channels)
        fused = config.wavlm_dim + config.mel.embed_dim + 2 * config.lfcc_channels
        self.fusion = nn.Sequential(
            nn.Linear(fused, config.fusion_hidden), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
            nn.Linear(config.fusion_hidden, config.embed_dim), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
        )
        self.head = nn.Linear(config.embed_dim, 1)

    def backbone_config(self) -> dict:
        return self.frames.wavlm.config.to_dict()

    def embed(self, batch: Batch) -> torch.Tensor:
        speech = self.wavlm_project(self.frames(batch.require("waveform"))).mean(dim=1)
        streams = [speech, self.mel(batch.require("mel")), self.lfcc(batch.require("lfcc"))]
        return self.fusion(torch.cat(streams, dim=1))
