from __future__ import annotations

import pytest
from audio_helpers import speak, write_clips
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.conditions import plan_conditions
from dfpipe.lake import Lake


@pytest.mark.slow
def test_condition_and_features_flows_on_a_local_cluster(tmp_path, prefect_server):
    files = [speak(tmp_path / f"{i}.wav", f"Clip number {i} of the flow test.") for i in range(4)]
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    lake = Lake(str(tmp_path / "lake"))
    write_clips(lake, "tiny", [*files, tmp_path / "bad.wav"])

    # the CLI runs the Prefect flow on a real 2-worker LocalCluster
    args = ["condition", "--lake", lake.uri, "--corpus", "tiny", "--conditions", "flac,corrupt+mp3_64k",
            "--clips-per-shard", "2", "--workers", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "8 audio rows and 2 rejects" in result.output and f"wrote {lake.root}/audio/corpus=tiny" in result.output
    assert plan_conditions(lake.uri, "tiny", ["flac", "corrupt+mp3_64k"]) == []  # a re-run has nothing to do

    result = CliRunner().invoke(main, ["features", "--lake", lake.uri, "--corpus", "tiny", "--condition",
                                       "corrupt+mp3_64k", "--clips-per-shard", "2", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "4 features rows" in result.output and f"wrote {lake.root}/features/corpus=tiny" in result.output
    assert lake.connect().execute(
        "select count(*) from features f join audio a using (clip_id, condition)").fetchone() == (4,)
