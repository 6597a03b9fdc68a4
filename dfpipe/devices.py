"""Device set-up shared by training, scoring and the benchmarks, done once.

CPU/GPU differences collapse here (nanoGPT style): :class:`DeviceContext` gives an
``autocast()`` context and a ``GradScaler`` for whatever device and mixed-precision dtype
were chosen (:class:`dfpipe.config.AmpConfig`: CUDA float16 with loss scaling by default,
bfloat16 on request, the CPU float32 unless asked), so the training and scoring loops never
test ``if cuda``. The CPU runs the same code under ``torch.autocast("cpu", ...)`` and the
CPU ``GradScaler``, which is how the tests exercise the CUDA path without a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass

import torch

from dfpipe.config import CPU_MALLOC_KEEP_BYTES, CPU_MALLOC_KEEP_ENV, AmpConfig
from dfpipe.errors import ConfigError

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
""":attr:`dfpipe.config.AmpConfig.DTYPES` as torch dtypes (``off``: none)."""


@dataclass(frozen=True)
class DeviceContext:
    """Where tensors go and how mixed precision runs there.

    Attributes:
        device: the torch device.
        amp_dtype: the autocast dtype, or ``None`` for float32.
    """

    device: torch.device
    amp_dtype: torch.dtype | None = None

    @property
    def amp(self) -> bool:
        """Mixed precision is on."""
        return self.amp_dtype is not None

    @property
    def name(self) -> str:
        """Human-readable device, e.g. ``cpu`` or ``cuda:0 (NVIDIA H100)``, with the AMP dtype."""
        where = (f"{self.device} ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda"
                 else str(self.device))
        return where + (f" {str(self.amp_dtype).removeprefix('torch.')} autocast" if self.amp else "")

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """Autocast to ``amp_dtype`` on this device; a no-op without AMP."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A loss scaler, enabled for float16 only (bfloat16 has float32's exponent range and
        float32 needs none); a disabled one passes ``scale``/``step``/``update`` through."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)


def keep_freed_buffers(limit: int | None = None) -> bool:
    """Let glibc malloc reuse freed buffers of up to ``limit`` bytes instead of unmapping them
    (``mallopt`` of ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``; why:
    :data:`dfpipe.config.CPU_MALLOC_KEEP_BYTES`). For the whole process, from now on.

    Args:
        limit: bytes; ``None``: ``$DFPIPE_CPU_MALLOC_KEEP_BYTES``, else the config default.

    Returns:
        Whether both were set: ``False`` with ``limit`` 0, and where the C library is not
        glibc (macOS has no ``mallopt``; musl's ignores it).

    Raises:
        ConfigError: the environment variable is not a whole number from 0 to 2**31 - 1.
    """
    if limit is None:
        setting = os.environ.get(CPU_MALLOC_KEEP_ENV, str(CPU_MALLOC_KEEP_BYTES))
        if not setting.strip().isdigit() or int(setting) >= 2**31:  # mallopt takes a C int
            raise ConfigError(f"{CPU_MALLOC_KEEP_ENV}={setting!r}: give bytes, a whole number from 0 to 2147483647")
        limit = int(setting)
    if limit <= 0:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, limit)) and bool(mallopt(m_trim_threshold, limit))


def restore_grad_scaler(scaler: torch.amp.GradScaler, state: dict) -> None:
    """Load a saved scaler state into ``scaler`` when there is one to load.

    A run saved where loss scaling was off (float32 or bfloat16) stores a disabled scaler's
    empty state, which an enabled scaler refuses; resumed under float16, the scaler then
    starts at its initial scale (it adapts within a few steps). A disabled scaler ignores any
    state.
    """
    if state:
        scaler.load_state_dict(state)


def select_device(preference: str = "auto", *, amp: bool = True, amp_dtypes: AmpConfig | None = None,
                  cpu_threads: int | None = None) -> DeviceContext:
    """Pick the device, turn TF32 on for CUDA matmuls/convolutions, decide AMP.

    Args:
        preference: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: allow mixed precision, at ``amp_dtypes``' dtype for the device.
        amp_dtypes: the autocast dtype per device type (default :class:`~dfpipe.config.AmpConfig`:
            CUDA float16, CPU off).
        cpu_threads: torch's intra-op threads when on the CPU (``None``: every core; a Dask
            worker process otherwise starts torch with a single thread).

    Raises:
        ConfigError: CUDA asked for but not available, an unknown device string, or bfloat16
            asked for on a GPU without it.
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
        keep_freed_buffers()
    if device.type == "cuda":
        # TF32 tensor cores for fp32 matmuls and convolutions (the study's setting): the parts
        # autocast leaves in float32, and every op when AMP is off.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dtype = AMP_DTYPES.get((amp_dtypes or AmpConfig()).dtype_for(device.type)) if amp else None
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"bfloat16 autocast asked for on {torch.cuda.get_device_name(device)}, which lacks "
                          "it: use AmpConfig.cuda = 'float16'")
    return DeviceContext(device=device, amp_dtype=dtype)
