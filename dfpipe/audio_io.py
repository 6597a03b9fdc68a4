"""Reading audio of any container ffmpeg knows, through PyAV (FFmpeg's libraries).

Three functions, shared by every stage: :func:`probe` (what a file is, with its damage),
:func:`decode` (its samples) and :func:`decode_chunks` (its samples a piece at a time, for
files too long to hold). All take a path or the encoded bytes themselves (rows of the
``audio`` table), and all raise :class:`~dfpipe.errors.RejectedInput` with a reason a person
can act on, never a bare PyAV error, so callers can turn failures into ``rejects`` rows.

Why PyAV and not an ``ffmpeg`` subprocess per file: the libraries are the same, but a
process start costs more than decoding a 3 s clip (see docs/benchmarks.md).

Untrusted bytes (``isolated=True``): a decoder bug can crash or hang the process that runs
it, and a Dask worker that dies takes its whole shard with it. So the first reader of a file
(ingest's probe, score-archive's decode) runs it in a sandbox: one persistent child process
per calling thread (:class:`Sandbox`), fed requests over a pipe. A child that dies costs that
one file (``decoder_crashed``), one that shows no progress for ``DecodeConfig.timeout_s``
is killed (``decoder_timeout``); the next file gets a fresh child. Later stages decode
in-process: their inputs passed that probe (same decode and conversion path) or are files
dfpipe encoded itself.

Channels are converted to packed (interleaved) float32 and mixed down in numpy: PyAV's
``AudioFrame.to_ndarray`` on *planar* frames walks ``extended_data`` until a NULL pointer,
which does not exist at 8 or more channels, and reads past the frame (a segfault).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO

import av
import numpy as np

from dfpipe.config import DecodeConfig
from dfpipe.errors import DfpipeError, RejectedInput

AudioSource = str | os.PathLike[str] | bytes
"""A path to an audio file, or the bytes of an encoded file."""

DECODER = "pyav"
"""What decodes every clip (``clips.decoder``): PyAV, i.e. FFmpeg's libraries in-process."""

_DEFAULT = DecodeConfig()


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
    truncated: bool = False  # decoding failed midway, or the header declares much more audio
    truncation: str = ""  # what showed it, for a person ("" when not truncated)


# -- in-process decoding ---------------------------------------------------------------


def _open(source: AudioSource) -> av.container.InputContainer:
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    if not isinstance(source, bytes):
        try:
            stat = os.stat(name)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: a symbolic link that points back into itself
                raise RejectedInput("symlink_loop", f"{name} is a symbolic link loop") from exc
            raise RejectedInput("missing", f"{name} does not exist") from exc
        if Path(name).is_dir():
            raise RejectedInput("not_a_file", f"{name} is a directory, not an audio file")
        if not S_ISREG(stat.st_mode):  # a FIFO or a device would block or never end
            raise RejectedInput("not_a_file", f"{name} is not a regular file")
        if stat.st_size == 0:
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


class _Frames:
    """The audio of an open container as packed float32 ``(samples, channels)`` blocks at
    ``rate`` (``None``: as stored). A decoding error after the first samples ends the stream
    (the damaged tail) and is kept in :attr:`error`; one before them is ``undecodable``."""

    def __init__(self, container: av.container.InputContainer, rate: int | None) -> None:
        self.container, self.rate = container, rate
        self.stream = container.streams.audio[0]
        self.error = ""
        self.samples = 0  # per channel, at ``rate``

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self.container.decode(self.stream)
        resampler = None
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                if resampler is None:
                    raise RejectedInput("undecodable", f"decoding failed at the start: {exc}") from exc
                self.error = str(exc)
                break
            if resampler is None:
                resampler = av.AudioResampler(format="flt", layout=frame.layout, rate=self.rate or frame.sample_rate)
            for out in resampler.resample(frame):
                yield self._block(out)
        if resampler is not None:
            for out in resampler.resample(None):
                yield self._block(out)

    def _block(self, frame: av.AudioFrame) -> np.ndarray:
        # packed: one plane, so the plane walk stops at data[1] == NULL whatever the channels
        block = frame.to_ndarray().reshape(frame.samples, -1)
        self.samples += block.shape[0]
        return block


def _mono(block: np.ndarray) -> np.ndarray:
    """The channel mean (torchaudio's ``waveform.mean(0)``), summed channel by channel as over
    a planar ``(channels, samples)`` array."""
    return block.T.mean(axis=0, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()


def _check_finite(block: np.ndarray, at_samples: int, rate: int) -> None:
    if not np.isfinite(block).all():
        raise RejectedInput("non_finite_samples",
                            f"NaN or infinite samples (by {at_samples / rate:.3f} s): not audio a detector can read")


def _declared_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _wav_data_shortfall(head: bytes, size: int) -> int:
    """Bytes a RIFF/WAVE header's ``data`` chunk declares beyond the end of the file (0 when
    none, or when the header does not say: streamed WAVs declare 0 or 0xFFFFFFFF)."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0
    offset = 12
    while offset + 8 <= len(head):
        chunk, length = head[offset:offset + 4], struct.unpack("<I", head[offset + 4:offset + 8])[0]
        if chunk == b"data":
            return 0 if length in (0, 0xFFFFFFFF) else max(0, offset + 8 + length - size)
        offset += 8 + length + (length & 1)
    return 0


def _header(source: AudioSource) -> tuple[bytes, int]:
    if isinstance(source, bytes):
        return source[:65536], len(source)
    with open(source, "rb") as handle:
        return handle.read(65536), os.fstat(handle.fileno()).st_size


def _probe(source: AudioSource, min_duration_s: float, config: DecodeConfig, tick: Callable[[], None]) -> AudioInfo:
    with _open(source) as container:
        frames = _Frames(container, None)
        low, high = np.inf, -np.inf
        for block in frames:
            _check_finite(block, frames.samples, frames.stream.codec_context.sample_rate or 1)
            if block.size:
                low, high = min(low, float(block.min())), max(high, float(block.max()))
            tick()
        stream = frames.stream
        rate = stream.codec_context.sample_rate or stream.rate
        if frames.samples == 0 or not rate:
            raise RejectedInput("no_samples", "the audio stream decodes to no samples")
        duration = frames.samples / rate
        check_signal(duration, low, high, min_duration_s, config)
        truncation = ""
        declared = _declared_s(container, stream)
        shortfall = _wav_data_shortfall(*_header(source)) if container.format.name == "wav" else 0
        if frames.error:
            truncation = f"decoding stopped at {duration:.3f} s: {frames.error}"
        elif declared and duration < declared * config.truncation_ratio and \
                declared - duration > config.truncation_min_gap_s:
            truncation = f"{duration:.3f} s decoded of the {declared:.3f} s the header declares"
        elif shortfall:
            truncation = f"the WAV header declares {shortfall} bytes of samples past the end of the file"
        return AudioInfo(
            # canonical_name is the codec ("mp3"), name the decoder ("mp3float").
            codec=stream.codec_context.codec.canonical_name,
            format=container.format.name,
            sample_rate=int(rate),
            channels=int(stream.codec_context.channels or 1),
            duration_s=duration,
            truncated=bool(truncation),
            truncation=truncation,
        )


def check_signal(duration_s: float, low: float, high: float, min_duration_s: float, config: DecodeConfig) -> None:
    """Reject audio no detector can use: shorter than ``min_duration_s`` (``too_short``), or
    whose samples all lie within ``config.constant_ptp`` of each other, ``low`` to ``high``
    (``constant_signal``: digital silence or DC)."""
    if duration_s < min_duration_s:
        raise RejectedInput("too_short", f"{duration_s:.3f} s of audio, under the {min_duration_s} s minimum")
    if high - low <= config.constant_ptp:
        raise RejectedInput("constant_signal", f"every sample lies within {high - low:.3g} of {low:.3g} "
                            "(digital silence or DC): no signal to detect")


def _decode_chunks(source: AudioSource, sample_rate: int) -> Iterator[np.ndarray]:
    with _open(source) as container:
        frames = _Frames(container, sample_rate)
        for block in frames:
            _check_finite(block, frames.samples, sample_rate)
            yield _mono(block)
        if frames.samples == 0:
            raise RejectedInput("no_samples", "the audio stream decodes to no samples")


# -- the public readers ----------------------------------------------------------------


def probe(source: AudioSource, *, min_duration_s: float = 0.0, config: DecodeConfig = _DEFAULT,
          isolated: bool = False) -> AudioInfo:
    """Describe an audio file, decoding it completely so damage and bad samples are caught.

    Args:
        source: path or encoded bytes.
        min_duration_s: shorter audio is rejected (``too_short``).
        config: the signal checks and, with ``isolated``, the sandbox's timeouts.
        isolated: decode in this thread's sandbox process (untrusted bytes).

    Returns:
        The file's :class:`AudioInfo`; ``duration_s`` counts the samples actually decoded;
        ``truncated`` when decoding failed midway or the header declares much more.

    Raises:
        RejectedInput: ``missing``, ``symlink_loop``, ``not_a_file``, ``empty``,
            ``undecodable``, ``not_audio``, ``no_samples`` (a valid container holding no
            audio), ``too_short``, ``non_finite_samples`` (NaN/Inf), ``constant_signal``
            (peak-to-peak within ``config.constant_ptp``); isolated also ``decoder_crashed``,
            ``decoder_timeout``, ``decoder_error``.
    """
    if isolated:
        (info,) = _sandbox(config).request(("probe", source, min_duration_s, config))
        return info
    return _probe(source, min_duration_s, config, lambda: None)


def decode_chunks(source: AudioSource, sample_rate: int, *, config: DecodeConfig = _DEFAULT,
                  isolated: bool = False) -> Iterator[np.ndarray]:
    """Decode to mono float32 at ``sample_rate`` Hz, a block at a time (memory: one block).

    Channels are averaged (the usual mix-down, as ``waveform.mean(0)`` in torchaudio);
    resampling is FFmpeg's (libswresample) on each channel before the mix. Isolated, the
    blocks come ``config.chunk_s`` seconds at a time.

    Raises:
        RejectedInput: as :func:`probe` (``non_finite_samples`` on the decoded samples), raised
            when the iteration reaches the problem.
    """
    if isolated:
        yield from _sandbox(config).request(("decode", source, sample_rate, config))
    else:
        yield from _decode_chunks(source, sample_rate)


def decode(source: AudioSource, sample_rate: int, *, config: DecodeConfig = _DEFAULT,
           isolated: bool = False) -> np.ndarray:
    """The whole of :func:`decode_chunks`: ``np.float32`` ``(samples,)``, values as decoded
    (not normalised)."""
    return np.concatenate(list(decode_chunks(source, sample_rate, config=config, isolated=isolated)))


# -- the sandbox -----------------------------------------------------------------------

_FRAME = struct.Struct("<Q")
# The child imports only this module and its foundation (config, errors): an empty ``dfpipe``
# package stands in for the real one, whose __init__ imports the lake (pyarrow, DuckDB) and
# would double the child's start-up for nothing it uses.
_CHILD = ("import importlib.util, sys, types; package = types.ModuleType('dfpipe'); "
          "package.__path__ = list(importlib.util.find_spec('dfpipe').submodule_search_locations); "
          "sys.modules['dfpipe'] = package; from dfpipe.audio_io import serve; serve()")
_PIPE_BYTES = 1 << 20
_TICK_S = 1.0  # the child says it is alive at least this often while it works


def _write_message(out: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_FRAME.pack(len(data)) + data)
    out.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or ``None`` at end of file (the other side is gone)."""
    parts, held = [], 0
    while held < size:
        part = stream.read(size - held)
        if not part:
            return None
        parts.append(part)
        held += len(part)
    return b"".join(parts)


class Sandbox:
    """A child process that probes and decodes for this one, so a decoder crash or hang kills
    only the child. Started on first use and after a crash; it exits when its stdin closes
    (this process is gone) or its parent changes (this process was killed)."""

    def __init__(self, config: DecodeConfig = _DEFAULT) -> None:
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        # unbuffered: select() must see every byte not yet read, none may wait in a buffer
        self._proc = proc
        with contextlib.suppress(OSError):  # fewer, larger reads of the decoded blocks (Linux)
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
        try:
            self._receive(self.config.start_timeout_s)  # ("ready",)
        except RejectedInput as exc:  # no file is to blame: every file would fail the same way
            raise DfpipeError(f"the decoder sandbox process could not start ({exc.detail})") from exc
        return proc

    def close(self) -> None:
        """Stop the child (a later request starts a new one)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()

    def request(self, request: tuple[Any, ...]) -> Iterator[Any]:
        """Send one request; yield its answers (a probe's :class:`AudioInfo`, or decoded
        blocks). Raises the child's :class:`RejectedInput`, or ``decoder_crashed`` /
        ``decoder_timeout``, after which the child is gone."""
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        finished = False
        try:
            try:
                _write_message(proc.stdin, request)  # type: ignore[arg-type]
            except (BrokenPipeError, OSError):
                self._died()
            while True:
                message = self._receive(self.config.timeout_s)
                kind = message[0]
                if kind == "rejected":
                    finished = True
                    raise RejectedInput(message[1], message[2])
                if kind == "done":
                    finished = True
                    return
                if kind == "data":
                    yield message[1]
        finally:
            if not finished:  # abandoned midway, crashed or hung: the child's state is unknown
                self.close()

    def _receive(self, timeout_s: float) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
            if not ready:
                self.close()
                raise RejectedInput("decoder_timeout", f"the decoder showed no progress for {timeout_s:g} s "
                                    "(DecodeConfig.timeout_s) and was stopped")
            header = _read_exact(proc.stdout, _FRAME.size)
            if header is None:
                self._died()
            body = _read_exact(proc.stdout, _FRAME.unpack(header)[0])  # type: ignore[arg-type]
            if body is None:
                self._died()
            message = pickle.loads(body)  # trusted: our own child process wrote it
            if message != ("tick",):
                return message

    def _died(self) -> None:
        proc = self._proc
        code = proc.wait() if proc is not None else None
        self.close()
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        raise RejectedInput("decoder_crashed", f"the decoder process died on this file ({how})")


_LOCAL = threading.local()
_ALL: list[Sandbox] = []
_ALL_LOCK = threading.Lock()


def _sandbox(config: DecodeConfig) -> Sandbox:
    """This thread's sandbox (one per thread, so Dask's worker threads decode in parallel)."""
    box = getattr(_LOCAL, "sandbox", None)
    if box is None or box.config != config:
        if box is not None:
            box.close()
        box = _LOCAL.sandbox = Sandbox(config)
        with _ALL_LOCK:
            _ALL.append(box)
    return box


@atexit.register
def _close_all() -> None:
    with _ALL_LOCK:
        for box in _ALL:
            box.close()


def serve() -> None:
    """The sandbox child: answer requests from stdin on the original stdout, until EOF."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print or C-level write goes to stderr, not into the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, not a crash
    parent = os.getppid()
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            _write_message(out, message)

    def orphan_watch() -> None:  # the parent was SIGKILLed: do not outlive it
        while os.getppid() == parent:
            time.sleep(_TICK_S)
        os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True).start()
    last = [time.monotonic()]

    def tick() -> None:
        if time.monotonic() - last[0] >= _TICK_S:
            send(("tick",))
            last[0] = time.monotonic()

    send(("ready",))
    stdin = sys.stdin.buffer
    while (header := _read_exact(stdin, _FRAME.size)) is not None:
        body = _read_exact(stdin, _FRAME.unpack(header)[0])
        if body is None:
            return
        last[0] = time.monotonic()
        op, source, arg, config = pickle.loads(body)  # trusted: our parent wrote it
        try:
            if op == "probe":
                send(("data", _probe(source, arg, config, tick)))
            else:
                _serve_decode(source, arg, config, send, tick)
            send(("done",))
        except RejectedInput as exc:
            send(("rejected", exc.reason, exc.detail))
        except Exception as exc:  # noqa: BLE001 - any failure on hostile bytes is that file's
            send(("rejected", "decoder_error", f"{type(exc).__name__}: {exc}"))


def _serve_decode(source: AudioSource, sample_rate: int, config: DecodeConfig, send: Callable[[Any], None],
                  tick: Callable[[], None]) -> None:
    target = max(1, round(config.chunk_s * sample_rate))
    pending: list[np.ndarray] = []
    held = 0
    for block in _decode_chunks(source, sample_rate):
        pending.append(block)
        held += block.shape[0]
        if held >= target:
            send(("data", np.concatenate(pending)))
            pending, held = [], 0
        tick()
    if pending:
        send(("data", np.concatenate(pending)))
