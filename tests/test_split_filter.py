"""The conditions and features stages make only the splits asked for, and only what is missing
when a later call asks for more (a study that reads more splits)."""

from __future__ import annotations

import pytest
from ingest_fixtures import tone

from dfpipe.conditions import plan_conditions, run_conditions
from dfpipe.config import ConditionsConfig, FeaturesConfig, IngestConfig
from dfpipe.errors import ConfigError
from dfpipe.features import plan_features, run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake

CORPUS = "c"


@pytest.fixture
def lake(tmp_path):
    """A folder corpus of 3 train and 2 test clips (real files, ingested); clip ids by split."""
    root = tmp_path / "corpus"
    for i in range(2):
        tone(root / "train" / "real" / f"r{i}.wav", 220 + 40 * i, seconds=0.5, noise=True)
        tone(root / "test" / "fake" / "gen" / f"t{i}.wav", 330 + 40 * i, seconds=0.5)
    tone(root / "train" / "fake" / "gen" / "f0.wav", 500, seconds=0.5)
    uri = str(tmp_path / "lake")
    ingest(uri, CORPUS, corpus_entries("folder", root, IngestConfig()), IngestConfig())
    return Lake(uri)


def _ids(lake: Lake, table: str, split: str | None = None) -> set[str]:
    if table == "clips":
        clips = lake.read("clips", columns=["clip_id", "split"], partition={"corpus": CORPUS}).to_pylist()
        return {row["clip_id"] for row in clips if split in (None, row["split"])}
    return set(lake.read(table, columns=["clip_id"], partition={"corpus": CORPUS}).column("clip_id").to_pylist())


def test_conditions_and_features_make_only_the_splits_asked_for(lake):
    test_ids, train_ids = _ids(lake, "clips", "test"), _ids(lake, "clips", "train")
    assert len(test_ids) == 2 and len(train_ids) == 3
    config = ConditionsConfig(clips_per_shard=2)

    made = run_conditions(lake.uri, CORPUS, ["flac"], config, splits=["test"])
    assert made.rows == 2 and _ids(lake, "audio") == test_ids
    features = run_features(lake.uri, CORPUS, "flac", FeaturesConfig(), splits=["test"])
    assert features.rows == 2 and _ids(lake, "features") == test_ids
    # the audio of the other split is not there yet: features for it say what to run
    with pytest.raises(ConfigError, match=r"split\(s\) train .*--conditions flac` for those splits"):
        plan_features(lake.uri, CORPUS, "flac", splits=["train"])

    # a later study reads train too: only the missing clips are planned and made
    assert {c for s in plan_conditions(lake.uri, CORPUS, ["flac"], config, splits=["train", "test"])
            for c in s.clip_ids} == train_ids
    assert run_conditions(lake.uri, CORPUS, ["flac"], config, splits=["train", "test"]).rows == 3
    assert run_conditions(lake.uri, CORPUS, ["flac"], config).rows == 0  # every clip: all there
    assert _ids(lake, "audio") == test_ids | train_ids
    assert run_features(lake.uri, CORPUS, "flac", FeaturesConfig()).rows == 3
    assert plan_features(lake.uri, CORPUS, "flac") == []

    # raw (the ingested files): the split filter reads the clips table itself
    raw = run_features(lake.uri, CORPUS, "raw", FeaturesConfig(), splits=["train"])
    assert raw.rows == 3
    assert {row["clip_id"] for row in lake.read("features", columns=["clip_id", "condition"],
                                                partition={"corpus": CORPUS}).to_pylist()
            if row["condition"] == "raw"} == train_ids


def test_a_split_with_no_clips_is_named(lake):
    with pytest.raises(ConfigError, match=r"corpus 'c' has no clips in split\(s\) dev, eval .*check the split names"):
        plan_conditions(lake.uri, CORPUS, ["flac"], splits=["eval", "dev"])
