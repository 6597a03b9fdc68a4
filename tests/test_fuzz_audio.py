"""Fuzzing audio: mutated real files through probe/decode, ingest and score-archive.

Property: nothing raises but a ``RejectedInput`` with a reason, and every input ends up once,
either as a clip (a scored row) or as a reject with a reason; one hours-long file is scored
with bounded memory. Seeded and bounded (``derandomize``); ``DFPIPE_FUZZ_EXAMPLES=N`` runs
more examples, and ``DFPIPE_FUZZ_REPORT=file.json`` writes the counts (inputs tried, outcomes
by reason, decoder crashes) there; they are printed at the end of the module either way.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from audio_helpers import ffmpeg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfpipe import checkpoints
from dfpipe.archive_scoring import score_archive
from dfpipe.audio_io import decode, probe
from dfpipe.config import FrontendConfig, IngestConfig, ScoreConfig
from dfpipe.errors import RejectedInput
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake
from dfpipe.models import build_model, config_to_dict

EXAMPLES = int(os.environ.get("DFPIPE_FUZZ_EXAMPLES", "10"))
RATE = 16_000
COUNTS: Counter[str] = Counter()
MUTATIONS = ("none", "truncate", "corrupt_header", "declare_huge", "non_finite", "tiny")


def _wav(wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _signal(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(channels).standard_normal((t.shape[0], channels)) * 0.02
    return 0.2 * np.sin(2 * np.pi * 330 * t)[:, None] + noise


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Real files to mutate: WAV (16-bit, float, 8 kHz), FLAC (8 channels, 96 kHz), MP3, AAC."""
    root = tmp_path_factory.mktemp("seeds")
    files = {
        "mono.wav": _wav(_signal(1.0, RATE), RATE),
        "float_stereo.wav": _wav(_signal(1.0, RATE, 2), RATE, "FLOAT"),
        "narrow_8k.wav": _wav(_signal(1.0, 8000), 8000),
    }
    soundfile.write(root / "eight.flac", _signal(1.0, RATE, 8), RATE)
    soundfile.write(root / "hires_96k.flac", _signal(0.5, 96_000), 96_000)
    for name in ("mono.wav", "float_stereo.wav"):
        (root / name).write_bytes(files[name])
    ffmpeg(root / "speech.mp3", "-i", str(root / "mono.wav"), "-b:a", "64k")
    ffmpeg(root / "stereo.m4a", "-i", str(root / "float_stereo.wav"), "-c:a", "aac")
    for name in ("eight.flac", "hires_96k.flac", "speech.mp3", "stereo.m4a"):
        files[name] = (root / name).read_bytes()
    return files


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    uri = str(tmp_path_factory.mktemp("ckpt") / "epoch-001.pt")
    checkpoints.save(checkpoints.model_payload(build_model("mel-cnn").eval(),
                                               frontend_config=config_to_dict(FrontendConfig()), run_id="fuzz",
                                               epoch=1), uri)
    return uri


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    counts = dict(sorted(COUNTS.items()))
    print("\nfuzz counts:", json.dumps(counts, indent=1))
    if os.environ.get("DFPIPE_FUZZ_REPORT"):
        with open(os.environ["DFPIPE_FUZZ_REPORT"], "w") as handle:
            json.dump(counts, handle, indent=1, sort_keys=True)


def _mutate(data: bytes, name: str, mutation: str, draw) -> bytes:
    """One hostile variant of a seed file."""
    if mutation == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if mutation == "corrupt_header":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, min(63, len(out) - 1)))] = draw(st.integers(0, 255))
        return bytes(out)
    if mutation == "declare_huge":  # a header promising gigabytes the file does not hold
        out = bytearray(data)
        if name.endswith(".wav"):
            at = out.index(b"data")
            out[at + 4:at + 8] = struct.pack("<I", 0xFFFFFF00)
            out[4:8] = struct.pack("<I", 0xFFFFFF00)
        elif name.endswith(".flac"):  # STREAMINFO total samples: the low 36 bits at bytes 21..25
            out[21] |= 0x0F
            out[22:26] = b"\xff\xff\xff\xff"
        else:
            out += bytes(draw(st.integers(1, 4096)))  # trailing garbage past the stream
        return bytes(out)
    if mutation == "non_finite":
        wave = _signal(0.5, RATE, draw(st.sampled_from([1, 2])))
        wave[draw(st.integers(0, wave.shape[0] - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return _wav(wave, RATE, "FLOAT")
    if mutation == "tiny":
        return _wav(_signal(1.0, RATE)[:draw(st.sampled_from([0, 1]))], RATE)
    return data


def _outcome(fn, *args, **kwargs) -> str:
    try:
        fn(*args, **kwargs)
    except RejectedInput as exc:
        assert exc.reason and exc.detail
        return exc.reason
    return "ok"


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_audio_is_a_clip_or_a_reject_exactly_once(seeds, checkpoint, tmp_path_factory, data):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "real").mkdir()
    files = {}
    for index in range(data.draw(st.integers(1, 4), label="files")):
        name = data.draw(st.sampled_from(sorted(seeds)), label="seed")
        mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
        mutated = _mutate(seeds[name], name, mutation, data.draw)
        path = root / "real" / f"{index}-{mutation}-{name}"
        path.write_bytes(mutated)
        files[str(path)] = mutated
        COUNTS[f"inputs/{mutation}"] += 1
        for reader, fn, args in (("probe", probe, (mutated,)), ("decode", decode, (mutated, RATE))):
            outcome = _outcome(fn, *args, isolated=True)
            COUNTS[f"{reader}/{outcome}"] += 1
    COUNTS["inputs"] += len(files)

    lake = Lake(str(root / "lake"))
    config = IngestConfig()
    summary = ingest(lake.uri, "fuzz", corpus_entries("folder", root, config), config, executor=None)
    clip_rows = lake.read("clips", columns=["source_uri", "truncated", "truncation"]).to_pylist()
    clips = [r["source_uri"] for r in clip_rows]
    assert all(bool(r["truncation"]) == r["truncated"] for r in clip_rows)
    COUNTS["ingest/clip_flagged_truncated"] += sum(r["truncated"] for r in clip_rows)
    rejects = lake.read("rejects", columns=["source_uri", "reason"]).to_pylist()
    assert (summary.clips, summary.rejects) == (len(clips), len(rejects))
    assert sorted(clips + [r["source_uri"] for r in rejects]) == sorted(files)  # each once
    assert all(r["reason"] for r in rejects)
    COUNTS.update({"ingest/clip": len(clips), **Counter(f"ingest/{r['reason']}" for r in rejects)})

    out = root / "scores"
    scored = score_archive([str(root / "real")], checkpoint, str(out), config=ScoreConfig(batch_size=16),
                           progress=False, log=lambda _: None)
    paths = [p for part in sorted(out.glob("scores/*.parquet")) for p in pq.read_table(part)["path"].to_pylist()]
    archive_rejects = [r for part in sorted(out.glob("rejects/*.parquet")) for r in pq.read_table(part).to_pylist()]
    assert (scored.scored, scored.rejected) == (len(paths), len(archive_rejects))
    assert sorted(paths + [r["source_uri"] for r in archive_rejects]) == sorted(files)
    assert all(r["reason"] for r in archive_rejects)
    COUNTS.update({"score-archive/scored": len(paths),
                   **Counter(f"score-archive/{r['reason']}" for r in archive_rejects)})


def test_an_hour_long_file_is_scored_in_bounded_memory(tmp_path, checkpoint):
    """1 h of 8 kHz mono (57.6 MB of WAV; 230 MB as 16 kHz float32, twice that as windows)
    scored in a child process: its peak RSS, and the decoder sandbox's, stay far below that."""
    block = (np.random.default_rng(0).standard_normal(8000) * 3000).astype("<i2").tobytes()
    long_wav = tmp_path / "hour.wav"
    with open(long_wav, "wb") as handle:
        header = _wav(np.zeros(1), 8000)
        handle.write(header[:header.index(b"data") + 4] + struct.pack("<I", 3600 * len(block)))
        handle.write(block * 3600)
        size = handle.tell()
    with open(long_wav, "r+b") as handle:  # the RIFF size of the full file
        handle.seek(4)
        handle.write(struct.pack("<I", size - 8))
    short_wav = tmp_path / "short.wav"
    short_wav.write_bytes(_wav(_signal(5.0, 8000), 8000))
    script = textwrap.dedent(f"""
        import json, resource
        from dfpipe import audio_io
        from dfpipe.archive_scoring import score_archive
        from dfpipe.config import ScoreConfig
        config = ScoreConfig(hop_s=300.0, batch_size=8)
        rss = lambda who: resource.getrusage(who).ru_maxrss // 1024
        score_archive([{str(short_wav)!r}], {checkpoint!r}, {str(tmp_path / 'warm')!r}, config=config,
                      progress=False, log=print)
        warm = rss(resource.RUSAGE_SELF)
        summary = score_archive([{str(long_wav)!r}], {checkpoint!r}, {str(tmp_path / 'out')!r}, config=config,
                                progress=False, log=print)
        peak = rss(resource.RUSAGE_SELF)
        with open(f"/proc/{{audio_io._sandbox(config.decode)._proc.pid}}/status") as status:
            sandbox = next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM"))
        print(json.dumps({{"scored": summary.scored, "audio_s": summary.audio_s, "warm_mb": warm,
                           "peak_mb": peak, "sandbox_mb": sandbox}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    COUNTS["long/inputs"] += 1
    COUNTS["long/scored"] += figures["scored"]
    print("hour-long file:", figures)
    assert figures["scored"] == 1 and figures["audio_s"] == pytest.approx(3600, abs=0.1)
    row = pq.read_table(tmp_path / "out" / "scores").to_pylist()[0]
    assert row["n_windows"] == 13  # every 300 s from 0 to 3300, plus one aligned to the end
    assert figures["peak_mb"] - figures["warm_mb"] < 120, figures
    assert figures["sandbox_mb"] < 200, figures  # its own peak (VmHWM): one block at a time
