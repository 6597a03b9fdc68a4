"""The one channel every demo clip goes through, bona fide and spoof alike.

A detector trained on raw Asterisk prompts against raw TTS output learns the recording
conditions, not the speech: the prompts are G.722 (50-7,000 Hz) with their own silence
padding and level, TTS comes at 16-32 kHz with full bandwidth, other padding, other level.
So both classes get, in this order:

1. decoding to ``sample_rate`` Hz mono;
2. one G.722 round trip for any source not already G.722 (the prompts were G.722 once, so
   after this every clip has been through that codec exactly once);
3. the same zero-phase band-pass (:attr:`DemoCorpusConfig.band_hz`);
4. silence trimming (first to last frame within ``trim_below_peak_db`` of the loudest);
5. a cut to a drawn length, the same for a spoof and the bona fide clip it is paired with
   (so durations match exactly), an equaliser to a speech-like long-term spectrum of
   drawn slope, and
   10 ms fades at both ends;
6. RMS normalisation to a drawn level and a crest-factor limiter at a drawn ceiling;
7. by seeded draw, an MP3 round trip at a drawn bit rate (else nothing), then FLAC.

The draws (:class:`ChannelDraw`) come from the plan, with the same distributions for both
classes; ``dfpipe corpus check`` proves that cheap features no longer tell them apart.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from dfpipe.audio_io import decode
from dfpipe.config import DemoCorpusConfig
from dfpipe.errors import RejectedInput
from dfpipe.lake import atomic_write

FRAME_S = 0.02
"""Frame length (s) of the energy measurements (silence, trimming, VAD)."""
FADE_S = 0.01
"""Fade-in/out length (s) at both ends of every clip, so a cut never clicks."""
_BANDS_PER_OCTAVE = 6  # equaliser resolution
_EQ_LIMIT_ROUNDS = 10
_LIMITER_PASSES = 2


@dataclass(frozen=True)
class ChannelDraw:
    """The random parts of the channel for one clip (drawn by the plan, seeded).

    Attributes:
        rms_dbfs: target RMS level of the clip, dB relative to full scale.
        crest_db: limiter ceiling, dB above the clip's RMS.
        slope_db_per_octave: equaliser target slope above ``ltas_knee_hz``.
        mp3_kbps: MP3 round-trip bit rate in kbit/s, or 0 for none.
    """

    rms_dbfs: float
    crest_db: float
    slope_db_per_octave: float
    mp3_kbps: int


def frame_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Energy of consecutive 20 ms frames in dBFS (a full-scale sine is -3 dB), shape ``(frames,)``."""
    n = max(1, round(FRAME_S * sample_rate))
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_bounds(x: np.ndarray, sample_rate: int, config: DemoCorpusConfig) -> tuple[int, int] | None:
    """Sample range ``[start, end)`` from the first to the last active frame, or ``None``.

    A frame is active when it is louder than ``config.silence_floor_dbfs`` and within
    ``config.trim_below_peak_db`` of the loudest frame.
    """
    db = frame_db(x, sample_rate)
    if db.size == 0 or db.max() < config.silence_floor_dbfs:
        return None
    active = np.flatnonzero(db >= max(config.silence_floor_dbfs, db.max() - config.trim_below_peak_db))
    n = round(FRAME_S * sample_rate)
    return int(active[0] * n), int(min(len(x), (active[-1] + 1) * n))


def tonal_share(x: np.ndarray) -> float:
    """Median share of a frame's energy within +-3 bins of its spectral peak (1.0 = pure tone).

    Only frames within 30 dB of the loudest count. Speech is about 0.5-0.9; beeps and
    dial tones are 1.0.
    """
    n = 512
    frames = x[: len(x) // n * n].reshape(-1, n) * np.hanning(n)
    if frames.shape[0] == 0:
        return 0.0
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    power = power[energy > energy.max() * 1e-3]
    peak = power.argmax(axis=1)
    bins = np.arange(power.shape[1])
    near = np.abs(bins[None, :] - peak[:, None]) <= 3
    return float(np.median((power * near).sum(axis=1) / power.sum(axis=1)))


def _encode(x: np.ndarray, sample_rate: int, container: str, codec: str, bit_rate: int | None) -> bytes:
    """Encode mono float samples with PyAV (FFmpeg) into the bytes of one file."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        pcm = np.clip(x, -1.0, 1.0)
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(pcm[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = sample_rate
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=sample_rate)
        for converted in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(converted):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def g722_roundtrip(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Code ``x`` with G.722 (64 kbit/s, as the Asterisk prompts) and decode it again."""
    return decode(_encode(x, sample_rate, "wav", "g722", None), sample_rate)[: len(x)]


def mp3_roundtrip(x: np.ndarray, sample_rate: int, kbps: int) -> np.ndarray:
    """Code ``x`` as MP3 at ``kbps`` kbit/s (libmp3lame) and decode it again."""
    return decode(_encode(x, sample_rate, "mp3", "libmp3lame", kbps * 1000), sample_rate)


def band_limit(x: np.ndarray, sample_rate: int, band_hz: tuple[float, float]) -> np.ndarray:
    """Zero-phase 8th-order Butterworth band-pass over ``band_hz`` (low, high) in Hz."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, band_hz, btype="bandpass", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, x).astype(np.float32)


def _welch(x: np.ndarray, sample_rate: int, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum of Hann-windowed 50 %-overlap frames (Welch's method, unscaled).

    scipy.signal.welch gives the same shape but costs ~25x more per call here.
    """
    n = min(n, len(x))
    starts = np.arange(0, len(x) - n + 1, n // 2)
    frames = x[starts[:, None] + np.arange(n)] * np.hanning(n)
    return np.fft.rfftfreq(n, 1 / sample_rate), (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)


def equalise_ltas(x: np.ndarray, sample_rate: int, slope_db_per_octave: float, config: DemoCorpusConfig) -> np.ndarray:
    """Equalise the clip's long-term average spectrum to a speech-like target.

    The clip's power spectrum (Welch, 512-point) is smoothed over sixth-octave bands; the
    gain that brings it to the target (flat below ``config.ltas_knee_hz``, then
    ``slope_db_per_octave``), limited to ``+-config.eq_max_gain_db``, is applied
    zero-phase in the frequency domain. Only the overall level of each band changes; the
    fine structure (harmonics, formant motion, artefacts) stays.
    """
    freqs, power = _welch(x, sample_rate)
    low, high = config.band_hz
    centres = low * 2.0 ** (np.arange(0, np.log2(high / low) * _BANDS_PER_OCTAVE + 1) / _BANDS_PER_OCTAVE)
    edges = [(freqs >= c * 2 ** (-0.5 / _BANDS_PER_OCTAVE)) & (freqs < c * 2 ** (0.5 / _BANDS_PER_OCTAVE))
             for c in centres]
    level = np.array([power[band].mean() if band.any() else np.nan for band in edges])
    valid = np.isfinite(level) & (level > 0)
    level_db = 10 * np.log10(level[valid])
    centres = centres[valid]
    target_db = slope_db_per_octave * np.log2(np.maximum(centres, config.ltas_knee_hz) / config.ltas_knee_hz)
    gain_db = target_db - level_db
    gain_db -= np.average(gain_db, weights=level[valid])  # keep the overall level
    gain_db = np.clip(gain_db, -config.eq_max_gain_db, config.eq_max_gain_db)
    spectrum = np.fft.rfft(x.astype(np.float64))
    bins = np.fft.rfftfreq(len(x), 1 / sample_rate)
    gain = 10 ** (np.interp(np.log2(np.maximum(bins, 1.0)), np.log2(centres), gain_db) / 20)
    return np.fft.irfft(spectrum * gain, n=len(x)).astype(np.float32)


def limit_crest(x: np.ndarray, sample_rate: int, crest_db: float) -> np.ndarray:
    """Smooth-gain peak limiter: no sample more than ``crest_db`` above the clip's RMS.

    The needed gain per sample (``min(1, ceiling/|x|)``) is spread by a 2 ms minimum filter
    and a 1 ms moving average, so every peak gets at least its needed reduction while the
    gain changes over milliseconds instead of clipping single samples.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) * 10 ** (crest_db / 20)
    needed = np.minimum(1.0, ceiling / np.maximum(np.abs(x), 1e-9))
    width = max(1, round(0.001 * sample_rate))
    gain = uniform_filter1d(minimum_filter1d(needed, 2 * width + 1), width + 1)
    return (x * np.minimum(gain, needed)).astype(np.float32)


def _set_rms(x: np.ndarray, rms_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return (x * (10 ** (rms_dbfs / 20) / max(rms, 1e-9))).astype(np.float32)


def prepare(x: np.ndarray, sample_rate: int, config: DemoCorpusConfig, *, is_g722: bool) -> np.ndarray:
    """Steps 2-4: G.722 round trip (unless ``is_g722``), band-pass, silence trimming.

    Args:
        x: mono float32 samples at ``sample_rate`` Hz, shape ``(samples,)``.
        sample_rate: Hz (the corpus rate, ``AudioConfig.sample_rate``).
        config: band and trimming settings.
        is_g722: the source was G.722 already.

    Returns:
        The trimmed speech, float32, shape ``(samples,)``.

    Raises:
        RejectedInput: ``no_speech`` when nothing is louder than the silence floor.
    """
    if not is_g722:
        x = g722_roundtrip(x, sample_rate)
    x = band_limit(x, sample_rate, config.band_hz)
    bounds = speech_bounds(x, sample_rate, config)
    if bounds is None:
        raise RejectedInput("no_speech", "the audio is silent after the channel's band-pass")
    return x[bounds[0] : bounds[1]]


def finish(x: np.ndarray, sample_rate: int, samples: int, draw: ChannelDraw, config: DemoCorpusConfig) -> np.ndarray:
    """Steps 5-7 on trimmed speech: cut to ``samples``, equalise, fade, level, limit, MP3.

    Returns:
        float32 samples, shape ``(min(samples, len(x)),)`` (plus the MP3 codec's padding
        when ``draw.mp3_kbps``).
    """
    x = x[:samples]
    # The limiter's distortion brightens peaky (TTS) clips (the roll-off rose ~130 Hz for
    # TTS only) and the equaliser moves peaks: alternating the two converges to both the
    # target spectrum and the crest ceiling (10 rounds: roll-off gap < 5 Hz); the last
    # passes settle the crest (each pass lowers the RMS, so the ceiling is re-measured),
    # and scaling to the drawn level keeps it.
    for _ in range(_EQ_LIMIT_ROUNDS):
        x = equalise_ltas(x, sample_rate, draw.slope_db_per_octave, config)
        x = limit_crest(x, sample_rate, draw.crest_db)
    for _ in range(_LIMITER_PASSES):
        x = limit_crest(x, sample_rate, draw.crest_db)
    fade = min(len(x) // 2, round(FADE_S * sample_rate))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    x[:fade] *= ramp
    x[len(x) - fade :] *= ramp[::-1]
    x = _set_rms(x, draw.rms_dbfs)
    if draw.mp3_kbps:
        x = mp3_roundtrip(x, sample_rate, draw.mp3_kbps)
    return x


def write_flac(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit FLAC atomically (temporary name, then rename), so a killed build
    never leaves a half file that a resumed build would take as done."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(str(path), lambda tmp: soundfile.write(tmp, np.clip(x, -1.0, 1.0), sample_rate,
                                                        subtype="PCM_16", format="FLAC"))
