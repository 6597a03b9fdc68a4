"""The logits stored as predictions: float32 resolution even under float16 autocast."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from dfpipe.clipsets import ClipBatch, ClipSet
from dfpipe.config import FrontendConfig
from dfpipe.devices import DeviceContext
from dfpipe.models import build_model
from dfpipe.predictions import predict

N_CLIPS, BATCH = 8, 4
FRAMES = 64
"""Fewer frames than a clip's 301 (the detectors pool over time): float16 convolutions are slow
on the CPU."""


def _clip_set() -> ClipSet:
    rng = np.random.default_rng(0)
    n_channels, n_mels, _ = FrontendConfig().mel_shape
    mel = rng.normal(size=(N_CLIPS, n_channels, n_mels, FRAMES)).astype(np.float16)  # as features store it
    return ClipSet(meta=pa.table({"clip_id": [f"c{i}" for i in range(N_CLIPS)]}),
                   labels=np.zeros(N_CLIPS, np.float32), mel=mel)


def _predict(model, clip_set: ClipSet, ctx: DeviceContext) -> np.ndarray:
    batches = [ClipBatch(np.arange(s, s + BATCH), *clip_set.batch(slice(s, s + BATCH))) for s in range(0, N_CLIPS, BATCH)]
    return np.concatenate([logits for _, logits in predict(model, batches, ctx)])


def test_stored_logits_have_a_float32_head_under_float16_autocast():
    """CPU autocast runs the same float16 path as CUDA's amp: the body in float16, then the
    head in float32 on the upcast embedding; the logits are not float16 values."""
    torch.manual_seed(0)
    model = build_model("mel-cnn").eval()
    clip_set = _clip_set()
    amp = DeviceContext(device=torch.device("cpu"), amp_dtype=torch.float16)
    logits = _predict(model, clip_set, amp)
    expected = []
    with torch.no_grad():
        for start in range(0, N_CLIPS, BATCH):
            batch, _ = clip_set.batch(slice(start, start + BATCH))
            with torch.autocast("cpu", dtype=torch.float16):
                embedding = model.embed(batch)
            assert embedding.dtype == torch.float16  # the body did run in float16
            expected.append(torch.nn.functional.linear(embedding.float(), model.head.weight, model.head.bias))
    assert logits.dtype == np.float64
    np.testing.assert_array_equal(logits, torch.cat(expected).squeeze(-1).double().numpy())
    assert np.all(logits.astype(np.float16).astype(np.float64) != logits)


def test_without_amp_the_stored_logits_are_the_float32_forward():
    torch.manual_seed(0)
    model = build_model("mel-cnn").eval()
    clip_set = _clip_set()
    logits = _predict(model, clip_set, DeviceContext(device=torch.device("cpu")))
    with torch.no_grad():
        forward = torch.cat([model(clip_set.batch(slice(s, s + BATCH))[0]) for s in range(0, N_CLIPS, BATCH)])
    np.testing.assert_array_equal(logits, forward.double().numpy())
