"""The condition stage: ffmpeg makes each clip's audio conditions into the ``audio`` table.

A *condition* is a name that encodes every parameter; steps compose left to right with
``+`` (``corrupt+mp3_64k``: corrupt, then encode to MP3 at 64 kb/s). The grammar:

==========================  ================================================================
``flac``                    lossless FLAC (16-bit)
``mp3_<N>k``                MP3 (libmp3lame, CBR) at N kb/s, e.g. ``mp3_128k``, ``mp3_64k``
``opus_<N>k``               Opus (libopus) in Ogg at N kb/s (decodes at 48 kHz, as Opus does)
``aac_<N>k``                AAC-LC (ffmpeg's encoder) in ADTS at N kb/s
``noise_snr<D>``            white Gaussian noise at D dB SNR (``noise_snr10``; D may be negative)
``clip_<P>pct``             hard clipping at P % of the clip's peak (``clip_30pct``)
``bandlimit_<LO>_<HI>``     4-pole high-pass at LO Hz and low-pass at HI Hz (``bandlimit_300_3400``)
``resample_<R>``            down to R Hz and back up (``resample_8000``)
``packetloss_<P>pct_<M>ms`` P % of the M ms packets zeroed at random (``packetloss_10pct_20ms``)
``reverb_<T>ms``            synthetic room: exponentially decaying noise IR with RT60 = T ms
``corrupt``                 a seeded random mix of the six corruptions above (each joins with
                            probability ``ConditionsConfig.corrupt_p``, at least one; parameters
                            drawn from the ``corrupt_*`` ranges); the drawn mix is recorded as
                            its expansion, e.g. ``reverb_420ms+noise_snr12+clip_35pct``
``polished``                what real deepfakes get: high-pass, ``afftdn`` denoise,
                            ``acompressor``, leading/trailing silence trimmed, EBU R128 loudness
                            (``loudnorm``, then an exact linear trim measured by ``ebur128``)
``raw``                     (alone only) the clip's original file: no ``audio`` row is made; the
                            features stage reads ``clips.source_uri`` directly
==========================  ================================================================

Every clip is first decoded to ``AudioConfig.sample_rate`` (16 kHz) mono. A codec step in
the middle of a composition is encoded and decoded back (its artefacts stay); a condition
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

Reproducibility: the per-clip seed is ``stable_id(clip_id, condition, base seed)`` as an
int63, stored in ``audio.seed`` with every drawn parameter in ``audio.condition_params``
(JSON). Containers are written with ``fflags=+bitexact`` (no encoder version strings, no
random Ogg serial numbers) and MP3 without an ID3 tag, so the same clip, condition and seed
give the same bytes on the same FFmpeg build.

Stage shape: :func:`plan_conditions` lists shards of (clip, condition) pairs with no
``audio`` row and no ``rejects`` row yet; :func:`condition_shard` reads the source files,
writes one ``audio`` shard (and one ``rejects`` shard for clips ffmpeg could not handle)
atomically; :func:`run_conditions` does both with an optional executor. Re-running skips
what is done (rejected clips included: delete their ``rejects`` rows to retry them).
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.filter
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from dfpipe.audio_io import decode
from dfpipe.config import ConditionsConfig
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.executors import Executor, map_shards
from dfpipe.lake import Lake, stable_id

RAW = "raw"
"""The special condition meaning "the original file" (no audio row)."""

STAGE = "condition"
"""``rejects.stage`` of this stage."""

# name -> (ffmpeg encoder, container, codec name as ffmpeg decodes it, container as probed)
_CODECS: dict[str, tuple[str, str, str, str]] = {
    "flac": ("flac", "flac", "flac", "flac"),
    "mp3": ("libmp3lame", "mp3", "mp3", "mp3"),
    "opus": ("libopus", "ogg", "opus", "ogg"),
    "aac": ("aac", "adts", "aac", "aac"),
}
# container options: bit-exact output, and no ID3 tag (it carries the muxer's version).
_MUX_OPTIONS = {"fflags": "+bitexact"}
_MP3_OPTIONS = {"id3v2_version": "0"}
_CORRUPTIONS = ("reverb", "noise", "bandlimit", "resample", "clip", "packetloss")
"""Order of the corruptions inside ``corrupt``: room, then noise, then the channel
(band-limit, resampling), then the recorder (clipping), then the network (packet loss)."""

_GRAMMAR: list[tuple[str, re.Pattern[str]]] = [
    ("codec", re.compile(r"^(flac)$")),
    ("codec", re.compile(r"^(mp3|opus|aac)_([1-9]\d*)k$")),
    ("noise", re.compile(r"^noise_snr(-?\d+)$")),
    ("clip", re.compile(r"^clip_([1-9]\d?)pct$")),
    ("bandlimit", re.compile(r"^bandlimit_([1-9]\d*)_([1-9]\d*)$")),
    ("resample", re.compile(r"^resample_([1-9]\d*)$")),
    ("packetloss", re.compile(r"^packetloss_([1-9]\d?)pct_([1-9]\d*)ms$")),
    ("reverb", re.compile(r"^reverb_([1-9]\d*)ms$")),
    ("corrupt", re.compile(r"^(corrupt)$")),
    ("polished", re.compile(r"^(polished)$")),
]


@dataclass(frozen=True)
class Step:
    """One parsed step of a condition name: ``kind`` and its arguments (ints or a codec)."""

    name: str
    kind: str
    args: tuple[Any, ...]


def parse_condition(condition: str, sample_rate: int = 16_000) -> list[Step]:
    """Parse a condition name into its steps (left to right).

    Args:
        condition: e.g. ``"corrupt+mp3_64k"``; ``"raw"`` parses to ``[]``.
        sample_rate: the stage's rate; band edges and resampling rates must lie below it.

    Raises:
        ConfigError: naming the step that is not in the grammar or whose values are out of
            range (``bandlimit_3400_300``, ``resample_48000``, ``raw`` inside a composition).
    """
    if condition == RAW:
        return []
    steps = []
    for name in condition.split("+"):
        for kind, pattern in _GRAMMAR:
            match = pattern.match(name)
            if match:
                groups = match.groups()
                args = (groups[0], int(groups[1])) if kind == "codec" and len(groups) == 2 else tuple(
                    int(g) if re.fullmatch(r"-?\d+", g) else g for g in groups)
                steps.append(Step(name, kind, args))
                break
        else:
            raise ConfigError(
                f"condition {condition!r}: unknown step {name!r}. Known: flac, mp3_<N>k, opus_<N>k, "
                "aac_<N>k, noise_snr<dB>, clip_<P>pct, bandlimit_<lo>_<hi>, resample_<Hz>, "
                "packetloss_<P>pct_<ms>ms, reverb_<ms>ms, corrupt, polished ('raw' only alone)")
    for step in steps:
        if step.kind == "bandlimit" and not step.args[0] < step.args[1] < sample_rate / 2:
            raise ConfigError(f"condition {condition!r}: {step.name} needs low < high < {sample_rate // 2} Hz")
        if step.kind == "resample" and not 1000 <= step.args[0] < sample_rate:
            raise ConfigError(f"condition {condition!r}: {step.name} needs 1000 <= rate < {sample_rate} Hz")
    return steps


def clip_seed(clip_id: str, condition: str, base_seed: int) -> int:
    """Per-clip seed: ``stable_id(clip_id, condition, base_seed)`` as a non-negative int63."""
    return int(stable_id(clip_id, condition, str(base_seed), length=16), 16) >> 1


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
    chosen = [kind for kind in _CORRUPTIONS if rng.random() < config.corrupt_p]
    if not chosen:
        chosen = [_CORRUPTIONS[int(rng.integers(len(_CORRUPTIONS)))]]

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
        condition: a condition name (see the module docstring); not ``raw``.
        seed: the clip's seed (:func:`clip_seed`).

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
        raise ConfigError("condition 'raw' has no audio to make: features read clips.source_uri")
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
    last_codec = expanded[-1].args[0] if expanded[-1].kind == "codec" else "flac"
    if encoded is None:  # the last step was not a codec: store losslessly
        wave = _headroom(wave, record)
        encoded = encode(wave, sample_rate, "flac")
    record["stored_codec"] = last_codec
    record["samples"] = int(wave.shape[0])
    return encoded, record


def _headroom(wave: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """Scale down to peak 1.0 before encoding if a step pushed the signal over full scale,
    so the encoder does not add clipping nobody asked for; the gain is recorded."""
    peak = float(np.abs(wave).max(initial=0.0))
    if peak <= 1.0:
        return wave
    record["headroom_gain_db"] = round(-20 * np.log10(peak), 3)
    return (wave / peak).astype(np.float32)


# -- the stage -------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionShard:
    """One unit of work: some clips of one corpus under one condition."""

    lake_uri: str
    corpus: str
    condition: str
    shard_id: str
    clip_ids: tuple[str, ...]
    source_uris: tuple[str, ...]


@dataclass(frozen=True)
class StageSummary:
    """What a shard or a run of a stage wrote (conditions and features): small, picklable."""

    shards: int = 0
    rows: int = 0
    rejects: int = 0

    def __add__(self, other: StageSummary) -> StageSummary:
        return StageSummary(self.shards + other.shards, self.rows + other.rows, self.rejects + other.rejects)

    @classmethod
    def total(cls, summaries: Iterable[StageSummary]) -> StageSummary:
        """The sum of shard summaries (consumes the iterable)."""
        return sum(summaries, cls())


def _done_clip_ids(lake: Lake, corpus: str, condition: str) -> set[str]:
    """Clip ids that already have an ``audio`` row or a ``rejects`` row for this condition."""
    made = lake.read("audio", columns=["clip_id"], partition={"corpus": corpus},
                     filter=ds.field("condition") == condition)
    failed = lake.read("rejects", columns=["clip_id"], partition={"corpus": corpus},
                       filter=(ds.field("stage") == STAGE) & (ds.field("condition") == condition))
    return set(made.column("clip_id").to_pylist()) | set(failed.column("clip_id").to_pylist())


def plan_conditions(lake_uri: str, corpus: str, conditions: Iterable[str],
                    config: ConditionsConfig | None = None) -> list[ConditionShard]:
    """Shards of (clip, condition) pairs of ``corpus`` that have no ``audio``/``rejects`` row yet.

    Args:
        lake_uri: the lake root. corpus: a corpus in the ``clips`` table.
        conditions: condition names; ``raw`` needs no work and is skipped.
        config: defaults to ``ConditionsConfig()`` (``clips_per_shard`` clips per shard).

    Raises:
        ConfigError: a bad condition name (before any work starts), or a corpus with no clips.
    """
    config = config or ConditionsConfig()
    conditions = list(dict.fromkeys(conditions))
    for condition in conditions:
        parse_condition(condition, config.audio.sample_rate)
    lake = Lake(lake_uri)
    clips = lake.read("clips", columns=["clip_id", "source_uri"], partition={"corpus": corpus})
    if clips.num_rows == 0:
        raise ConfigError(f"corpus {corpus!r} has no clips in {lake.uri}: run `dfpipe ingest` first")
    clips = clips.sort_by("clip_id")
    shards = []
    for condition in conditions:
        if condition == RAW:
            continue
        done = _done_clip_ids(lake, corpus, condition)
        pending = clips.filter(pc.invert(pc.is_in(clips.column("clip_id"), pa.array(sorted(done), pa.string()))))
        ids, uris = pending.column("clip_id").to_pylist(), pending.column("source_uri").to_pylist()
        for start in range(0, len(ids), config.clips_per_shard):
            chunk = tuple(ids[start:start + config.clips_per_shard])
            shards.append(ConditionShard(
                lake_uri=lake_uri, corpus=corpus, condition=condition,
                shard_id=stable_id(STAGE, corpus, condition, str(config.seed), *chunk),
                clip_ids=chunk, source_uris=tuple(uris[start:start + config.clips_per_shard])))
    return shards


def read_source(uri: str) -> bytes:
    """The bytes of a source file (local path or fsspec URL).

    Raises:
        RejectedInput: ``missing`` when it cannot be read.
    """
    try:
        with fsspec.open(uri, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise RejectedInput("missing", f"{uri} cannot be read ({exc}); was the corpus moved?") from exc


def condition_shard(shard: ConditionShard, config: ConditionsConfig | None = None) -> StageSummary:
    """Make one shard's audio: decode each source, apply the condition, encode, commit.

    Clips ffmpeg cannot handle become ``rejects`` rows (stage ``condition``); the others
    become one ``audio`` shard. Both are written atomically; a committed shard is skipped.

    Returns:
        A :class:`StageSummary` (rows written, rejects written).
    """
    config = config or ConditionsConfig()
    lake = Lake(shard.lake_uri)
    partition = {"corpus": shard.corpus}
    if lake.has_shard("audio", shard.shard_id, partition) or lake.has_shard("rejects", shard.shard_id, partition):
        return StageSummary()
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for clip_id, uri in zip(shard.clip_ids, shard.source_uris, strict=True):
        seed = clip_seed(clip_id, shard.condition, config.seed)
        try:
            wave = decode(read_source(uri), config.audio.sample_rate)
            data, params = apply_condition(wave, shard.condition, seed, config)
        except RejectedInput as exc:
            rejects.append({"stage": STAGE, "corpus": shard.corpus, "source_uri": uri, "clip_id": clip_id,
                            "condition": shard.condition, "reason": exc.reason, "detail": exc.detail})
            continue
        codec = params["stored_codec"]
        rows.append({
            "clip_id": clip_id, "corpus": shard.corpus, "condition": shard.condition,
            "condition_params": json.dumps(params, sort_keys=True), "seed": seed,
            "codec": _CODECS[codec][2], "format": _CODECS[codec][3], "sample_rate": config.audio.sample_rate,
            "duration_s": params["samples"] / config.audio.sample_rate, "audio_bytes": data,
        })
    # rejects first: the audio shard is the "done" marker checked above
    if rejects:
        lake.write_shard("rejects", pa.Table.from_pylist(rejects), shard=shard.shard_id, partition=partition,
                         mode="overwrite")
    if rows:
        lake.write_shard("audio", pa.Table.from_pylist(rows), shard=shard.shard_id, partition=partition,
                         mode="overwrite", row_group_size=64)
    return StageSummary(shards=1, rows=len(rows), rejects=len(rejects))


def run_conditions(lake_uri: str, corpus: str, conditions: Iterable[str], config: ConditionsConfig | None = None,
                   *, executor: Executor | None = None) -> StageSummary:
    """Plan and make every missing (clip, condition) of ``corpus`` (no Prefect needed).

    Args:
        executor: ``None`` (here, in order) or anything with ``submit`` (a Dask Client).

    Returns:
        The total :class:`StageSummary`.

    Example:
        >>> run_conditions("lake", "demo", ["flac", "mp3_128k", "corrupt+mp3_64k"])  # doctest: +SKIP
    """
    config = config or ConditionsConfig()
    shards = plan_conditions(lake_uri, corpus, conditions, config)
    return StageSummary.total(map_shards(functools.partial(condition_shard, config=config), shards, executor))
