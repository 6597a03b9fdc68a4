from __future__ import annotations

import subprocess

from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.in_the_wild import parse_row, prepare_in_the_wild
from dfpipe.ingest import ingest
from dfpipe.lake import Lake


def test_parse_row():
    # meta.csv line: 0.wav,Alec Guinness,spoof
    assert parse_row({"file": "0.wav", "speaker": "Alec Guinness", "label": "spoof"}) == (
        "0.wav", {"label": "spoof", "speaker": "Alec Guinness", "attributes": {}})
    assert parse_row({"file": "1.wav", "speaker": "X", "label": "bona-fide"})[1]["label"] == "bonafide"


def test_prepare_in_the_wild_and_ingest(tmp_path):
    root = tmp_path / "release_in_the_wild"
    root.mkdir()
    subprocess.run(["espeak-ng", "-w", str(root / "0.wav"), "a synthetic voice"], check=True)
    tone(root / "1.wav", 220, rate=16_000, seconds=1.0, noise=True)
    tone(root / "2.wav", 330)
    (root / "3.wav").write_bytes((root / "1.wav").read_bytes()[:30])  # truncated inside the header
    (root / "meta.csv").write_text(
        "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Barack Obama,bona-fide\n"
        "2.wav,Ayn Rand,bona-fide\n3.wav,Ayn Rand,spoof\n4.wav,Nobody,spoof\n"
    )
    entries = list(prepare_in_the_wild(root, split="ood"))
    assert [e.relpath for e in entries if isinstance(e, CorpusItem)] == ["0.wav", "1.wav", "2.wav", "3.wav"]
    assert [(e.reason, e.source.endswith("meta.csv:6")) for e in entries if isinstance(e, CorpusReject)] == [
        ("missing", True)]

    lake = str(tmp_path / "lake")
    summary = ingest(lake, "itw", prepare_in_the_wild(root / "meta.csv", split="ood"), IngestConfig())
    assert (summary.clips, summary.rejects, summary.reasons) == (3, 2, {"missing": 1, "undecodable": 1})
    con = Lake(lake).connect()
    assert con.execute("select label, speaker, split, sample_rate from clips where source_relpath = '0.wav'"
                       ).fetchone() == ("spoof", "Alec Guinness", "ood", 22050)


def test_malformed_meta_rows_are_rejects_with_line_numbers(tmp_path):
    tone(tmp_path / "0.wav", 300)
    (tmp_path / "meta.csv").write_bytes(
        b"\xef\xbb\xbffile,speaker,label\r\n0.wav,A,spoof\r\n0.wav,A\r\n0.wav,A,maybe\r\n0.wav,A,spoof,x\r\n"
        b"0\x00.wav,A,spoof\r\n")
    entries = list(prepare_in_the_wild(tmp_path))
    got = {e.source.rsplit(":", 1)[1]: e.reason for e in entries if isinstance(e, CorpusReject)}
    assert got == {"3": "bad_row", "4": "bad_label", "5": "bad_row", "6": "control_character"}
    assert [e.origin for e in entries if isinstance(e, CorpusItem)] == ["meta.csv:2"]
