"""How a condition is made: FFmpeg (in-process, through PyAV) and seeded numpy corruptions.

:func:`apply_condition` turns one decoded clip and a condition name
(:mod:`dfpipe.conditions.grammar`) into the bytes of an encoded file and the parameters it
used. Every clip is first decoded to ``AudioConfig.sample_rate`` (16 kHz) mono. A codec step
in the middle of a composition is encoded and decoded back (its artefacts stay); a condition
whose last step is not a codec is stored as FLAC, so ``audio.audio_bytes`` is always a real
encoded file and a lossy condition keeps its real artefacts.

Who does the work: FFmpeg's libraries in-process through PyAV: encoders
(``av.open(BytesIO, "w")``) and ``av.filter.Graph`` filter chains (high/low-pass,
``aresample``, ``afftdn``, ``acompressor``, ``silenceremove``, ``loudnorm``, ``ebur128``).
The random corruptions whose randomness must be seeded per clip (noise, clipping level,
packet-loss positions, the reverb impulse response) are drawn with numpy's PCG64 from the
clip's seed, because ffmpeg's filter graphs offer no per-clip seeded source of randomness
for most of them. Why in-process and not an ``ffmpeg`` subprocess per clip: process start-up
costs more than encoding a 3 s clip (``benchmarks/bench_conditions.py``).

Reproducibility: every drawn or measured value is recorded in the returned parameters.
Containers are written with ``fflags=+bitexact`` (no encoder version strings, no random Ogg
serial numbers) and MP3 without an ID3 tag, so the same clip, condition and seed give the
same bytes on the same FFmpeg build.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import av
import av.filter
import numpy as np

from dfpipe.audio_io import decode
from dfpipe.conditions.grammar import CORRUPTIONS, LOSSLESS_CODEC, Step, parse_condition
from dfpipe.config import RAW_CONDITION, ConditionsConfig
from dfpipe.errors import ConfigError, RejectedInput

# grammar.CODECS name -> (ffmpeg encoder, container, codec name as ffmpeg decodes it, container as probed)
_CODECS: dict[str, tuple[str, str, str, str]] = {
    "flac": ("flac", "flac", "flac", "flac"),
    "mp3": ("libmp3lame", "mp3", "mp3", "mp3"),
    "opus": ("libopus", "ogg", "opus", "ogg"),
    "aac": ("aac", "adts", "aac", "aac"),
}
# container options: bit-exact output, and no ID3 tag (it carries the muxer's version).
_MUX_OPTIONS = {"fflags": "+bitexact"}
_MP3_OPTIONS = {"id3v2_version": "0"}


# -- ffmpeg in-process -----------------------------------------------------------------


def run_filters(wave: np.ndarray, sample_rate: int, chain: Sequence[tuple[str, str]]) -> tuple[np.ndarray, dict[str, str]]:
    """Run mono float32 audio through an ffmpeg filter chain (``av.filter.Graph``).

    The chain is followed by ``aresample`` + ``aformat`` back to ``sample_rate`` float mono.

    Args:
        wave: ``(samples,)`` float32. sample_rate: Hz, in and out.
        chain: ``[(filter, "args"), ...]`` as on an ffmpeg ``-af`` line.

    Returns:
        ``(output (samples',) float32, metadata of the last frame that carried any)``;
        filters such as ``ebur128=metadata=1`` report through that metadata.
    """
    graph = av.filter.Graph()
    nodes = [graph.add_abuffer(format="flt", sample_rate=sample_rate, layout="mono")]
    for name, args in [*chain, ("aresample", str(sample_rate)),
                       ("aformat", f"sample_fmts=flt:channel_layouts=mono:sample_rates={sample_rate}")]:
        nodes.append(graph.add(name, args))
    nodes.append(graph.add("abuffersink"))
    graph.link_nodes(*nodes).configure()
    out: list[np.ndarray] = []
    metadata: dict[str, str] = {}

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            out.append(frame.to_ndarray()[0])
            metadata.update(frame.metadata)

    block = 4096
    for start in range(0, wave.shape[0], block):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, start:start + block], np.float32),
                                           format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
        graph.push(frame)
        drain()
    graph.push(None)
    drain()
    return (np.concatenate(out) if out else np.zeros(0, np.float32)), metadata


def encode(wave: np.ndarray, sample_rate: int, codec: str, kbps: int | None = None) -> bytes:
    """Encode mono float32 audio with ffmpeg into the bytes of a complete file, bit-exactly.

    Args:
        codec: ``flac``, ``mp3``, ``opus`` or ``aac``; kbps: bit rate (lossy codecs).

    Raises:
        RejectedInput: ``encode_failed`` when the encoder refuses the audio.
    """
    encoder, container, _, _ = _CODECS[codec]
    buffer = io.BytesIO()
    options = {**_MUX_OPTIONS, **(_MP3_OPTIONS if codec == "mp3" else {})}
    try:
        with av.open(buffer, "w", format=container, options=options) as output:
            stream = output.add_stream(encoder, rate=sample_rate, layout="mono")
            if kbps:
                stream.bit_rate = kbps * 1000
            stream.codec_context.flags |= av.codec.context.Flags.bitexact
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None], np.float32), format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = sample_rate, 0
            for packet in stream.encode(frame):
                output.mux(packet)
            for packet in stream.encode(None):
                output.mux(packet)
    except (av.error.FFmpegError, ValueError) as exc:
        raise RejectedInput("encode_failed", f"ffmpeg could not encode to {codec}: {exc}") from exc
    return buffer.getvalue()


# -- the steps -------------------------------------------------------------------------


def _rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0


def _noise(wave: np.ndarray, rng: np.random.Generator, snr_db: int) -> np.ndarray:
    noise_rms = _rms(wave) / 10 ** (snr_db / 20)
    return (wave + rng.standard_normal(wave.shape[0]) * noise_rms).astype(np.float32)


def _clip(wave: np.ndarray, pct: int) -> np.ndarray:
    level = np.abs(wave).max(initial=0.0) * pct / 100
    return np.clip(wave, -level, level)


def _packetloss(wave: np.ndarray, rng: np.random.Generator, pct: int, packet_ms: int, sample_rate: int) -> np.ndarray:
    size = max(1, sample_rate * packet_ms // 1000)
    packets = -(-wave.shape[0] // size)
    lost = rng.choice(packets, size=round(packets * pct / 100), replace=False)
    out = wave.copy()
    for index in lost:
        out[index * size:(index + 1) * size] = 0.0
    return out


def _reverb(wave: np.ndarray, rng: np.random.Generator, rt60_ms: int, wet: float, sample_rate: int) -> np.ndarray:
    # Exponentially decaying Gaussian noise: the textbook late-reverberation model; amplitude
    # falls by 60 dB (factor 1000, ln 1000 = 6.9078) over RT60.
    length = max(1, sample_rate * rt60_ms // 1000)
    t = np.arange(length) / sample_rate
    response = rng.standard_normal(length) * np.exp(-6.9078 * t / (rt60_ms / 1000))
    size = wave.shape[0] + length - 1
    n_fft = 1 << (size - 1).bit_length()
    reverberant = np.fft.irfft(np.fft.rfft(wave, n_fft) * np.fft.rfft(response, n_fft), n_fft)[:wave.shape[0]]
    scale = _rms(wave) / _rms(reverberant) if _rms(reverberant) > 0 else 0.0
    return ((1 - wet) * wave + wet * scale * reverberant).astype(np.float32)


def _draw_corrupt(rng: np.random.Generator, config: ConditionsConfig) -> list[str]:
    """Draw the ``corrupt`` mix as a list of single-corruption names (fixed order)."""
    chosen = [kind for kind in CORRUPTIONS if rng.random() < config.corrupt_p]
    if not chosen:
        chosen = [CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]]

    def uniform(bounds: tuple[int, int]) -> int:
        return int(rng.integers(bounds[0], bounds[1] + 1))

    names = {
        "reverb": lambda: f"reverb_{uniform(config.corrupt_reverb_ms)}ms",
        "noise": lambda: f"noise_snr{uniform(config.corrupt_snr_db)}",
        "bandlimit": lambda: (f"bandlimit_{uniform(config.corrupt_bandlimit_low_hz)}_"
                              f"{uniform(config.corrupt_bandlimit_high_hz)}"),
        "resample": lambda: f"resample_{config.corrupt_resample_hz[int(rng.integers(len(config.corrupt_resample_hz)))]}",
        "clip": lambda: f"clip_{uniform(config.corrupt_clip_pct)}pct",
        "packetloss": lambda: f"packetloss_{uniform(config.corrupt_packetloss_pct)}pct_{config.packet_ms}ms",
    }
    return [names[kind]() for kind in chosen]


def _polish(wave: np.ndarray, sample_rate: int, config: ConditionsConfig, record: dict[str, Any]) -> np.ndarray:
    trim = (f"start_periods=1:start_threshold={config.polish_trim_db}dB:"
            f"start_silence={config.polish_trim_keep_s}:start_duration=0")
    threshold = 10 ** (config.polish_compress_threshold_db / 20)  # acompressor takes linear units
    chain = [
        ("highpass", f"f={config.polish_highpass_hz}:poles=2"),
        ("afftdn", f"nr={config.polish_denoise_db}"),
        ("acompressor", f"threshold={threshold:.6f}:ratio={config.polish_compress_ratio}:attack=5:release=50"),
        # trailing silence: reverse, trim the (now) leading silence, reverse back
        ("silenceremove", trim), ("areverse", ""), ("silenceremove", trim), ("areverse", ""),
        ("loudnorm", f"I={config.polish_loudness_lufs}:TP={config.polish_true_peak_db}:LRA={config.polish_lra_lu}"),
    ]
    out, _ = run_filters(wave, sample_rate, chain)
    if out.shape[0] < sample_rate // 10:
        raise RejectedInput("empty_after_polish", f"only {out.shape[0]} samples are left after silence trimming")
    # loudnorm's dynamic (one-pass) mode lands within a few tenths of a LU on short clips;
    # measure what it reached and trim linearly so the target is met exactly.
    _, metadata = run_filters(out, sample_rate, [("ebur128", "metadata=1")])
    measured = float(metadata.get("lavfi.r128.I", "-70"))
    gain_db = config.polish_loudness_lufs - measured if measured > -70.0 else 0.0
    record.update(loudnorm_lufs=round(measured, 3), trim_gain_db=round(gain_db, 3),
                  loudness_target_lufs=config.polish_loudness_lufs)
    return (out * 10 ** (gain_db / 20)).astype(np.float32)


def apply_condition(wave: np.ndarray, condition: str, seed: int, config: ConditionsConfig
                    ) -> tuple[bytes, dict[str, Any]]:
    """Apply a condition to one decoded clip; return the encoded file and its parameters.

    Args:
        wave: ``(samples,)`` float32 mono at ``config.audio.sample_rate``.
        condition: a condition name (:mod:`dfpipe.conditions.grammar`); not ``raw``.
        seed: the clip's seed (:func:`dfpipe.conditions.stage.clip_seed`).

    Returns:
        ``(file bytes, params)``: params holds the condition, the seed, the steps as applied
        (``corrupt`` replaced by its drawn expansion), every drawn or measured value, and the
        stored codec.

    Raises:
        ConfigError: bad condition name. RejectedInput: ffmpeg could not process the clip.
    """
    sample_rate = config.audio.sample_rate
    steps = parse_condition(condition, sample_rate)
    if not steps:
        raise ConfigError(f"condition {RAW_CONDITION!r} has no audio to make: features read clips.source_uri")
    record: dict[str, Any] = {"condition": condition, "seed": seed, "sample_rate": sample_rate}
    expanded: list[Step] = []
    for index, step in enumerate(steps):
        if step.kind == "corrupt":
            drawn = _draw_corrupt(np.random.default_rng([seed, 0, index]), config)
            record["corrupt"] = "+".join(drawn)
            expanded.extend(parse_condition("+".join(drawn), sample_rate))
        else:
            expanded.append(step)
    record["applied"] = "+".join(step.name for step in expanded)
    encoded: bytes | None = None
    for index, step in enumerate(expanded):
        # Keyed by position among the applied steps, so the recorded expansion of ``corrupt``
        # applied as a name with the same seed gives the same bytes; disjoint from the draws.
        rng = np.random.default_rng([seed, 1, index])
        kind, args = step.kind, step.args
        if encoded is not None:  # a codec in the middle: decode it back, artefacts included
            wave, encoded = decode(encoded, sample_rate), None
        if kind == "codec":
            wave = _headroom(wave, record)
            encoded = encode(wave, sample_rate, args[0], args[1] if len(args) > 1 else None)
        elif kind == "noise":
            wave = _noise(wave, rng, args[0])
        elif kind == "clip":
            wave = _clip(wave, args[0])
        elif kind == "bandlimit":
            low, high = args
            wave, _ = run_filters(wave, sample_rate, [("highpass", f"f={low}:poles=2")] * 2
                                  + [("lowpass", f"f={high}:poles=2")] * 2)
        elif kind == "resample":
            wave, _ = run_filters(wave, sample_rate, [("aresample", str(args[0]))])
        elif kind == "packetloss":
            wave = _packetloss(wave, rng, args[0], args[1], sample_rate)
        elif kind == "reverb":
            wave = _reverb(wave, rng, args[0], config.reverb_wet, sample_rate)
        elif kind == "polished":
            wave = _polish(wave, sample_rate, config, record)
    last_codec = expanded[-1].args[0] if expanded[-1].kind == "codec" else LOSSLESS_CODEC
    if encoded is None:  # the last step was not a codec: store losslessly
        wave = _headroom(wave, record)
        encoded = encode(wave, sample_rate, LOSSLESS_CODEC)
    record["stored_codec"] = last_codec
    record["samples"] = int(wave.shape[0])
    return encoded, record


def _headroom(wave: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """Scale down to peak 1.0 before encoding if a step pushed the signal over full scale,
    so the encoder does not add clipping nobody asked for; the gain is recorded.

    Every encode passes here, so it is also the guard that no NaN or infinite sample (which
    would scale the clip to NaN or silence) is ever encoded into ``audio``.
    """
    if not np.isfinite(wave).all():
        raise RejectedInput("non_finite_samples", "a step of the condition produced NaN or infinite samples")
    peak = float(np.abs(wave).max(initial=0.0))
    if peak <= 1.0:
        return wave
    record["headroom_gain_db"] = round(-20 * np.log10(peak), 3)
    return (wave / peak).astype(np.float32)


def stored_format(codec: str) -> tuple[str, str]:
    """``(audio.codec, audio.format)`` of a file :func:`encode` wrote with ``codec``: the codec
    and the container as ffmpeg probes them (``opus`` -> ``("opus", "ogg")``)."""
    _, _, codec_name, container = _CODECS[codec]
    return codec_name, container
