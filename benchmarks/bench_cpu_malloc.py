"""CPU training steps with glibc malloc's defaults vs with freed buffers kept (``select_device``).

    .venv/bin/python benchmarks/bench_cpu_malloc.py [--quick]

:func:`dfpipe.devices.select_device` on the CPU raises glibc's mmap and trim thresholds
(:func:`dfpipe.devices.keep_freed_buffers`, why: ``dfpipe.config.CPU_MALLOC_KEEP_BYTES``).
This measures what that buys: each side, in a fresh child process (the malloc settings are the
whole process's), builds a mel detector at its default widths and runs
:func:`dfpipe.train.train_step` on random ``(B, 2, 128, 301)`` inputs, 2 warm-up and
``--steps`` timed steps, every core as torch's threads. Both sides set up through
``select_device``; the baseline side runs with ``DFPIPE_CPU_MALLOC_KEEP_BYTES=0``, which skips
the malloc call; nothing else differs. Sides alternate for ``--rounds`` rounds and
the medians are printed: clips/s, CPU seconds in user and kernel mode per timed step, and
peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dfpipe.config import CPU_MALLOC_KEEP_ENV

CHILD = """
import json, os, sys, time
import torch
from torch import nn
from bench_scale import _peak_rss_mb
from dfpipe.config import TrainConfig
from dfpipe.devices import select_device
from dfpipe.models import Batch, build_model, default_config
from dfpipe.train import train_step

arch, batch_size, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = select_device("cpu", amp=False)
torch.manual_seed(0)
model = build_model(arch, default_config(arch)).train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
scaler, loss_fn = ctx.grad_scaler(), nn.BCEWithLogitsLoss()
batch = Batch(mel=torch.randn(batch_size, 2, 128, 301))
labels = (torch.arange(batch_size) % 2).float()
for step in range(2 + steps):
    if step == 2:
        started, cpu = time.perf_counter(), os.times()
    train_step(model, batch, labels, optimizer=optimizer, scaler=scaler, loss_fn=loss_fn, ctx=ctx,
               grad_clip=TrainConfig.grad_clip)
wall, done = time.perf_counter() - started, os.times()
print(json.dumps({"clips_per_s": steps * batch_size / wall, "user_s": (done.user - cpu.user) / steps,
                  "kernel_s": (done.system - cpu.system) / steps, "peak_rss_mb": _peak_rss_mb()}))
"""

SIDES = ("glibc default", "dfpipe")


def measure(side: str, arch: str, batch_size: int, steps: int) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    env = {k: v for k, v in os.environ.items() if k != CPU_MALLOC_KEEP_ENV}  # dfpipe: the default
    if side == "glibc default":
        env[CPU_MALLOC_KEEP_ENV] = "0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))  # bench_scale
    done = subprocess.run([sys.executable, "-c", CHILD, arch, str(batch_size), str(steps)], check=True,
                          capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 steps: checks that it runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    rounds, steps = (1, 2) if args.quick else (args.rounds, args.steps)
    cases = [("mel-cnn", 16), ("mel-cnn", 128), ("mel-multiscale", 16), ("mel-multiscale", 128)]
    print(f"train_step on {os.cpu_count()} CPU core(s), {rounds} round(s) of {steps} timed steps; "
          f"load average at start {os.getloadavg()[0]:.2f}\n")
    print("| arch | batch | malloc | clips/s | user s/step | kernel s/step | peak RSS MB | clips/s vs default |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for arch, batch_size in cases:
        runs: dict[str, list[dict]] = {side: [] for side in SIDES}
        for _ in range(rounds):
            for side in SIDES:
                runs[side].append(measure(side, arch, batch_size, steps))
        medians = {side: {key: statistics.median(run[key] for run in runs[side]) for key in runs[side][0]}
                   for side in SIDES}
        for side in SIDES:
            m = medians[side]
            ratio = m["clips_per_s"] / medians["glibc default"]["clips_per_s"]
            print(f"| {arch} | {batch_size} | {side} | {m['clips_per_s']:.1f} | {m['user_s']:.2f} "
                  f"| {m['kernel_s']:.2f} | {m['peak_rss_mb']:,.0f} | {ratio:.2f}x |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
