"""Calibration and fusion: the prior-weighted fit against an independent minimiser, the SQL
tables against the numpy ASVspoof reference, and calibration lowering actDCF and Cllr on a
held-out split of the built-in demo corpus."""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from asv_reference import act_dcf, cllr, threshold_metrics
from click.testing import CliRunner
from scipy.optimize import minimize

from dfpipe.calibration import calibrate, fuse
from dfpipe.cli import main
from dfpipe.config import (
    CalibrationConfig,
    FeaturesConfig,
    IngestConfig,
    MetricsConfig,
    TrainConfig,
)
from dfpipe.errors import DfpipeError
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake, conform
from dfpipe.llr import ScoreMap, calibration_uri, fit_score_map, read_calibration
from dfpipe.metrics import build_models, compute_metrics, load_models, select_models
from dfpipe.predictions import checkpoint_uri
from dfpipe.train import train

# A val split large enough to be the dev set; lr as tests/test_train.py's QUICK recipe.
RECIPE = TrainConfig(epochs=3, batch_size=16, lr=1e-3, val_fraction=0.3)


def _objective(params, scores, is_spoof, prior, inverse_regularisation):
    """The prior-weighted logistic loss, written out (natural log), plus the L2 term."""
    w, b = params[:-1], params[-1]
    log_odds = scores @ w + b
    n, n_spoof = len(is_spoof), is_spoof.sum()
    weights = np.where(is_spoof, prior * n / n_spoof, (1 - prior) * n / (n - n_spoof))
    losses = np.where(is_spoof, np.logaddexp(0, -log_odds), np.logaddexp(0, log_odds))
    return np.sum(weights * losses) + w @ w / (2 * inverse_regularisation)


@pytest.mark.parametrize("k", [1, 2])
def test_the_fit_is_the_prior_weighted_logistic_optimum(k):
    rng = np.random.default_rng(k)
    is_spoof = np.r_[np.zeros(70, bool), np.ones(30, bool)]
    scores = rng.normal(size=(100, k)) + 1.5 * is_spoof[:, None] * np.arange(1, k + 1)
    config = CalibrationConfig()
    fitted = fit_score_map(scores if k > 1 else scores[:, 0], is_spoof, fitted_on="dev",
                           inputs=tuple(f"r{i}@1" for i in range(k)), config=config)
    reference = minimize(_objective, np.zeros(k + 1), method="BFGS", options={"gtol": 1e-10},
                         args=(scores, is_spoof, config.prior, config.inverse_regularisation)).x
    assert fitted.weights == pytest.approx(tuple(reference[:-1]), abs=1e-4)
    # the LLR is the fitted log-odds minus the prior's log-odds
    assert fitted.intercept == pytest.approx(reference[-1] - math.log(config.prior / (1 - config.prior)), abs=1e-4)
    assert (fitted.n_bonafide, fitted.n_spoof) == (70, 30)
    assert ScoreMap.from_json(fitted.to_json(), "here") == fitted


def test_a_dev_set_with_one_class_is_refused():
    with pytest.raises(DfpipeError, match="needs both"):
        fit_score_map(np.zeros(4), np.zeros(4, bool), fitted_on="dev", inputs=("r@1",))


def _prediction_rows(dataset, cm_bonafide, cm_spoof):
    n_b, n_s = len(cm_bonafide), len(cm_spoof)
    return conform("predictions", pa.table({
        "run_id": ["r"] * (n_b + n_s), "epoch": pa.array([1] * (n_b + n_s), pa.int32()),
        "dataset": [dataset] * (n_b + n_s), "clip_id": [f"{dataset}{i}" for i in range(n_b + n_s)],
        "corpus": ["demo"] * (n_b + n_s), "condition": ["raw"] * (n_b + n_s),
        "label": ["bonafide"] * n_b + ["spoof"] * n_s,
        "spoof_logit": [-float(s) for s in [*cm_bonafide, *cm_spoof]],
    }))


def test_calibration_metrics_equal_the_numpy_reference():
    rng = np.random.default_rng(0)
    bonafide, spoof = rng.normal(3, 2, 80), rng.normal(-1, 2, 40)  # cm-scores, over-confident
    slope, intercept = 0.4, -0.3
    con = duckdb.connect()
    con.register("p", _prediction_rows("test", bonafide, spoof))
    con.execute("create view predictions as select * from p")
    con.register("c", conform("calibrations", pa.table({
        "run_id": ["r"], "epoch": pa.array([1], pa.int32()), "fitted_on": ["val"], "slope": [slope],
        "intercept": [intercept], "prior": [0.3], "n_bonafide": [10], "n_spoof": [10]})))
    con.execute("create view calibrations as select * from c")
    build_models(con, MetricsConfig(), select_models(load_models(), ["calibration_metrics",
                                                                     "bayes_threshold_metrics"]))
    row = con.execute("select * from calibration_metrics where grouping = 'overall'").fetchone()
    got = dict(zip([d[0] for d in con.description], row))
    calibrated_b, calibrated_s = slope * bonafide - intercept, slope * spoof - intercept  # cm_llr
    assert got["act_dcf_raw"] == pytest.approx(act_dcf(bonafide, spoof)[0], abs=1e-12)
    assert got["cllr_raw"] == pytest.approx(cllr(bonafide, spoof), abs=1e-12)
    assert got["act_dcf"] == pytest.approx(act_dcf(calibrated_b, calibrated_s)[0], abs=1e-12)
    assert got["cllr"] == pytest.approx(cllr(calibrated_b, calibrated_s), abs=1e-12)
    assert got["act_dcf_threshold"] == pytest.approx(-CalibrationConfig().bayes_threshold, abs=1e-12)
    assert (got["fitted_on"], got["is_held_out"], got["n_bonafide"], got["n_spoof"]) == ("val", True, 80, 40)
    # the bayes policy: spoof when the calibrated spoof llr exceeds ln(beta), beta = 0.95 / 0.5
    row = con.execute("select * from bayes_threshold_metrics where grouping = 'overall'").fetchone()
    bayes = dict(zip([d[0] for d in con.description], row))
    spoof_llr = -np.concatenate([calibrated_b, calibrated_s])
    expected = threshold_metrics(np.r_[np.zeros(80, bool), np.ones(40, bool)], spoof_llr > math.log(1.9))
    assert {k: bayes[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert (bayes["policy"], bayes["threshold"]) == ("bayes_llr", pytest.approx(math.log(1.9), abs=1e-12))


@pytest.fixture(scope="module")
def trained_lake(demo_corpus_small, tmp_path_factory):
    """The small demo corpus, one quick Mel-CNN run (val 30 % of train, test scored every epoch)."""
    root = str(tmp_path_factory.mktemp("calibration-lake"))
    ingest(root, "demo", corpus_entries("csv", demo_corpus_small, IngestConfig()), IngestConfig())
    run_features(root, "demo", "raw", FeaturesConfig())
    summary = train(RECIPE, root, arch="mel-cnn", train_data="demo", eval_data={"test": "demo@test"},
                    log=lambda line: None)
    return root, summary.run_id


def _labelled(lake, run_id, epoch, dataset):
    rows = Lake(lake).connect().execute(
        "select spoof_logit, label = 'spoof' from predictions where run_id = ? and epoch = ? and dataset = ? "
        "order by clip_id", [run_id, epoch, dataset]).fetchall()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def test_calibration_lowers_act_dcf_and_cllr_on_the_held_out_split(trained_lake):
    lake, run_id = trained_lake
    summary = calibrate(lake, run_id, on="val")
    assert summary.epoch == RECIPE.epochs
    # stored beside the checkpoint, and what the lake row says
    stored = read_calibration(checkpoint_uri(Lake(lake), run_id, summary.epoch))
    assert stored == summary.score_map and summary.calibration_uri == calibration_uri(
        checkpoint_uri(Lake(lake), run_id, summary.epoch))
    compute_metrics(lake)
    con = Lake(lake).connect()
    (row,) = con.execute(
        "select act_dcf_raw, act_dcf, cllr_raw, cllr from read_parquet(?) where dataset = 'test' and "
        "grouping = 'overall' and epoch = ? and fitted_on = 'val' and is_held_out",
        [f"{lake}/metrics/calibration_metrics.parquet", summary.epoch]).fetchall()
    act_raw, act_calibrated, cllr_raw, cllr_calibrated = row
    assert act_calibrated < act_raw and cllr_calibrated < cllr_raw, row
    # the SQL applied the stored map: recompute from the predictions with the numpy reference
    logits, is_spoof = _labelled(lake, run_id, summary.epoch, "test")
    cm_llr = -stored.llr(logits)
    assert cllr_calibrated == pytest.approx(cllr(cm_llr[~is_spoof], cm_llr[is_spoof]), abs=1e-9)
    assert act_calibrated == pytest.approx(act_dcf(cm_llr[~is_spoof], cm_llr[is_spoof])[0], abs=1e-9)


def test_fusion_is_a_pseudo_run_of_the_metric_tables(trained_lake):
    lake, run_id = trained_lake
    summary = fuse(lake, [run_id, run_id], on="val", epochs=[2, 3])
    assert summary.run_id.startswith(CalibrationConfig().fusion_prefix)
    assert summary.score_map.inputs == (f"{run_id}@2", f"{run_id}@3")
    assert set(summary.datasets) == {"val", "test"}
    # the fused score of each clip is the fitted combination of the two epochs' logits
    fused, is_spoof = _labelled(lake, summary.run_id, 0, "test")
    inputs = np.column_stack([_labelled(lake, run_id, epoch, "test")[0] for epoch in (2, 3)])
    assert fused == pytest.approx(summary.score_map.llr(inputs), abs=1e-12)
    assert is_spoof.tolist() == _labelled(lake, run_id, 3, "test")[1].tolist()
    weights = json.loads(Lake(lake).fs.open(summary.fusion_uri).read())["weights"]
    assert tuple(weights) == summary.score_map.weights
    compute_metrics(lake)
    datasets = Lake(lake).connect().execute(
        "select dataset, epoch from read_parquet(?) where run_id = ? and grouping = 'overall' order by 1",
        [f"{lake}/metrics/score_metrics.parquet", summary.run_id]).fetchall()
    assert datasets == [("test", 0), ("val", 0)]


def test_the_commands_print_one_line_on_bad_input(trained_lake):
    lake, run_id = trained_lake
    result = CliRunner().invoke(main, ["calibrate", "--lake", lake, "--run", run_id, "--on", "nowhere"])
    assert result.exit_code == 1 and "no labelled predictions of dataset 'nowhere'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["fuse", "--lake", lake, "--runs", run_id, "--on", "val"])
    assert result.exit_code == 1 and "a fusion needs two scores or more" in result.output
    result = CliRunner().invoke(main, ["calibrate", "--lake", lake, "--run", run_id, "--on", "val"])
    assert result.exit_code == 0 and "fitted on 'val'" in result.output, result.output
