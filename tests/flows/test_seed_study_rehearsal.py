"""The seed study rehearsed end to end on stand-in corpora: ``dfpipe corpus build-standin``
for each corpus it names, then ``dfpipe study studies/seed-study.yaml --rehearse`` through
the real CLI, Prefect and Dask; every study table must hold the rows its matrix implies.
Slow (28 runs; see ``pytestmark``): marked, and run in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dfpipe.config import POLISHED_SUFFIX, MetricsConfig
from dfpipe.study import load_study, plan_study
from dfpipe.study.rehearsal import rehearse

# 28 runs through Prefect and Dask: ~6 min on 2 cores, ~20 min when other jobs share them
# (load ~8): past the suite's 900 s per-test limit then.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]

DFPIPE = str(Path(sys.executable).parent / "dfpipe")
SEED_STUDY = Path(__file__).resolve().parents[2] / "studies" / "seed-study.yaml"
STANDINS = {"CUSTOM_CORPUS": "folder", "CUSTOM_CORPUS_LARGE": "folder", "ASVSPOOF5": "asvspoof5",
            "DFEVAL2024": "deepfake-eval-2024"}
"""The seed study's corpus variables and the stand-in each gets."""
N = 24  # clips per split: the rehearsal's own cap (RehearsalConfig.clips_per_split)
PER_POLICY = ("run_results", "ablation_matrix", "leaderboard", "model_size")
"""Study tables with one row per run per epoch policy."""


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory, demo_corpus_small):
    root = tmp_path_factory.mktemp("rehearsal")
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(DFPIPE_CACHE=str(demo_corpus_small.parent), WAVLM_LARGE="microsoft/wavlm-large")
    for seed, (variable, like) in enumerate(STANDINS.items()):
        out = root / variable.lower()
        subprocess.run([DFPIPE, "corpus", "build-standin", "--like", like, "--out", str(out), "--n", str(N),
                        "--seed", str(seed)], env=env, check=True, capture_output=True, timeout=300)
        env[variable] = str(out)
    lake = root / "lake"
    done = subprocess.run([DFPIPE, "study", str(SEED_STUDY), "--lake", str(lake), "--rehearse", "--workers", "2"],
                          check=False, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=2400)
    assert done.returncode == 0, done.stdout[-4000:]
    os.environ.update({k: env[k] for k in (*STANDINS, "WAVLM_LARGE")})  # for load_study below
    try:
        study = rehearse(load_study(SEED_STUDY)).study
    finally:
        for variable in (*STANDINS, "WAVLM_LARGE"):
            os.environ.pop(variable)
    return lake, done.stdout, study


def _rows(lake: Path, table: str) -> list[dict]:
    return pq.read_table(lake / "metrics" / f"{table}.parquet").to_pylist()


def test_the_rehearsal_says_what_it_scaled_down(rehearsed):
    _, output, _ = rehearsed
    assert "rehearsal, scaled down:" in output
    assert "epochs: every run 1" in output and "WavLM: a random 24-layer WavLM" in output
    assert "init_from custom_clean@wavlm-cnn@17 -> custom_clean@wavlm-cnn" in output


def test_every_study_table_has_the_rows_the_matrix_implies(rehearsed):
    lake, _, study = rehearsed
    plan = plan_study(study)
    runs = len(plan.runs)
    assert runs == 28 and {r.arch for r in plan.runs} >= {"mel-vit", "wavlm-aasist", "wavlm-cnn"}
    policies = set(MetricsConfig.epoch_policies)
    assert len(_rows(lake, "training_dynamics")) == runs  # one epoch each
    for table in PER_POLICY:
        rows = _rows(lake, table)
        assert len(rows) == runs * len(policies), table
        assert {r["epoch_policy"] for r in rows} == policies, table
        assert len({(r["run_id"], r["epoch_policy"]) for r in rows}) == len(rows), table
    assert {r["epoch_policy"] for r in _rows(lake, "leaderboard_correlation")} == policies
    assert len(_rows(lake, "leaderboard_correlation")) == len(policies)
    # polished twins: each run scored on a dataset and its '<dataset>_polished'
    twins = sum(1 for r in plan.runs for dataset in study.eval_roles(r.train_set)
                if dataset + POLISHED_SUFFIX in study.eval_roles(r.train_set))
    assert twins == 13  # the custom-trained runs: ablation-custom, cross-domain, polished-*
    assert len(_rows(lake, "polished_gap")) == twins
    # every run has test and ood numbers, the ASV5-trained ones on asv5_eval as their test
    results = _rows(lake, "run_results")
    assert all(r["test_accuracy"] is not None and r["ood_accuracy"] is not None for r in results)
