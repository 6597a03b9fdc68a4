"""Mixed precision through :class:`dfpipe.devices.DeviceContext` on the CPU: the code CUDA runs
(autocast, the float32 head, the GradScaler and its checkpointed state), with the CPU's own
autocast and GradScaler standing in for the GPU's."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dfpipe import checkpoints
from dfpipe.config import (
    AmpConfig,
    FrontendConfig,
    MelCNNConfig,
    MelMultiScaleConfig,
    MelViTConfig,
    WavLMAASISTConfig,
    WavLMCNNConfig,
)
from dfpipe.devices import restore_grad_scaler, select_device
from dfpipe.errors import ConfigError
from dfpipe.models import ARCHITECTURES, Batch, build_model
from dfpipe.predictions import spoof_logits
from dfpipe.train import train_step

FRONTEND = FrontendConfig()
TINY_MEL = MelMultiScaleConfig(stem_channels=8, block_channels=(8, 16, 16), se_reduction=4, attention_dim=16)
TINY_WAVLM = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "conv_dim": (32,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
              "num_buckets": 32, "max_bucket_distance": 64, "layerdrop": 0.0, "feat_extract_norm": "layer",
              "do_stable_layer_norm": True, "conv_bias": False}
"""WavLM-Large's flags (layer-norm feature encoder, stable layer norm) at a width that runs in
a blink; random weights, built from the config (no files)."""
TINY = {
    "mel-cnn": MelCNNConfig(channels=(8, 16, 16)),
    "mel-multiscale": TINY_MEL,
    "mel-vit": MelViTConfig(embed_dim=32, depth=2, heads=2),
    "wavlm-cnn": WavLMCNNConfig(unfreeze_layers=(0, 1), feature_bins=16, head=MelCNNConfig(in_channels=1,
                                                                                           channels=(8, 16))),
    "wavlm-aasist": WavLMAASISTConfig(unfreeze_layers=(1, 1), wavlm_dim=16, mel=TINY_MEL, lfcc_channels=8,
                                      fusion_hidden=16, embed_dim=16),
}


def _tiny(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch.startswith("wavlm"):
        from transformers import WavLMConfig

        return build_model(arch, TINY[arch], pretrained=False, backbone_config=WavLMConfig(**TINY_WAVLM).to_dict())
    return build_model(arch, TINY[arch])


def _batch(n: int = 2) -> tuple[Batch, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    batch = Batch(mel=torch.randn(n, *FRONTEND.mel_shape, generator=generator),
                  lfcc=torch.randn(n, *FRONTEND.lfcc_shape, generator=generator),
                  waveform=0.1 * torch.randn(n, FRONTEND.audio.clip_samples, generator=generator))
    return batch, torch.tensor([0.0, 1.0] * (n // 2))


def _cpu(dtype: str):
    return select_device("cpu", amp_dtypes=AmpConfig(cpu=dtype), cpu_threads=1)


def test_every_architecture_is_covered():
    assert set(TINY) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_train_and_inference_steps_under_bfloat16_autocast(arch):
    ctx = _cpu("bfloat16")
    assert ctx.amp_dtype == torch.bfloat16 and "bfloat16 autocast" in ctx.name
    model = _tiny(arch).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scaler = ctx.grad_scaler()
    assert not scaler.is_enabled()  # bfloat16 has float32's range: no loss scaling
    batch, labels = _batch()
    loss, hits = train_step(model, batch, labels, optimizer=optimizer, scaler=scaler, loss_fn=nn.BCEWithLogitsLoss(),
                            ctx=ctx, grad_clip=1.0)
    assert math.isfinite(loss.item()) and 0 <= hits.item() <= 2
    moved = [name for name, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[name])]
    assert moved and all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    with torch.no_grad():
        logits = spoof_logits(model.eval(), batch, ctx)
    assert logits.dtype == torch.float32 and logits.shape == (2,) and torch.isfinite(logits).all()


def test_autocast_runs_the_body_in_the_chosen_dtype():
    batch, _ = _batch()
    model = _tiny("mel-cnn").eval()
    for dtype, expected in (("bfloat16", torch.bfloat16), ("float16", torch.float16), ("off", torch.float32)):
        ctx = _cpu(dtype)
        with torch.no_grad(), ctx.autocast():
            assert model.embed(batch).dtype == expected
    assert select_device("cpu", amp=False, amp_dtypes=AmpConfig(cpu="bfloat16"), cpu_threads=1).amp_dtype is None
    assert select_device("cpu", cpu_threads=1).amp_dtype is None  # CPU AMP is opt-in
    assert AmpConfig().dtype_for("cuda") == "float16"
    with pytest.raises(ConfigError, match="AmpConfig.cpu must be one of"):
        AmpConfig(cpu="fp8")


def test_float16_loss_scaling_and_its_state_round_trip_through_a_checkpoint(tmp_path):
    ctx = _cpu("float16")
    scaler = ctx.grad_scaler()
    assert scaler.is_enabled()
    model = _tiny("mel-cnn").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch, labels = _batch(4)
    for _ in range(3):
        loss, _ = train_step(model, batch, labels, optimizer=optimizer, scaler=scaler,
                             loss_fn=nn.BCEWithLogitsLoss(), ctx=ctx, grad_clip=1.0)
        assert math.isfinite(loss.item())
    assert 0 < scaler.get_scale() <= torch.amp.GradScaler("cpu").get_scale()
    uri = str(tmp_path / "state-003.pt")
    checkpoints.save({"epoch": 3, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}, uri)
    resumed = ctx.grad_scaler()
    restore_grad_scaler(resumed, checkpoints.load(uri)["scaler"])
    assert resumed.state_dict() == scaler.state_dict()
    # a state saved without loss scaling (float32, bfloat16) leaves a float16 scaler at its start
    fresh = ctx.grad_scaler()
    restore_grad_scaler(fresh, _cpu("bfloat16").grad_scaler().state_dict())
    assert fresh.get_scale() == torch.amp.GradScaler("cpu").get_scale()
