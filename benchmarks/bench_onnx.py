"""CPU throughput of the exported ONNX graph (onnxruntime) beside PyTorch, front end included.

    .venv/bin/python benchmarks/bench_onnx.py [--quick] [--checkpoint C] [--threads N]

For Mel-CNN and Mel-MultiScale (seeded untrained weights: throughput does not depend on the
values; or one ``--checkpoint``), both paths take the same seeded 3 s waveforms and return
spoof logits:

- PyTorch: ``MelFrontend`` (torchaudio, FFT) + the model, eval mode, ``torch.no_grad``;
- ONNX: :func:`dfpipe.onnx_export.export_onnx`'s graph (DFT as a convolution + the model) in
  an onnxruntime CPU session.

Clips/s at batch 1 (a person with a few files) and batch 32 (archive scoring), best of
``--repeats`` timed passes after one warm-up pass, with the same thread count for both
(default: every core). Prints the load average beside the figures: on a shared machine
the ratio is the figure to read, not the absolute rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dfpipe import checkpoints
from dfpipe.config import FrontendConfig
from dfpipe.frontend import MelFrontend
from dfpipe.models import Batch, build_model, config_to_dict, dataclass_from_dict, default_config
from dfpipe.onnx_export import EXPORTABLE, export_onnx, onnx_logits


def rate(run, waves: np.ndarray, batch: int, repeats: int) -> float:
    """Clips/s of ``run`` over ``waves`` in batches of ``batch`` (best of ``repeats`` passes)."""
    def one_pass() -> float:
        started = time.perf_counter()
        for start in range(0, len(waves), batch):
            run(waves[start:start + batch])
        return time.perf_counter() - started

    one_pass()  # warm-up: allocations, onnxruntime's first-run optimisations
    return len(waves) / min(one_pass() for _ in range(repeats))


def bench_checkpoint(source: str, out: str, waves: np.ndarray, repeats: int, options: object) -> None:
    """Print PyTorch's and the ONNX graph's clips/s for one checkpoint at batch 1 and 32."""
    import onnxruntime

    model, meta = checkpoints.load_model(source)
    frontend = MelFrontend(dataclass_from_dict(FrontendConfig, meta["frontend_config"])).eval()
    exported = export_onnx(source, out)
    session = onnxruntime.InferenceSession(exported.path, options, providers=["CPUExecutionProvider"])

    @torch.no_grad()
    def pytorch(batch: np.ndarray) -> np.ndarray:
        return model(Batch(mel=frontend(torch.from_numpy(batch)), lfcc=None, waveform=None)).numpy()

    for batch in (1, 32):
        torch_rate = rate(pytorch, waves, batch, repeats)
        onnx_rate = rate(lambda b: onnx_logits(session, b), waves, batch, repeats)
        print(f"{model.arch:15s} batch {batch:3d}: PyTorch {torch_rate:7.1f} clips/s, "
              f"ONNX {onnx_rate:7.1f} clips/s ({onnx_rate / torch_rate:.2f}x), parity {exported.max_abs_diff:.1g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 clips, 2 repeats (a smoke run).")
    parser.add_argument("--checkpoint", default=None, help="Benchmark this mel checkpoint only.")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import onnxruntime

    n, repeats = (64, 2) if args.quick else (256, 3)
    torch.set_num_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    rng = np.random.default_rng(0)
    waves = rng.standard_normal((n, FrontendConfig().audio.clip_samples)).astype(np.float32)
    waves /= np.abs(waves).max(axis=1, keepdims=True)
    print(f"load average {os.getloadavg()}, {args.threads} threads, {n} clips of 3 s, "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    with tempfile.TemporaryDirectory() as scratch:
        sources = [args.checkpoint] if args.checkpoint else []
        for arch in ([] if args.checkpoint else EXPORTABLE):
            torch.manual_seed(0)
            model = build_model(arch, default_config(arch))
            sources.append(os.path.join(scratch, f"{arch}.pt"))
            checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FrontendConfig()),
                                                       run_id="bench", epoch=0), sources[-1])
        for source in sources:
            bench_checkpoint(source, os.path.join(scratch, "graph.onnx"), waves, repeats, options)
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
