from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from audio_helpers import speak
from click.testing import CliRunner
from sklearn.metrics import davies_bouldin_score
from torch import nn
from torch.func import functional_call

from dfpipe import diagnostics as dg
from dfpipe.cli import main
from dfpipe.config import DaskConfig, DiagnosticsConfig, MetricsConfig
from dfpipe.errors import DfpipeError
from dfpipe.lake import Lake
from dfpipe.metrics import build_models, load_models


class TinyDetector(nn.Module):
    """A 217-parameter detector with the dfpipe model surface: forward = head(embed(x))."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, 16), nn.Tanh(), nn.Linear(16, 4), nn.Tanh())
        self.head = nn.Linear(4, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x)).squeeze(-1)


class LinearScore(nn.Module):
    """Logit linear in the weights; with ``loss = mean logit`` the loss is linear too."""

    def __init__(self, features: int = 5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features, dtype=torch.float64))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x).sum(-1)


def _data(clips: int = 20, features: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(clips) % 2).double()
    inputs = torch.randn(clips, features, generator=generator, dtype=torch.float64) + labels[:, None]
    return inputs, labels


def _exact_traces(model: nn.Module, loss_fn, inputs, labels) -> np.ndarray:
    """tr(H) of each clip's loss from the full Hessian (torch.autograd.functional.hessian)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(i: int):
        def fn(vector: torch.Tensor) -> torch.Tensor:
            params, offset = {}, 0
            for name, shape in zip(names, shapes):
                size = math.prod(shape)
                params[name] = vector[offset : offset + size].reshape(shape)
                offset += size
            return dg.clip_loss(lambda x: functional_call(model, params, (x,)), loss_fn,
                                inputs[i : i + 1], labels[i : i + 1])
        return fn

    return np.array([torch.autograd.functional.hessian(loss_of(i), flat, vectorize=True).trace().item()
                     for i in range(len(labels))])


@pytest.fixture(scope="module")
def tiny():
    """A trained TinyDetector: diagnostics describe trained checkpoints.

    Training matters for the Hutchinson test: at a random init the (p − y)·∇²logit part of
    the Hessian dominates with large, cancelling off-diagonal entries, so one draw's spread
    is ~7x the trace; near a fit the Hessian is close to its Gauss–Newton part and a draw's
    spread is ~1x the trace (Hutchinson's variance is 2·Σ_{i≠j} H_ij²).
    """
    torch.manual_seed(0)
    model = TinyDetector().double()
    inputs, labels = _data()
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):
        optimizer.zero_grad()
        loss_fn(model(inputs), labels).backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model, loss_fn, inputs, labels


def test_hutchinson_matches_the_exact_trace_and_its_error_shrinks_like_one_over_sqrt_draws(tiny):
    model, loss_fn, inputs, labels = tiny
    assert 200 <= dg.count_trainable(model) <= 300
    exact = _exact_traces(model, loss_fn, inputs, labels)
    many = dg.hutchinson_trace(model, loss_fn, inputs, labels, 300, torch.Generator().manual_seed(1))
    few = dg.hutchinson_trace(model, loss_fn, inputs, labels, 75, torch.Generator().manual_seed(2))

    estimate = many.traces.mean().item()
    assert estimate == pytest.approx(exact.mean(), rel=0.05)
    # the estimate is unbiased: its error is within a few pooled standard errors
    pooled = many.std_errors.pow(2).sum().sqrt().item() / len(labels)
    assert abs(estimate - exact.mean()) < 3 * pooled
    # quadrupling the draws halves each clip's standard error
    ratio = (few.std_errors.mean() / many.std_errors.mean()).item()
    assert ratio == pytest.approx(2.0, rel=0.1)
    # per-clip losses are the clip's own BCE
    direct = nn.functional.binary_cross_entropy_with_logits(model(inputs), labels, reduction="none")
    torch.testing.assert_close(many.losses, direct.detach())


def test_hutchinson_is_seeded_restores_train_mode_and_skips_frozen_parameters(tiny):
    model, loss_fn, inputs, labels = tiny
    model.train()
    a = dg.hutchinson_trace(model, loss_fn, inputs[:3], labels[:3], 5, torch.Generator().manual_seed(7))
    b = dg.hutchinson_trace(model, loss_fn, inputs[:3], labels[:3], 5, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a.samples, b.samples)
    assert model.training and model.body.training

    model.body[0].requires_grad_(False)
    try:
        assert dg.count_trainable(model) == 217 - 8 * 16 - 16
        frozen = dg.hutchinson_trace(model, loss_fn, inputs[:3], labels[:3], 5,
                                     torch.Generator().manual_seed(7))
        assert frozen.samples.shape == (3, 5)
        assert model.body[0].weight.grad is None  # gradients never accumulate into .grad
    finally:
        model.body[0].requires_grad_(True)


def test_summary_statistics_and_bands():
    samples = torch.tensor([[1.0, 3.0], [-4.0, -2.0], [10.0, 10.0], [0.0, 2.0]], dtype=torch.float64)
    result = dg.HutchinsonTraces(samples=samples, losses=torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))
    summary = dg.summarize_traces(result, trainable_params=1000, bands=DiagnosticsConfig.bands)
    traces = np.array([2.0, -3.0, 10.0, 1.0])
    assert summary.mean == pytest.approx(2.5)
    assert summary.std == pytest.approx(traces.std(ddof=1))
    assert (summary.min, summary.max, summary.median) == (-3.0, 10.0, 1.5)
    assert summary.trace_per_param == pytest.approx(0.0025)
    assert summary.band == "moderate"
    assert summary.mean_loss == pytest.approx(0.25)
    assert (summary.clips, summary.draws, summary.trainable_params) == (4, 2, 1000)
    assert [dg.curvature_band(v, (0.001, 0.01)) for v in (-1.0, 0.0009, 0.001, 0.01, 0.02)] == [
        "flat", "flat", "moderate", "moderate", "sharp"]


def test_davies_bouldin_equals_sklearn():
    rng = np.random.default_rng(3)
    embeddings = np.concatenate([rng.normal(0, 1, (50, 64)), rng.normal(0.7, 1.5, (50, 64))])
    labels = np.repeat([0, 1], 50)
    assert dg.davies_bouldin(embeddings, labels) == pytest.approx(
        davies_bouldin_score(embeddings, labels), rel=1e-12)
    three = rng.integers(0, 3, 100)
    assert dg.davies_bouldin(torch.from_numpy(embeddings), torch.from_numpy(three)) == pytest.approx(
        davies_bouldin_score(embeddings, three), rel=1e-12)
    same = np.ones((6, 3))
    assert dg.davies_bouldin(same, [0, 0, 0, 1, 1, 1]) == davies_bouldin_score(same, [0, 0, 0, 1, 1, 1]) == 0.0
    with pytest.raises(ValueError, match="clusters"):
        dg.davies_bouldin(embeddings, np.zeros(100))


def test_expected_calibration_error_by_hand():
    # predicted class spoof when p >= 0.5; confidence max(p, 1-p); 15 bins of width 1/15
    p = np.array([0.95, 0.92, 0.30, 0.60, 0.50, 0.10])
    y = np.array([1, 0, 0, 1, 0, 0])
    # confidences 0.95 0.92 0.70 0.60 0.50 0.90 -> bins 14 13 10 8 7 13
    # bin 14: {0.95 correct}: |1 - 0.95| = 0.05, weight 1/6
    # bin 13: {0.92 wrong, 0.90 correct}: |0.5 - 0.91| = 0.41, weight 2/6
    # bin 10: {0.70 correct}: 0.30; bin 8: {0.60 correct}: 0.40; bin 7: {0.50 wrong}: 0.50
    expected = (0.05 + 2 * 0.41 + 0.30 + 0.40 + 0.50) / 6
    assert dg.expected_calibration_error(p, y, bins=15) == pytest.approx(expected)
    assert dg.expected_calibration_error([1.0, 0.0], [1, 0], bins=15) == 0.0
    with pytest.raises(ValueError):
        dg.expected_calibration_error(p, y[:3], bins=15)


def test_gradient_snr_streaming_equals_the_matrix_form(tiny):
    model, loss_fn, inputs, labels = tiny
    batches = [(inputs[i : i + 6], labels[i : i + 6]) for i in range(0, 20, 6)]
    result = dg.gradient_snr(model, loss_fn, batches)
    grads = []
    for i in range(20):
        loss = dg.clip_loss(model, loss_fn, inputs[i : i + 1], labels[i : i + 1])
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))]))
    matrix = torch.stack(grads)
    mean = matrix.mean(0)
    noise = (matrix - mean).pow(2).sum(1).mean()
    assert result.clips == 20
    assert result.signal == pytest.approx(mean.pow(2).sum().item(), rel=1e-9)
    assert result.noise == pytest.approx(noise.item(), rel=1e-9)
    assert result.snr == pytest.approx(result.signal / result.noise)


def test_weight_norms_per_layer_and_total(tiny):
    model = tiny[0]
    rows = dg.weight_norms(model)
    assert [r.name for r in rows][-1] == "total"
    assert rows[-1].params == 217
    everything = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert rows[-1].l2 == pytest.approx(everything.norm().item())
    assert rows[-1].rms == pytest.approx(everything.pow(2).mean().sqrt().item())
    assert rows[0].l2 == pytest.approx(model.body[0].weight.norm().item())


def test_local_linearity_is_exact_for_a_linear_loss_and_not_for_a_curved_one(tiny):
    torch.manual_seed(0)
    linear = LinearScore()
    inputs = torch.randn(12, 5, dtype=torch.float64)
    labels = torch.zeros(12, dtype=torch.float64)
    batches = [(inputs[:6], labels[:6]), (inputs[6:], labels[6:])]
    scales = (1e-4, 1e-2, 1e-1)
    rows = dg.local_linearity(linear, lambda logits, _y: logits.mean(), batches, scales, 4,
                              torch.Generator().manual_seed(0))
    assert [r.scale for r in rows] == list(scales)
    for row in rows:
        assert row.directions == 4
        assert row.rel_error_mean < 1e-8
        assert row.actual_change_mean == pytest.approx(row.predicted_change_mean, abs=1e-12)

    model, loss_fn, x, y = tiny
    before = [p.detach().clone() for p in model.parameters()]
    curved = dg.local_linearity(model.float(), loss_fn, [(x.float(), y)], scales, 4,
                                torch.Generator().manual_seed(0))
    model.double()
    # the original model is untouched; the error grows with the step (second-order term)
    for p, p0 in zip(model.parameters(), before):
        torch.testing.assert_close(p.detach(), p0, rtol=0, atol=1e-7)
    errors = [r.rel_error_median for r in curved]
    assert errors[0] < 1e-2 < errors[-1]
    assert errors == sorted(errors)


def test_collect_outputs_uses_one_pass_and_the_bce_mean(tiny):
    model, loss_fn, inputs, labels = tiny
    out = dg.collect_outputs(model, loss_fn, [(inputs[:7], labels[:7]), (inputs[7:], labels[7:])])
    assert out.embeddings.shape == (20, 4)
    torch.testing.assert_close(out.logits, model(inputs).detach())
    assert out.mean_loss == pytest.approx(loss_fn(model(inputs), labels).item())


def _summary_of(traces: list[float], trainable_params: int = 1000) -> tuple[dg.TraceSummary, np.ndarray]:
    samples = torch.tensor(traces, dtype=torch.float64)[:, None]
    result = dg.HutchinsonTraces(samples=samples, losses=torch.zeros(len(traces), dtype=torch.float64))
    return dg.summarize_traces(result, trainable_params, DiagnosticsConfig.bands), result.traces.numpy()


def test_hessian_figure_marks_the_statistics_on_a_band_gauge(tmp_path, tiny):
    model, loss_fn, inputs, labels = tiny
    result = dg.hutchinson_trace(model, loss_fn, inputs[:6], labels[:6], 4, torch.Generator().manual_seed(0))
    summary = dg.summarize_traces(result, dg.count_trainable(model), DiagnosticsConfig.bands)
    figure = dg.hessian_summary_figure(summary, result.traces.numpy())
    gauge, axis = figure.axes
    # the gauge: log scale over the three bands, one marker at trace / params
    assert gauge.get_xscale() == "log"
    assert {t.get_text() for t in gauge.texts} >= {"flat", "moderate", "sharp"}
    [marker] = gauge.get_lines()
    assert marker.get_xdata()[0] == pytest.approx(summary.trace_per_param)
    assert any(f"trace ÷ params = {summary.trace_per_param:.6g} ({summary.band})" in t.get_text()
               for t in gauge.texts)
    # the per-clip axis: every clip, one line and one callout each for min, median, mean and max
    [points] = axis.collections
    assert len(points.get_offsets()) == 6
    statistics = {name: getattr(summary, name) for name in ("min", "median", "mean", "max")}
    assert sorted(line.get_xdata()[0] for line in axis.get_lines()) == pytest.approx(sorted(statistics.values()))
    callouts = {t.get_text() for t in axis.texts}
    assert callouts == {f"{name} {value:,.4g}" for name, value in statistics.items()}
    assert f"mean {summary.mean:,.2f}" in figure.get_suptitle()

    path = dg.plot_hessian_summary(summary, result.traces.numpy(), str(tmp_path / "hessian.png"))
    assert path.endswith("hessian.png")
    assert (tmp_path / "hessian.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hessian_figure_goes_symlog_when_traces_span_more_than_100x_the_median():
    narrow, narrow_traces = _summary_of([1.0, 2.0, 3.0, 150.0])  # max 75x the median 2.5
    wide, wide_traces = _summary_of([1.0, 2.0, 3.0, 300.0])  # max 120x the median
    linear_axis = dg.hessian_summary_figure(narrow, narrow_traces).axes[1]
    assert linear_axis.get_xscale() == "linear" and "log" not in linear_axis.get_xlabel()
    symlog_axis = dg.hessian_summary_figure(wide, wide_traces).axes[1]
    assert symlog_axis.get_xscale() == "symlog"
    assert symlog_axis.get_xlabel().endswith("symmetric log scale")
    assert symlog_axis.get_xlim() == pytest.approx((0.0, 600.0))  # the clips set the view


def test_hessian_figure_pins_an_off_scale_trace_per_param_to_the_gauge_edge():
    summary, traces = _summary_of([-4.0, -1.0, 2.0])  # negative mean trace: off the log gauge
    gauge = dg.hessian_summary_figure(summary, traces).axes[0]
    [marker] = gauge.get_lines()
    assert marker.get_xdata()[0] == pytest.approx(gauge.get_xlim()[0])
    assert any("off scale: drawn at the edge" in t.get_text() for t in gauge.texts)


# -- the stage on a real lake: real speech vs espeak-ng, real ingest, features and trainer -----
SPEECH = Path("/usr/share/pocketsphinx/test/data")
SENTENCES = ("the quick brown fox jumps over the lazy dog", "she sells sea shells by the sea shore",
             "a stitch in time saves nine", "every cloud has a silver lining",
             "the early bird catches the worm", "actions speak louder than words")


@pytest.fixture(scope="module")
def trained_lake(tmp_path_factory):
    """Two folder corpora (3 real + 3 espeak-ng clips each), ingested, featurised (raw), and a
    one-epoch tiny Mel-CNN run trained on one and evaluated on the other by dfpipe.train."""
    from dfpipe.config import IngestConfig, MelCNNConfig, TrainConfig
    from dfpipe.features import run_features
    from dfpipe.ingest import corpus_entries, ingest
    from dfpipe.train import train

    root = tmp_path_factory.mktemp("diagnose")
    real = sorted(SPEECH.glob("cards/*.wav"))[:3] + sorted(SPEECH.glob("librivox/*.wav"))[:3]
    for index, corpus in enumerate(("lab", "heldout")):
        (root / corpus / "real").mkdir(parents=True)
        (root / corpus / "fake" / "espeak").mkdir(parents=True)
        for k in range(3):
            source = real[index * 3 + k]
            (root / corpus / "real" / source.name).write_bytes(source.read_bytes())
            speak(root / corpus / "fake" / "espeak" / f"s{k}.wav", SENTENCES[index * 3 + k])
    lake = str(root / "lake")
    ingest_config = IngestConfig()
    for corpus in ("lab", "heldout"):
        ingest(lake, corpus, corpus_entries("folder", root / corpus, ingest_config), ingest_config)
        run_features(lake, corpus, "raw")
    summary = train(TrainConfig(epochs=1, batch_size=4, device="cpu"), lake, arch="mel-cnn",
                    train_data="lab:raw@*", eval_data={"test": "heldout:raw@*"},
                    model_config=MelCNNConfig(channels=(4, 8), embed_dim=8), log=lambda line: None)
    return lake, summary.run_id


def test_diagnose_writes_three_tables_and_rereads_them(trained_lake):
    lake_uri, run_id = trained_lake
    config = DiagnosticsConfig(per_class=2, draws=2, directions=1, scales=(1e-3, 1e-1), batch_size=2)
    phases = []
    result = dg.diagnose(lake_uri, run_id, config=config, progress=lambda *args: phases.append(args))
    assert not result.skipped
    assert result.epoch == 1 and result.holdout == "heldout:raw@*"
    assert {p[0] for p in phases} == {"hessian trace", "outputs", "local linearity"}
    assert ("hessian trace", 4, 4) in phases

    lake = Lake(lake_uri)
    con = lake.connect()
    hessian = con.execute("select label, count(*), min(draws), count(trace) from diagnostics_hessian "
                          "group by label order by label").fetchall()
    assert hessian == [("bonafide", 2, 2, 2), ("spoof", 2, 2, 2)]  # 2 of the 3 clips of each label
    metrics = dict(con.execute("select metric, value from diagnostics_summary where layer is null").fetchall())
    assert metrics["clips_spoof"] == metrics["clips_bonafide"] == 2
    trace_mean = con.execute("select avg(trace) from diagnostics_hessian").fetchone()[0]
    assert metrics["hessian_trace_mean"] == pytest.approx(trace_mean)
    assert metrics["generalization_gap"] == pytest.approx(metrics["holdout_loss"] - metrics["train_loss"])
    assert metrics["trainable_params"] == con.execute("select trainable_params from runs").fetchone()[0]
    assert metrics["hessian_trace_mean"] / metrics["trainable_params"] == pytest.approx(metrics["trace_per_param"])
    assert 0 <= metrics["ece"] <= 1 and metrics["davies_bouldin"] > 0
    assert result.band == dg.curvature_band(metrics["trace_per_param"], config.bands)
    # the holdout loss of the diagnostics equals the trainer's predictions for the same clips
    bce = con.execute(
        "select avg(case when p.label = 'spoof' then ln(1 + exp(-spoof_logit)) else ln(1 + exp(spoof_logit)) end) "
        "from predictions p join diagnostics_hessian h using (clip_id) where p.dataset = 'test'").fetchone()[0]
    assert metrics["holdout_loss"] == pytest.approx(bce, rel=1e-4)
    assert con.execute("select count(*) from diagnostics_linearity").fetchone() == (2,)
    assert [label for label, _ in result.table()][:6] == [label for label, _ in dg.SPEC_TABLE]

    again = dg.diagnose(lake_uri, run_id, config=config)
    assert again.skipped and again.metrics == result.metrics and again.linearity == result.linearity


def test_diagnose_says_what_is_missing(trained_lake):
    lake_uri, run_id = trained_lake
    with pytest.raises(DfpipeError, match="not in"):
        dg.diagnose(lake_uri, "nosuchrun")
    with pytest.raises(DfpipeError, match="no epoch 7"):
        dg.diagnose(lake_uri, run_id, epoch=7)
    with pytest.raises(DfpipeError, match="none of its clips has features.*dfpipe features --corpus heldout"):
        dg.diagnose(lake_uri, run_id, holdout="heldout:mp3_128k@*")


def test_diagnose_cli_prints_the_study_table_and_draws_the_figure(trained_lake, tmp_path, prefect_server):
    lake_uri, run_id = trained_lake
    figure = tmp_path / "hessian.png"
    args = ["diagnose", "--lake", lake_uri, "--run", run_id, "--per-class", "2", "--draws", "1", "--directions", "1",
            "--device", "cpu", "--figure", str(figure)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    for label, _ in dg.SPEC_TABLE + dg.COMPLEMENTARY_TABLE:
        assert label.split(" (")[0] in result.output
    assert "diagnostics written" in result.output and figure.stat().st_size > 10_000
    assert "hessian trace: 4/4" in result.output  # no terminal: progress as log lines
    again = CliRunner().invoke(main, args)
    assert "already in the lake" in again.output
    bad = CliRunner().invoke(main, ["diagnose", "--lake", lake_uri, "--run", "nosuchrun"])
    assert bad.exit_code != 0 and "is not in" in bad.output


def test_the_report_shows_each_diagnose_result(trained_lake, tmp_path):
    from dfpipe.metrics import compute_metrics
    from dfpipe.report import write_report

    lake_uri, run_id = trained_lake
    result = dg.diagnose(lake_uri, run_id, config=DiagnosticsConfig(per_class=2, draws=1, directions=1,
                                                                     scales=(1e-3,), seed=11))
    compute_metrics(lake_uri)
    page = write_report(lake_uri, tmp_path / "report").read_text()
    figure = tmp_path / "report" / f"hessian_{result.shard[:8]}.png"
    assert figure.stat().st_size > 10_000 and f"run {run_id[:8]} epoch {result.epoch}" in page
    assert "sql/diagnostics_report.sql" in page and result.shard in page


@pytest.mark.slow
def test_diagnose_flow_on_a_local_cluster(trained_lake, prefect_server):
    from dfpipe.flows.diagnose import run_diagnose_flow

    lake_uri, run_id = trained_lake
    config = DiagnosticsConfig(per_class=2, draws=1, directions=1, scales=(1e-3,), seed=5)
    [result] = run_diagnose_flow(lake_uri, [(run_id, None)], config=config, dask_config=DaskConfig(n_workers=1))
    assert (result.run_id, result.epoch, result.skipped) == (run_id, 1, False)
    assert Lake(lake_uri).connect().execute(
        "select count(*) from diagnostics_hessian where seed = 5").fetchone() == (4,)


def _key(diagnostics_id: str, n: int) -> dict[str, list]:
    return {"diagnostics_id": [diagnostics_id] * n, "run_id": ["r1"] * n, "epoch": [3] * n,
            "holdout": ["demo:flac@test"] * n, "seed": [0] * n}


def test_diagnostics_report_sql_given_expected_rows(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_shard("runs", pa.table({
        "run_id": ["r1"], "arch": ["mel-multiscale"], "train_corpus": ["demo"], "train_condition": ["flac"],
        "seed": [7], "epochs_planned": [50], "params": [1000], "trainable_params": [1000],
        "checkpoint_bytes": [4000], "device": ["cpu"], "config_json": ["{}"]}), shard="r1")
    for did, shift in (("d1", 0.0), ("d2", 100.0)):  # two results of the same checkpoint (other settings)
        metrics = {"hessian_trace_mean": 2.0 + shift, "hessian_trace_std": 1.0, "hessian_trace_min": 1.0,
                   "hessian_trace_max": 3.0, "hessian_trace_median": 2.0, "trace_per_param": 0.002,
                   "holdout_loss": 0.5, "train_loss": 0.2, "generalization_gap": 0.3, "grad_snr": 0.1,
                   "weight_rms": 0.05, "davies_bouldin": 1.5, "ece": 0.04, "holdout_accuracy": 0.75,
                   "trainable_params": 1000.0, "hessian_draws": 30.0, "wall_s": 9.0}
        rows = {"metric": [*metrics, "weight_rms"], "value": [*metrics.values(), 99.0],
                "layer": [None] * len(metrics) + ["head.weight"],  # per-layer rows stay out
                "detail": ["moderate" if m == "trace_per_param" else None for m in metrics] + [None]}
        lake.write_shard("diagnostics_summary", pa.table({**_key(did, len(rows["metric"])), **rows}), shard=did)
        lake.write_shard("diagnostics_hessian", pa.table({
            **_key(did, 3), "clip_id": ["a", "b", "c"], "corpus": ["demo"] * 3, "condition": ["flac"] * 3,
            "label": ["spoof", "spoof", "bonafide"], "loss": [0.1, 0.2, 0.3], "trace": [1.0, 3.0, -2.0],
            "trace_std_error": [0.1, 0.1, None], "draws": [30] * 3}), shard=did)
        lake.write_shard("diagnostics_linearity", pa.table({
            **_key(did, 2), "scale": [1e-4, 1e-1], "step_norm": [0.01, 10.0], "directions": [8, 8],
            "actual_change_mean": [1e-6, 0.2], "predicted_change_mean": [1e-6, 0.1],
            "abs_error_mean": [0.0, 0.1], "rel_error_mean": [0.001, 0.5], "rel_error_median": [0.002, 0.4]}),
            shard=did)
    con = lake.connect()
    build_models(con, MetricsConfig(), [m for m in load_models() if m.name in ("stg_runs", "diagnostics_report")])
    result = con.execute("select * from diagnostics_report")
    rows = [dict(zip([d[0] for d in result.description], row)) for row in result.fetchall()]
    assert [r["diagnostics_id"] for r in rows] == ["d1", "d2"]
    first = rows[0]
    assert first == {
        "diagnostics_id": "d1", "run_id": "r1", "epoch": 3, "holdout": "demo:flac@test", "seed": 0,
        "arch": "mel-multiscale", "train_corpus": "demo", "train_condition": "flac", "trainable_params": 1000,
        "count_spoof_clips": 2, "count_bonafide_clips": 1, "draws_per_clip": 30, "hessian_trace_mean": 2.0,
        "hessian_trace_std": 1.0, "hessian_trace_min": 1.0, "hessian_trace_max": 3.0,
        "hessian_trace_median": 2.0, "trace_per_param": 0.002, "curvature_band": "moderate",
        "spoof_trace_mean": 2.0, "bonafide_trace_mean": -2.0, "count_negative_traces": 1, "holdout_loss": 0.5,
        "train_loss": 0.2, "generalization_gap": 0.3, "grad_snr": 0.1, "weight_rms": 0.05,
        "davies_bouldin": 1.5, "ece": 0.04, "holdout_accuracy": 0.75, "smallest_scale": 1e-4,
        "linearity_error_smallest_scale": 0.002, "largest_scale": 0.1, "linearity_error_largest_scale": 0.4,
        "wall_s": 9.0,
    }
    assert rows[1]["hessian_trace_mean"] == 102.0
