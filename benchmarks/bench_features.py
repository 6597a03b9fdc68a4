"""Features stage throughput vs calling torchaudio directly on the same pre-loaded batch.

    .venv/bin/python benchmarks/bench_features.py [--quick]

* direct torchaudio: the clips already decoded and cropped (``load_clip``) into one tensor;
  ``MelSpectrogram`` + ``AmplitudeToDB`` + mean/std + ``ComputeDeltas`` and ``LFCC`` from
  ``torchaudio.transforms`` in batches of ``FeaturesConfig.batch_size`` (no I/O at all);
* dfpipe: :func:`dfpipe.features.run_features` in-process on the ``flac`` condition: reads the
  Parquet ``audio`` rows, decodes, crops, runs the front end, converts to float16 and commits.

Target: dfpipe >= 0.8x direct torchaudio. Both run in this one process, same torch threads.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torchaudio
from _clips import copy_clips, make_corpus

from dfpipe.conditions import run_conditions
from dfpipe.config import FeaturesConfig
from dfpipe.features import run_features
from dfpipe.frontend import load_clip


def direct_torchaudio(waves: torch.Tensor, config: FeaturesConfig) -> None:
    """The study's recipe straight from torchaudio.transforms (one clip's dB floor per sample)."""
    c = config.frontend
    mel = torchaudio.transforms.MelSpectrogram(c.audio.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                               f_min=c.f_min, f_max=c.f_max, n_mels=c.n_mels)
    to_db = torchaudio.transforms.AmplitudeToDB("power", top_db=c.top_db)
    deltas = torchaudio.transforms.ComputeDeltas(win_length=c.delta_win_length)
    lfcc = torchaudio.transforms.LFCC(c.audio.sample_rate, n_filter=c.lfcc_n_filter, f_min=c.f_min, f_max=c.f_max,
                                      n_lfcc=c.lfcc_n_lfcc, speckwargs={"n_fft": c.lfcc_n_fft,
                                                                       "win_length": c.lfcc_win_length,
                                                                       "hop_length": c.hop_length})
    with torch.inference_mode():
        for start in range(0, waves.shape[0], config.batch_size):
            batch = waves[start:start + config.batch_size, None]  # (B, 1, time): per-clip top_db
            db = to_db(mel(batch))
            db = (db - db.mean(dim=(-2, -1), keepdim=True)) / (db.std(dim=(-2, -1), keepdim=True) + c.norm_eps)
            torch.cat([db, deltas(db)], dim=1)
            lfcc(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 clips instead of 512")
    args = parser.parse_args()
    n = 64 if args.quick else 512
    config = FeaturesConfig()
    with tempfile.TemporaryDirectory() as tmp:
        source, files = make_corpus(Path(tmp) / "src", min(n, 32))
        # replicate the clips' rows so the stage sees n clips without n espeak-ng runs
        lake = copy_clips(source, Path(tmp) / "lake")
        clips = source.read("clips")
        for copy in range(1, -(-n // clips.num_rows)):
            ids = [f"{cid}-{copy}" for cid in clips.column("clip_id").to_pylist()]
            lake.write_shard("clips", clips.set_column(0, "clip_id", [ids]), shard=f"copy{copy}",
                             partition={"corpus": "bench"})
        run_conditions(lake.uri, "bench", ["flac"])
        total = lake.read("clips").num_rows
        waves = torch.stack([torch.from_numpy(load_clip(path)) for path in files])
        waves = waves.repeat(-(-total // waves.shape[0]), 1)[:total]

        direct_torchaudio(waves[: config.batch_size], config)  # warm-up (allocator, kernels)
        started = time.perf_counter()
        direct_torchaudio(waves, config)
        direct = time.perf_counter() - started

        started = time.perf_counter()
        summary = run_features(lake.uri, "bench", "flac", config)
        stage = time.perf_counter() - started
        assert summary.rows == total, summary

    print(f"\n### Features stage, {total} clips, batch {config.batch_size}, {torch.get_num_threads()} torch threads\n")
    print("| method | s | clips/s | vs direct torchaudio |")
    print("|---|---|---|---|")
    for name, seconds in [("direct torchaudio on a pre-loaded batch", direct),
                          ("dfpipe run_features (Parquet in, decode, front end, float16, commit)", stage)]:
        print(f"| {name} | {seconds:.2f} | {total / seconds:.1f} | {direct / seconds:.2f}x |")


if __name__ == "__main__":
    main()
