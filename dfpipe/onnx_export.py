"""ONNX export of the mel detectors: front end and model in one graph (``dfpipe export --onnx``).

The graph takes what :func:`dfpipe.frontend.load_clip` gives, ``waveform`` ``(batch,
clip_samples)`` float32 (16 kHz mono, 3 s centre crop or zero-padded, peak-normalised), and
returns ``spoof_logit`` ``(batch,)`` (higher = more spoof; P(spoof) = sigmoid). ``batch`` is
dynamic; the clip length is fixed by the checkpoint's front end.

torchaudio's spectrogram is a complex ``torch.stft``, which the ONNX exporter cannot write
(ONNX tensors are real). :class:`ExportableMelFrontend` computes the same power
spectrogram as a strided convolution with the windowed real and imaginary DFT rows (the
definition of the STFT, framed and padded as ``torch.stft(center=True)``), then reuses the
front end's own filterbank, dB conversion and normalisation, and its delta kernel as a
fixed convolution. The export checks the
graph against PyTorch on seeded clips when onnxruntime is installed (extra ``[onnx]``).

A checkpoint's calibration travels as ``OUT.calibration.json`` beside the graph
(:func:`dfpipe.llr.calibration_uri`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dfpipe import checkpoints
from dfpipe.config import FrontendConfig, OnnxConfig
from dfpipe.errors import DfpipeError
from dfpipe.frontend import MelFrontend, _to_db
from dfpipe.lake import atomic_write
from dfpipe.llr import calibration_uri, read_calibration, write_score_map
from dfpipe.models import Batch, Detector, dataclass_from_dict

INPUT, OUTPUT = "waveform", "spoof_logit"
EXPORTABLE = ("mel-cnn", "mel-multiscale")
"""Not mel-vit: its class token is expanded to the batch size, which the exporter's trace
fixes to the example's batch (the graph then fails on any other), and its eval-mode
encoder takes a fused kernel with no ONNX form. WavLM detectors: not a mel front end."""


class ExportableMelFrontend(nn.Module):
    """:class:`~dfpipe.frontend.MelFrontend` with its STFT written as a real convolution.

    ``X[k, t] = sum_n w[n] x[t hop + n] e^{-2 pi i k n / n_fft}``: row ``k`` of the basis is
    ``w[n] cos(2 pi k n / n_fft)`` (real part) or ``-w[n] sin(...)`` (imaginary part), and a
    conv1d with stride ``hop`` applies every row to every frame. Same framing as
    ``torch.stft(center=True, pad_mode=...)``: ``n_fft // 2`` samples padded at each end.
    """

    def __init__(self, frontend: MelFrontend) -> None:
        super().__init__()
        log_mel = frontend.log_mel
        self.log_mel, self.norm = log_mel, frontend.norm
        n_fft = log_mel.n_fft
        frequencies = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * frequencies * torch.arange(n_fft, dtype=torch.float64)[None] / n_fft
        window = log_mel.window.double()[None]
        basis = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])
        self.register_buffer("basis", basis.float()[:, None, :])  # (2 * bins, 1, n_fft)
        # torchaudio's compute_deltas builds its kernel from the input's shape, which the
        # exporter cannot trace with a dynamic batch: the same regression kernel,
        # sum_n n (c[t + n] - c[t - n]) / (2 sum_n n^2) with replicate padding, as a fixed
        # (1, 1, 1, 2N + 1) conv2d kernel.
        half = (frontend.deltas.win_length - 1) // 2
        taps = torch.arange(-half, half + 1, dtype=torch.float32) / (half * (half + 1) * (2 * half + 1) / 3)
        self.half = half
        self.register_buffer("delta_kernel", taps[None, None, None, :])

    def forward(self, waveform: Tensor) -> Tensor:
        lm = self.log_mel
        frames = waveform[:, None, :]
        if lm.center:
            frames = F.pad(frames, (lm.n_fft // 2, lm.n_fft // 2), mode=lm.pad_mode)
        spectrum = F.conv1d(frames, self.basis, stride=lm.hop_length)
        real, imaginary = spectrum.chunk(2, dim=1)
        power = real * real + imaginary * imaginary
        spec = power if lm.power == 2.0 else power.sqrt()
        mel = torch.matmul(spec.transpose(-1, -2), lm.mel_fb).transpose(-1, -2)
        normalised = self.norm(_to_db(mel, lm.power, lm.amin, lm.top_db))
        padded = F.pad(normalised[:, None], (self.half, self.half, 0, 0), mode="replicate")
        return torch.stack([normalised, F.conv2d(padded, self.delta_kernel)[:, 0]], dim=1)


class WaveformDetector(nn.Module):
    """Waveform -> spoof logit: the exportable front end, then the detector (eval mode)."""

    def __init__(self, model: Detector, frontend: FrontendConfig) -> None:
        super().__init__()
        self.frontend = ExportableMelFrontend(MelFrontend(frontend))
        self.model = model

    def forward(self, waveform: Tensor) -> Tensor:
        return self.model(Batch(mel=self.frontend(waveform), lfcc=None, waveform=None))


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    path: str
    arch: str
    clip_samples: int
    size_bytes: int
    calibration: str | None  # OUT.calibration.json, when the checkpoint has a calibration
    max_abs_diff: float | None  # against PyTorch on seeded clips; None without onnxruntime


def export_onnx(checkpoint: str, out: str | os.PathLike[str], config: OnnxConfig | None = None) -> OnnxExport:
    """Export a mel detector's checkpoint (front end included) to the ONNX file ``out``.

    Raises:
        DfpipeError: not a mel detector, or (with onnxruntime) a graph whose logits differ
            from PyTorch's by more than ``config.parity_atol``.
    """
    config = config or OnnxConfig()
    model, meta = checkpoints.load_model(checkpoint)
    if model.arch not in EXPORTABLE:
        raise DfpipeError(f"{checkpoint} is a {model.arch} detector: ONNX export covers {', '.join(EXPORTABLE)}")
    frontend = dataclass_from_dict(FrontendConfig, meta["frontend_config"])
    graph = WaveformDetector(model, frontend).eval()
    example = torch.zeros(2, frontend.audio.clip_samples)
    out = os.fspath(out)

    def write(tmp: str) -> None:
        with torch.no_grad():
            torch.onnx.export(graph, (example,), tmp, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                              opset_version=config.opset, dynamo=False)

    atomic_write(out, write)
    max_abs_diff = _parity(graph, frontend, out, config)
    calibration = read_calibration(checkpoint)
    written = None if calibration is None else write_score_map(calibration, calibration_uri(out))
    return OnnxExport(path=out, arch=model.arch, clip_samples=frontend.audio.clip_samples,
                      size_bytes=os.path.getsize(out), calibration=written, max_abs_diff=max_abs_diff)


def onnx_logits(session: object, waveforms: np.ndarray) -> np.ndarray:
    """Spoof logits of ``(N, clip_samples)`` float32 waveforms from an onnxruntime session."""
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(waveforms, np.float32)})[0]  # type: ignore[attr-defined]


def _parity(graph: WaveformDetector, frontend: FrontendConfig, path: str, config: OnnxConfig) -> float | None:
    """Largest |ONNX - PyTorch| logit on seeded, peak-normalised noise, a tone and silence, against
    the torchaudio front end (None without onnxruntime)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    clip_samples = frontend.audio.clip_samples
    t = np.arange(clip_samples) / frontend.audio.sample_rate
    waves = np.stack([rng.standard_normal(clip_samples), np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(
        clip_samples), np.zeros(clip_samples)]).astype(np.float32)
    waves[:2] /= np.abs(waves[:2]).max(axis=1, keepdims=True)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        reference = graph.model(Batch(mel=MelFrontend(frontend)(torch.from_numpy(waves)),
                                      lfcc=None, waveform=None)).numpy()
    diff = float(np.max(np.abs(onnx_logits(session, waves) - reference)))
    if not diff <= config.parity_atol:
        raise DfpipeError(f"{path}: the ONNX graph's logits differ from PyTorch's by {diff:.3g} "
                          f"(> {config.parity_atol}); the export is not faithful")
    return diff
