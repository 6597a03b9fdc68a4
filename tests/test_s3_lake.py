"""The lake in object storage: the stages against a real S3 protocol server on loopback.

moto's standalone server (the one s3fs is tested against) runs as a child process on
127.0.0.1; nothing in this test patches boto or s3fs. s3fs finds the server through
fsspec's ``FSSPEC_S3_ENDPOINT_URL`` and botocore's ``AWS_*`` variables, which this process,
its subprocesses and the Dask workers all read (``fsspec.config.conf`` is set too, since
this process imported fsspec before the variables existed). The corpus stays on local
disk; only the lake is in the bucket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import duckdb
import fsspec
import pytest
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.config import FeaturesConfig, IngestConfig, MelCNNConfig, TrainConfig
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import KILL_AFTER_COMMITS_ENV, Lake
from dfpipe.report import write_report
from dfpipe.score import score
from dfpipe.train import train

BUCKET = "dfpipe-test"
REPO = Path(__file__).parents[1]
ONE_EPOCH = TrainConfig(epochs=1, batch_size=32, lr=1e-3)
TINY_CNN = MelCNNConfig(channels=(4, 8), embed_dim=8)  # the lake is under test here, not the model
TRAIN_EVALS = {"test": "demo:flac@test", "ood": "demo:flac@ood"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(server: subprocess.Popen, endpoint: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """An empty bucket on a moto server of this module's own; yields its s3fs file system."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                "FSSPEC_S3_ENDPOINT_URL": endpoint,
            }.items():
                patch.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
                patch.delenv(name, raising=False)
            patch.setitem(fsspec.config.conf, "s3", {**fsspec.config.conf.get("s3", {}), "endpoint_url": endpoint})
            _wait_until_up(server, endpoint)
            # the test's own client: its listing cache must not refresh the lake's
            fs = fsspec.filesystem("s3", skip_instance_cache=True)
            fs.mkdir(BUCKET)
            yield fs
            fs.rm(BUCKET, recursive=True)
            fs.clear_instance_cache()  # no s3fs instance may outlive its server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _objects(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(fs.find(f"{BUCKET}/{prefix}"))


def _assert_no_temporary_objects(fs, prefix: str) -> None:
    leftovers = [key for key in _objects(fs, prefix) if ".tmp-" in key]
    assert leftovers == []


def _rows(lake: str, sql: str) -> list[tuple]:
    return Lake(lake).connect().execute(sql).fetchall()


@pytest.mark.slow
def test_every_stage_with_the_lake_in_a_bucket(bucket, demo_corpus_small, prefect_server, tmp_path):
    lake = f"s3://{BUCKET}/lake"
    config = IngestConfig()
    summary = ingest(lake, "demo", corpus_entries("csv", demo_corpus_small, config), config)
    assert (summary.clips, summary.rejects) == (200, 0)

    # conditions through the CLI: a Prefect flow on a 2-worker LocalCluster; the workers
    # read the corpus from local disk and commit their shards to the bucket
    result = CliRunner().invoke(main, ["condition", "--lake", lake, "--corpus", "demo", "--conditions", "flac",
                                       "--clips-per-shard", "50", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "200 audio rows and 0 rejects" in result.output
    assert run_features(lake, "demo", "flac", FeaturesConfig()).rows == 200

    # one epoch, then a second one resumed from the checkpoints in the bucket
    first = train(ONE_EPOCH, lake, arch="mel-cnn", train_data="demo:flac", eval_data=TRAIN_EVALS,
                  model_config=TINY_CNN, log=lambda line: None)
    lines: list[str] = []
    second = train(replace(ONE_EPOCH, epochs=2), lake, arch="mel-cnn", train_data="demo:flac",
                   eval_data=TRAIN_EVALS, model_config=TINY_CNN, log=lines.append)
    assert second.run_id == first.run_id and (second.epochs_done, second.epochs_trained) == (2, 1)
    assert lines[0] == f"run {first.run_id}: resuming after epoch 1"
    checkpoints = [key.rsplit("/", 1)[-1] for key in _objects(bucket, f"lake/checkpoints/{first.run_id}")]
    assert checkpoints == ["epoch-001.pt", "epoch-002.pt", "state-002.pt"]
    assert _rows(lake, "select epoch, checkpoint_uri from epochs order by 1") == [
        (1, f"{lake}/checkpoints/{first.run_id}/epoch-001.pt"), (2, second.checkpoint_uri)]
    sizes = {**dict(_rows(lake, "select split, count(*) from clips where split != 'train' group by 1")),
             "val": first.n_val}
    assert _rows(lake, "select dataset, epoch, count(*), count(distinct clip_id) from predictions "
                       "group by all order by all") == [
        (name, epoch, sizes[name], sizes[name]) for name in sorted(sizes) for epoch in (1, 2)]
    # scoring loads the last checkpoint from the bucket: the epoch-2 logits again
    assert score(lake, first.run_id, "demo@ood", dataset="rescored").rows == sizes["ood"]
    assert _rows(lake, "select count(*), max(abs(a.spoof_logit - b.spoof_logit)) < 1e-5 from predictions a "
                       "join predictions b using (clip_id) where a.dataset = 'ood' and a.epoch = 2 "
                       "and b.dataset = 'rescored' and b.epoch = 2") == [(sizes["ood"], True)]

    # metrics: the SQL reads the lake through fsspec; Parquet and metrics.duckdb land in the bucket
    result = CliRunner().invoke(main, ["metrics", "--lake", lake, "--bootstrap-samples", "20"])
    assert result.exit_code == 0, result.output
    keys = {key.removeprefix(f"{BUCKET}/lake/") for key in _objects(bucket, "lake")}
    assert {"metrics.duckdb", "metrics/leaderboard.parquet", "metrics/run_results.parquet"} <= keys
    local = tmp_path / "metrics.duckdb"
    bucket.get_file(f"{BUCKET}/lake/metrics.duckdb", str(local))
    with duckdb.connect(str(local), read_only=True) as con:
        assert con.execute("select count(distinct run_id) from run_results").fetchone() == (1,)
    result = CliRunner().invoke(main, ["query", "--lake", lake, "--format", "csv",
                                       "select distinct run_id, train_condition from run_results"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [f"{first.run_id},flac"]
    assert (write_report(lake, tmp_path / "report")).is_file()

    _assert_no_temporary_objects(bucket, "lake")


_INGEST_SCRIPT = """
import sys
from dfpipe.config import IngestConfig
from dfpipe.ingest import corpus_entries, ingest
cfg = IngestConfig(files_per_shard=25)
ingest(sys.argv[1], "demo", corpus_entries("csv", sys.argv[2], cfg), cfg)
"""


@pytest.mark.slow
def test_a_killed_ingest_into_the_bucket_resumes_to_the_same_table(bucket, demo_corpus_small, monkeypatch):
    clean, killed = f"s3://{BUCKET}/clean", f"s3://{BUCKET}/killed"
    config = IngestConfig(files_per_shard=25)
    ingest(clean, "demo", corpus_entries("csv", demo_corpus_small, config), config)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv(KILL_AFTER_COMMITS_ENV, raising=False)
    args = [sys.executable, "-c", _INGEST_SCRIPT, killed, str(demo_corpus_small)]

    # SIGKILLed right after its 3rd commit (of 8): the bucket holds 3 whole shards, no temp key
    proc = subprocess.run(args, check=False, env={**os.environ, KILL_AFTER_COMMITS_ENV: "3"})
    assert proc.returncode == -signal.SIGKILL
    assert len(Lake(killed).files("clips")) == 3
    _assert_no_temporary_objects(bucket, "killed")

    # a temp key (a writer killed between s3fs' copy and delete) is invisible to every reader
    stray = f"{Lake(killed).table_path('clips', {'corpus': 'demo'})}/part-x.parquet.tmp-1-deadbeef"
    bucket.copy(Lake(killed).files("clips")[0], stray)
    assert len(Lake(killed).files("clips")) == 3
    assert _rows(killed, "select count(*) from clips") == [(75,)]
    bucket.rm(stray)

    # this process listed the lake before the re-run committed the rest: it must see them all
    subprocess.run(args, check=True)
    table = "select * from clips order by source_uri"
    assert _rows(killed, table) == _rows(clean, table)
    assert _rows(killed, "select count(*), count(distinct clip_id) from clips") == [(200, 200)]
    _assert_no_temporary_objects(bucket, "")
