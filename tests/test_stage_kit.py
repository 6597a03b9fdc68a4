from __future__ import annotations

import os

import pytest

from dfpipe.errors import RejectedInput
from dfpipe.lake import Lake
from dfpipe.stage_kit import (
    StageSummary,
    committed,
    read_source,
    reject_row,
    rejects_table,
    shard_committed,
)


def test_read_source_has_one_set_of_reject_reasons(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    assert read_source(str(tmp_path / "a.wav")) == b"RIFF"
    assert read_source(f"file://{tmp_path / 'a.wav'}") == b"RIFF"
    (tmp_path / "folder.wav").mkdir()
    locked = tmp_path / "locked.wav"
    locked.write_bytes(b"x")
    locked.chmod(0)
    cases = {"gone.wav": "missing", "folder.wav": "not_a_file"}
    if os.geteuid() != 0:  # root reads any file
        cases["locked.wav"] = "unreadable"
    for name, reason in cases.items():
        with pytest.raises(RejectedInput) as caught:
            read_source(str(tmp_path / name))
        assert caught.value.reason == reason


def test_done_is_output_and_rejects_and_either_shard_marks_a_shard_done(tmp_path):
    lake = Lake(str(tmp_path))
    part = {"corpus": "c"}
    rows = [reject_row("features", "audio:a", "undecodable", "bad", corpus="c", clip_id="a", condition="flac"),
            reject_row("condition", "/x.wav", "missing", "gone", corpus="c", clip_id="b", condition="flac"),
            reject_row("features", "audio:c", "undecodable", "bad", corpus="c", clip_id="c", condition="mp3_64k")]
    lake.write_shard("rejects", rejects_table(rows), shard="s1", partition=part)
    assert committed(lake, "features", "features", part, condition="flac").keys() == {"a"}
    assert committed(lake, "features", "features", part).keys() == {"a", "c"}
    assert shard_committed(lake, "features", "s1", part) and not shard_committed(lake, "features", "s2", part)
    assert StageSummary.total([StageSummary(1, 2, 3), StageSummary(1, 0, 1)]) == StageSummary(2, 2, 4)
