"""``--format hf-parquet``: HF audio Parquet releases (embedded bytes) and path,label tables."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hf_fixtures import CARD, FEATURES, audio, write_hf_parquet
from ingest_fixtures import tone

from dfpipe.audio_io import DECODER, decode, decoder_version
from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.hf_parquet import card_of, parse_row, prepare_hf_parquet, split_of
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake
from dfpipe.parquet_source import is_row_uri, parse_row_uri
from dfpipe.stage_kit import as_source_uri, read_source

CONFIG = IngestConfig(files_per_shard=2)


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> dict[str, bytes]:
    """Encoded clips of four containers (distinct content)."""
    base = tmp_path_factory.mktemp("tones")
    files = {"a.wav": 300, "b.flac": 350, "c.mp3": 400, "d.ogg": 450, "e.wav": 500, "f.flac": 550}
    return {name: tone(base / name, freq).read_bytes() for name, freq in files.items()}


@pytest.fixture(scope="module")
def release(tmp_path_factory, tones) -> Path:
    """An HF-layout dataset folder: card, a 5-row train file (2 rows per row group) and a
    2-row validation file; one undecodable row, one duplicate, one row without a label."""
    root = tmp_path_factory.mktemp("hf") / "tiny-antispoof"
    root.mkdir()
    (root / "README.md").write_text(CARD)
    write_hf_parquet(root / "data" / "train-00000-of-00001.parquet", [
        {"audio": audio(tones["a.wav"], "LA_0001.wav"), "label": 0, "speaker": "p225", "snr_db": None},
        {"audio": audio(tones["b.flac"], "LA_0002.flac"), "label": 1, "speaker": "p226", "snr_db": 20.5},
        {"audio": audio(b"this is text, not audio\n" * 40, "LA_0003.wav"), "label": 1, "speaker": "p226",
         "snr_db": None},
        {"audio": audio(tones["c.mp3"], "LA_0004.mp3"), "label": 1, "speaker": None, "snr_db": None},
        {"audio": audio(tones["a.wav"], "LA_0005_copy.wav"), "label": 0, "speaker": "p225", "snr_db": None},
    ], row_group_size=2)
    write_hf_parquet(root / "data" / "validation-00000-of-00001.parquet", [
        {"audio": audio(tones["d.ogg"], "LA_0006.ogg"), "label": 0, "speaker": "p227", "snr_db": None},
        {"audio": audio(tones["e.wav"], "LA_0007.wav"), "label": -1, "speaker": "p227", "snr_db": None},
    ])
    return root


def test_parse_row_maps_class_labels_and_keeps_other_columns():
    names = {"label": ["bonafide", "spoof"], "speaker": ["s0", "s1"]}
    fields = parse_row({"label": 1, "speaker": 0, "snr": 20.5, "clean": True, "split": "validation",
                        "meta": {"b": 1}, "blob": b"\x00", "note": None}, class_names=names)
    assert fields["label"] == "spoof" and fields["split"] == "dev" and fields["speaker"] == "s0"
    assert fields["attributes"] == {"snr": "20.5", "clean": "true", "meta": '{"b": 1}'}
    with pytest.raises(RejectedInput, match="bad_label"):  # numeric, no names: ambiguous
        parse_row({"label": 1})
    with pytest.raises(RejectedInput, match="--bonafide-value"):
        parse_row({"label": "A07"})
    with pytest.raises(RejectedInput, match="bad_label"):  # ClassLabel -1: no label
        parse_row({"label": -1}, class_names=names)
    # --bonafide-value: that value (name or integer, any case) is bona fide, the rest spoof
    assert parse_row({"label": "Bonafide"}, bonafide_value="bonafide")["label"] == "bonafide"
    spoof = parse_row({"label": "A07", "attack": "x"}, bonafide_value="bonafide")
    assert spoof["label"] == "spoof" and spoof["attributes"] == {"label": "A07", "attack": "x"}
    assert parse_row({"label": 0}, bonafide_value="0")["label"] == "bonafide"
    assert parse_row({"label": 0}, bonafide_value="0", class_names={"label": ["real", "tts"]})["label"] == "bonafide"
    assert parse_row({"is_fake": False}, label_column="is_fake", bonafide_value="false")["label"] == "bonafide"


def test_split_from_card_and_file_names():
    _, patterns = card_of(Path(__file__).parent)  # no README.md here: nothing
    assert patterns == []
    assert split_of("data/train-00000-of-00004.parquet") == ("train", {})
    assert split_of("data/validation-00000-of-00001.parquet") == ("dev", {})
    assert split_of("CompSpoof_eval.parquet") == ("eval", {})
    assert split_of("default/test/0000.parquet") == ("test", {})
    assert split_of("data/holdout-0000.parquet") == (None, {})
    card = [("train_clean", "data/clean-*", "default"), ("test", "data/other-*", "default")]
    assert split_of("data/clean-0000.parquet", card) == ("train", {"hf_split": "train_clean"})
    assert split_of("data/other-0000.parquet", card) == ("test", {})


def test_card_features_and_data_files(release):
    features, patterns = card_of(release)
    assert features["label"] == {"_type": "ClassLabel", "names": ["bonafide", "spoof"]}
    assert features["audio"]["_type"] == "Audio"
    assert ("validation", "data/validation-*", "default") in patterns


def test_adapter_yields_row_sources(release, tones):
    entries = list(prepare_hf_parquet(release))
    items = [e for e in entries if isinstance(e, CorpusItem)]
    rejects = [e for e in entries if isinstance(e, CorpusReject)]
    assert len(items) == 6 and [r.reason for r in rejects] == ["bad_label"]
    first = items[0]
    assert is_row_uri(first.source) and first.relpath == "data/train-00000-of-00001.parquet:0"
    assert parse_row_uri(first.source) == (str(release / "data" / "train-00000-of-00001.parquet"), "audio.bytes", 0)
    assert (first.label, first.split, first.speaker, first.size_bytes) == ("bonafide", "train", "p225",
                                                                            len(tones["a.wav"]))
    assert first.attributes == {"audio_path": "LA_0001.wav"}
    assert items[1].attributes == {"audio_path": "LA_0002.flac", "snr_db": "20.5"}
    assert {i.split for i in items[-1:]} == {"dev"}
    assert [read_source(i.source) for i in items[:2]] == [tones["a.wav"], tones["b.flac"]]
    assert "ClassLabel" not in rejects[0].detail and rejects[0].detail.startswith(
        "data/validation-00000-of-00001.parquet:1: the label is -1")


def test_ingest_release_twice_rejects_and_duplicates(release, tones, tmp_path):
    lake = str(tmp_path / "lake")
    first = ingest(lake, "hf", corpus_entries("hf-parquet", release, CONFIG), CONFIG)
    assert (first.clips, first.rejects) == (4, 3)
    assert first.reasons == {"bad_label": 1, "duplicate": 1, "undecodable": 1}
    again = ingest(lake, "hf", corpus_entries("hf-parquet", release, CONFIG), CONFIG)
    assert (again.clips, again.rejects, again.skipped) == (0, 0, 7)
    con = Lake(lake).connect()
    rows = con.execute("select source_relpath, label, split, speaker, source_codec, content_sha256, decoder, "
                       "decoder_version, attributes['audio_path'] from clips order by source_uri").fetchall()
    assert [r[:5] for r in rows] == [
        ("data/train-00000-of-00001.parquet:0", "bonafide", "train", "p225", "pcm_s16le"),
        ("data/train-00000-of-00001.parquet:1", "spoof", "train", "p226", "flac"),
        ("data/train-00000-of-00001.parquet:3", "spoof", "train", None, "mp3"),
        ("data/validation-00000-of-00001.parquet:0", "bonafide", "dev", "p227", "vorbis"),
    ]
    assert rows[0][5] == hashlib.sha256(tones["a.wav"]).hexdigest()
    assert {(r[6], r[7]) for r in rows} == {(DECODER, decoder_version())} and DECODER == "pyav"
    assert [r[8] for r in rows] == ["LA_0001.wav", "LA_0002.flac", "LA_0004.mp3", "LA_0006.ogg"]
    rejects = dict(con.execute("select reason, detail from rejects").fetchall())
    assert rejects["undecodable"].startswith("data/train-00000-of-00001.parquet:2: ")
    kept = con.execute("select source_uri from clips where source_relpath like '%:0' and split = 'train'").fetchone()[0]
    assert rejects["duplicate"] == f"data/train-00000-of-00001.parquet:4: same bytes as {kept}"
    # later stages re-read each clip from its source_uri: the bytes, then the samples
    for (uri,) in con.execute("select source_uri from clips").fetchall():
        assert decode(read_source(uri), 16_000).size > 1000


def test_a_later_file_duplicating_a_committed_row(release, tones, tmp_path):
    """An incremental run hashes every new row (read back from the Parquet file) against the lake."""
    root = tmp_path / "release"
    shutil.copytree(release, root)
    lake = str(tmp_path / "lake")
    ingest(lake, "hf", corpus_entries("hf-parquet", root, CONFIG), CONFIG)
    write_hf_parquet(root / "data" / "test-00000-of-00001.parquet", [
        {"audio": audio(tones["f.flac"], "new.flac"), "label": 1, "speaker": None, "snr_db": None},
        {"audio": audio(tones["b.flac"], "again.flac"), "label": 1, "speaker": None, "snr_db": None},
    ])
    later = ingest(lake, "hf", corpus_entries("hf-parquet", root, CONFIG), CONFIG)
    assert (later.clips, later.rejects, later.skipped, later.reasons) == (1, 1, 7, {"duplicate": 1})
    con = Lake(lake).connect()
    detail = con.execute("select detail from rejects where source_uri like '%/data/test-0%'").fetchone()[0]
    assert detail.startswith("data/test-00000-of-00001.parquet:1: same bytes as parquet://")
    assert detail.endswith("train-00000-of-00001.parquet?column=audio.bytes&row=1")


def test_path_tables_parquet_and_csv(tmp_path, tones):
    root = tmp_path / "deepfense"
    for name in ("a.wav", "b.flac"):
        (root / "wav").mkdir(parents=True, exist_ok=True)
        (root / "wav" / name).write_bytes(tones[name])
    pq.write_table(pa.table({"ID": ["A", "B", "C", "D"], "path": ["wav/a.wav", "wav/b.flac", "wav/none.wav", "../x.wav"],
                             "label": ["bonafide", "spoof", "spoof", "spoof"]}), root / "CompSpoof_train.parquet")
    (root / "meta_eval.csv").write_text("path,target\nwav/a.wav,1\nwav/b.flac,0\n")
    entries = list(prepare_hf_parquet(root / "CompSpoof_train.parquet"))
    assert [(e.relpath, e.label, e.split, dict(e.attributes)) for e in entries if isinstance(e, CorpusItem)] == [
        ("wav/a.wav", "bonafide", "train", {"ID": "A"}), ("wav/b.flac", "spoof", "train", {"ID": "B"})]
    assert [(e.source.rsplit(":", 1)[1], e.reason) for e in entries if isinstance(e, CorpusReject)] == [
        ("2", "missing"), ("3", "outside_root")]
    csv_items = list(prepare_hf_parquet(root / "meta_eval.csv", label_column="target", bonafide_value="1",
                                        split="ood"))
    assert [(e.relpath, e.label, e.split, dict(e.attributes)) for e in csv_items] == [
        ("wav/a.wav", "bonafide", "ood", {"target": "1"}), ("wav/b.flac", "spoof", "ood", {"target": "0"})]


def test_null_bytes_fall_back_to_the_path(tmp_path, tones):
    root = tmp_path / "rel"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "x.flac").write_bytes(tones["f.flac"])
    write_hf_parquet(root / "train.parquet", [
        {"audio": audio(None, "clips/x.flac"), "label": 1, "speaker": None, "snr_db": None},
        {"audio": audio(None, None), "label": 1, "speaker": None, "snr_db": None},
        {"audio": None, "label": 0, "speaker": None, "snr_db": None},
    ])
    entries = list(prepare_hf_parquet(root))
    assert isinstance(entries[0], CorpusItem) and entries[0].source == str(root / "clips" / "x.flac")
    assert entries[0].relpath == "clips/x.flac" and entries[0].origin == "train.parquet:0"
    assert [(e.reason, e.detail) for e in entries[1:]] == [
        ("missing", "train.parquet:1: the row has no audio (audio.bytes and its path are NULL)"),
        ("missing", "train.parquet:2: the row has no audio (audio.bytes and its path are NULL)"),
    ]


def test_bad_options_and_files_are_one_line(tmp_path, release):
    with pytest.raises(ConfigError, match=r"no column 'lbl' \(--label-column\); columns are \['audio', 'label'"):
        list(prepare_hf_parquet(release, label_column="lbl"))
    with pytest.raises(ConfigError, match="--split: split 'later' is not one of"):
        list(prepare_hf_parquet(release, split="later"))
    with pytest.raises(ConfigError, match="holds no"):
        list(prepare_hf_parquet(tmp_path))
    with pytest.raises(ConfigError, match="--label-column does not apply to --format folder"):
        corpus_entries("folder", tmp_path, IngestConfig(adapter_options={"label_column": "x"}))
    renamed = {"speech" if k == "audio" else k: v for k, v in FEATURES.items()}
    write_hf_parquet(tmp_path / "other" / "test.parquet", [
        {"speech": audio(b"RIFF", "a.wav"), "label": 1, "speaker": None, "snr_db": None}], features=renamed)
    (tmp_path / "other" / "zz.parquet").write_bytes(b"PAR1 not really")
    entries = list(prepare_hf_parquet(tmp_path / "other"))  # the Audio column found by its feature
    assert isinstance(entries[0], CorpusItem) and parse_row_uri(entries[0].source)[1] == "speech.bytes"
    assert isinstance(entries[1], CorpusReject) and entries[1].reason == "unreadable"


def test_row_reads_stream_a_large_row_group(tmp_path):
    """One row group of 3000 x 16 kB values (48 MB, 1 MB pages): any row reads back, and memory
    stays near one batch plus one page, not the row group."""
    values = [bytes([i % 251]) * 16_000 + i.to_bytes(4, "little") for i in range(3000)]
    path = tmp_path / "one group.parquet"  # a space: the URI quotes the path
    pq.write_table(pa.table({"wav": pa.array(values, pa.binary())}), path, row_group_size=10_000,
                   compression="none", write_batch_size=64)
    from dfpipe.parquet_source import row_uri

    before = pa.total_allocated_bytes()
    for row in (5, 6, 2999, 1200, 7, 1201):
        assert read_source(row_uri(path, "wav", row, rows=3000)) == values[row]
    assert pa.total_allocated_bytes() - before < 8_000_000
    with pytest.raises(RejectedInput, match="missing"):
        read_source(row_uri(path, "wav", 3000, rows=3000))
    with pytest.raises(RejectedInput, match="unreadable"):
        read_source(row_uri(path, "nope", 1))
    with pytest.raises(RejectedInput, match="missing"):
        read_source(row_uri(tmp_path / "gone.parquet", "wav", 1))


@pytest.mark.slow
def test_dfpipe_ingest_hf_parquet_and_lhotse_commands(prefect_server, release, tmp_path):
    """The commands a user types: ingest a release, export it to lhotse, ingest that back."""
    from click.testing import CliRunner

    from dfpipe.cli import main

    runner = CliRunner()
    lake = str(tmp_path / "lake")
    args = ["ingest", "--lake", lake, "--corpus", "tiny", "--format", "hf-parquet", "--label-column", "label",
            "--workers", "1", str(release)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "tiny: 4 clips and 3 rejects added (bad_label 1, duplicate 1, undecodable 1)" in result.output
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "0 clips and 0 rejects added" in again.output and "7 inputs already" in again.output
    wrong = runner.invoke(main, ["ingest", "--lake", lake, "--corpus", "x", "--format", "folder",
                                 "--bonafide-value", "real", str(release)])
    assert wrong.exit_code == 1 and "--bonafide-value does not apply to --format folder" in wrong.output
    exported = runner.invoke(main, ["export", "--lake", lake, "--lhotse", str(tmp_path / "lhotse")])
    assert exported.exit_code == 0 and "4 recordings in 4 manifests" in exported.output
    back = runner.invoke(main, ["ingest", "--lake", lake, "--corpus", "tiny-lhotse", "--format", "lhotse",
                                "--allow-outside-root", "--workers", "1", str(tmp_path / "lhotse")])
    assert back.exit_code == 0 and "tiny-lhotse: 4 clips and 0 rejects added" in back.output
    con = Lake(lake).connect()
    assert con.execute("select count(*) from clips a join clips b using (content_sha256) where a.corpus = 'tiny' "
                       "and b.corpus = 'tiny-lhotse' and a.label = b.label and a.split = b.split "
                       "and a.speaker is not distinct from b.speaker").fetchone() == (4,)


def test_clips_written_before_the_decoder_columns_still_read(tmp_path, release):
    """A lake made before ``clips.decoder``/``decoder_version`` existed reads them as NULL."""
    from dfpipe.schemas import CLIPS

    lake = Lake(str(tmp_path / "lake"))
    ingest(lake.uri, "hf", corpus_entries("hf-parquet", release, CONFIG), CONFIG)
    new = lake.read("clips")
    old_schema = pa.schema([f for f in CLIPS if f.name not in ("decoder", "decoder_version")])
    old = new.select(old_schema.names).cast(old_schema).replace_schema_metadata(None)
    old = old.set_column(old.schema.get_field_index("corpus"), "corpus", pa.array(["old"] * old.num_rows))
    folder = Path(lake.table_path("clips", {"corpus": "old"}))
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "part-old.parquet")
    both = lake.read("clips", columns=["corpus", "decoder"]).to_pylist()
    assert {(r["corpus"], r["decoder"]) for r in both} == {("hf", "pyav"), ("old", None)}
    counts = lake.connect().execute("select corpus, count(decoder_version), count(*) from clips group by 1 order by 1")
    assert counts.fetchall() == [("hf", 4, 4), ("old", 0, 4)]


def test_csv_tables_take_the_encoding_option_and_a_latin1_parquet_name_is_a_reject(tmp_path):
    tone(tmp_path / "wav" / "é.wav", 300)
    (tmp_path / "meta_eval.csv").write_bytes("path,label\r\nwav/é.wav,spoof\r\n".encode("utf-16"))
    (item,) = prepare_hf_parquet(tmp_path / "meta_eval.csv")  # a byte-order mark: detected
    assert (item.relpath, item.split) == ("wav/é.wav", "eval")
    (tmp_path / "meta_eval.csv").write_bytes("path,label\nwav/é.wav,spoof\n".encode("cp1252"))
    with pytest.raises(ConfigError, match="pass --encoding cp1252"):
        list(prepare_hf_parquet(tmp_path / "meta_eval.csv"))
    (item,) = prepare_hf_parquet(tmp_path / "meta_eval.csv", encoding="cp1252")
    assert item.relpath == "wav/é.wav"
    # a Parquet file whose name is not UTF-8 (pyarrow cannot open it): a reject naming it
    release = tmp_path / "release"
    write_hf_parquet(release / "data" / "train-00000-of-00001.parquet",
                     [{"audio": audio(tone(tmp_path / "a.wav", 320).read_bytes(), "a.wav"), "label": 0}])
    name = release / "data" / "train-00000-of-00001.parquet"
    latin1 = os.fsdecode(os.fsencode(name.parent) + b"/train-caf\xe9.parquet")
    os.rename(name, latin1)
    (reject,) = prepare_hf_parquet(release)
    assert (reject.reason, reject.source) == ("unreadable", as_source_uri(latin1))
    assert reject.detail.startswith("data/train-caf\\xe9.parquet: pyarrow cannot open")
