"""GPU check: every detector's train and inference step with AMP and TF32, and archive scoring fed
by decode workers, on a CUDA machine, in one short run (a few minutes; at most 8).

    .venv/bin/python benchmarks/gpu_check.py                # CUDA: the study's sizes
    .venv/bin/python benchmarks/gpu_check.py --amp bfloat16  # bfloat16 autocast (Ampere and newer)
    .venv/bin/python benchmarks/gpu_check.py --cpu          # the same code on the CPU, tiny sizes

Everything goes through the code a study runs: :func:`dfpipe.devices.select_device` (TF32 on,
float16 autocast with a GradScaler by default), :func:`dfpipe.train.train_step` and
:func:`dfpipe.predictions.spoof_logits`, and :func:`dfpipe.archive_scoring.score_archive`
with a Dask LocalCluster decoding files for the device.

1. Per architecture, at the recipe's batch size (128 mel, 64 WavLM; ``--cpu``: 4) and the
   eval batch size (256; ``--cpu``: 8): ``--warmup`` steps, then ``--steps`` timed train
   steps and inference steps on random inputs of the front end's shapes, copied from pinned
   host memory as a loader's would be. The WavLM models are WavLM-Large-shaped (24 layers,
   width 1024) with random weights (``build_model(..., pretrained=False)``: no download);
   ``--cpu`` uses the rehearsal's tiny 24-layer WavLM. Reported: clips/s and peak memory
   (CUDA: ``max_memory_allocated``; CPU: the process's peak RSS so far), and whether every
   loss and logit was finite.
2. A random-weight Mel-CNN checkpoint scores ``--files`` generated FLAC files (2-6 s) with
   ``--workers`` decode workers: files/s, audio hours/s, peak memory.

Prints markdown tables (paste them into docs/benchmarks.md). Without CUDA and without
``--cpu`` it prints one line saying so and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_score_archive import make_files  # benchmarks/ is sys.path[0] when run as a script

from dfpipe import checkpoints
from dfpipe.archive_scoring import score_archive
from dfpipe.config import AmpConfig, DaskConfig, FrontendConfig, ScoreConfig, TrainConfig
from dfpipe.devices import DeviceContext, select_device
from dfpipe.models import ARCHITECTURES, Batch, build_model, config_to_dict, default_config
from dfpipe.predictions import spoof_logits
from dfpipe.train import train_step

FRONTEND = FrontendConfig()


def sync(ctx: DeviceContext) -> None:
    """Wait for the device, so a wall-clock interval holds its work."""
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)


def peak_memory_mb(ctx: DeviceContext) -> float:
    if ctx.device.type == "cuda":
        return torch.cuda.max_memory_allocated(ctx.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(ctx: DeviceContext) -> None:
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)


def host_batch(n: int, ctx: DeviceContext, seed: int) -> tuple[Batch, torch.Tensor]:
    """Random inputs of the front end's shapes on the host (pinned on CUDA), half of them spoof."""
    generator = torch.Generator().manual_seed(seed)
    pin = ctx.device.type == "cuda"

    def tensor(*shape: int, scale: float = 1.0) -> torch.Tensor:
        out = scale * torch.randn(n, *shape, generator=generator)
        return out.pin_memory() if pin else out

    batch = Batch(mel=tensor(*FRONTEND.mel_shape), lfcc=tensor(*FRONTEND.lfcc_shape),
                  waveform=tensor(FRONTEND.audio.clip_samples, scale=0.1))
    return batch, torch.arange(n).remainder(2).float()


def model_for(arch: str, tiny_wavlm: str | None) -> nn.Module:
    """``arch`` at its defaults; a WavLM model WavLM-Large-shaped with random weights, or on the
    rehearsal's tiny WavLM (``tiny_wavlm``, a ``save_pretrained`` folder)."""
    torch.manual_seed(0)
    if not arch.startswith("wavlm"):
        return build_model(arch)
    if tiny_wavlm is None:
        return build_model(arch, pretrained=False)
    return build_model(arch, replace(default_config(arch), wavlm=tiny_wavlm))


def check_architecture(arch: str, ctx: DeviceContext, *, batch_size: int, eval_batch_size: int, warmup: int,
                       steps: int, tiny_wavlm: str | None) -> dict[str, object]:
    """Train and inference steps of ``arch``: clips/s, peak memory, finite outputs."""
    reset_peak(ctx)
    model = model_for(arch, tiny_wavlm).to(ctx.device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=TrainConfig.lr)
    scaler = ctx.grad_scaler()
    loss_fn = nn.BCEWithLogitsLoss()
    batch, labels = host_batch(batch_size, ctx, seed=1)
    finite = True
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            sync(ctx)
            started = time.perf_counter()
        loss, _ = train_step(model, batch, labels, optimizer=optimizer, scaler=scaler, loss_fn=loss_fn, ctx=ctx,
                             grad_clip=TrainConfig.grad_clip)
        finite &= bool(torch.isfinite(loss))
    sync(ctx)
    train_cps = steps * batch_size / (time.perf_counter() - started)
    train_mb = peak_memory_mb(ctx)

    eval_batch, _ = host_batch(eval_batch_size, ctx, seed=2)
    model.eval()
    with torch.no_grad():
        for step in range(warmup + steps):
            if step == warmup:
                sync(ctx)
                started = time.perf_counter()
            logits = spoof_logits(model, eval_batch.to(ctx.device), ctx)
            finite &= bool(torch.isfinite(logits).all()) and logits.dtype == torch.float32
    sync(ctx)
    infer_cps = steps * eval_batch_size / (time.perf_counter() - started)
    row = {"arch": arch, "params_m": model.num_params() / 1e6, "train_batch": batch_size,
           "train_cps": train_cps, "train_mb": train_mb, "eval_batch": eval_batch_size, "infer_cps": infer_cps,
           "infer_mb": peak_memory_mb(ctx), "finite": finite, "scale": scaler.get_scale() if scaler.is_enabled()
           else None}
    del model, optimizer
    return row


def check_archive(ctx: DeviceContext, amp: AmpConfig, *, files: int, workers: int, folder: str) -> dict[str, object]:
    """Score ``files`` generated FLAC files with a random-weight Mel-CNN, decoded by ``workers``
    Dask workers."""
    from dfpipe.flows._common import dask_client

    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's start-up lines, not the tables
    torch.manual_seed(0)
    checkpoint = os.path.join(folder, "epoch-001.pt")
    checkpoints.save(checkpoints.model_payload(build_model("mel-cnn").eval(), frontend_config=config_to_dict(FRONTEND),
                                               run_id="gpu-check", epoch=1), checkpoint)
    audio_s = make_files(os.path.join(folder, "audio"), files)
    config = ScoreConfig(device=str(ctx.device), amp_dtypes=amp)
    with dask_client(DaskConfig(n_workers=workers)) as client:
        client.submit(sum, [1]).result()  # the workers are up before the clock starts
        reset_peak(ctx)
        started = time.perf_counter()
        summary = score_archive([os.path.join(folder, "audio")], checkpoint, os.path.join(folder, "scores"),
                                config=config, executor=client, progress=False, log=lambda line: None)
        wall = time.perf_counter() - started
    return {"files": summary.scored, "rejected": summary.rejected, "files_s": summary.scored / wall,
            "audio_h_s": audio_s / 3600 / wall, "wall_s": wall, "mb": peak_memory_mb(ctx), "workers": workers,
            "batch": config.batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU at tiny sizes (checks the script)")
    parser.add_argument("--amp", choices=[d for d in AmpConfig.DTYPES], default=None,
                        help="autocast dtype (default: float16 on CUDA, bfloat16 with --cpu)")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHITECTURES), help="only these (repeatable)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; --cpu 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; --cpu 2)")
    parser.add_argument("--files", type=int, default=None, help="archive files (default 2000; --cpu 24)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decode workers (default: cores - 2, at least 1; --cpu 2)")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}); run it on "
              "a CUDA machine, or with --cpu to check the script at tiny sizes")
        sys.exit(1)
    tiny = args.cpu
    dtype = args.amp or ("bfloat16" if tiny else "float16")
    amp = AmpConfig(cpu=dtype) if tiny else AmpConfig(cuda=dtype)
    ctx = select_device("cpu" if tiny else "cuda", amp_dtypes=amp)
    warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    steps = args.steps or (2 if tiny else 10)
    files = args.files or (24 if tiny else 2000)
    workers = args.workers or (2 if tiny else max(1, (os.cpu_count() or 1) - 2))
    tiny_wavlm = None
    if tiny:
        from transformers.utils import logging as transformers_logging

        from dfpipe.config import RehearsalConfig
        from dfpipe.study.rehearsal import rehearsal_wavlm

        transformers_logging.disable_progress_bar()  # a loading bar per model, amid the progress lines
        tiny_wavlm = str(rehearsal_wavlm(RehearsalConfig()))

    started = time.perf_counter()
    recipe = TrainConfig()
    rows = []
    for arch in args.arch or sorted(ARCHITECTURES):
        batch_size = 4 if tiny else recipe.batch_size_for(arch)
        rows.append(check_architecture(arch, ctx, batch_size=batch_size,
                                       eval_batch_size=8 if tiny else recipe.eval_batch_size,
                                       warmup=warmup, steps=steps, tiny_wavlm=tiny_wavlm))
        print(f"  {arch}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        archive = check_archive(ctx, amp, files=files, workers=workers, folder=folder)

    memory = "peak CUDA memory allocated" if ctx.device.type == "cuda" else "process peak RSS so far"
    tf32 = torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    print(f"\n{ctx.name}; torch {torch.__version__}, CUDA {torch.version.cuda}; TF32 "
          f"{'on' if tf32 else 'off'}; {warmup} warm-up + {steps} timed steps; "
          f"{'tiny sizes (--cpu; WavLM: the rehearsal 24-layer tiny WavLM)' if tiny else 'WavLM-Large-shaped, random weights'}\n")
    print("| architecture | params (M) | train batch | train clips/s | train peak MB | eval batch | "
          "inference clips/s | inference peak MB | finite | loss scale |\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        scale = "-" if r["scale"] is None else f"{r['scale']:.0f}"
        print(f"| {r['arch']} | {r['params_m']:.1f} | {r['train_batch']} | {r['train_cps']:.1f} | {r['train_mb']:.0f} | "
              f"{r['eval_batch']} | {r['infer_cps']:.1f} | {r['infer_mb']:.0f} | {'yes' if r['finite'] else 'NO'} | "
              f"{scale} |")
    print(f"\nmemory: {memory}\n")
    print("| archive scoring (Mel-CNN, random weights) | files | rejected | decode workers | batch | files/s | "
          "audio h/s | wall s | peak MB |\n|---|---|---|---|---|---|---|---|---|")
    print(f"| {ctx.device.type} | {archive['files']} | {archive['rejected']} | {archive['workers']} | "
          f"{archive['batch']} | {archive['files_s']:.1f} | {archive['audio_h_s']:.3f} | {archive['wall_s']:.1f} | "
          f"{archive['mb']:.0f} |")
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")
    if not all(r["finite"] for r in rows) or archive["files"] != files or not math.isfinite(total):
        sys.exit(1)


if __name__ == "__main__":
    main()
