"""WavLM + CNN: frozen WavLM-Large features under a Mel-CNN style head."""

from __future__ import annotations

import torch
from torch import nn

from dfpipe.config import WavLMCNNConfig
from dfpipe.models.base import Batch, Detector
from dfpipe.models.mel_cnn import MelCNN
from dfpipe.models.wavlm import WavLMFrames


class WavLMCNN(Detector):
    """WavLM frames ``(B, T, hidden)`` are projected to ``feature_bins`` and read by a
    Mel-CNN (one input channel) as a ``(bins, frames)`` image.

    Args:
        config: :class:`~dfpipe.config.WavLMCNNConfig`; ``config.wavlm`` must be available
            offline (see :func:`dfpipe.models.wavlm.load_wavlm`).

    Input: ``batch.waveform`` ``(B, 48000)``. Output: ``(B,)`` spoof logits.

    Raises:
        DfpipeError: when the WavLM weights are missing.
    """

    has_pretrained = True
    arch = "wavlm-cnn"
    needs = frozenset({"waveform"})

    def __init__(self, config: WavLMCNNConfig, *, pretrained: bool = True, backbone_config: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.frames = WavLMFrames(config.wavlm, config.unfreeze_layers, pretrained=pretrained,
                                  hf_config=backbone_config)
        self.project = nn.Linear(self.frames.hidden_size, config.feature_bins)
        self.cnn = MelCNN(config.head)
        del self.cnn.head  # only its embedding is used: this model's own head makes the logit
        self.head = nn.Linear(config.head.embed_dim, 1)

    def backbone_config(self) -> dict:
        return self.frames.wavlm.config.to_dict()

    def embed(self, batch: Batch) -> torch.Tensor:
        image = self.project(self.frames(batch.require("waveform"))).transpose(1, 2).unsqueeze(1)
        return self.cnn.embed(Batch(mel=image))
