"""The metric stage under a DuckDB memory limit: it spills to its temp directory and writes
the same tables as without a limit (about 240 K predictions, so a 64 MB limit makes DuckDB
spill; the benchmark's 100 M rows under 6 GB are in docs/benchmarks.md)."""

from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.config import MetricsConfig
from dfpipe.errors import ConfigError
from dfpipe.lake import Lake, conform
from dfpipe.metric_tables import SPILL_PREFIX, metrics_connection
from dfpipe.metrics import compute_metrics

ROWS_PER_SHARD = 20_000
RUNS = {"continuous": None, "tied": 1}  # run -> decimals the logits are rounded to
EPOCHS = (1, 2)
DATASETS = ("val", "test", "ood")
GENERATORS = np.array(["g1", "g2", "g3", "g4"])


@pytest.fixture(scope="module")
def big_lake(tmp_path_factory):
    """240 K predictions: one run with continuous scores, one with scores tied in blocks."""
    root = tmp_path_factory.mktemp("big")
    lake = Lake(str(root))
    rng = np.random.default_rng(0)
    for run_id, decimals in RUNS.items():
        for epoch in EPOCHS:
            for dataset in DATASETS:
                n = ROWS_PER_SHARD
                is_spoof = rng.random(n) < 0.6
                logit = rng.normal(0, 1.5, n) + np.where(is_spoof, 1.0, -1.0)
                if decimals is not None:
                    logit = np.round(logit, decimals)
                generator = GENERATORS[rng.integers(0, len(GENERATORS), n)]
                lake.write_shard("predictions", conform("predictions", pa.table({
                    "run_id": [run_id] * n, "epoch": [epoch] * n, "dataset": [dataset] * n,
                    "clip_id": [f"c{i}" for i in range(n)], "corpus": ["demo"] * n, "condition": ["flac"] * n,
                    "label": np.where(is_spoof, "spoof", "bonafide"), "spoof_logit": logit,
                    "generator": pa.array(np.where(is_spoof, generator, None)),
                    "source_codec": np.array(["mp3", "flac"])[rng.integers(0, 2, n)],
                })), shard=f"e{epoch:03d}-{dataset}", partition={"run_id": run_id})
    return root


def tables_of(root) -> dict[str, list[tuple]]:
    """Every metric table written, its rows sorted (the tables need not keep an order)."""
    folder = root / "metrics"
    return {
        path.stem: sorted(tuple(row.values()) for row in pq.read_table(path).to_pylist())
        for path in sorted(folder.glob("*.parquet"))
    }


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)  # sums in another order
    return a == b


def test_a_tiny_memory_limit_spills_and_gives_the_same_tables(big_lake, tmp_path):
    config = MetricsConfig(bootstrap_samples=5)
    compute_metrics(str(big_lake), config)
    unlimited = tables_of(big_lake)
    spill = tmp_path / "spill"
    # 64 MB on 2 threads: below what score_blocks needs, so its blocks go to the temp files
    summary = compute_metrics(str(big_lake), MetricsConfig(
        bootstrap_samples=5, memory_limit="64MB", temp_directory=str(spill), threads=2))
    limited = tables_of(big_lake)
    assert summary.spilled_bytes > 0 and spill.is_dir()  # DuckDB wrote to the temp directory
    assert set(limited) == set(unlimited) and len(limited["score_metrics"]) > 100
    for name, rows in unlimited.items():
        assert len(limited[name]) == len(rows), name
        for got, expected in zip(limited[name], rows):
            assert all(same(g, e) for g, e in zip(got, expected)), (name, got, expected)
    assert not [p for p in os.listdir(big_lake) if p.startswith(SPILL_PREFIX)]


def test_every_metrics_connection_has_the_limit_and_a_spill_folder_in_the_lake(big_lake):
    config = MetricsConfig(memory_limit="300MB", threads=1)
    with metrics_connection(Lake(str(big_lake)), config) as con:
        limit, folder, threads = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory'), "
            "current_setting('threads')").fetchall()[0]
        assert threads == 1
        assert os.path.dirname(folder) == str(big_lake) and os.path.basename(folder).startswith(SPILL_PREFIX)
        assert os.path.isdir(folder)
        assert limit == "286.1 MiB"  # 300 MB in DuckDB's units
    assert not os.path.exists(folder)  # removed with the connection


def test_the_cli_takes_the_memory_options_and_rejects_a_bad_size(big_lake, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["metrics", "--lake", str(big_lake), "--memory-limit", "lots"])
    assert bad.exit_code == 2 and "memory_limit" in bad.output
    with pytest.raises(ConfigError, match="memory_limit"):
        MetricsConfig(memory_limit="6 GBs")
    assert MetricsConfig().memory_limit.endswith("MiB")  # a share of this machine's memory
