"""WavLM backbones for the two SSL detectors: offline loading, freezing, input scaling.

Weights come only from a local folder or the Hugging Face cache
(``from_pretrained(..., local_files_only=True)``); nothing is downloaded at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from dfpipe.config import ALL_BUT_FIRST, WAVLM_LARGE
from dfpipe.errors import ConfigError, DfpipeError

if TYPE_CHECKING:
    from transformers import WavLMConfig, WavLMModel


def load_wavlm(name_or_path: str) -> WavLMModel:
    """Load a pretrained WavLM from a local folder or the Hugging Face cache, offline.

    Args:
        name_or_path: a folder written by ``save_pretrained`` or a hub name already in the
            HF cache (``microsoft/wavlm-large``).

    Raises:
        DfpipeError: naming the weights and the two ways to provide them.
    """
    from transformers import WavLMModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a "Loading weights" bar per run, amid dfpipe's output
    try:
        return WavLMModel.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise DfpipeError(
            f"WavLM weights {name_or_path!r} are not available offline ({exc.__class__.__name__}). "
            "Provide them either in the Hugging Face cache (on a machine with internet: "
            f"`huggingface-cli download {name_or_path}`, then copy ~/.cache/huggingface here) or "
            "as a local folder written by `WavLMModel.save_pretrained(DIR)` and pass that folder "
            "as the model's `wavlm` setting; dfpipe never downloads weights at run time."
        ) from exc


def wavlm_large_config() -> WavLMConfig:
    """The architecture of ``microsoft/wavlm-large`` (24 layers, width 1024), for counting
    its parameters without its weights (see ``dfpipe models``)."""
    from transformers import WavLMConfig

    # conv_bias=False: WavLM-Large's feature encoder convolutions have no biases (its config.json).
    return WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                       intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
                       conv_bias=False)


def wavlm_architecture(name_or_path: str, hf_config: dict[str, Any] | None = None) -> WavLMModel:
    """A randomly initialised WavLM of the right shape, without its weights: for loading a
    dfpipe checkpoint (which holds them) or counting parameters.

    ``hf_config`` (a ``WavLMConfig.to_dict()``, as dfpipe checkpoints store it) gives the
    exact architecture; without it WavLM-Large's shape is known, and any other model needs
    its ``config.json`` (folder or HF cache).

    Raises:
        DfpipeError: when the configuration cannot be found offline.
    """
    from transformers import WavLMConfig, WavLMModel

    if hf_config is not None:
        return WavLMModel(WavLMConfig.from_dict(hf_config))
    if name_or_path == WAVLM_LARGE:
        return WavLMModel(wavlm_large_config())
    try:
        return WavLMModel(WavLMConfig.from_pretrained(name_or_path, local_files_only=True))
    except (OSError, ValueError) as exc:
        raise DfpipeError(f"the configuration of WavLM {name_or_path!r} is not available offline") from exc


def set_trainable_layers(wavlm: WavLMModel, layers: tuple[int, int] | str | None) -> None:
    """Freeze ``wavlm`` except transformer layers ``layers[0]..layers[1]`` (inclusive, 0-based);
    :data:`~dfpipe.config.ALL_BUT_FIRST` trains every layer but layer 0.

    The convolutional feature encoder always stays frozen.

    Raises:
        ConfigError: when the range goes past the model's last layer.
    """
    wavlm.requires_grad_(False)
    if layers is None:
        return
    n_layers = len(wavlm.encoder.layers)
    if layers == ALL_BUT_FIRST:
        layers = (1, n_layers - 1)
    if layers[1] >= n_layers:
        raise ConfigError(f"unfreeze_layers {tuple(layers)} is past the last layer of this WavLM "
                          f"({n_layers} layers: 0..{n_layers - 1})")
    for index in range(layers[0], layers[1] + 1):
        wavlm.encoder.layers[index].requires_grad_(True)


class WavLMFrames(nn.Module):
    """``(B, samples)`` 16 kHz waveform -> ``(B, frames, hidden)`` last hidden states.

    The waveform is scaled to zero mean and unit variance per clip first, as WavLM's own
    feature extractor does (``do_normalize=True``). A fully frozen WavLM always runs in eval
    mode without autograd (no dropout, no layer drop, no activations kept).
    """

    def __init__(self, name_or_path: str, unfreeze_layers: tuple[int, int] | str | None, *, pretrained: bool = True,
                 hf_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.wavlm = load_wavlm(name_or_path) if pretrained else wavlm_architecture(name_or_path, hf_config)
        set_trainable_layers(self.wavlm, unfreeze_layers)
        self.frozen = unfreeze_layers is None
        self.hidden_size = int(self.wavlm.config.hidden_size)

    def train(self, mode: bool = True) -> WavLMFrames:
        super().train(mode)
        if self.frozen:
            self.wavlm.eval()
        return self

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        mean = waveform.mean(dim=-1, keepdim=True)
        std = waveform.var(dim=-1, keepdim=True, unbiased=False).add(1e-7).sqrt()
        scaled = (waveform - mean) / std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.wavlm(scaled).last_hidden_state
