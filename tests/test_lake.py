from __future__ import annotations

import pyarrow as pa
import pytest

from dfpipe.errors import LakeError
from dfpipe.lake import Lake, conform, stable_id


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
    assert stable_id("a", "b") == stable_id("a", "b")
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
