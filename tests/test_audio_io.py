"""Reading hostile audio: many channels, NaN/Inf and constant samples, truncation, and the
decoder sandbox (a real child process, really crashed and really stopped)."""

from __future__ import annotations

import os
import resource
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
from audio_helpers import ffmpeg

from dfpipe.audio_io import _sandbox, decode, decode_chunks, probe
from dfpipe.config import DecodeConfig
from dfpipe.errors import RejectedInput

RATE = 16_000


def _tone(channels: int, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """``(samples, channels)``: a different tone per channel, so a wrong mix-down shows."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.1 * np.sin(2 * np.pi * (200 + 50 * c) * t) for c in range(channels)], axis=1)


def _reason(fn, *args, **kwargs) -> str:
    with pytest.raises(RejectedInput) as caught:
        fn(*args, **kwargs)
    assert caught.value.detail
    return caught.value.reason


@pytest.mark.parametrize(("channels", "suffix"), [(8, "wav"), (12, "wav"), (8, "flac"), (2, "flac")])
def test_many_channels_decode_to_their_mean(tmp_path, channels, suffix):
    # 8+ planar channels segfaulted PyAV's to_ndarray; the packed path mixes down in numpy
    wave = _tone(channels)
    path = tmp_path / f"c{channels}.{suffix}"
    soundfile.write(path, wave, RATE, subtype="PCM_16")
    assert probe(path).channels == channels
    decoded = decode(path, RATE)
    expected = soundfile.read(path, dtype="float32")[0].mean(axis=1)
    np.testing.assert_allclose(decoded, expected, atol=1e-6)
    np.testing.assert_array_equal(decode(path, RATE, isolated=True), decoded)


def test_eight_channel_aac_decodes(tmp_path):
    source = tmp_path / "c8.wav"
    soundfile.write(source, _tone(8), RATE)
    m4a = ffmpeg(tmp_path / "c8.m4a", "-i", str(source), "-c:a", "aac")
    assert probe(m4a).channels == 8
    assert decode(m4a, RATE).shape[0] == pytest.approx(RATE, abs=2048)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples_are_rejected(tmp_path, bad):
    wave = _tone(2)
    wave[RATE // 2, 1] = bad
    path = tmp_path / "bad.wav"
    soundfile.write(path, wave, RATE, subtype="FLOAT")
    assert _reason(probe, path) == "non_finite_samples"
    assert _reason(decode, path, RATE) == "non_finite_samples"
    assert _reason(probe, path.read_bytes(), isolated=True) == "non_finite_samples"


def test_constant_and_too_short_audio_is_rejected_and_quiet_audio_is_not(tmp_path):
    cases = {"zeros": np.zeros(RATE), "dc": np.full(RATE, 0.25), "one_lsb": np.tile([0.0, 1 / 32768], RATE // 2)}
    for name, wave in cases.items():
        soundfile.write(tmp_path / f"{name}.wav", wave, RATE, subtype="FLOAT")
        assert _reason(probe, tmp_path / f"{name}.wav") == "constant_signal", name
    quiet = np.random.default_rng(0).standard_normal(RATE) * 1e-3  # -60 dBFS noise: audio
    soundfile.write(tmp_path / "quiet.wav", quiet, RATE, subtype="PCM_16")
    assert probe(tmp_path / "quiet.wav").duration_s == 1.0
    soundfile.write(tmp_path / "one.wav", np.array([0.5]), RATE, subtype="PCM_16")
    assert _reason(probe, tmp_path / "one.wav", min_duration_s=0.1) == "too_short"
    soundfile.write(tmp_path / "none.wav", np.zeros(0), RATE, subtype="PCM_16")
    assert _reason(probe, tmp_path / "none.wav") in {"no_samples", "undecodable"}


def test_truncated_files_are_flagged_with_what_showed_it(tmp_path):
    source = tmp_path / "s.wav"
    soundfile.write(source, _tone(1, 4.0), RATE, subtype="PCM_16")
    flac, mp3 = ffmpeg(tmp_path / "s.flac", "-i", str(source)), ffmpeg(tmp_path / "s.mp3", "-i", str(source))
    for path in (source, flac, mp3):
        info = probe(path)
        assert not info.truncated and info.truncation == "" and info.duration_s == pytest.approx(4.0, abs=0.06)
        data = path.read_bytes()
        cut = probe(data[:len(data) // 2])
        assert cut.truncated and cut.truncation, path.name
        assert cut.duration_s < 3.0


def test_a_wav_header_declaring_gigabytes_is_flagged_without_allocating_them(tmp_path):
    source = tmp_path / "s.wav"
    soundfile.write(source, _tone(1), RATE, subtype="PCM_16")
    data = bytearray(source.read_bytes())
    offset = data.index(b"data")
    data[offset + 4:offset + 8] = struct.pack("<I", 0xFFFFFF00)  # ~4 GB of samples declared
    data[4:8] = struct.pack("<I", 0xFFFFFF00 + 36)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = probe(bytes(data))
    assert info.truncated and "past the end" in info.truncation
    assert info.duration_s == pytest.approx(1.0, abs=0.01)
    assert decode(bytes(data), RATE).shape == (RATE,)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 100_000  # KiB: nothing near 4 GB


def test_symlink_loops_and_fifos_are_rejected_not_opened(tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    assert _reason(probe, loop) == "symlink_loop"
    assert _reason(decode, loop, RATE, isolated=True) == "symlink_loop"
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert _reason(probe, fifo) == "not_a_file"  # opening it would block for a writer


def _long_flac(tmp_path) -> bytes:
    path = tmp_path / "long.flac"
    soundfile.write(path, _tone(1, 8.0), RATE)
    return path.read_bytes()


def test_a_crashed_decoder_costs_only_its_file(tmp_path):
    config = DecodeConfig(chunk_s=1.0)
    data = _long_flac(tmp_path)
    blocks = decode_chunks(data, RATE, config=config, isolated=True)
    next(blocks)
    os.kill(_sandbox(config)._proc.pid, signal.SIGSEGV)  # the child dies as a decoder bug would kill it
    assert _reason(list, blocks) == "decoder_crashed"
    np.testing.assert_array_equal(decode(data, RATE, config=config, isolated=True), decode(data, RATE))


def test_a_hung_decoder_is_stopped_after_the_timeout(tmp_path):
    config = DecodeConfig(chunk_s=1.0, timeout_s=1.5)
    data = _long_flac(tmp_path)
    blocks = decode_chunks(data, RATE, config=config, isolated=True)
    next(blocks)
    child = _sandbox(config)._proc
    os.kill(child.pid, signal.SIGSTOP)  # no progress from here on, as a decoder stuck in a loop
    started = time.monotonic()
    assert _reason(list, blocks) == "decoder_timeout"
    assert time.monotonic() - started < 30
    assert child.poll() is not None  # killed, not left stopped
    assert probe(data, config=config, isolated=True).duration_s == 8.0


def test_the_sandbox_does_not_outlive_a_killed_parent(tmp_path):
    code = ("import time; from dfpipe.audio_io import _sandbox, probe; from dfpipe.config import DecodeConfig; "
            f"probe({str(tmp_path / 'c.wav')!r}, isolated=True); "
            "print(_sandbox(DecodeConfig())._proc.pid, flush=True); time.sleep(60)")
    soundfile.write(tmp_path / "c.wav", _tone(1), RATE)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
