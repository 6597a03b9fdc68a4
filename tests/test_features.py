from __future__ import annotations

import numpy as np
import pytest
import torch
from audio_helpers import speak, write_clips

from dfpipe.conditions import run_conditions
from dfpipe.config import FeaturesConfig, FrontendConfig
from dfpipe.errors import ConfigError
from dfpipe.feature_table import iter_feature_batches
from dfpipe.features import plan_features, run_features
from dfpipe.frontend import LFCCFrontend, MelFrontend, load_clip
from dfpipe.lake import Lake


@pytest.fixture(scope="module")
def lake_with_audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    files = [speak(root / f"s{i}.wav", text) for i, text in enumerate(
        ["One small clip.", "A second, rather longer clip of synthetic speech for the test.", "Third."])]
    broken = root / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    lake = Lake(str(root / "lake"))
    ids = write_clips(lake, "tiny", [*files, broken])
    run_conditions(lake.uri, "tiny", ["flac"])
    return lake, ids, files


def test_features_table_written_with_shapes_and_values(lake_with_audio):
    lake, ids, _ = lake_with_audio
    config = FeaturesConfig(clips_per_shard=2, batch_size=2)
    summary = run_features(lake.uri, "tiny", "flac", config)
    assert (summary.shards, summary.rows, summary.rejects) == (2, 3, 0)  # broken file: rejected upstream
    con = lake.connect()
    assert con.execute("select distinct mel_shape, lfcc_shape, frontend_version, octet_length(mel) "
                       "from features").fetchall() == [([2, 128, 301], [60, 301], FrontendConfig().version,
                                                        2 * 128 * 301 * 2)]
    got = {cid: (mel, lfcc) for ids_, mels, lfccs in iter_feature_batches(lake, "tiny", "flac", batch_size=2)
           for cid, mel, lfcc in zip(ids_, mels, lfccs, strict=True)}
    assert set(got) == set(ids[:3])
    stored = lake.connect().execute("select audio_bytes from audio where clip_id = ?", [ids[1]]).fetchone()[0]
    wave = torch.from_numpy(load_clip(stored))[None]
    mel, lfcc = got[ids[1]]
    assert mel.shape == (2, 128, 301) and mel.dtype == torch.float32
    # float16 storage: ~3 significant digits
    torch.testing.assert_close(mel, MelFrontend()(wave)[0], rtol=2e-3, atol=1e-2)
    torch.testing.assert_close(lfcc, LFCCFrontend()(wave)[0], rtol=2e-3, atol=0.3)


def test_reader_batches_and_clip_filter(lake_with_audio):
    lake, ids, _ = lake_with_audio
    run_features(lake.uri, "tiny", "flac")
    sizes = [len(b[0]) for b in iter_feature_batches(lake.uri, "tiny", "flac", batch_size=2)]
    assert sizes == [2, 1]
    only = list(iter_feature_batches(lake, "tiny", "flac", clip_ids=[ids[2]]))
    assert only[0][0] == [ids[2]] and only[0][1].shape == (1, 2, 128, 301)


def test_rerun_skips_and_new_version_recomputes(lake_with_audio):
    lake, _, _ = lake_with_audio
    run_features(lake.uri, "tiny", "flac")
    assert plan_features(lake.uri, "tiny", "flac") == []
    assert run_features(lake.uri, "tiny", "flac").rows == 0
    other = FeaturesConfig(frontend=FrontendConfig(n_mels=64))
    assert run_features(lake.uri, "tiny", "flac", other).rows == 3
    versions = lake.connect().execute("select frontend_version, count(*) from features group by 1 order by 1")
    assert sorted(v for v, _ in versions.fetchall()) == sorted([FrontendConfig().version, other.frontend.version])
    _, mel, _ = next(iter_feature_batches(lake, "tiny", "flac", frontend=other.frontend))
    assert mel.shape[1:] == (2, 64, 301)


def test_raw_condition_reads_sources_and_rejects_undecodable(lake_with_audio):
    lake, ids, _ = lake_with_audio
    summary = run_features(lake.uri, "tiny", "raw")
    assert (summary.rows, summary.rejects) == (3, 1)
    assert lake.connect().execute("select clip_id, reason from rejects where stage = 'features'").fetchall() == [
        (ids[3], "undecodable")]
    assert run_features(lake.uri, "tiny", "raw").rows == 0
    with pytest.raises(ConfigError, match="dfpipe condition"):
        plan_features(lake.uri, "tiny", "mp3_128k")
    assert np.isfinite(next(iter_feature_batches(lake, "tiny", "raw"))[1].numpy()).all()
