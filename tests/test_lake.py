from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from dfpipe.errors import LakeError
from dfpipe.lake import KILL_AFTER_COMMITS_ENV, Lake, atomic_write, conform, stable_id


def _rejects(n: int, stage: str = "ingest") -> pa.Table:
    return pa.table(
        {
            "stage": [stage] * n,
            "source_uri": [f"/x/{i}.wav" for i in range(n)],
            "reason": ["empty"] * n,
            "detail": ["0 bytes"] * n,
        }
    )


def test_stable_id_is_deterministic_and_length_prefixed():
    # Ids are stored in lakes: the value is pinned (sha256 of 8-byte little-endian lengths
    # and the parts), so a change of scheme breaks this test instead of every lake.
    expected = hashlib.sha256(b"".join(len(p).to_bytes(8, "little") + p for p in (b"a", b"b"))).hexdigest()
    assert stable_id("a", "b") == expected[:32] == stable_id(b"a", b"b")
    assert stable_id("corpus", "file.wav", length=8) == "6c9b300f"
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert len(stable_id("x", length=12)) == 12


def test_write_then_read_roundtrip_with_schema(tmp_path):
    lake = Lake(str(tmp_path))
    path = lake.write_shard("rejects", _rejects(3), shard="s1", partition={"corpus": "c1"})
    assert path.endswith("rejects/corpus=c1/part-s1.parquet")
    table = lake.read("rejects")
    assert table.num_rows == 3
    assert table.schema.field("corpus").type == pa.string()  # missing nullable column -> NULL
    assert table.column("corpus").null_count == 3


def test_modes_never_clobber_silently(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_shard("rejects", _rejects(2), shard="s1")
    with pytest.raises(LakeError, match="already exists"):
        lake.write_shard("rejects", _rejects(5), shard="s1")
    assert lake.write_shard("rejects", _rejects(5), shard="s1", mode="skip") is None
    assert lake.read("rejects").num_rows == 2
    lake.write_shard("rejects", _rejects(5), shard="s1", mode="overwrite")
    assert lake.read("rejects").num_rows == 5


def test_no_temporary_file_is_ever_visible(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_shard("rejects", _rejects(1), shard="s1")
    (tmp_path / "rejects" / "part-s2.parquet.tmp-123-abc").write_bytes(b"half a file")
    assert lake.files("rejects") == [str(tmp_path / "rejects" / "part-s1.parquet")]
    assert lake.connect().execute("select count(*) from rejects").fetchone() == (1,)


def test_conform_names_the_bad_column():
    with pytest.raises(LakeError, match="unknown columns"):
        conform("rejects", _rejects(1).append_column("oops", pa.array([1])))
    with pytest.raises(LakeError, match="required column 'reason'"):
        conform("rejects", _rejects(1).drop(["reason"]))
    with pytest.raises(LakeError, match="NULLs in a required column"):
        conform("rejects", _rejects(1).set_column(3, "detail", pa.array([None], pa.string())))


def test_connect_gives_empty_typed_views_for_absent_tables(tmp_path):
    con = Lake(str(tmp_path)).connect()
    assert con.execute("select count(*) from predictions").fetchone() == (0,)
    assert "spoof_logit" in [d[0] for d in con.execute("select * from predictions").description]


def test_unsafe_names_are_refused(tmp_path):
    lake = Lake(str(tmp_path))
    for bad in ["../up", "a/b", "..", ""]:
        with pytest.raises(LakeError, match="not a safe name"):
            lake.write_shard("rejects", _rejects(1), shard="s", partition={"corpus": bad})


def test_fsspec_url_roots_work(tmp_path):
    lake = Lake("memory://dfpipe-test-lake")
    lake.write_shard("rejects", _rejects(4), shard="m1")
    assert lake.read("rejects").num_rows == 4
    assert lake.connect().execute("select count(*) from rejects").fetchone() == (4,)


def test_atomic_write_commits_whole_files_and_cleans_up_a_failed_one(tmp_path):
    final = str(tmp_path / "out.txt")
    assert atomic_write(final, lambda tmp: Path(tmp).write_text("whole")) == final
    assert (tmp_path / "out.txt").read_text() == "whole"

    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(final, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert (tmp_path / "out.txt").read_text() == "whole"


def test_the_kill_hook_dies_right_after_the_nth_commit(tmp_path):
    script = ("import sys; from pathlib import Path; from dfpipe.lake import atomic_write\n"
              "for i in range(5): atomic_write(f'{sys.argv[1]}/f{i}', lambda tmp: Path(tmp).touch())")
    child = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False,
                           env={**os.environ, KILL_AFTER_COMMITS_ENV: "3"})
    assert child.returncode == -signal.SIGKILL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f0", "f1", "f2"]
