"""Hessian-trace diagnostics: dfpipe's Hutchinson estimator vs two baselines, one process.

Usage: .venv/bin/python benchmarks/bench_diagnostics.py [--quick]

1. dfpipe ``hutchinson_trace`` (one forward + ``create_graph`` backward per clip, then one
   extra backward per draw through the retained graph) vs the naive loop (forward +
   ``create_graph`` backward + Hessian-vector product for every draw), on the real Mel-CNN
   detector with a (2, 128, 301) mel input. Both draw the same Rademacher vectors, so
   their estimates must agree to float rounding (checked).
2. Hutchinson vs the exact trace from ``torch.autograd.functional.hessian`` on an MLP with a
   few thousand parameters, fitted for 50 Adam steps: time ratio and the estimate's
   relative error.

Prints a markdown table of times (CPU seconds of this process on a CPU-only machine, wall
seconds with CUDA) and ratios measured in this process run.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn
from torch.func import functional_call

from dfpipe.config import MelCNNConfig
from dfpipe.diagnostics import landscape as dg
from dfpipe.models import Batch, build_model


def naive_hutchinson(model: nn.Module, loss_fn, inputs: Batch, labels: torch.Tensor, draws: int,
                     generator: torch.Generator) -> torch.Tensor:
    """The textbook loop: recompute the loss and its create_graph gradient for every draw."""
    params = dg.trainable_parameters(model)
    traces = []
    with dg.evaluation_mode(model):
        for i in range(len(labels)):
            total = 0.0
            for _ in range(draws):
                vs = dg._rademacher(params, generator)
                loss = dg.clip_loss(model, loss_fn, dg._clip(inputs, i), labels[i : i + 1])
                grads = torch.autograd.grad(loss, params, create_graph=True)
                hvs = torch.autograd.grad(dg._dot(grads, vs), params)
                total += float(dg._dot(hvs, vs))
            traces.append(total / draws)
    return torch.tensor(traces, dtype=torch.float64)


def timed(fn):
    """``(result, seconds)``: CPU seconds of this process (all threads), which a busy shared
    machine disturbs less than wall time; on a GPU, wall seconds (kernels are asynchronous)."""
    clock = time.perf_counter if torch.cuda.is_available() else time.process_time
    started = clock()
    result = fn()
    return result, clock() - started


def bench_reuse(clips: int, draws: int) -> list[str]:
    torch.manual_seed(0)
    model = build_model("mel-cnn", MelCNNConfig())
    inputs = Batch(mel=torch.randn(clips, 2, 128, 301))
    labels = (torch.arange(clips) % 2).float()
    loss_fn = nn.BCEWithLogitsLoss()
    naive_hutchinson(model, loss_fn, inputs, labels[:1], 1, torch.Generator())  # warm-up: kernels, allocator
    ours, t_ours = timed(lambda: dg.hutchinson_trace(model, loss_fn, inputs, labels, draws,
                                                     torch.Generator().manual_seed(0)).traces)
    base, t_base = timed(lambda: naive_hutchinson(model, loss_fn, inputs, labels, draws,
                                                  torch.Generator().manual_seed(0)))
    torch.testing.assert_close(ours, base, rtol=1e-3, atol=1e-3)
    n = dg.count_trainable(model)
    return [(f"| Hutchinson, Mel-CNN ({n:,} params), {clips} clips x {draws} draws | "
            f"{t_ours:.2f} | {t_base:.2f} (naive: graph rebuilt per draw) | {t_base / t_ours:.2f}x | "
            "same estimates |")]


def bench_exact(width: int, clips: int, draws: int) -> list[str]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                          nn.Linear(width, 1)).double()
    inputs = torch.randn(clips, 32, dtype=torch.float64)
    labels = (torch.arange(clips) % 2).double()
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):  # near a fit, as a trained checkpoint is (Hutchinson's variance is lower there)
        optimizer.zero_grad()
        loss_fn(model(inputs).reshape(-1), labels).backward()
        optimizer.step()
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def exact() -> torch.Tensor:
        out = []
        for i in range(clips):
            def loss_of(vector: torch.Tensor, i: int = i) -> torch.Tensor:
                params, offset = {}, 0
                for name, shape in zip(names, shapes):
                    size = math.prod(shape)
                    params[name] = vector[offset : offset + size].reshape(shape)
                    offset += size
                return loss_fn(functional_call(model, params, (inputs[i : i + 1],)).reshape(-1), labels[i : i + 1])
            out.append(torch.autograd.functional.hessian(loss_of, flat, vectorize=True).trace())
        return torch.stack(out)

    ours, t_ours = timed(lambda: dg.hutchinson_trace(model, loss_fn, inputs, labels, draws,
                                                     torch.Generator().manual_seed(0)).traces)
    truth, t_exact = timed(exact)
    error = abs(ours.mean() - truth.mean()) / abs(truth.mean())
    return [(f"| trace vs exact Hessian, MLP ({flat.numel():,} params), {clips} clips x {draws} draws | "
            f"{t_ours:.2f} | {t_exact:.2f} (torch.autograd.functional.hessian) | {t_exact / t_ours:.2f}x | "
            f"mean trace rel. error {error:.1%} |")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problem (CI smoke run)")
    args = parser.parse_args()
    clips, draws, width = (1, 3, 48) if args.quick else (2, 30, 96)
    print("| case | dfpipe s | baseline s | speed-up | check |")
    print("|---|---|---|---|---|")
    for line in bench_reuse(clips, draws) + bench_exact(width, 8, 300):
        print(line)


if __name__ == "__main__":
    main()
