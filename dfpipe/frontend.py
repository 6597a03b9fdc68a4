"""The audio front end shared by every detector, in torchaudio's style.

Two layers, as in ``torchaudio.functional`` / ``torchaudio.transforms``:

* functional forms with every parameter explicit (:func:`log_mel`, :func:`normalize_per_sample`,
  :func:`deltas`, :func:`lfcc`);
* one ``nn.Module`` per feature (:class:`LogMel`, :class:`PerSampleNorm`, :class:`Deltas`,
  :class:`LFCC`) that validates its arguments in ``__init__`` (``ValueError`` naming the
  value), registers its fixed tensors (window, filterbank, DCT matrix) as buffers so
  ``.to(device)`` moves them, and whose ``forward`` is one call to the functional twin;
* compositions: :class:`MelFrontend` (log-mel, per-sample normalisation, delta ->
  ``(B, 2, n_mels, frames)``) and :class:`LFCCFrontend` (``(B, n_lfcc, frames)``), both
  built from a :class:`~dfpipe.config.FrontendConfig`.

Waveforms come from :func:`load_clip` / :func:`windows`: 16 kHz mono (stereo averaged),
3 s (longer audio centre-cropped, shorter zero-padded at the end), peak-normalised.

Surprise handled here (torchaudio's own doc mentions it): ``AmplitudeToDB(top_db=...)`` on a
3-D ``(B, freq, time)`` tensor clamps against the maximum of the *whole batch*. Every dB
conversion here runs on ``(B, 1, freq, time)`` so each clip gets its own ``top_db`` floor and
a batch equals its stacked single clips.

Example:
    >>> from dfpipe.frontend import load_clip, MelFrontend          # doctest: +SKIP
    >>> wave = torch.from_numpy(load_clip("clip.flac"))[None]        # doctest: +SKIP
    >>> MelFrontend()(wave).shape                                    # doctest: +SKIP
    torch.Size([1, 2, 128, 301])
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torchaudio.functional as taf
from torch import Tensor, nn

from dfpipe.audio_io import AudioSource, decode
from dfpipe.config import AudioConfig, FrontendConfig

_DEFAULTS = FrontendConfig()
"""The transforms' keyword defaults come from the one front-end config (no second literal)."""

# -- waveforms -------------------------------------------------------------------------


def fit_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Centre-crop ``wave`` to ``samples`` if longer, zero-pad at the end if shorter."""
    if wave.shape[-1] >= samples:
        start = (wave.shape[-1] - samples) // 2
        return wave[..., start:start + samples]
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, samples - wave.shape[-1])])


def peak_normalize(wave: np.ndarray) -> np.ndarray:
    """Divide by max |x| (float32); an all-zero signal stays all zero (no NaN)."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    out = wave / peak if peak > 0 else wave
    return out.astype(np.float32, copy=False)


def load_clip(source: AudioSource, config: AudioConfig | None = None) -> np.ndarray:
    """Read one clip as the detectors see it.

    Decodes with :func:`dfpipe.audio_io.decode` (mono mix-down, resampled to
    ``config.sample_rate``), centre-crops longer audio / zero-pads shorter audio at the end to
    ``config.clip_samples``, then peak-normalises (after cropping, so the peak is the clip's).

    Args:
        source: path or encoded bytes.
        config: defaults to ``AudioConfig()`` (16 kHz, 3 s).

    Returns:
        ``np.float32`` array ``(clip_samples,)`` = ``(48000,)`` at the defaults, in [-1, 1].

    Raises:
        RejectedInput: when the audio cannot be decoded (see :func:`dfpipe.audio_io.decode`).
    """
    config = config or AudioConfig()
    return peak_normalize(fit_length(decode(source, config.sample_rate), config.clip_samples))


def windows(source: AudioSource | np.ndarray, hop_s: float, config: AudioConfig | None = None
            ) -> Iterator[tuple[float, np.ndarray]]:
    """Slide clip-sized windows over long audio (for scoring long files).

    Windows start every ``hop_s`` seconds; when the last regular window stops short of the
    end, one more window aligned to the end covers the tail (so no audio is skipped and no
    window is padded unless the whole file is shorter than one clip, which yields one
    zero-padded window). Each window is **peak-normalised on its own**, exactly like
    :func:`load_clip`, because a detector scores each window as a clip.

    Args:
        source: path or encoded bytes, or an already decoded mono waveform at
            ``config.sample_rate`` (so one decode can serve several readers).
        hop_s: seconds between window starts (> 0).
        config: defaults to ``AudioConfig()``.

    Yields:
        ``(start_s, window)`` with ``window`` ``np.float32`` ``(clip_samples,)``.

    Raises:
        ValueError: ``hop_s`` not > 0.
        RejectedInput: undecodable audio.
    """
    if not hop_s > 0:
        raise ValueError(f"hop_s must be > 0, got {hop_s!r}")
    config = config or AudioConfig()
    wave = source if isinstance(source, np.ndarray) else decode(source, config.sample_rate)
    size, hop = config.clip_samples, max(1, round(hop_s * config.sample_rate))
    starts = list(range(0, max(wave.shape[0] - size, 0) + 1, hop))
    if wave.shape[0] > size and starts[-1] + size < wave.shape[0]:
        starts.append(wave.shape[0] - size)
    for start in starts:
        window = wave[start:start + size]
        yield start / config.sample_rate, peak_normalize(fit_length(window, size))


# -- functional forms ------------------------------------------------------------------


def _to_db(spec: Tensor, power: float, amin: float, top_db: float) -> Tensor:
    """|X|^power -> dB (20 / power * log10) with a per-clip ``top_db`` floor: ``(B, F, T)``."""
    return taf.amplitude_to_DB(spec.unsqueeze(-3), multiplier=20.0 / power, amin=amin, db_multiplier=0.0,
                               top_db=top_db).squeeze(-3)


def log_mel(waveform: Tensor, window: Tensor, mel_fb: Tensor, *, n_fft: int, hop_length: int,
            power: float, center: bool, pad_mode: str, amin: float, top_db: float) -> Tensor:
    """Log-mel spectrogram in dB, as torchaudio ``MelSpectrogram`` + ``AmplitudeToDB``.

    Args:
        waveform: ``(B, time)`` float.
        window: ``(win_length,)`` analysis window (Hann).
        mel_fb: ``(n_fft // 2 + 1, n_mels)`` from ``torchaudio.functional.melscale_fbanks``.
        n_fft, hop_length: STFT size and hop (samples).
        power: 2.0 for a power spectrogram (dB = 10 log10), 1.0 for magnitude.
        center, pad_mode: ``torch.stft`` framing (torchaudio defaults: True, "reflect").
        amin: floor before the log; top_db: dynamic range kept below each clip's maximum.

    Returns:
        ``(B, n_mels, frames)`` dB.
    """
    spec = taf.spectrogram(waveform, pad=0, window=window, n_fft=n_fft, hop_length=hop_length,
                           win_length=window.shape[0], power=power, normalized=False, center=center,
                           pad_mode=pad_mode)
    mel = torch.matmul(spec.transpose(-1, -2), mel_fb).transpose(-1, -2)
    return _to_db(mel, power, amin, top_db)


def normalize_per_sample(features: Tensor, eps: float) -> Tensor:
    """``(x - mean) / (std + eps)`` over the last two axes of each sample (population std).

    A constant input (silence) becomes all zeros, never NaN.
    """
    mean = features.mean(dim=(-2, -1), keepdim=True)
    std = features.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (features - mean) / (std + eps)


def deltas(features: Tensor, win_length: int) -> Tensor:
    """Temporal derivative along the last axis (``torchaudio.functional.compute_deltas``)."""
    return taf.compute_deltas(features, win_length=win_length, mode="replicate")


def lfcc(waveform: Tensor, window: Tensor, linear_fb: Tensor, dct_mat: Tensor, *, n_fft: int,
         hop_length: int, center: bool, pad_mode: str, amin: float, top_db: float) -> Tensor:
    """Linear-frequency cepstral coefficients, as ``torchaudio.transforms.LFCC`` (log_lf=False).

    Power spectrogram -> linear triangular filterbank -> dB (per-clip ``top_db``) -> DCT-II.

    Args:
        waveform: ``(B, time)``.
        window: ``(win_length,)``; linear_fb: ``(n_fft // 2 + 1, n_filter)``;
        dct_mat: ``(n_filter, n_lfcc)`` from ``torchaudio.functional.create_dct(..., "ortho")``.

    Returns:
        ``(B, n_lfcc, frames)``.
    """
    spec = taf.spectrogram(waveform, pad=0, window=window, n_fft=n_fft, hop_length=hop_length,
                           win_length=window.shape[0], power=2.0, normalized=False, center=center,
                           pad_mode=pad_mode)
    filtered = torch.matmul(spec.transpose(-1, -2), linear_fb).transpose(-1, -2)
    return torch.matmul(_to_db(filtered, 2.0, amin, top_db).transpose(-1, -2), dct_mat).transpose(-1, -2)


# -- modules ---------------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class LogMel(nn.Module):
    """Log-mel spectrogram (dB) of a batch of waveforms: ``(B, time)`` -> ``(B, n_mels, frames)``.

    Equals ``AmplitudeToDB("power", top_db)(MelSpectrogram(sample_rate, n_fft, hop_length=...,
    f_min, f_max, n_mels, power=2.0)(w))`` applied to each clip alone. Power (not magnitude)
    because that is torchaudio's MelSpectrogram default and what "amplitude to dB" in the study
    used; ``center=True``/``pad_mode="reflect"`` are torchaudio's defaults and give
    ``samples // hop + 1`` frames (301 for 3 s), each centred on its time stamp.

    Args:
        sample_rate (int): Hz. n_fft (int): FFT size = window length (Hann). hop_length (int).
        n_mels (int). f_min, f_max (float): Hz, ``0 <= f_min < f_max <= sample_rate / 2``.
        power (float): 2.0 power, 1.0 magnitude. top_db (float): > 0. amin (float): > 0.
        center (bool), pad_mode (str): framing.

    Raises:
        ValueError: naming the first invalid argument.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, f_min: float,
                 f_max: float, *, power: float = _DEFAULTS.power, top_db: float = _DEFAULTS.top_db,
                 amin: float = _DEFAULTS.amin, center: bool = _DEFAULTS.center,
                 pad_mode: str = _DEFAULTS.pad_mode) -> None:
        super().__init__()
        _check(sample_rate > 0, f"sample_rate must be > 0, got {sample_rate}")
        _check(n_fft > 0, f"n_fft must be > 0, got {n_fft}")
        _check(hop_length > 0, f"hop_length must be > 0, got {hop_length}")
        _check(n_mels > 0, f"n_mels must be > 0, got {n_mels}")
        _check(0 <= f_min < f_max <= sample_rate / 2,
               f"need 0 <= f_min < f_max <= {sample_rate / 2}, got f_min={f_min}, f_max={f_max}")
        _check(power in (1.0, 2.0), f"power must be 1.0 or 2.0, got {power}")
        _check(top_db > 0, f"top_db must be > 0, got {top_db}")
        _check(amin > 0, f"amin must be > 0, got {amin}")
        self.n_fft, self.hop_length, self.power = n_fft, hop_length, power
        self.top_db, self.amin, self.center, self.pad_mode = top_db, amin, center, pad_mode
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("mel_fb", taf.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels,
                                                           sample_rate, norm=None, mel_scale="htk"))

    def forward(self, waveform: Tensor) -> Tensor:
        return log_mel(waveform, self.window, self.mel_fb, n_fft=self.n_fft, hop_length=self.hop_length,
                       power=self.power, center=self.center, pad_mode=self.pad_mode, amin=self.amin,
                       top_db=self.top_db)


class PerSampleNorm(nn.Module):
    """Zero mean, unit variance per sample over ``(freq, time)``; silence gives zeros.

    Args:
        eps (float): added to the std, > 0.
    """

    def __init__(self, eps: float = _DEFAULTS.norm_eps) -> None:
        super().__init__()
        _check(eps > 0, f"eps must be > 0, got {eps}")
        self.eps = eps

    def forward(self, features: Tensor) -> Tensor:
        return normalize_per_sample(features, self.eps)


class Deltas(nn.Module):
    """Delta coefficients along time (torchaudio ``ComputeDeltas``, replicate padding).

    Args:
        win_length (int): odd or even, >= 3 (torchaudio's minimum).
    """

    def __init__(self, win_length: int = _DEFAULTS.delta_win_length) -> None:
        super().__init__()
        _check(win_length >= 3, f"win_length must be >= 3, got {win_length}")
        self.win_length = win_length

    def forward(self, features: Tensor) -> Tensor:
        return deltas(features, self.win_length)


class LFCC(nn.Module):
    """LFCC of a batch of waveforms: ``(B, time)`` -> ``(B, n_lfcc, frames)``.

    Equals ``torchaudio.transforms.LFCC(sample_rate, n_filter, f_min, f_max, n_lfcc,
    speckwargs={"n_fft", "win_length", "hop_length"})`` per clip (power spectrogram, dB with
    the front end's ``top_db``, orthonormal DCT-II).

    Raises:
        ValueError: naming the first invalid argument (``n_lfcc > n_filter``, ``win_length >
            n_fft``, a band outside Nyquist, ...).
    """

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_filter: int,
                 n_lfcc: int, f_min: float, f_max: float, *, top_db: float = _DEFAULTS.top_db,
                 amin: float = _DEFAULTS.amin, center: bool = _DEFAULTS.center,
                 pad_mode: str = _DEFAULTS.pad_mode) -> None:
        super().__init__()
        _check(sample_rate > 0, f"sample_rate must be > 0, got {sample_rate}")
        _check(0 < win_length <= n_fft, f"need 0 < win_length <= n_fft, got win_length={win_length}, n_fft={n_fft}")
        _check(hop_length > 0, f"hop_length must be > 0, got {hop_length}")
        _check(0 < n_lfcc <= n_filter, f"need 0 < n_lfcc <= n_filter, got n_lfcc={n_lfcc}, n_filter={n_filter}")
        _check(0 <= f_min < f_max <= sample_rate / 2,
               f"need 0 <= f_min < f_max <= {sample_rate / 2}, got f_min={f_min}, f_max={f_max}")
        _check(top_db > 0, f"top_db must be > 0, got {top_db}")
        _check(amin > 0, f"amin must be > 0, got {amin}")
        self.n_fft, self.hop_length, self.top_db, self.amin = n_fft, hop_length, top_db, amin
        self.center, self.pad_mode = center, pad_mode
        self.register_buffer("window", torch.hann_window(win_length))
        self.register_buffer("linear_fb", taf.linear_fbanks(n_fft // 2 + 1, f_min, f_max, n_filter, sample_rate))
        self.register_buffer("dct_mat", taf.create_dct(n_lfcc, n_filter, "ortho"))

    def forward(self, waveform: Tensor) -> Tensor:
        return lfcc(waveform, self.window, self.linear_fb, self.dct_mat, n_fft=self.n_fft,
                    hop_length=self.hop_length, center=self.center, pad_mode=self.pad_mode,
                    amin=self.amin, top_db=self.top_db)


class MelFrontend(nn.Module):
    """The detectors' 2-channel input: ``(B, time)`` -> ``(B, 2, n_mels, frames)``.

    Channel 0 is the per-sample-normalised log-mel, channel 1 its delta (computed on the
    normalised log-mel, so both channels share one scale). ``(B, 2, 128, 301)`` at the
    study's defaults for 3 s at 16 kHz.

    Args:
        config: defaults to ``FrontendConfig()``.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        super().__init__()
        c = config or FrontendConfig()
        self.log_mel = LogMel(c.audio.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.f_min, c.f_max,
                              power=c.power, top_db=c.top_db, amin=c.amin, center=c.center, pad_mode=c.pad_mode)
        self.norm = PerSampleNorm(c.norm_eps)
        self.deltas = Deltas(c.delta_win_length)

    def forward(self, waveform: Tensor) -> Tensor:
        mel = self.norm(self.log_mel(waveform))
        return torch.stack([mel, self.deltas(mel)], dim=1)


class LFCCFrontend(nn.Module):
    """The fusion model's third stream: ``(B, time)`` -> ``(B, n_lfcc, frames)`` = ``(B, 60, 301)``.

    60 coefficients from 70 linear filters over 20 ms Hann windows every 10 ms (the
    ASVspoof LFCC baseline's framing), band ``f_min``–``f_max`` shared with the mel.
    Not normalised: LFCC's c0 carries level, which the fusion model may want.

    Args:
        config: defaults to ``FrontendConfig()``.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        super().__init__()
        c = config or FrontendConfig()
        self.lfcc = LFCC(c.audio.sample_rate, c.lfcc_n_fft, c.lfcc_win_length, c.hop_length, c.lfcc_n_filter,
                         c.lfcc_n_lfcc, c.f_min, c.f_max, top_db=c.top_db, amin=c.amin, center=c.center,
                         pad_mode=c.pad_mode)

    def forward(self, waveform: Tensor) -> Tensor:
        return self.lfcc(waveform)
