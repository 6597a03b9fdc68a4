"""Reading audio of any container ffmpeg knows, in-process, through PyAV (FFmpeg's libraries).

Two functions, shared by every stage: :func:`probe` (what a file is) and :func:`decode`
(its samples). Both take a path or the encoded bytes themselves (rows of the ``audio``
table), and both raise :class:`~dfpipe.errors.RejectedInput` with a reason a person can
act on, never a bare PyAV error, so callers can turn failures into ``rejects`` rows.

Why PyAV and not an ``ffmpeg`` subprocess per file: the libraries are the same, but a
process start costs more than decoding a 3 s clip (see docs/benchmarks.md).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from dfpipe.errors import RejectedInput

AudioSource = str | os.PathLike[str] | bytes
"""A path to an audio file, or the bytes of an encoded file."""

DECODER = "pyav"
"""What decodes every clip (``clips.decoder``): PyAV, i.e. FFmpeg's libraries in-process."""


def decoder_version() -> str:
    """PyAV's and FFmpeg's versions (``clips.decoder_version``): the same bytes may decode to
    other samples under another FFmpeg, so each clip records what probed it.

    >>> decoder_version()  # doctest: +SKIP
    'av 18.1.0; FFmpeg 8.1.2 (libavcodec 62.28.102)'
    """
    codec = ".".join(str(part) for part in av.library_versions.get("libavcodec", ()))
    return f"av {av.__version__}; FFmpeg {av.ffmpeg_version_info}" + (f" (libavcodec {codec})" if codec else "")


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` learns about one file."""

    codec: str  # ffmpeg codec name: mp3, flac, pcm_s16le, aac, opus, adpcm_g722...
    format: str  # ffmpeg container name: wav, mp3, flac, mov,mp4,m4a,3gp,3g2,mj2, ogg...
    sample_rate: int  # Hz, as stored
    channels: int
    duration_s: float  # decoded samples / sample_rate (exact, not the header's estimate)


def _open(source: AudioSource) -> av.container.InputContainer:
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    if not isinstance(source, bytes):
        path = Path(name)
        if path.is_dir():
            raise RejectedInput("not_a_file", f"{name} is a directory, not an audio file")
        if not path.exists():
            raise RejectedInput("missing", f"{name} does not exist")
        if path.stat().st_size == 0:
            raise RejectedInput("empty", f"{name} is empty (0 bytes)")
    elif not source:
        raise RejectedInput("empty", "the audio bytes are empty")
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else name, mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise RejectedInput("undecodable", f"{name}: ffmpeg cannot open it ({exc})") from exc
    if not container.streams.audio:
        container.close()
        raise RejectedInput("not_audio", f"{name}: the file has no audio stream")
    return container


def probe(source: AudioSource) -> AudioInfo:
    """Describe an audio file, decoding it completely so truncation or garbage is caught.

    Args:
        source: path or encoded bytes.

    Returns:
        The file's :class:`AudioInfo`; ``duration_s`` counts the samples actually decoded.

    Raises:
        RejectedInput: ``missing``, ``not_a_file``, ``empty``, ``undecodable``,
            ``not_audio`` or ``no_samples`` (a valid container holding no audio).
    """
    with _open(source) as container:
        stream = container.streams.audio[0]
        samples = 0
        try:
            for frame in container.decode(stream):
                samples += frame.samples
        except av.error.FFmpegError as exc:
            if samples == 0:
                raise RejectedInput("undecodable", f"decoding failed at the start: {exc}") from exc
            # Truncated tail: what decoded before the damage is real audio; keep it.
        rate = stream.codec_context.sample_rate or stream.rate
        if samples == 0 or not rate:
            raise RejectedInput("no_samples", "the audio stream decodes to no samples")
        return AudioInfo(
            # canonical_name is the codec ("mp3"), name the decoder ("mp3float").
            codec=stream.codec_context.codec.canonical_name,
            format=container.format.name,
            sample_rate=int(rate),
            channels=int(stream.codec_context.channels or 1),
            duration_s=samples / rate,
        )


def decode(source: AudioSource, sample_rate: int) -> np.ndarray:
    """Decode to mono float32 at ``sample_rate`` Hz.

    Channels are averaged (the usual mix-down, as ``waveform.mean(0)`` in torchaudio);
    resampling is FFmpeg's (libswresample) on each channel before the mix.

    Args:
        source: path or encoded bytes.
        sample_rate: output rate in Hz.

    Returns:
        ``np.float32`` array of shape ``(samples,)``, values as decoded (not normalised).

    Raises:
        RejectedInput: as :func:`probe`.
    """
    chunks: list[np.ndarray] = []
    with _open(source) as container:
        stream = container.streams.audio[0]
        resampler = None
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sample_rate)
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            if resampler is not None:
                chunks.extend(f.to_ndarray() for f in resampler.resample(None))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise RejectedInput("undecodable", f"decoding failed at the start: {exc}") from exc
    if not chunks:
        raise RejectedInput("no_samples", "the audio stream decodes to no samples")
    planar = np.concatenate(chunks, axis=1)  # (channels, samples)
    return planar.mean(axis=0, dtype=np.float32) if planar.shape[0] > 1 else planar[0].astype(np.float32)
