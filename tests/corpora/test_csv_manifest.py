from __future__ import annotations

import pytest
from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.csv_manifest import parse_row, prepare_csv_manifest
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.ingest import ingest
from dfpipe.lake import Lake


def test_parse_row_normalises_and_keeps_extra_columns():
    path, fields = parse_row({"path": "a.wav", "label": " Bona-Fide", "generator": "", "split": "Validation",
                              "speaker": "s1", "snr": "20", "note": ""})
    assert path == "a.wav"
    assert fields["label"] == "bonafide" and fields["split"] == "dev" and fields["generator"] is None
    assert fields["speaker"] == "s1" and fields["attributes"] == {"snr": "20"}
    for bad in ("0", "1", "maybe", ""):
        with pytest.raises(RejectedInput, match="bad_label"):
            parse_row({"path": "a.wav", "label": bad})
    with pytest.raises(RejectedInput, match="bad_split"):
        parse_row({"path": "a.wav", "label": "real", "split": "holdout"})


def test_prepare_csv_manifest_and_ingest(tmp_path):
    root = tmp_path / "data"
    tone(root / "audio" / "a.wav", 300)
    tone(root / "audio" / "b.mp3", 350)
    tone(root / "audio" / "c.ogg", 400, noise=True)
    (root / "audio" / "zero.wav").write_bytes(b"")
    tone(tmp_path / "secret.wav", 450)
    manifest = root / "list.csv"
    manifest.write_text(
        "path,label,generator,family,speaker,language,split,snr_db\n"
        "audio/a.wav,real,,,spk1,en,train,\n"
        "audio/b.mp3,FAKE,espeak,formant,spk2,fr,test,20\n"
        "audio/c.ogg,spoof,piper,neural,,,,\n"
        "audio/zero.wav,bonafide,,,,,,\n"
        "audio/a.wav,spoof,,,,,,\n"          # listed twice
        "audio/missing.wav,spoof,,,,,,\n"
        "../secret.wav,real,,,,,,\n"
        f"{tmp_path / 'secret.wav'},real,,,,,,\n"
        "audio/c.ogg,1,,,,,,\n"             # numeric label: ambiguous
    )
    entries = list(prepare_csv_manifest(manifest))
    rejects = {e.source.rsplit(":", 1)[1]: e.reason for e in entries if isinstance(e, CorpusReject)}
    assert rejects == {"6": "duplicate_entry", "7": "missing", "8": "outside_root", "9": "outside_root",
                       "10": "bad_label"}
    items = [e for e in entries if isinstance(e, CorpusItem)]
    assert [i.origin for i in items] == ["list.csv:2", "list.csv:3", "list.csv:4", "list.csv:5"]

    lake = str(tmp_path / "lake")
    summary = ingest(lake, "man", prepare_csv_manifest(manifest), IngestConfig())
    assert (summary.clips, summary.rejects) == (3, 6)
    con = Lake(lake).connect()
    row = con.execute("select label, generator, family, speaker, language, split, attributes['snr_db'] "
                      "from clips where source_relpath = 'audio/b.mp3'").fetchone()
    assert row == ("spoof", "espeak", "formant", "spk2", "fr", "test", "20")
    assert con.execute("select reason from rejects where source_uri like '%zero.wav'").fetchone() == ("empty",)


def test_missing_columns_is_a_config_error(tmp_path):
    (tmp_path / "manifest.csv").write_text("file,class\nx.wav,real\n")
    with pytest.raises(ConfigError, match=r"missing column\(s\) \['label', 'path'\]"):
        list(prepare_csv_manifest(tmp_path))
