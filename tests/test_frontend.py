from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchaudio
from audio_helpers import ffmpeg, speak

from dfpipe.config import AudioConfig, FrontendConfig
from dfpipe.frontend import (
    LFCC,
    Deltas,
    LFCCFrontend,
    LogMel,
    MelFrontend,
    PerSampleNorm,
    load_clip,
    windows,
)

CFG = FrontendConfig()


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """About 4.5 s of espeak-ng speech at 22.05 kHz (so load_clip resamples and crops)."""
    return speak(tmp_path_factory.mktemp("audio") / "speech.wav",
                 "The quick brown fox jumps over the lazy dog, twice in a row.")


def _direct_torchaudio_mel(wave: torch.Tensor) -> torch.Tensor:
    """The study's recipe written straight from torchaudio.transforms, one clip at a time."""
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=160, f_min=20.0,
                                               f_max=7600.0, n_mels=128)(wave)  # (1, 128, T)
    db = torchaudio.transforms.AmplitudeToDB("power", top_db=80.0)(mel)
    db = (db - db.mean()) / (db.std(unbiased=False) + 1e-5)
    return torch.cat([db, torchaudio.transforms.ComputeDeltas(win_length=5)(db)])  # (2, 128, T)


def test_load_clip_then_mel_frontend_equals_direct_torchaudio(speech):
    wave = torch.from_numpy(load_clip(speech))
    ours = MelFrontend()(wave[None])[0]
    assert ours.shape == (2, 128, 301)
    torch.testing.assert_close(ours, _direct_torchaudio_mel(wave[None]), rtol=0, atol=1e-5)


def test_lfcc_equals_direct_torchaudio(speech):
    wave = torch.from_numpy(load_clip(speech))[None]
    reference = torchaudio.transforms.LFCC(
        sample_rate=16000, n_filter=70, f_min=20.0, f_max=7600.0, n_lfcc=60,
        speckwargs={"n_fft": 512, "win_length": 320, "hop_length": 160})(wave)
    ours = LFCCFrontend()(wave)
    assert ours.shape == (1, 60, 301) == (1, *CFG.lfcc_shape)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_batch_equals_stacked_singles_and_silence_has_no_nan(speech):
    loud = torch.from_numpy(load_clip(speech))
    batch = torch.stack([loud, 0.01 * loud.roll(4000), torch.zeros_like(loud)])
    mel, lfcc = MelFrontend()(batch), LFCCFrontend()(batch)
    assert mel.shape == (3, 2, 128, 301) and lfcc.shape == (3, 60, 301)
    assert torch.isfinite(mel).all() and torch.isfinite(lfcc).all()
    assert torch.count_nonzero(mel[2]) == 0  # silence normalises to zeros
    for i in range(3):
        torch.testing.assert_close(mel[i], MelFrontend()(batch[i:i + 1])[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(lfcc[i], LFCCFrontend()(batch[i:i + 1])[0], rtol=0, atol=1e-5)


def test_load_clip_crops_centre_pads_end_and_normalises(tmp_path):
    # a 5 s full-scale tone (to be centre-cropped) and a 1 s quiet one (to be padded)
    long_tone = ffmpeg(tmp_path / "long.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=5",
                       "-ar", "16000", "-ac", "1")
    short_tone = ffmpeg(tmp_path / "short.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                        "-ar", "16000", "-ac", "1", "-af", "volume=0.25")
    samples = AudioConfig().clip_samples
    long_clip, short_clip = load_clip(long_tone), load_clip(short_tone)
    assert long_clip.shape == short_clip.shape == (samples,) and long_clip.dtype == np.float32
    assert np.isclose(np.abs(long_clip).max(), 1.0) and np.isclose(np.abs(short_clip).max(), 1.0)
    assert np.all(short_clip[16000 + 200:] == 0)  # zero padding after the 1 s tone
    assert np.abs(short_clip[:16000]).max() > 0.9
    # centre crop: samples 1 s..4 s of the original, i.e. the first output sample is the
    # original's sample 16000 (peak-normalised).
    from dfpipe.audio_io import decode

    original = decode(long_tone, 16000)
    expected = original[16000:16000 + samples]
    np.testing.assert_allclose(long_clip, expected / np.abs(expected).max(), atol=1e-6)


def test_silent_file_gives_zeros_not_nan(tmp_path):
    silent = ffmpeg(tmp_path / "silence.flac", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2")
    clip = load_clip(silent)
    assert not np.isnan(clip).any() and np.count_nonzero(clip) == 0
    assert torch.isfinite(MelFrontend()(torch.from_numpy(clip)[None])).all()


def test_stereo_is_mixed_down(tmp_path):
    # left: 440 Hz, right: silent -> mono mix is the 440 Hz tone at half level, then normalised
    stereo = ffmpeg(tmp_path / "stereo.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=3:sample_rate=16000",
                    "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-filter_complex",
                    "[0:a][1:a]join=inputs=2:channel_layout=stereo", "-t", "3")
    mono = ffmpeg(tmp_path / "mono.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=3:sample_rate=16000")
    np.testing.assert_allclose(load_clip(stereo), load_clip(mono), atol=1e-3)


def test_windows_cover_long_audio_each_normalised(speech):
    got = list(windows(speech, hop_s=1.0))
    from dfpipe.audio_io import decode

    duration = decode(speech, 16000).shape[0] / 16000
    assert got[0][0] == 0.0 and abs(got[-1][0] + 3.0 - duration) < 1e-3  # last window ends at the end
    assert all(w.shape == (48000,) and np.isclose(np.abs(w).max(), 1.0) for _, w in got)
    with pytest.raises(ValueError, match="hop_s"):
        next(windows(speech, hop_s=0))


def test_modules_validate_and_register_buffers():
    with pytest.raises(ValueError, match="f_max=9000"):
        LogMel(16000, 1024, 160, 128, 20.0, 9000.0)
    with pytest.raises(ValueError, match="n_lfcc=80"):
        LFCC(16000, 512, 320, 160, n_filter=70, n_lfcc=80, f_min=20.0, f_max=7600.0)
    with pytest.raises(ValueError, match="win_length must be >= 3, got 1"):
        Deltas(1)
    with pytest.raises(ValueError, match="eps"):
        PerSampleNorm(0.0)
    buffers = dict(MelFrontend().named_buffers()) | dict(LFCCFrontend().named_buffers())
    assert {"log_mel.window", "log_mel.mel_fb", "lfcc.window", "lfcc.linear_fb", "lfcc.dct_mat"} <= set(buffers)


def test_version_changes_with_any_parameter():
    assert FrontendConfig(n_mels=64).version != CFG.version
    assert FrontendConfig(audio=AudioConfig(clip_seconds=4.0)).version != CFG.version
    # Every field is in the hash: a nudged value of each one gives a version of its own.
    nudged = {"audio": AudioConfig(sample_rate=22_050), "pad_mode": "constant", "center": False,
              "f_max": 7000.0, "lfcc_n_lfcc": 40, "lfcc_n_filter": 80, "lfcc_win_length": 256,
              "delta_win_length": 7}
    versions = {CFG.version}
    for field in dataclasses.fields(FrontendConfig):
        if field.name in nudged:
            value = nudged[field.name]
        else:
            value = 40.0 if field.name == "f_min" else getattr(CFG, field.name) * 2
        versions.add(dataclasses.replace(CFG, **{field.name: value}).version)
    assert len(versions) == len(dataclasses.fields(FrontendConfig)) + 1


def test_version_is_the_same_in_another_process():
    # features rows written by one worker must match the version another process computes
    # (Python's hash() is salted per process; the version must not depend on it).
    script = "from dfpipe.config import FrontendConfig; print(FrontendConfig().version)"
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert child.stdout.strip() == CFG.version


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_code_on_gpu(speech):
    wave = torch.from_numpy(load_clip(speech))[None]
    cpu = MelFrontend()(wave)
    gpu = MelFrontend().cuda()(wave.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=0, atol=1e-3)
