from __future__ import annotations

import pytest
from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.asvspoof5 import parse_line, prepare_asvspoof5, split_of
from dfpipe.errors import ConfigError, RejectedInput
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


def test_the_release_layout_reads_track_1_only(tmp_path):
    # As the release unpacks: protocols in ASVspoof5_protocols/ beside the Track 2 files (other
    # columns), audio in flac_T/, flac_D/ (with Track 2 enrolment files) and flac_E_eval/.
    root = tmp_path / "ASVspoof5"
    protocols = root / "ASVspoof5_protocols"
    protocols.mkdir(parents=True)
    track_1 = {
        "ASVspoof5.train.tsv": ["T_4850 T_0000000000 F - - - AC3 A05 spoof -",
                                "T_1138 T_0000000001 M - - - bonafide bonafide bonafide -"],
        "ASVspoof5.dev.track_1.tsv": ["D_0062 D_0000000001 F - - - AC1 A11 spoof -",
                                      "D_0755 D_0000000002 M - - - bonafide bonafide bonafide -"],
        "ASVspoof5.eval.track_1.tsv": ["E_0001 E_0000000001 F C05 3 12 AC2 A19 spoof -",
                                       "E_0002 E_0000000002 M - 0 - bonafide bonafide bonafide -"],
    }
    track_2 = {
        "ASVspoof5.dev.track_2.enroll.tsv": ["D_0062 D_A0000000562,D_A0000000898"],
        "ASVspoof5.dev.track_2.trial.tsv": ["D_0062 D_0000000001 F A11 spoof",
                                            "D_0062 D_0000000002 M bonafide nontarget"],
        "ASVspoof5.eval.track_2.enroll.tsv": ["E_0001 E_A0000000011"],
        "ASVspoof5.eval.track_2.trial.tsv": ["E_0001 E_0000000002 M bonafide nontarget"],
    }
    for name, lines in {**track_1, **track_2}.items():
        (protocols / name).write_text("\n".join(lines) + "\n")
    (protocols / "ASVspoof5.codec.config.csv").write_text("codec,name\nC05,mp3_wb\n")  # not read by ingest
    folders = {"T": "flac_T", "D": "flac_D", "E": "flac_E_eval"}
    names = [line.split()[1] for lines in track_1.values() for line in lines]
    for i, name in enumerate([*names, "D_A0000000562", "D_A0000000898", "E_A0000000011"]):
        tone(root / folders[name[0]] / f"{name}.flac", 300 + 20 * i)

    lake = str(tmp_path / "lake")
    summary = ingest(lake, "asv5", prepare_asvspoof5(root), IngestConfig())
    assert (summary.clips, summary.rejects) == (6, 0)  # one clip per Track 1 row, no Track 2 noise
    rows = Lake(lake).connect().execute(
        "select split, count(*), count_if(label = 'spoof') from clips group by 1 order by 1").fetchall()
    assert rows == [("dev", 2, 1), ("eval", 2, 1), ("train", 2, 1)]
    with pytest.raises(ConfigError, match="Track 2"):
        list(prepare_asvspoof5(root, protocols=[protocols / "ASVspoof5.dev.track_2.trial.tsv"]))
    with pytest.raises(ConfigError, match="no Track 1 protocol"):
        list(prepare_asvspoof5(root / "flac_T"))


def test_malformed_protocol_lines_are_rejects_with_line_numbers(tmp_path):
    root = tmp_path / "asv5"
    tone(root / "flac_T" / "T_0000000000.flac", 300)
    tone(root / "flac_T" / "T_0000000001.flac", 320)
    (root / "ASVspoof5.train.tsv").write_bytes(
        b"\xef\xbb\xbfT_1 T_0000000000 F - - - AC3 A05 spoof -\r\n"   # BOM and CRLF: fine
        b"T_1 T_0000000001 F - - AC3\n"                            # 2: too few columns
        b"T_1 T_0000000001 F - - - AC3 A05 maybe -\n"              # 3: neither class
        b"T_1 T_000000\xe9001 F - - - AC3 A05 spoof -\n"           # 4: not UTF-8
        b"T_1 T_00\x00001 F - - - AC3 A05 spoof -\n"               # 5: a NUL
        b"\n"
        b"T_1 T_0000000001 F - - - AC3 A05 spoof -\n"              # 7: fine
    )
    entries = list(prepare_asvspoof5(root))
    got = {e.source.rsplit(":", 1)[1]: (e.reason, e.detail) for e in entries if isinstance(e, CorpusReject)}
    assert {line: reason for line, (reason, _) in got.items()} == {
        "2": "bad_row", "3": "bad_label", "4": "bad_row", "5": "control_character"}
    assert got["4"][1] == "ASVspoof5.train.tsv:4: byte 0xe9 at byte offset 12 of the line is not UTF-8"
    assert [e.origin for e in entries if isinstance(e, CorpusItem)] == ["ASVspoof5.train.tsv:1",
                                                                        "ASVspoof5.train.tsv:7"]
