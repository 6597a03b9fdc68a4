"""Device set-up shared by training, scoring and the benchmarks, done once.

CPU/GPU differences collapse here (nanoGPT style): :class:`DeviceContext` gives an
``autocast()`` context and a ``GradScaler`` that are no-ops on the CPU, so the training
and scoring loops never test ``if cuda``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from dfpipe.errors import ConfigError


@dataclass(frozen=True)
class DeviceContext:
    """Where tensors go and how mixed precision runs there.

    Attributes:
        device: the torch device.
        amp: float16 autocast + loss scaling active (CUDA only).
    """

    device: torch.device
    amp: bool

    @property
    def name(self) -> str:
        """Human-readable device, e.g. ``cpu`` or ``cuda:0 (NVIDIA H100)``."""
        if self.device.type == "cuda":
            return f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        return str(self.device)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """float16 autocast on CUDA when ``amp``; a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, disabled (pass-through) unless ``amp``."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp)


def restore_grad_scaler(scaler: torch.amp.GradScaler, state: dict) -> None:
    """Load a saved scaler state into ``scaler`` when there is one to load.

    A run saved where AMP was off (the CPU) stores a disabled scaler's empty state, which an
    enabled scaler refuses; resumed on CUDA, the scaler then starts at its initial scale
    (it adapts within a few steps). A disabled scaler ignores any state.
    """
    if state:
        scaler.load_state_dict(state)


def select_device(preference: str = "auto", *, amp: bool = True, cpu_threads: int | None = None) -> DeviceContext:
    """Pick the device, turn TF32 on for CUDA matmuls/convolutions, decide AMP.

    Args:
        preference: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: allow float16 mixed precision; it is only ever enabled on CUDA.
        cpu_threads: torch's intra-op threads when on the CPU (``None``: every core; a Dask
            worker process otherwise starts torch with a single thread).

    Raises:
        ConfigError: CUDA asked for but not available, or an unknown device string.
    """
    if preference == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(preference)
        except RuntimeError as exc:
            raise ConfigError(f"unknown device {preference!r}: use auto, cpu, cuda or cuda:N") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {preference!r} asked for, but this machine has no usable CUDA GPU")
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"device {preference!r}: dfpipe runs on cpu or cuda")
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads or os.cpu_count() or 1)
    if device.type == "cuda":
        # TF32 tensor cores for fp32 matmuls and convolutions (the study's setting).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return DeviceContext(device=device, amp=amp and device.type == "cuda")
