"""Training on the built-in small demo corpus: learning, tables, kill-and-resume."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dfpipe.config import FeaturesConfig, IngestConfig, TrainConfig
from dfpipe.errors import ConfigError, DfpipeError
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake
from dfpipe.train import mean_bce, stratified_split, train

# The study's lr (5e-5) needs tens of epochs; three epochs on ~120 clips need a larger step.
QUICK = TrainConfig(epochs=3, batch_size=16, lr=1e-3)
EVALS = {"test": "demo@test"}


@pytest.fixture(scope="module")
def untrained_lake(demo_corpus_small, tmp_path_factory):
    """The small demo corpus ingested, with raw-condition features; never trained in."""
    root = str(tmp_path_factory.mktemp("lake"))
    config = IngestConfig()
    ingest(root, "demo", corpus_entries("csv", demo_corpus_small, config), config)
    run_features(root, "demo", "raw", FeaturesConfig())
    return root


@pytest.fixture
def demo_lake(untrained_lake, tmp_path):
    """A private copy per test: a run trained by one test must not be 'already done' in another."""
    return shutil.copytree(untrained_lake, str(tmp_path / "lake"))


def _predictions(lake: str, run_id: str) -> list[tuple]:
    return Lake(lake).connect().execute(
        "select dataset, epoch, clip_id, label, spoof_logit, split, generator from predictions "
        "where run_id = ? order by all", [run_id]).fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mel-cnn", "mel-multiscale"])
def test_mel_models_learn_and_write_every_epoch(demo_lake, arch):
    summary = train(QUICK, demo_lake, arch=arch, train_data="demo", eval_data=EVALS, log=lambda line: None)
    con = Lake(demo_lake).connect()
    n_test = con.execute("select count(*) from clips where split = 'test'").fetchone()[0]
    counts = con.execute(
        "select dataset, epoch, count(*), count(distinct clip_id) from predictions where run_id = ? "
        "group by all order by all", [summary.run_id]).fetchall()
    assert counts == [(name, epoch, n, n) for name, n in (("test", n_test), ("val", summary.n_val))
                      for epoch in (1, 2, 3)]
    assert summary.n_train + summary.n_val == con.execute(
        "select count(*) from clips where split = 'train'").fetchone()[0]
    epochs = con.execute("select epoch, train_loss, checkpoint_bytes from epochs where run_id = ? order by 1",
                         [summary.run_id]).fetchall()
    assert [e[0] for e in epochs] == [1, 2, 3] and epochs[-1][1] < epochs[0][1]
    run = con.execute("select arch, params, checkpoint_bytes, train_condition from runs where run_id = ?",
                      [summary.run_id]).fetchone()
    assert run == (arch, summary.params, summary.checkpoint_bytes, "raw")
    # grouping columns come from clips
    assert con.execute("select count(*) from predictions where run_id = ? and split is null",
                       [summary.run_id]).fetchone()[0] == 0
    # beats chance on the held-out test split (rank-based: thresholds need more epochs)
    last = [(label == "spoof", logit) for dataset, epoch, _, label, logit, *_ in
            _predictions(demo_lake, summary.run_id) if dataset == "test" and epoch == 3]
    assert roc_auc_score([y for y, _ in last], [s for _, s in last]) > 0.75
    # val_loss: the mean BCE of the very logits stored as the epoch's val predictions
    val = np.array([(label == "spoof", logit) for dataset, epoch, _, label, logit, *_ in
                    _predictions(demo_lake, summary.run_id) if dataset == "val" and epoch == 3])
    (val_loss,) = con.execute("select val_loss from epochs where run_id = ? and epoch = 3",
                              [summary.run_id]).fetchone()
    assert val_loss == pytest.approx(np.mean(np.logaddexp(0, val[:, 1]) - val[:, 0] * val[:, 1]), rel=1e-12)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_tables(untrained_lake, tmp_path):
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    shutil.copytree(untrained_lake, whole)
    shutil.copytree(untrained_lake, killed)
    reference = train(QUICK, whole, arch="mel-cnn", train_data="demo", eval_data=EVALS, log=lambda line: None)

    # The child dies by SIGKILL right after epoch 1 is committed (the log line follows the
    # commit): deterministic, whatever the machine's speed.
    script = ("import os, signal; from dfpipe.config import TrainConfig; from dfpipe.train import train\n"
              "def die_after_first(line):\n"
              "    if ' epoch 1/' in line: os.kill(os.getpid(), signal.SIGKILL)\n"
              f"train(TrainConfig(epochs=3, batch_size=16, lr=1e-3), {killed!r}, arch='mel-cnn', "
              f"train_data='demo', eval_data={EVALS!r}, log=die_after_first)")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    resumed = train(QUICK, killed, arch="mel-cnn", train_data="demo", eval_data=EVALS, log=lambda line: None)
    assert resumed.run_id == reference.run_id and 1 <= resumed.epochs_trained < 3
    assert _predictions(killed, resumed.run_id) == _predictions(whole, reference.run_id)
    query = "select epoch, train_loss, train_acc, n_train, checkpoint_bytes from epochs order by 1"
    assert Lake(killed).connect().execute(query).fetchall() == Lake(whole).connect().execute(query).fetchall()
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints" / resumed.run_id).glob("*.pt")) == [
        "epoch-001.pt", "epoch-002.pt", "epoch-003.pt", "state-003.pt"]


def test_mean_bce_is_the_mean_bce_with_logits():
    logits, labels = np.array([-40.0, -1.5, 0.0, 2.0, 35.0]), np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    # -y log(sigmoid(x)) - (1 - y) log(1 - sigmoid(x)) = log(1 + e^x) - y x, stable at |x| = 40
    assert mean_bce(logits, labels) == pytest.approx(np.mean(np.logaddexp(0, logits) - labels * logits), rel=1e-15)
    assert mean_bce(np.zeros(0), np.zeros(0)) is None


def test_stratified_split_is_seeded_and_keeps_both_labels():
    labels = np.array([0.0] * 40 + [1.0] * 60, np.float32)
    train_idx, val_idx = stratified_split(labels, 0.05, seed=3)
    assert len(val_idx) == 5 and set(labels[val_idx]) == {0.0, 1.0}
    assert np.array_equal(val_idx, stratified_split(labels, 0.05, seed=3)[1])
    assert sorted([*train_idx, *val_idx]) == list(range(100))


def test_bad_specs_fail_before_any_work(demo_lake):
    with pytest.raises(ConfigError, match="reserved"):
        train(QUICK, demo_lake, arch="mel-cnn", train_data="demo", eval_data={"val": "demo@test"})
    with pytest.raises(ConfigError, match="bad data spec"):
        train(QUICK, demo_lake, arch="mel-cnn", train_data="../etc")
    with pytest.raises(DfpipeError, match="no clips"):
        train(QUICK, demo_lake, arch="mel-cnn", train_data="nosuchcorpus")
    with pytest.raises(DfpipeError, match="dfpipe features"):
        train(QUICK, demo_lake, arch="mel-cnn", train_data="demo:mp3_128k")
