"""Archive scoring throughput and memory: score-archive vs decode alone and model alone.

    .venv/bin/python benchmarks/bench_score_archive.py [--quick]

Makes N short real audio files (FLAC, 2-6 s of band-limited noise and tones, written with
soundfile), then measures in this one process run:

- decode alone: :func:`dfpipe.archive_scoring.decode_files` over every file (files/s);
- model alone: Mel-CNN (features + model) on the pre-decoded centre crops and windows;
- score-archive end to end (decode + windows + features + model + Parquet parts).

Target: end to end >= 0.7x the slower of the two parts (they run one after the other
here: in-process decoding, no Dask, so the bound is 1 / (1/decode + 1/model) relative to
the slower part). Memory: score-archive runs in a child process over N and 10xN files and
reports its peak RSS, which must stay flat (bounded in-flight work, output in parts).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dfpipe import checkpoints
from dfpipe.archive_scoring import Inference, clip_rows, decode_files, score_archive
from dfpipe.config import FrontendConfig, ScoreConfig
from dfpipe.devices import select_device
from dfpipe.models import build_model, config_to_dict


def make_files(folder: str, n: int, seed: int = 0) -> float:
    """``n`` FLAC files of 2-6 s at 16 kHz; returns their total duration in seconds."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    total = 0.0
    for i in range(n):
        seconds = rng.uniform(2, 6)
        t = np.arange(int(seconds * 16_000)) / 16_000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 3000) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(os.path.join(folder, f"f{i:06d}.flac"), wave.astype(np.float32), 16_000)
        total += seconds
    return total


def peak_rss_mb(folder: str, checkpoint: str, out: str) -> float:
    """Peak RSS (MB) of a child process that scores ``folder``."""
    script = (f"import resource, sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r}); from dfpipe.archive_scoring import score_archive; "
              f"score_archive([{folder!r}], {checkpoint!r}, {out!r}, progress=False, log=lambda m: None); "
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 / 1,000 files instead of 1,000 / 10,000")
    args = parser.parse_args()
    small, large = (100, 1_000) if args.quick else (1_000, 10_000)
    frontend, config = FrontendConfig(), ScoreConfig(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = build_model("mel-cnn").eval()
        ckpt = os.path.join(tmp, "epoch-001.pt")
        checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(frontend), run_id="bench",
                                                   epoch=1), ckpt)
        folder = os.path.join(tmp, "small")
        audio_s = make_files(folder, small)
        paths = sorted(os.path.join(folder, f) for f in os.listdir(folder))

        started = time.perf_counter()
        decoded = decode_files(paths, frontend.audio.sample_rate)
        decode_fps = len(paths) / (time.perf_counter() - started)

        rows = np.concatenate([clip_rows(d.wave, config.hop_s, frontend.audio) for d in decoded])
        inference = Inference(model, frontend, select_device("cpu"), config.batch_size)
        inference.logits(rows[:config.batch_size])  # warm-up: first-call allocations and kernel choice
        started = time.perf_counter()
        inference.logits(rows)
        model_fps = len(paths) / (time.perf_counter() - started)

        started = time.perf_counter()
        summary = score_archive([folder], ckpt, os.path.join(tmp, "out"), config=config, progress=False)
        wall = time.perf_counter() - started
        e2e_fps = summary.scored / wall

        make_files(os.path.join(tmp, "large"), large, seed=1)
        rss_small = peak_rss_mb(folder, ckpt, os.path.join(tmp, "rss-small"))
        rss_large = peak_rss_mb(os.path.join(tmp, "large"), ckpt, os.path.join(tmp, "rss-large"))

    slower = min(decode_fps, model_fps)
    print(f"\nscore-archive on {os.cpu_count()} CPU core(s), Mel-CNN, {small} files "
          f"({audio_s / 3600:.3f} h of audio, {len(rows)} crops+windows)\n")
    print("| measure | files/s | audio h/s |")
    print("|---|---|---|")
    for name, fps in [("decode alone", decode_fps), ("model alone (features + Mel-CNN)", model_fps),
                      ("score-archive end to end", e2e_fps)]:
        print(f"| {name} | {fps:.1f} | {fps * audio_s / small / 3600:.4f} |")
    print(f"\nend to end / slower part = {e2e_fps / slower:.2f} (target >= 0.7)")
    print(f"\n| files | peak RSS (MB) |\n|---|---|\n| {small} | {rss_small:.0f} |\n| {large} | {rss_large:.0f} |")
    print(f"\npeak RSS ratio {large} / {small} files = {rss_large / rss_small:.2f} (flat: close to 1)")


if __name__ == "__main__":
    main()
