from __future__ import annotations

import json

from click.testing import CliRunner
from ingest_fixtures import broken_files, tone

from dfpipe.cli import main


def test_dfpipe_ingest_then_query(prefect_server, tmp_path):
    root = tmp_path / "itw"
    root.mkdir()
    tone(root / "0.wav", 300)
    tone(root / "1.flac", 400)
    tone(root / "2.mp3", 500)
    broken_files(root / "bad", root / "0.wav")
    (root / "meta.csv").write_text(
        "file,speaker,label\n0.wav,A,bona-fide\n1.flac,B,spoof\n2.mp3,B,spoof\n"
        "bad/empty.wav,C,spoof\nbad/text.wav,C,bona-fide\n../escape.wav,C,spoof\n"
    )
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    args = ["ingest", "--lake", lake, "--corpus", "itw", "--format", "in-the-wild", "--workers", "1", str(root)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "itw: 3 clips and 3 rejects added (empty 1, outside_root 1, undecodable 1)" in result.output
    assert f"wrote {tmp_path / 'lake' / 'clips' / 'corpus=itw'}" in result.output
    # not a terminal: progress as lines (stderr), the start and each tenth of the shards
    assert "ingest itw: 0/1 shards (0 %" in result.output and "ingest itw: 1/1 shards (100 %" in result.output

    query = runner.invoke(main, ["query", "--lake", lake, "--format", "json",
                                 "select label, count(*) as n from clips group by 1 order by 1"])
    assert query.exit_code == 0, query.output
    assert json.loads(query.output) == [{"label": "bonafide", "n": 1}, {"label": "spoof", "n": 2}]
    # into a pipe every column is printed whole, however wide; --format line: one 'column: value' per field
    wide = runner.invoke(main, ["query", "--lake", lake, "select * from clips order by clip_id limit 1"])
    assert wide.exit_code == 0 and "content_sha256" in wide.output and "-- row 1" not in wide.output
    sha = runner.invoke(main, ["query", "--lake", lake, "--format", "csv",
                               "select content_sha256 from clips order by clip_id limit 1"]).stdout.split()[1]
    assert len(sha) == 64 and sha in wide.output
    records = runner.invoke(main, ["query", "--lake", lake, "--format", "line",
                                   "select * from clips order by clip_id limit 1"])
    assert records.exit_code == 0 and "-- row 1" in records.output and " label: " in records.output

    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "0 clips and 0 rejects added" in again.output and "6 inputs already" in again.output


def test_bad_format_and_bad_corpus_name(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["ingest", "--lake", str(tmp_path), "--corpus", "x", "--format", "kaldi", str(tmp_path)])
    assert bad.exit_code == 2 and "kaldi" in bad.output
    (tmp_path / "real").mkdir()
    name = runner.invoke(main, ["ingest", "--lake", str(tmp_path / "l"), "--corpus", "../x", "--format", "folder",
                                "--workers", "1", str(tmp_path)])
    assert name.exit_code != 0 and "not a safe name" in name.output
