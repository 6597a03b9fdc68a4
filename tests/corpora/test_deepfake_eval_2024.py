from __future__ import annotations

import pytest
from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.deepfake_eval_2024 import parse_row, prepare_deepfake_eval_2024
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.ingest import ingest
from dfpipe.lake import Lake


def test_parse_row_is_case_tolerant():
    path, fields = parse_row({"Filename": "x.mp3", "Ground Truth": "FAKE", "Finetuning Set": "Test",
                              "Language": "English", "Source": "tiktok"})
    assert path == "x.mp3"
    assert (fields["label"], fields["split"], fields["language"]) == ("spoof", "test", "English")
    assert fields["attributes"] == {"Language": "English", "Source": "tiktok"}
    assert parse_row({"filename": "y.wav", "ground truth": "real"})[1]["label"] == "bonafide"
    with pytest.raises(RejectedInput, match="bad_label"):
        parse_row({"Filename": "z.wav", "Ground Truth": "unknown"})


def test_prepare_deepfake_eval_and_ingest(tmp_path):
    root = tmp_path / "de2024"
    tone(root / "a.mp3", 300)
    tone(root / "audio-data" / "b.m4a", 350, channels=2)
    tone(root / "c.wav", 400, rate=44_100)
    (root / "d.mp3").write_bytes(b"ID3" + bytes(200))  # an mp3 tag and nothing else
    (root / "audio-metadata-publish.csv").write_text(
        "Filename,Ground Truth,Finetuning Set,Language,\"Source, platform\"\n"
        "a.mp3,Fake,Train,English,youtube\n"
        "b.m4a,real,test,Spanish,\"x, y\"\n"        # found in a subfolder by name
        "c.wav,REAL,Test,,\n"
        "d.mp3,Fake,Test,English,\n"
        "e.wav,Deepfake?,Test,English,\n"
    )
    entries = list(prepare_deepfake_eval_2024(root))
    items = [e for e in entries if isinstance(e, CorpusItem)]
    assert [i.relpath for i in items] == ["a.mp3", "audio-data/b.m4a", "c.wav", "d.mp3"]
    assert [r.reason for r in entries if isinstance(r, CorpusReject)] == ["bad_label"]

    lake = str(tmp_path / "lake")
    summary = ingest(lake, "de2024", iter(entries), IngestConfig())
    assert (summary.clips, summary.rejects) == (3, 2)
    con = Lake(lake).connect()
    row = con.execute("select label, split, language, attributes['Source, platform'], channels from clips "
                      "where source_relpath = 'audio-data/b.m4a'").fetchone()
    assert row == ("bonafide", "test", "Spanish", "x, y", 2)
    assert con.execute("select count(*) from rejects where source_uri like '%d.mp3'").fetchone() == (1,)


def test_missing_csv(tmp_path):
    with pytest.raises(ConfigError, match="audio-metadata-publish.csv"):
        list(prepare_deepfake_eval_2024(tmp_path))


def test_a_name_found_twice_rejects_that_row_only(tmp_path):
    root = tmp_path / "de2024"
    tone(root / "batch1" / "x.mp3", 300)
    tone(root / "batch2" / "x.mp3", 320)  # the same basename in two folders
    tone(root / "batch2" / "y.mp3", 340)
    (root / "batch1" / "notes.txt").write_text("a")
    (root / "batch2" / "notes.txt").write_text("b")  # unrelated duplicates do not matter
    (root / "audio-metadata-publish.csv").write_text(
        "Filename,Ground Truth,Finetuning Set\nx.mp3,Fake,Test\ny.mp3,Real,Test\nbatch1/x.mp3,Fake,Train\n")
    entries = list(prepare_deepfake_eval_2024(root))
    assert [i.relpath for i in entries if isinstance(i, CorpusItem)] == ["batch2/y.mp3", "batch1/x.mp3"]
    (reject,) = [r for r in entries if isinstance(r, CorpusReject)]
    assert reject.reason == "ambiguous_name" and "batch1/x.mp3, batch2/x.mp3" in reject.detail


def test_a_cp1252_csv_needs_its_encoding_named(tmp_path):
    tone(tmp_path / "é.mp3", 300)
    (tmp_path / "audio-metadata-publish.csv").write_bytes(
        "Filename,Ground Truth,Finetuning Set,Language\né.mp3,Fake,Test,Français\n".encode("cp1252"))
    with pytest.raises(ConfigError, match="line 2, byte offset 46: .* pass --encoding cp1252"):
        list(prepare_deepfake_eval_2024(tmp_path))
    (item,) = prepare_deepfake_eval_2024(tmp_path, encoding="cp1252")
    assert (item.relpath, item.language) == ("é.mp3", "Français")
