"""What every detector shares: the batch it reads and the interface it offers.

A detector maps a :class:`Batch` to one logit per clip (natural-log odds of **spoof**;
P(spoof) = sigmoid). ``forward(batch) == head(embed(batch))``: ``embed`` returns the
penultimate embedding (diagnostics cluster it), ``head`` is a single linear layer.
Each class declares in ``needs`` which inputs it reads, so loaders fetch only those.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from dfpipe.errors import DfpipeError

INPUTS = ("mel", "lfcc", "waveform")
"""Every input a detector may need: ``features.mel``, ``features.lfcc``, decoded audio."""


@dataclass
class Batch:
    """A batch of clips; each input is present only when a detector needs it.

    Attributes:
        mel: ``(B, 2, n_mels, frames)`` float, channel 0 the normalised log-mel (dB),
            channel 1 its delta (``features.mel``; (B, 2, 128, 301) at the defaults).
        lfcc: ``(B, n_lfcc, frames)`` float (``features.lfcc``; (B, 60, 301)).
        waveform: ``(B, samples)`` float, 16 kHz, peak-normalised, center-cropped or padded
            to the clip length ((B, 48000)).
    """

    mel: torch.Tensor | None = None
    lfcc: torch.Tensor | None = None
    waveform: torch.Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Batch:
        """A copy on ``device`` with every present tensor cast to ``dtype``."""
        return Batch(**{
            f.name: None if (t := getattr(self, f.name)) is None
            else t.to(device=device, dtype=dtype, non_blocking=True)
            for f in fields(self)
        })

    def __len__(self) -> int:
        for f in fields(self):
            tensor = getattr(self, f.name)
            if tensor is not None:
                return int(tensor.shape[0])
        return 0

    def require(self, name: str) -> torch.Tensor:
        """The input ``name``; raises :class:`DfpipeError` naming it when it is absent."""
        tensor = getattr(self, name)
        if tensor is None:
            raise DfpipeError(f"this detector needs the {name!r} input, and the batch has none")
        return tensor


class Detector(nn.Module):
    """Base class of the four detectors: ``forward = head(embed(batch))``.

    Subclasses set ``arch`` and ``needs``, build ``self.head`` (``Linear(embed_dim, 1)``)
    and implement :meth:`embed`.
    """

    arch: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    has_pretrained: ClassVar[bool] = False
    """True when ``__init__`` takes ``pretrained`` (WavLM models: load weights, or only the shape)."""
    head: nn.Linear

    def embed(self, batch: Batch) -> torch.Tensor:
        """Penultimate embedding, ``(B, embed_dim)``."""
        raise NotImplementedError

    def backbone_config(self) -> dict[str, Any] | None:
        """``has_pretrained`` models: the pretrained part's own config as a plain dict, which
        checkpoints store to rebuild its exact shape (``build_model(backbone_config=...)``)."""
        return None

    def forward(self, batch: Batch) -> torch.Tensor:
        """Spoof logits, ``(B,)`` (higher = more spoof)."""
        return self.head(self.embed(batch)).squeeze(-1)

    def num_params(self, trainable_only: bool = False) -> int:
        """Parameter count (all, or only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
