"""The five detectors: shapes, parameter counts, checkpoints, WavLM loading and freezing."""

from __future__ import annotations

import pytest
import torch

from dfpipe import checkpoints
from dfpipe.config import (
    FrontendConfig,
    MelCNNConfig,
    MelViTConfig,
    WavLMAASISTConfig,
    WavLMCNNConfig,
)
from dfpipe.errors import ConfigError, DfpipeError
from dfpipe.models import ARCHITECTURES, Batch, build_model, config_from_dict, config_to_dict
from dfpipe.models.wavlm import set_trainable_layers

FRONTEND = FrontendConfig()


def _batch(n: int = 3) -> Batch:
    torch.manual_seed(0)
    return Batch(mel=torch.randn(n, *FRONTEND.mel_shape), lfcc=torch.randn(n, *FRONTEND.lfcc_shape),
                 waveform=torch.randn(n, FRONTEND.audio.clip_samples) * 0.1)


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    """A random 4-layer WavLM saved with save_pretrained: the real offline loading path."""
    from transformers import WavLMConfig, WavLMModel

    config = WavLMConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(32, 32, 32, 32, 32, 32, 32), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=4, num_buckets=32, max_bucket_distance=64,
                         layerdrop=0.0)
    folder = tmp_path_factory.mktemp("wavlm-tiny")
    torch.manual_seed(0)
    WavLMModel(config).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(("arch", "low", "high"), [("mel-cnn", 350_000, 450_000),
                                                   ("mel-multiscale", 1_800_000, 2_400_000)])
def test_mel_models_have_the_study_size_and_one_logit_per_clip(arch, low, high):
    model = build_model(arch).eval()
    assert low <= model.num_params() <= high
    assert model.needs == {"mel"}
    batch = _batch()
    logits = model(batch)
    assert logits.shape == (3,)
    embedding = model.embed(batch)
    assert embedding.shape == (3, 64)
    torch.testing.assert_close(model.head(embedding).squeeze(-1), logits)


@pytest.mark.parametrize("arch", ["mel-cnn", "mel-multiscale"])
def test_checkpoint_round_trip_with_weights_only(arch, tmp_path):
    model = build_model(arch).eval()
    uri = str(tmp_path / "ckpt" / "epoch-001.pt")
    size = checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FRONTEND),
                                                      run_id="r", epoch=1), uri)
    assert size == (tmp_path / "ckpt" / "epoch-001.pt").stat().st_size
    # float32 weights: ~4 bytes per parameter plus a little pickle framing
    assert 4 * model.num_params() < size < 4 * model.num_params() * 1.05
    assert not list((tmp_path / "ckpt").glob("*.tmp-*"))
    loaded, meta = checkpoints.load_model(uri)
    assert meta["epoch"] == 1 and loaded.config == model.config
    batch = _batch()
    torch.testing.assert_close(loaded(batch), model(batch))


TINY_VIT = MelViTConfig(embed_dim=32, depth=2, heads=2)


def test_mel_vit_at_its_defaults_is_vit_small_about_52x_the_mel_cnn():
    vit = build_model("mel-vit")
    assert vit.needs == {"mel"}
    # ViT-Small (384 wide, 12 layers, 6 heads): ~21.3 M in the encoder + patches, tokens, head
    assert 21_000_000 <= vit.num_params() <= 22_000_000
    assert 50 <= vit.num_params() / build_model("mel-cnn").num_params() <= 55
    assert vit.positions.shape == (1, 1 + 8 * 19, 384)  # 128 x 301 -> 8 x 19 patches of 16 x 16


def test_mel_vit_pads_time_to_whole_patches_and_gives_one_logit_per_clip():
    model = build_model("mel-vit", TINY_VIT).eval()
    batch = _batch()
    logits = model(batch)
    assert logits.shape == (3,)
    embedding = model.embed(batch)
    assert embedding.shape == (3, 32)
    torch.testing.assert_close(model.head(embedding).squeeze(-1), logits)
    # 128 x 301 in patches of 32 x 7: 4 x 43 (301 = 43 x 7, no padding)
    assert MelViTConfig(patch_size=(32, 7)).grid == (4, 43)
    with pytest.raises(ConfigError, match="patch_size"):
        MelViTConfig(patch_size=(10, 16))
    with pytest.raises(ConfigError, match="multiple of heads"):
        MelViTConfig(embed_dim=30, heads=4)


def test_mel_vit_checkpoint_round_trip_with_weights_only(tmp_path):
    model = build_model("mel-vit", TINY_VIT).eval()
    uri = str(tmp_path / "epoch-001.pt")
    checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FRONTEND), run_id="r",
                                               epoch=1), uri)
    loaded, _ = checkpoints.load_model(uri)
    assert loaded.config == TINY_VIT and isinstance(loaded.config.patch_size, tuple)
    batch = _batch()
    torch.testing.assert_close(loaded(batch), model(batch))


def test_config_dict_round_trip_restores_nested_tuples():
    config = WavLMAASISTConfig(wavlm="/x", unfreeze_layers=(1, 2))
    again = config_from_dict("wavlm-aasist", config_to_dict(config))
    assert again == config and isinstance(again.mel.block_channels, tuple)
    with pytest.raises(ConfigError, match="unknown fields"):
        config_from_dict("mel-cnn", {"channel": [1]})


def test_bad_names_and_configs_fail_naming_them():
    with pytest.raises(ConfigError, match="unknown architecture 'resnet'"):
        build_model("resnet")
    with pytest.raises(ConfigError, match="takes a MelMultiScaleConfig"):
        build_model("mel-multiscale", MelCNNConfig())
    with pytest.raises(ConfigError, match="dropout"):
        MelCNNConfig(dropout=1.5)
    with pytest.raises(ConfigError, match="unfreeze_layers"):
        WavLMCNNConfig(unfreeze_layers=(5, 2))
    assert set(ARCHITECTURES) == {"mel-cnn", "mel-multiscale", "mel-vit", "wavlm-cnn", "wavlm-aasist"}


def test_missing_wavlm_weights_say_what_to_do(tmp_path):
    with pytest.raises(DfpipeError, match="not available offline") as info:
        build_model("wavlm-cnn", WavLMCNNConfig(wavlm=str(tmp_path / "no-such-wavlm")))
    message = str(info.value)
    assert "Hugging Face cache" in message and "save_pretrained" in message and "no-such-wavlm" in message


def test_wavlm_cnn_is_frozen_and_reads_the_waveform(tiny_wavlm):
    model = build_model("wavlm-cnn", WavLMCNNConfig(wavlm=tiny_wavlm))
    assert model.needs == {"waveform"}
    wavlm = model.frames.wavlm
    assert not any(p.requires_grad for p in wavlm.parameters())
    assert model.num_params(trainable_only=True) == model.num_params() - sum(p.numel() for p in wavlm.parameters())
    model.train()
    assert not wavlm.training  # a frozen extractor never runs dropout
    logits = model(_batch())
    assert logits.shape == (3,)
    logits.sum().backward()
    assert model.head.weight.grad is not None


def test_wavlm_aasist_unfreezes_exactly_the_configured_layers(tiny_wavlm, tmp_path):
    config = WavLMAASISTConfig(wavlm=tiny_wavlm, unfreeze_layers=(2, 3))
    model = build_model("wavlm-aasist", config).train()
    layers = model.frames.wavlm.encoder.layers
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == [False, False, True, True]
    assert all(p.requires_grad for layer in layers[2:] for p in layer.parameters())
    assert not any(p.requires_grad for p in model.frames.wavlm.feature_extractor.parameters())
    batch = _batch()
    model(batch).sum().backward()
    grads = [[p.grad is not None for p in layer.parameters()] for layer in layers]
    assert not any(grads[0]) and all(grads[3])
    # the same code path saves and reloads it
    uri = str(tmp_path / "epoch-001.pt")
    checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FRONTEND), run_id="r",
                                               epoch=1), uri)
    loaded, _ = checkpoints.load_model(uri)
    torch.testing.assert_close(loaded(batch), model.eval()(batch))


def test_unfreezing_past_the_last_layer_is_refused(tiny_wavlm):
    from dfpipe.models.wavlm import load_wavlm

    with pytest.raises(ConfigError, match="past the last layer"):
        set_trainable_layers(load_wavlm(tiny_wavlm), (2, 4))


def test_wavlm_large_shaped_checkpoint_is_scored_and_diagnosed_without_its_folder(tmp_path):
    """WavLM-Large's architecture flags (no conv biases, layer-norm feature encoder, stable
    layer norm) at toy width: saved, its source folder deleted, loaded from another path."""
    import shutil

    from ingest_fixtures import tone
    from transformers import WavLMConfig, WavLMModel

    from dfpipe.archive_scoring import score_archive
    from dfpipe.config import ALL_BUT_FIRST
    from dfpipe.diagnostics import hutchinson_trace

    folder = tmp_path / "wavlm-large-like"
    large_flags = {"conv_bias": False, "feat_extract_norm": "layer", "do_stable_layer_norm": True}
    WavLMModel(WavLMConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                           conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                           num_buckets=32, max_bucket_distance=64, layerdrop=0.0, **large_flags)).save_pretrained(folder)
    torch.manual_seed(0)
    model = build_model("wavlm-cnn", WavLMCNNConfig(wavlm=str(folder), unfreeze_layers=ALL_BUT_FIRST)).eval()
    layers = model.frames.wavlm.encoder.layers
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == [False, True, True]
    assert all(conv.conv.bias is None for conv in model.frames.wavlm.feature_extractor.conv_layers)
    saved = tmp_path / "lake" / "epoch-001.pt"
    checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FRONTEND), run_id="r",
                                               epoch=1), str(saved))
    shutil.rmtree(folder)
    moved = tmp_path / "elsewhere" / "epoch-001.pt"
    moved.parent.mkdir()
    shutil.move(saved, moved)

    loaded, meta = checkpoints.load_model(str(moved))
    assert {k: meta["backbone_config"][k] for k in large_flags} == large_flags
    batch = _batch(2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch))
    archive = tmp_path / "archive"
    tone(archive / "a.wav", 300, seconds=2.0)
    tone(archive / "b.flac", 500, seconds=3.0, noise=True)
    summary = score_archive([str(archive)], str(moved), str(tmp_path / "scores"), progress=False,
                            log=lambda line: None)
    assert (summary.scored, summary.rejected) == (2, 0)
    # the loss landscape of the loaded model (its trainable part: WavLM layers 1-2 and the head)
    traces = hutchinson_trace(loaded, torch.nn.BCEWithLogitsLoss(), batch, torch.tensor([0.0, 1.0]), 2,
                              torch.Generator().manual_seed(0))
    assert traces.samples.shape == (2, 2) and torch.isfinite(traces.samples).all()
    assert traces.samples.abs().sum() > 0


def test_resume_tolerates_a_scaler_state_saved_without_amp():
    from dfpipe.devices import restore_grad_scaler

    saved_on_cpu = torch.amp.GradScaler("cpu", enabled=False).state_dict()  # what a run without AMP stores
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # an enabled scaler, as on CUDA
    with pytest.raises(RuntimeError, match="empty"):
        scaler.load_state_dict(saved_on_cpu)  # the failure resuming on CUDA met
    restore_grad_scaler(scaler, saved_on_cpu)
    assert scaler.get_scale() == torch.amp.GradScaler("cpu").get_scale()  # starts afresh
    restore_grad_scaler(scaler, {**scaler.state_dict(), "scale": 8.0})
    assert scaler.get_scale() == 8.0


def test_unfreeze_settings_parse_and_all_but_first_is_a_known_value():
    from dfpipe.config import ALL_BUT_FIRST, parse_unfreeze_layers

    assert [parse_unfreeze_layers(t) for t in ("none", "12,23", ALL_BUT_FIRST)] == [None, (12, 23), ALL_BUT_FIRST]
    assert WavLMCNNConfig(unfreeze_layers=ALL_BUT_FIRST).unfreeze_layers == ALL_BUT_FIRST
    for bad in ("12-23", "half", "1,"):
        with pytest.raises(ConfigError, match="expected none, all-but-first or FIRST,LAST"):
            parse_unfreeze_layers(bad)
    with pytest.raises(ConfigError, match="unfreeze_layers must be None, 'all-but-first'"):
        WavLMAASISTConfig(unfreeze_layers="half")
