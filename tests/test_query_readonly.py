"""``dfpipe query`` is read-only by default: the lake's tables (local or remote) and the
metric tables read as usual; file access, ATTACH, INSTALL/LOAD and SET are refused with one
line; ``--allow-writes`` gives DuckDB's full access back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.lake import Lake, conform
from dfpipe.metrics import compute_metrics

N_CLIPS = 8


def _lake(uri: str) -> Lake:
    """``clips`` and ``predictions`` of 8 clips, and the metric tables over them."""
    lake = Lake(uri)
    ids = [f"c{i}" for i in range(N_CLIPS)]
    labels = ["bonafide", "spoof"] * (N_CLIPS // 2)
    lake.write_shard("clips", conform("clips", pa.table({
        "clip_id": ids, "corpus": ["x"] * N_CLIPS, "label": labels, "split": ["test"] * N_CLIPS,
        "source_uri": [f"/audio/{i}.wav" for i in ids], "source_relpath": [f"{i}.wav" for i in ids],
        "source_codec": ["pcm_s16le"] * N_CLIPS, "source_format": ["wav"] * N_CLIPS,
        "duration_s": [1.0] * N_CLIPS, "sample_rate": [16_000] * N_CLIPS, "channels": [1] * N_CLIPS,
        "size_bytes": [32_044] * N_CLIPS, "content_sha256": [f"{i:064x}" for i in range(N_CLIPS)],
    })), shard="c", partition={"corpus": "x"})
    lake.write_shard("predictions", conform("predictions", pa.table({
        "run_id": ["R"] * N_CLIPS, "epoch": [1] * N_CLIPS, "dataset": ["test"] * N_CLIPS, "clip_id": ids,
        "corpus": ["x"] * N_CLIPS, "condition": ["flac"] * N_CLIPS, "label": labels, "split": ["test"] * N_CLIPS,
        "spoof_logit": [-2.0, 1.5, 0.3, -0.1, -1.0, 2.0, 0.5, 0.7],
    })), shard="p", partition={"run_id": "R"})
    compute_metrics(uri)
    return lake


def _query(lake: Lake, sql: str, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["query", "--lake", lake.uri, "--format", "json", *options, sql])
    return result.exit_code, result.output


@pytest.fixture(scope="module", params=["local", "memory"])
def lake(request, tmp_path_factory) -> Lake:
    """A local lake, and one behind fsspec (``memory://``: DuckDB reads it through the
    registered file system, as an ``s3://`` lake). Tests only read it."""
    if request.param == "local":
        return _lake(str(tmp_path_factory.mktemp("query") / "lake"))
    return _lake(f"memory://query-{uuid.uuid4().hex[:8]}/lake")


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory) -> Lake:
    return _lake(str(tmp_path_factory.mktemp("query-local") / "lake"))


SELECTS = [
    "select label, count(*) as n from clips group by all order by all",
    "select clip_id, spoof_logit from predictions order by clip_id",
    "select p.clip_id, c.source_relpath from predictions p join clips c using (clip_id) order by 1",
    "select count(*) as n from score_metrics",  # a materialised metric table
    "select count(*) as n from metric_params",
]


@pytest.mark.parametrize("sql", SELECTS)
def test_selects_read_the_same_rows_as_with_full_access(lake, sql):
    code, read_only = _query(lake, sql)
    assert code == 0, read_only
    code, full = _query(lake, sql, "--allow-writes")
    assert code == 0, full
    rows = json.loads(read_only)
    assert rows == json.loads(full) and rows
    if "from clips" in sql:
        assert rows == [{"label": "bonafide", "n": N_CLIPS // 2}, {"label": "spoof", "n": N_CLIPS // 2}]
    if "score_metrics" in sql:
        assert rows[0]["n"] > 0


REFUSED = {  # statement -> the file it would create, if any
    "copy clips to '{dir}/out.csv'": "out.csv",
    "copy (select 1 as x) to '{dir}/out.parquet' (format parquet)": "out.parquet",
    "select * from read_text('{dir}/secret.txt')": None,
    "select * from read_csv('{dir}/secret.txt')": None,
    "attach '{dir}/other.duckdb' as other": "other.duckdb",
    "export database '{dir}/exported'": "exported",
    "install httpfs": None,
    "load httpfs": None,
    "set enable_external_access = true": None,
    "set threads = 1": None,
    "reset lock_configuration": None,
}


@pytest.mark.parametrize("statement", list(REFUSED))
def test_file_access_attach_extensions_and_settings_are_refused_with_one_line(statement, local_lake, tmp_path):
    (tmp_path / "secret.txt").write_text("not for the query\n")
    sql = statement.format(dir=tmp_path)
    code, output = _query(local_lake, sql)
    assert code == 1
    assert output.count("\n") == 1 and output.startswith("Error: refused: "), output
    assert "--allow-writes" in output and "Traceback" not in output
    assert "not for the query" not in output
    if created := REFUSED[statement]:
        assert not (tmp_path / created).exists()


def test_a_lake_file_cannot_be_overwritten(local_lake):
    (part,) = local_lake.files("predictions")
    before = Path(part).read_bytes()
    code, output = _query(local_lake, f"copy (select 1 as x) to '{part}' (format parquet, use_tmp_file false)")
    assert code == 1 and output.startswith("Error: refused: ")
    assert Path(part).read_bytes() == before


def test_allow_writes_gives_full_access(local_lake, tmp_path):
    lake = local_lake
    out = tmp_path / "clips.csv"
    code, output = _query(lake, f"copy clips to '{out}'", "--allow-writes")
    assert code == 0, output
    assert out.read_text().count("\n") == N_CLIPS + 1
    (tmp_path / "note.txt").write_text("hello\n")
    code, output = _query(lake, f"select content from read_text('{tmp_path / 'note.txt'}')", "--allow-writes")
    assert code == 0 and json.loads(output) == [{"content": "hello\n"}]


def test_sql_errors_still_say_sql_error(local_lake):
    code, output = _query(local_lake, "select nope from clips")
    assert code == 1 and output.startswith("Error: SQL error: ") and "nope" in output
