from __future__ import annotations

import glob

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.config import FeaturesConfig, IngestConfig
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake


@pytest.mark.slow
def test_train_then_score_archive_flows_on_a_local_cluster(demo_corpus_small, tmp_path, prefect_server):
    lake = Lake(str(tmp_path / "lake"))
    config = IngestConfig()
    ingest(lake.uri, "demo", corpus_entries("csv", demo_corpus_small, config), config)
    run_features(lake.uri, "demo", "raw", FeaturesConfig())

    # training runs as a Prefect task on a real LocalCluster (no GPU resource here: CPU)
    result = CliRunner().invoke(main, ["train", "--lake", lake.uri, "--arch", "mel-cnn", "--train", "demo",
                                       "--eval", "ood=demo@ood", "--epochs", "1", "--batch-size", "32",
                                       "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "1 epoch(s) committed" in result.output
    con = lake.connect()
    assert con.execute("select count(distinct dataset), min(epoch), max(epoch) from predictions").fetchone() == (
        2, 1, 1)
    checkpoint = con.execute("select checkpoint_uri from epochs").fetchone()[0]

    test_files = str(demo_corpus_small / "test")
    out = tmp_path / "scores"
    result = CliRunner().invoke(main, ["score-archive", test_files, "--checkpoint", checkpoint, "--out", str(out),
                                       "--workers", "2"])
    assert result.exit_code == 0, result.output
    n_test = len(glob.glob(f"{test_files}/**/*.flac", recursive=True))
    assert f"{n_test} file(s) scored, 0 rejected" in result.output
    assert pq.read_table(str(out / "scores")).num_rows == n_test

    result = CliRunner().invoke(main, ["score", "--lake", lake.uri, "--run",
                                       con.execute("select run_id from runs").fetchone()[0],
                                       "--corpus", "demo", "--split", "test", "--dataset", "test"])
    assert result.exit_code == 0, result.output
    assert f"wrote {n_test} predictions" in result.output
