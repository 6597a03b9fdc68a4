"""Condition names: the grammar, parsing, and what a name says about codec and corruption.

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

A condition whose last step is not a codec is stored as FLAC (:mod:`dfpipe.conditions.dsp`).

Pure Python (no FFmpeg, no numpy): training and the run record import it to describe a
run's condition as columns (:func:`describe_condition`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dfpipe.config import RAW_CONDITION, AudioConfig
from dfpipe.errors import ConfigError

CODECS = ("flac", "mp3", "opus", "aac")
"""The codecs a condition can encode to (``flac``, ``<codec>_<N>k`` for the lossy ones)."""

LOSSLESS_CODEC = "flac"
"""What a condition whose last step is not a codec is stored as."""

CORRUPTIONS = ("reverb", "noise", "bandlimit", "resample", "clip", "packetloss")
"""The single corruptions, in their order inside ``corrupt``: room, then noise, then the
channel (band-limit, resampling), then the recorder (clipping), then the network (packet loss)."""

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


def _steps(condition: str) -> list[Step]:
    """The steps of a name, checked against the grammar only (no value ranges)."""
    if condition == RAW_CONDITION:
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
    return steps


def parse_condition(condition: str, sample_rate: int = AudioConfig.sample_rate) -> list[Step]:
    """Parse a condition name into its steps (left to right).

    Args:
        condition: e.g. ``"corrupt+mp3_64k"``; ``"raw"`` parses to ``[]``.
        sample_rate: the stage's rate; band edges and resampling rates must lie below it.

    Raises:
        ConfigError: naming the step that is not in the grammar or whose values are out of
            range (``bandlimit_3400_300``, ``resample_48000``, ``raw`` inside a composition).
    """
    steps = _steps(condition)
    for step in steps:
        if step.kind == "bandlimit" and not step.args[0] < step.args[1] < sample_rate / 2:
            raise ConfigError(f"condition {condition!r}: {step.name} needs low < high < {sample_rate // 2} Hz")
        if step.kind == "resample" and not 1000 <= step.args[0] < sample_rate:
            raise ConfigError(f"condition {condition!r}: {step.name} needs 1000 <= rate < {sample_rate} Hz")
    return steps


def describe_condition(condition: str) -> tuple[str, str | None]:
    """``(codec, corruption)`` of a condition name: how the ablation matrix groups runs.

    - codec: the name of the condition's last codec step (``flac``, ``mp3_64k``); ``raw``
      for ``raw`` (the files as ingested); ``flac`` when there is no codec step, since such
      a condition is stored losslessly (``polished``, ``noise_snr10``).
    - corruption: every other step, ``+``-joined in order (``noise_snr10``, ``corrupt``,
      ``polished``, ``reverb_300ms+clip_30pct``); ``None`` for clean audio.

    >>> describe_condition("noise_snr10+flac"), describe_condition("corrupt+mp3_64k")
    (('flac', 'noise_snr10'), ('mp3_64k', 'corrupt'))
    >>> describe_condition("flac"), describe_condition("raw"), describe_condition("polished")
    (('flac', None), ('raw', None), ('flac', 'polished'))

    Raises:
        ConfigError: a name outside the grammar.
    """
    if condition == RAW_CONDITION:
        return RAW_CONDITION, None
    steps = _steps(condition)
    codecs = [step.name for step in steps if step.kind == "codec"]
    others = [step.name for step in steps if step.kind != "codec"]
    return (codecs[-1] if codecs else LOSSLESS_CODEC), ("+".join(others) or None)
