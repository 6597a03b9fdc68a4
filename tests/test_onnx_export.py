"""ONNX export of the mel detectors: the exportable front end equals torchaudio's, and the
exported graph's logits equal PyTorch's on real clips (onnxruntime, extra ``[onnx]``)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dfpipe import checkpoints
from dfpipe.cli import main
from dfpipe.config import FrontendConfig, OnnxConfig
from dfpipe.frontend import MelFrontend, load_clip
from dfpipe.llr import ScoreMap, calibration_uri, read_calibration, write_score_map
from dfpipe.models import Batch, build_model, config_to_dict, default_config
from dfpipe.onnx_export import ExportableMelFrontend


def _clips(corpus, n=4) -> np.ndarray:
    with open(corpus / "manifest.csv") as source:
        rows = list(csv.DictReader(source))
    picks = [r for r in rows if r["label"] == "bonafide"][:n // 2] + [r for r in rows if r["label"] == "spoof"][:n // 2]
    return np.stack([load_clip(str(corpus / r["path"])) for r in picks])


def _checkpoint(tmp_path, arch: str) -> str:
    """A seeded, untrained detector whose head is scaled up, so its logits are O(10) and a
    parity check on them is not passed by logits near zero."""
    torch.manual_seed(0)
    model = build_model(arch, default_config(arch)).eval()
    with torch.no_grad():
        for p in model.head.parameters():
            p.mul_(50.0)
    uri = str(tmp_path / f"{arch}.pt")
    checkpoints.save(checkpoints.model_payload(model, frontend_config=config_to_dict(FrontendConfig()),
                                               run_id="r", epoch=1), uri)
    return uri


def test_the_exportable_front_end_equals_torchaudios(demo_corpus_small):
    waves = torch.from_numpy(np.concatenate([_clips(demo_corpus_small), np.zeros((1, 48000), np.float32)]))
    reference = MelFrontend().eval()
    with torch.no_grad():
        expected, got = reference(waves), ExportableMelFrontend(reference)(waves)
    assert got.shape == expected.shape == (5, 2, 128, 301)
    # normalised features (unit variance): a float32 DFT against an FFT
    assert torch.max(torch.abs(got - expected)).item() < 1e-3


@pytest.mark.parametrize("arch", ["mel-cnn", "mel-multiscale"])
def test_the_onnx_graph_scores_like_pytorch(arch, demo_corpus_small, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from dfpipe.onnx_export import onnx_logits

    checkpoint = _checkpoint(tmp_path, arch)
    write_score_map(ScoreMap((0.5,), -1.0, 0.3, "val", ("r@1",), 10, 10), calibration_uri(checkpoint))
    out = tmp_path / f"{arch}.onnx"
    result = CliRunner().invoke(main, ["export", "--onnx", str(out), "--checkpoint", checkpoint])
    assert result.exit_code == 0, result.output
    assert "max |logit - PyTorch|" in result.output
    assert read_calibration(str(out)) == read_calibration(checkpoint)  # travels beside the graph

    waves = _clips(demo_corpus_small)
    model, _ = checkpoints.load_model(checkpoint)
    with torch.no_grad():
        expected = model(Batch(mel=MelFrontend()(torch.from_numpy(waves)), lfcc=None, waveform=None)).numpy()
    assert np.abs(expected).max() > 1.0  # the check below is not passed by logits near zero
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert np.abs(onnx_logits(session, waves) - expected).max() < OnnxConfig().parity_atol
    assert onnx_logits(session, waves[:1]) == pytest.approx(expected[:1], abs=OnnxConfig().parity_atol)


def test_a_detector_without_an_onnx_form_is_refused_in_one_line(tmp_path):
    checkpoint = _checkpoint(tmp_path, "mel-vit")
    result = CliRunner().invoke(main, ["export", "--onnx", str(tmp_path / "v.onnx"), "--checkpoint", checkpoint])
    assert result.exit_code == 1 and "ONNX export covers mel-cnn, mel-multiscale" in result.output
    assert not (tmp_path / "v.onnx").exists()
