"""Printed tables: whole values into a pipe, ``--format csv|json`` on every table command,
and CSV lines that end in LF."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.lake import Lake, conform

DFPIPE = Path(sys.executable).with_name("dfpipe")


def small_lake(tmp_path) -> Lake:
    lake = Lake(str(tmp_path / "lake"))
    lake.write_shard("predictions", conform("predictions", pa.table({
        "run_id": ["R"] * 4, "epoch": [1] * 4, "dataset": ["test"] * 4,
        "clip_id": ["a", "b", "c", "d"], "corpus": ["x"] * 4, "condition": ["flac"] * 4,
        "label": ["bonafide", "spoof", "bonafide", "spoof"], "spoof_logit": [-2.0, 1.5, 0.25, -0.5],
        "generator": [None, "a-generator-with-a-long-name-" + "x" * 60, None, "g2"],
    })), shard="p")
    return lake


def test_query_csv_ends_lines_with_lf(tmp_path):
    lake = small_lake(tmp_path)
    result = CliRunner().invoke(main, ["query", "--lake", lake.uri, "--format", "csv",
                                       "select clip_id, spoof_logit, generator from predictions order by 1"])
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes
    assert b"\r" not in raw and raw.count(b"\n") == 5 and raw.endswith(b"\n")
    rows = list(csv.reader(io.StringIO(raw.decode())))
    assert rows[0] == ["clip_id", "spoof_logit", "generator"] and rows[2][1] == "1.5" and rows[1][2] == ""


def test_query_table_into_a_pipe_prints_whole_values(tmp_path):
    lake = small_lake(tmp_path)
    wide = CliRunner().invoke(main, ["query", "--lake", lake.uri, "select * from predictions order by clip_id"])
    assert wide.exit_code == 0, wide.output
    assert "a-generator-with-a-long-name-" + "x" * 60 in wide.output and "…" not in wide.output
    assert max(len(line) for line in wide.stdout.splitlines()) > 200  # not cut at 80 columns
    assert all(line == line.rstrip() for line in wide.stdout.splitlines())


def test_eval_prints_csv_and_json(tmp_path):
    scores, keys = tmp_path / "s.tsv", tmp_path / "k.tsv"
    scores.write_text("filename\tcm-score\na\t2\nb\t-1\nc\t0.5\nd\t0.7\n")
    keys.write_text("filename\tcm-label\na\tbonafide\nb\tspoof\nc\tbonafide\nd\tspoof\n")
    runner = CliRunner()
    as_csv = runner.invoke(main, ["eval", "--scores", str(scores), "--keys", str(keys), "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    blocks = as_csv.stdout.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["# score_metrics", "# threshold_metrics"]
    (row,) = csv.DictReader(io.StringIO(blocks[0].split("\n", 1)[1]))
    assert row["grouping"] == "overall" and float(row["eer"]) == 0.5
    as_json = runner.invoke(main, ["eval", "--scores", str(scores), "--keys", str(keys), "--format", "json"])
    assert json.loads(as_json.stdout)["score_metrics"][0]["eer"] == 0.5


def test_models_into_a_pipe_prints_whole_values():
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    piped = subprocess.run([str(DFPIPE), "models"], capture_output=True, text=True,  # a real pipe
                           env={**env, "COLUMNS": "80"}, timeout=300, check=True)
    assert "mel-multiscale" in piped.stdout and "…" not in piped.stdout
    (wavlm,) = [line for line in piped.stdout.splitlines() if "wavlm-cnn" in line]
    assert re.search(r" 3\d\d,\d{3},\d{3} ", wavlm) and "needs WavLM-Large weights*" in wavlm  # whole
    assert max(len(line) for line in piped.stdout.splitlines()) > 80
