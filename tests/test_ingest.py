from __future__ import annotations

import os
from pathlib import Path

import pytest
from ingest_fixtures import broken_files, copy, tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import ADAPTERS
from dfpipe.errors import ConfigError
from dfpipe.ingest import corpus_entries, ingest, ingest_shard, plan_ingest
from dfpipe.lake import Lake, stable_id

CONFIG = IngestConfig(files_per_shard=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder corpus: 8 good files (one a byte copy), 4 broken ones, one symlink out."""
    base = tmp_path_factory.mktemp("ingest")
    root = base / "corpus"
    good = [
        tone(root / "real" / "a.wav", 300),
        tone(root / "real" / "b.flac", 320, rate=8_000),
        tone(root / "real" / "c.ogg", 340, rate=44_100, noise=True),
        tone(root / "fake" / "espeak" / "d.mp3", 360),
        tone(root / "fake" / "espeak" / "e.m4a", 380, channels=2),
        tone(root / "fake" / "piper" / "f.wav", 400, rate=22_050),
        tone(root / "fake" / "piper" / "g.wav", 420, seconds=0.05),  # under min_duration_s
    ]
    copy(good[0], root / "real" / "zz_copy.wav")  # same bytes as real/a.wav: a duplicate
    reasons = {f"fake/broken/{name}": reason for name, reason in broken_files(root / "fake" / "broken", good[0]).items()}
    tone(base / "outside.wav", 440)
    os.symlink(base / "outside.wav", root / "real" / "escape.wav")
    reasons |= {"real/escape.wav": "outside_root", "fake/piper/g.wav": "too_short",
                "real/zz_copy.wav": "duplicate"}
    return root, reasons


def _table(lake: str, table: str) -> list[tuple]:
    return Lake(lake).connect().execute(f"select * from {table} order by source_uri").fetchall()


def test_counts_and_reject_reasons(corpus, tmp_path):
    root, reasons = corpus
    lake = str(tmp_path / "lake")
    summary = ingest(lake, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    assert (summary.clips, summary.rejects, summary.skipped) == (6, len(reasons), 0)
    con = Lake(lake).connect()
    got = dict(con.execute("select source_uri, reason from rejects").fetchall())
    assert {Path(k).relative_to(root).as_posix(): v for k, v in got.items()} == reasons
    assert con.execute("select count(distinct clip_id), count(*) from clips").fetchone() == (6, 6)
    detail, clip_id = con.execute("select detail, clip_id from rejects where reason = 'duplicate'").fetchone()
    assert detail.endswith(f"same bytes as {root / 'real' / 'a.wav'}")
    assert con.execute("select source_relpath from clips where clip_id = ?", [clip_id]).fetchone() == ("real/a.wav",)
    assert con.execute("select sample_rate, channels, source_codec from clips where source_relpath = 'real/b.flac'"
                       ).fetchone() == (8000, 1, "flac")
    assert con.execute("select distinct stage, corpus from rejects").fetchall() == [("ingest", "c1")]


def test_rerun_adds_nothing(corpus, tmp_path):
    root, _ = corpus
    lake = str(tmp_path / "lake")
    first = ingest(lake, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    files = Lake(lake).files("clips") + Lake(lake).files("rejects")
    again = ingest(lake, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    assert (again.clips, again.rejects, again.shards) == (0, 0, 0)
    assert again.skipped == first.clips + first.rejects
    assert Lake(lake).files("clips") + Lake(lake).files("rejects") == files


def test_crash_after_some_shards_then_resume_gives_the_same_tables(corpus, tmp_path):
    root, _ = corpus
    clean, crashed = str(tmp_path / "clean"), str(tmp_path / "crashed")
    ingest(clean, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    plan = plan_ingest(crashed, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    for shard in plan.shards[: len(plan.shards) // 2]:
        ingest_shard(crashed, "c1", shard, CONFIG)
    # a crash between a shard's two writes: its clips are committed, its rejects are not
    for shard in plan.shards[len(plan.shards) // 2:]:
        if (result := ingest_shard(crashed, "c1", shard, CONFIG)).clips and result.rejects:
            os.remove(Lake(crashed).shard_path("rejects", shard.shard_id, {"corpus": "c1"}))
            break
    else:
        pytest.fail("the fixture has no shard with both clips and rejects")
    resumed = ingest(crashed, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    assert resumed.skipped > 0
    for table in ("clips", "rejects"):
        assert _table(crashed, table) == _table(clean, table)


def test_duplicate_of_a_clip_committed_by_an_earlier_run(corpus, tmp_path):
    root, _ = corpus
    lake = str(tmp_path / "lake")
    ingest(lake, "c1", corpus_entries("folder", root, CONFIG), CONFIG)
    copy(root / "real" / "b.flac", tmp_path / "more" / "real" / "b.flac")
    copy(root / "real" / "b.flac", tmp_path / "more" / "real" / "b2.flac")
    later = ingest(lake, "c1", corpus_entries("folder", tmp_path / "more", CONFIG), CONFIG)
    assert (later.clips, later.rejects, later.reasons) == (0, 2, {"duplicate": 2})
    details = [r[0] for r in Lake(lake).connect().execute(
        "select detail from rejects where source_uri like '%more%'").fetchall()]
    assert all(d.endswith(str(root / "real" / "b.flac")) for d in details)


def test_same_bytes_in_two_corpora_get_two_clip_ids(corpus, tmp_path):
    root, _ = corpus
    lake = str(tmp_path / "lake")
    for name in ("c1", "c2"):
        ingest(lake, name, corpus_entries("folder", root, CONFIG), CONFIG)
    rows = Lake(lake).connect().execute(
        "select corpus, clip_id, content_sha256 from clips where source_relpath = 'real/a.wav' order by 1").fetchall()
    assert [r[1] for r in rows] == [stable_id(c, sha) for c, _, sha in rows] and rows[0][1] != rows[1][1]


def test_unknown_format():
    with pytest.raises(ConfigError, match="unknown corpus format 'kaldi'"):
        corpus_entries("kaldi", ".", CONFIG)
    assert set(ADAPTERS) == {"folder", "csv", "in-the-wild", "deepfake-eval-2024", "asvspoof5", "hf-parquet",
                             "lhotse"}
