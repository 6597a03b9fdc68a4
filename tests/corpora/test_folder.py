from __future__ import annotations

import os

import pytest
from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.folder import parse_relpath, prepare_folder
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.ingest import ingest
from dfpipe.lake import Lake


def test_parse_relpath():
    assert parse_relpath("fake/piper_joe/spk1/u1.wav") == ("spoof", "piper_joe")
    assert parse_relpath("fake/u1.wav") == ("spoof", None)
    assert parse_relpath("real/a/b/c.flac") == ("bonafide", None)
    with pytest.raises(RejectedInput, match="not under real/ or fake/"):
        parse_relpath("other/x.wav")


def test_prepare_folder_and_ingest(tmp_path):
    root = tmp_path / "corpus"
    tone(root / "real" / "spk1" / "a.wav", 300)
    tone(root / "real" / "b.flac", 350, rate=44_100)
    tone(root / "fake" / "espeak" / "c.mp3", 400)
    tone(root / "fake" / "piper" / "d.m4a", 450, channels=2)
    (root / "fake" / "piper" / "broken.wav").write_text("not audio")
    tone(tmp_path / "outside.wav", 500)
    os.symlink(tmp_path / "outside.wav", root / "real" / "link.wav")
    (root / "README.txt").write_text("top-level files are not corpus items")

    entries = list(prepare_folder(root, split="train"))
    items = {e.relpath: e for e in entries if isinstance(e, CorpusItem)}
    rejects = [e for e in entries if isinstance(e, CorpusReject)]
    assert sorted(items) == ["fake/espeak/c.mp3", "fake/piper/broken.wav", "fake/piper/d.m4a",
                             "real/b.flac", "real/spk1/a.wav"]
    assert items["fake/espeak/c.mp3"].generator == "espeak"
    assert items["real/b.flac"].label == "bonafide" and items["real/b.flac"].split == "train"
    assert [(r.reason, r.source) for r in rejects] == [("outside_root", str(root / "real" / "link.wav"))]
    # allowed explicitly, the symlink is an item
    allowed = [e for e in prepare_folder(root, allow_outside_root=True) if isinstance(e, CorpusItem)]
    assert "real/link.wav" in {e.relpath for e in allowed}

    lake = tmp_path / "lake"
    summary = ingest(str(lake), "fold", prepare_folder(root), IngestConfig(files_per_shard=2))
    assert (summary.clips, summary.rejects) == (4, 2)
    con = Lake(str(lake)).connect()
    assert con.execute("select reason from rejects order by 1").fetchall() == [("outside_root",), ("undecodable",)]
    assert con.execute(
        "select generator, channels from clips where source_relpath = 'fake/piper/d.m4a'").fetchone() == ("piper", 2)


def test_prepare_folder_needs_the_layout(tmp_path):
    with pytest.raises(ConfigError, match="neither real/ nor fake/"):
        list(prepare_folder(tmp_path))


def test_split_folders_give_the_split(tmp_path):
    root = tmp_path / "custom"
    tone(root / "train" / "real" / "spk1" / "a.wav", 300)
    tone(root / "train" / "fake" / "xtts" / "b.wav", 320)
    tone(root / "val" / "real" / "c.wav", 340)
    tone(root / "test" / "fake" / "piper" / "d.flac", 360)
    tone(root / "notes" / "real" / "e.wav", 380)  # not a split name: not read
    items = [e for e in prepare_folder(root) if isinstance(e, CorpusItem)]
    assert [(i.relpath, i.split, i.label, i.generator) for i in items] == [
        ("test/fake/piper/d.flac", "test", "spoof", "piper"),
        ("train/real/spk1/a.wav", "train", "bonafide", None),
        ("train/fake/xtts/b.wav", "train", "spoof", "xtts"),
        ("val/real/c.wav", "dev", "bonafide", None),
    ]
    lake = str(tmp_path / "lake")
    assert ingest(lake, "custom", prepare_folder(root), IngestConfig()).clips == 4
    assert Lake(lake).connect().execute("select split, count(*) from clips group by 1 order by 1").fetchall() == [
        ("dev", 1), ("test", 1), ("train", 2)]
