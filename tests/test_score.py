"""Scoring: archives of real files (good, long, broken) and lake clips with a checkpoint."""

from __future__ import annotations

import glob

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from audio_helpers import ffmpeg, speak

from dfpipe import checkpoints
from dfpipe.archive_scoring import clip_rows, expand_paths, score_archive, streamed_rows
from dfpipe.config import FrontendConfig, ScoreConfig
from dfpipe.frontend import MelFrontend, load_clip, windows
from dfpipe.models import Batch, build_model, config_to_dict

FRONTEND = FrontendConfig()
SMALL_PARTS = ScoreConfig(batch_size=16, files_per_task=2, max_in_flight=2, files_per_part=3)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Good files (wav, mp3, flac, m4a), two long ones (2 and 3 min) and broken ones."""
    root = tmp_path_factory.mktemp("archive")
    (root / "calls").mkdir()
    speech = speak(root / "speech.wav", "Please hold while we connect your call to the next agent.")
    good = [speech]
    for name, args in [("calls/a.mp3", ["-b:a", "64k"]), ("calls/b.flac", []), ("c.m4a", ["-c:a", "aac"])]:
        good.append(ffmpeg(root / name, "-i", str(speech), *args))
    good.append(ffmpeg(root / "short.wav", "-f", "lavfi", "-i", "sine=frequency=440:duration=1"))
    long_files = [ffmpeg(root / "calls/long2.mp3", "-f", "lavfi", "-i", "anoisesrc=d=120:a=0.1", "-ar", "16000"),
                  ffmpeg(root / "long3.flac", "-stream_loop", "40", "-i", str(speech), "-t", "180")]
    broken = [root / "empty.wav", root / "notes.mp3", root / "calls/truncated.flac"]
    broken[0].write_bytes(b"")
    broken[1].write_text("this is not audio")
    broken[2].write_bytes((root / "calls/b.flac").read_bytes()[:60])
    return root, [str(p) for p in good + long_files], [str(p) for p in broken]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("mel-cnn").eval()
    uri = str(tmp_path_factory.mktemp("ckpt") / "epoch-001.pt")
    checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FRONTEND), run_id="r1",
                                               epoch=1), uri)
    return uri, model


def _scores(out) -> dict[str, dict]:
    rows = [r for part in sorted(glob.glob(f"{out}/scores/*.parquet")) for r in pq.read_table(part).to_pylist()]
    assert len(rows) == len({r["path"] for r in rows}), "a file was scored twice"
    return {r["path"]: r for r in rows}


def test_clip_rows_are_the_centre_crop_then_windows_over_the_whole_file():
    rate = FRONTEND.audio.sample_rate
    wave = np.sin(np.arange(10 * rate, dtype=np.float32))  # 10 s
    rows = clip_rows(wave, 1.5, FRONTEND.audio)
    assert rows.shape == (1 + 6, 48_000)  # starts 0, 1.5, ..., 6 and one aligned to the end (7 s)
    np.testing.assert_allclose(np.abs(rows).max(axis=1), 1.0, rtol=1e-6)
    assert clip_rows(wave[:rate], 1.5, FRONTEND.audio).shape == (2, 48_000)


@pytest.mark.slow
def test_score_archive_scores_each_good_file_once_and_resumes(archive, checkpoint, tmp_path):
    from distributed import Client, LocalCluster

    root, good, broken = archive
    uri, model = checkpoint
    out = tmp_path / "out"
    messages = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        first = score_archive([str(root)], uri, str(out), config=SMALL_PARTS, executor=client, progress=False,
                              log=messages.append)
    assert (first.scored, first.rejected, first.skipped) == (len(good), len(broken), 0)
    scores = _scores(out)
    assert sorted(scores) == sorted(good)
    rejects = pq.read_table(f"{out}/rejects").to_pylist()
    assert sorted(r["source_uri"] for r in rejects) == sorted(broken)
    assert all(r["stage"] == "score-archive" and r["reason"] for r in rejects)
    assert sorted(m.split(":")[0].removeprefix("rejected ") for m in messages) == sorted(broken)
    long2 = scores[str(root / "calls/long2.mp3")]
    assert long2["duration_s"] == pytest.approx(120, abs=0.1) and long2["n_windows"] == 79
    # the centre-crop score is exactly the detector on load_clip (the study's convention), and
    # the window scores are the detector on frontend.windows, computed here independently
    speech = str(root / "speech.wav")
    with torch.no_grad():
        expected = model(Batch(mel=MelFrontend(FRONTEND)(torch.from_numpy(load_clip(speech))[None])))
        window_logits = model(Batch(mel=MelFrontend(FRONTEND)(torch.from_numpy(np.stack(
            [w for _, w in windows(str(root / "calls/long2.mp3"), SMALL_PARTS.hop_s, FRONTEND.audio)])))))
    assert scores[speech]["spoof_logit_center"] == pytest.approx(float(expected[0]), abs=1e-4)
    assert len(window_logits) == long2["n_windows"]
    assert long2["spoof_logit_window_max"] == pytest.approx(float(window_logits.max()), abs=1e-4)
    assert long2["spoof_logit_window_mean"] == pytest.approx(float(window_logits.mean()), abs=1e-4)
    assert len(glob.glob(f"{out}/scores/*.parquet")) >= 3  # written in parts, not at the end

    again = score_archive([str(root)], uri, str(out), config=SMALL_PARTS, progress=False, log=messages.append)
    assert (again.scored, again.rejected, again.skipped) == (0, 0, len(good) + len(broken))
    assert _scores(out) == scores


def test_expand_paths_takes_folders_globs_and_keeps_missing_files(archive):
    root = archive[0]
    found = expand_paths([str(root / "calls"), str(root / "*.wav"), str(root / "missing.wav")])
    assert str(root / "calls/a.mp3") in found and str(root / "speech.wav") in found
    assert str(root / "missing.wav") in found  # rejected later, never silently dropped
    assert found == sorted(set(found))


def test_streamed_rows_are_clip_rows_a_block_at_a_time():
    rate = FRONTEND.audio.sample_rate
    for seconds in (0.5, 3.0, 10.0, 10.3):
        wave = np.sin(np.arange(round(seconds * rate), dtype=np.float32) * 0.01)
        expected = clip_rows(wave, 1.5, FRONTEND.audio)
        blocks = np.array_split(wave, 7)
        rows = list(streamed_rows(blocks, wave.shape[0], 1.5, FRONTEND.audio))
        assert [is_centre for is_centre, _ in rows].count(True) == 1
        centre = next(row for is_centre, row in rows if is_centre)
        np.testing.assert_array_equal(centre, expected[0])
        np.testing.assert_array_equal(np.stack([row for is_centre, row in rows if not is_centre]), expected[1:])


def test_hostile_archive_files_are_each_a_reject_or_a_score(tmp_path, checkpoint):
    rate = FRONTEND.audio.sample_rate
    tone = 0.1 * np.sin(np.arange(2 * rate) / rate * 2 * np.pi * 300)
    soundfile.write(tmp_path / "eight.wav", np.stack([tone] * 8, axis=1), rate)  # segfaulted the decoder
    soundfile.write(tmp_path / "one.wav", np.array([0.5]), rate)
    soundfile.write(tmp_path / "silent.wav", np.zeros(rate), rate)
    nan = tone.copy()
    nan[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", nan, rate, subtype="FLOAT")
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    out = tmp_path / "out"
    summary = score_archive([str(tmp_path)], checkpoint[0], str(out), progress=False, log=lambda _: None)
    reasons = {r["source_uri"].rsplit("/", 1)[-1]: r["reason"] for r in pq.read_table(out / "rejects").to_pylist()}
    assert reasons == {"one.wav": "too_short", "silent.wav": "constant_signal", "nan.wav": "non_finite_samples",
                       "loop.wav": "symlink_loop", "gone.wav": "missing"}
    assert list(_scores(out)) == [str(tmp_path / "eight.wav")]
    assert (summary.files, summary.scored, summary.rejected) == (6, 1, 5)


def test_a_file_too_long_to_hold_is_streamed_to_the_same_scores(tmp_path, checkpoint):
    rate = FRONTEND.audio.sample_rate
    wave = np.random.default_rng(0).standard_normal(20 * rate) * 0.1
    soundfile.write(tmp_path / "long.flac", wave, rate)
    held = score_archive([str(tmp_path / "long.flac")], checkpoint[0], str(tmp_path / "held"), progress=False,
                         log=lambda _: None)
    streamed = score_archive([str(tmp_path / "long.flac")], checkpoint[0], str(tmp_path / "streamed"),
                             config=ScoreConfig(max_in_memory_s=5, batch_size=4), progress=False,
                             log=lambda _: None)
    assert held.scored == streamed.scored == 1
    (a,), (b,) = _scores(tmp_path / "held").values(), _scores(tmp_path / "streamed").values()
    assert a["n_windows"] == b["n_windows"] == 13 and a["duration_s"] == b["duration_s"] == 20.0
    for key in ("spoof_logit_center", "spoof_logit_window_mean", "spoof_logit_window_max"):
        assert b[key] == pytest.approx(a[key], abs=1e-5), key
