from __future__ import annotations

import pytest
from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.asvspoof5 import parse_line, prepare_asvspoof5, split_of
from dfpipe.errors import RejectedInput
from dfpipe.ingest import ingest
from dfpipe.lake import Lake


def test_parse_line():
    fields = parse_line("T_4850 T_0000000000 F mp3 3 17 AC3 A05 spoof - extra\n")
    assert fields["file"] == "T_0000000000" and fields["label"] == "spoof" and fields["generator"] == "A05"
    assert fields["attributes"] == {"gender": "F", "codec": "mp3", "codec_q": "3", "codec_seed": "17",
                                    "attack_tag": "AC3", "attack_label": "A05", "extra_1": "extra"}
    assert parse_line("T_1 T_2 M - - - AC1 - spoof")["generator"] == "AC1"  # no label: the tag
    assert parse_line("T_1 T_3 M - - - bonafide bonafide bonafide -")["generator"] is None
    with pytest.raises(RejectedInput, match="bad_row"):
        parse_line("T_1 T_2 M")


def test_split_of():
    assert [split_of(p) for p in map(__import__("pathlib").Path,
            ["ASVspoof5.train.tsv", "ASVspoof5.dev.track_1.tsv", "ASVspoof5.eval.track_1.tsv", "x.tsv"])] == [
        "train", "dev", "eval", None]


def test_prepare_asvspoof5_and_ingest(tmp_path):
    root = tmp_path / "asv5"
    for i, name in enumerate(["T_0000000000", "T_0000000001", "T_0000000002"]):
        tone(root / "flac_T" / f"{name}.flac", 300 + 50 * i)
    tone(root / "flac_D" / "D_0000000000.flac", 500)
    (root / "flac_D" / "D_0000000001.flac").write_bytes(b"fLaC" + bytes(10))  # broken FLAC
    (root / "ASVspoof5.train.tsv").write_text(
        "T_4850 T_0000000000 F - - - AC3 A05 spoof -\n"
        "T_1138 T_0000000001 M - - - bonafide bonafide bonafide -\n"
        "T_4850 T_0000000002 F mp3 3 17 AC1 A11 spoof -\n"
        "T_4850 T_0000000009 F - - - AC1 A11 spoof -\n"   # no such FLAC
    )
    (root / "ASVspoof5.dev.track_1.tsv").write_text(
        "D_0001 D_0000000000 M - - - bonafide bonafide bonafide -\n"
        "D_0001 D_0000000001 M - - - AC2 A12 spoof -\n"
        "D_0001 D_0000000000 M - - - bonafide bonafide bonafide -\n"   # listed twice
    )
    entries = list(prepare_asvspoof5(root))
    items = [e for e in entries if isinstance(e, CorpusItem)]
    assert [(i.relpath, i.split) for i in items] == [
        ("flac_D/D_0000000000.flac", "dev"), ("flac_D/D_0000000001.flac", "dev"),
        ("flac_T/T_0000000000.flac", "train"), ("flac_T/T_0000000001.flac", "train"),
        ("flac_T/T_0000000002.flac", "train")]
    assert sorted(r.reason for r in entries if isinstance(r, CorpusReject)) == ["duplicate_entry", "missing"]

    lake = str(tmp_path / "lake")
    summary = ingest(lake, "asv5", prepare_asvspoof5(root), IngestConfig())
    assert (summary.clips, summary.rejects) == (4, 3)
    con = Lake(lake).connect()
    row = con.execute(
        "select label, generator, speaker, split, attributes['gender'], attributes['codec'], attributes['codec_q'],"
        " attributes['attack_tag'], source_codec from clips where source_relpath like '%T_0000000002.flac'").fetchone()
    assert row == ("spoof", "A11", "T_4850", "train", "F", "mp3", "3", "AC1", "flac")
    assert con.execute("select label, generator from clips where source_relpath like '%T_0000000001.flac'"
                       ).fetchone() == ("bonafide", None)
    # only the train protocol, split forced
    only = [e for e in prepare_asvspoof5(root / "ASVspoof5.train.tsv", split="test") if isinstance(e, CorpusItem)]
    assert {i.split for i in only} == {"test"} and len(only) == 3
