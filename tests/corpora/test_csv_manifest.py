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


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_encodings_with_a_byte_order_mark_crlf_and_quoting_are_read(tmp_path, encoding):
    tone(tmp_path / "dir, with comma" / "Zoë.wav", 300)
    text = ('path,label,speaker\r\n"dir, with comma/Zoë.wav","real","Zoë ""Z"" Ünal"\r\n'
            '"dir, with comma/Zoë.wav",fake,"two\r\nlines"\r\n')
    (tmp_path / "manifest.csv").write_bytes(text.encode(encoding))
    first, second = prepare_csv_manifest(tmp_path)
    assert isinstance(first, CorpusItem) and first.relpath == "dir, with comma/Zoë.wav"
    assert (first.label, first.speaker, first.origin) == ("bonafide", 'Zoë "Z" Ünal', "manifest.csv:2")
    assert (second.reason, second.source.rsplit(":", 1)[1]) == ("duplicate_entry", "4")  # a quoted CRLF is one row


def test_a_latin1_manifest_names_line_offset_and_the_encoding_option(tmp_path):
    tone(tmp_path / "café.wav", 300)
    (tmp_path / "manifest.csv").write_bytes("path,label\r\ncafé.wav,real\r\n".encode("cp1252"))
    with pytest.raises(ConfigError, match=r"manifest.csv: line 2, byte offset 15: b'\\xe9' is not utf-8; "
                                          r"it reads as cp1252: pass --encoding cp1252, or save it as UTF-8"):
        list(prepare_csv_manifest(tmp_path))
    (item,) = prepare_csv_manifest(tmp_path, encoding="cp1252")
    assert item.relpath == "café.wav"
    with pytest.raises(ConfigError, match="--encoding 'klingon' is not a text encoding"):
        list(prepare_csv_manifest(tmp_path, encoding="klingon"))
    # UTF-16 without a byte-order mark reads as NUL-riddled UTF-8: the error says what it likely is
    (tmp_path / "manifest.csv").write_bytes("path,label\na.wav,real\n".encode("utf-16-le"))
    with pytest.raises(ConfigError, match="pass --encoding utf-16-le"):
        list(prepare_csv_manifest(tmp_path))


def test_nul_control_characters_and_bad_rows_are_rejects_with_reasons(tmp_path):
    tone(tmp_path / "a.wav", 300)
    tone(tmp_path.parent / f"{tmp_path.name}-outside.wav", 310)
    (tmp_path / "manifest.csv").write_bytes(
        b"path,label,speaker\n"
        b"a\x00.wav,real,s\n"                     # 2: NUL in the path (ValueError in os.path)
        b"a.wav,real,s\x00x\n"                    # 3: NUL in another column
        b"a\x1b[2J.wav,real,s\n"                  # 4: a terminal escape in the path
        b"a.wav,real\n"                           # 5: a column short
        b"a.wav,real,s,extra\n"                   # 6: one value too many
        b"a.wav,real,s,,\n"                       # 7: trailing empty cells are fine
        + f"../{tmp_path.name}-outside.wav,real,s\n".encode()                 # 8
        + f"{tmp_path.parent / (tmp_path.name + '-outside.wav')},real,s\n".encode()  # 9
        + b'"' + b"x" * 200_000 + b'",real,s\n'    # 10: a field over the csv module's limit
    )
    entries = list(prepare_csv_manifest(tmp_path))
    got = {e.source.rsplit(":", 1)[1]: e.reason for e in entries if isinstance(e, CorpusReject)}
    assert got == {"2": "control_character", "3": "control_character", "4": "control_character",
                   "5": "bad_row", "6": "bad_row", "8": "outside_root", "9": "outside_root", "10": "bad_row"}
    assert [e.origin for e in entries if isinstance(e, CorpusItem)] == ["manifest.csv:7"]
    assert all("\x00" not in e.detail and "\x1b" not in e.detail for e in entries if isinstance(e, CorpusReject))
    allowed = [e for e in prepare_csv_manifest(tmp_path, allow_outside_root=True) if isinstance(e, CorpusItem)]
    assert [e.origin for e in allowed] == ["manifest.csv:7", "manifest.csv:8"]  # 9: the same file again
