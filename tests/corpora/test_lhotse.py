"""lhotse interop: ``--format lhotse`` reads RecordingSet + SupervisionSet manifests and
``dfpipe export --lhotse`` writes them; a manifest round-trips through both.

The manifests are written here exactly as lhotse's ``RecordingSet.to_file`` writes them
(one ``json.dumps`` per line, gzip); when lhotse is installed (the ``lhotse`` extra), the
same round trip is checked against lhotse's own writer and loaders.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hf_fixtures import audio, write_hf_parquet
from ingest_fixtures import tone

from dfpipe.cli import main
from dfpipe.config import IngestConfig
from dfpipe.corpora import CorpusItem, CorpusReject
from dfpipe.corpora.lhotse_manifest import manifest_pairs, parse_recording, prepare_lhotse
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.export import export_lhotse
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake

OUTSIDE = IngestConfig(allow_outside_root=True)
COMPARED = ("clip_id", "label", "generator", "family", "split", "speaker", "language", "source_uri",
            "content_sha256", "duration_s", "sample_rate", "channels")


def recording(rid: str, path: str | Path, rate: int = 16_000, samples: int = 8_000, channels: int = 1) -> dict:
    """A Recording as ``Recording.to_dict`` writes it."""
    ids = list(range(channels))
    return {"id": rid, "sources": [{"type": "file", "channels": ids, "source": str(path)}], "sampling_rate": rate,
            "num_samples": samples, "duration": samples / rate, "channel_ids": ids}


def supervision(rid: str, label: str | None, **fields) -> dict:
    """A SupervisionSegment (whole recording) as ``SupervisionSegment.to_dict`` writes it."""
    custom = {"label": label, **fields.pop("custom", {})} if label is not None else fields.pop("custom", {})
    return {"id": rid, "recording_id": rid, "start": 0, "duration": 0.5, "channel": 0, **fields, "custom": custom}


def write_jsonl_gz(path: Path, rows: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def clips(lake: str) -> list[tuple]:
    return Lake(lake).connect().execute(f"select {', '.join(COMPARED)} from clips order by clip_id").fetchall()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder corpus (real/, fake/<generator>/) of wav and flac files, one stereo."""
    root = tmp_path_factory.mktemp("lh") / "corpus"
    tone(root / "real" / "a.wav", 300)
    tone(root / "real" / "b.flac", 320, rate=8_000)
    tone(root / "fake" / "espeak" / "c.wav", 340, channels=2)
    tone(root / "fake" / "piper" / "d.flac", 360, rate=22_050)
    return root


def test_parse_recording():
    rec = recording("u1", "wav/u1.wav")
    sups = [supervision("u1", "Fake", speaker="s1", language="en", gender="f", text="hello",
                        custom={"generator": "espeak", "split": "validation", "snr": 20, "clip_id": "x",
                                "attributes": {"room": "a"}})]
    path, fields = parse_recording({**rec, "transforms": [{"name": "Speed", "kwargs": {"factor": 1.1}}]}, sups)
    assert path == "wav/u1.wav"
    assert (fields["label"], fields["generator"], fields["split"], fields["speaker"], fields["language"]) == (
        "spoof", "espeak", "dev", "s1", "en")
    assert fields["attributes"] == {"lhotse_recording_id": "u1", "room": "a", "snr": "20", "gender": "f",
                                    "text": "hello",
                                    "lhotse_transforms": '[{"kwargs": {"factor": 1.1}, "name": "Speed"}]'}
    two = [supervision("u1", "spoof", speaker="s1"), {**supervision("u1", "spoof", speaker="s2"), "start": 0.2}]
    assert parse_recording(rec, two)[1]["speaker"] is None  # speakers disagree: unknown
    assert parse_recording(rec, [supervision("u1", None, custom={"cls": "A01"})], label_column="cls",
                           bonafide_value="bonafide")[1]["label"] == "spoof"
    bad = {
        "bad_label": [(rec, []), (rec, [supervision("u1", "spoof"), supervision("u1", "real")]),
                      (rec, [supervision("u1", None)]), (rec, [supervision("u1", "1")])],
        "bad_row": [({**rec, "sources": rec["sources"] * 2}, sups), ({"sources": []}, sups),
                    ({**rec, "sources": [{"type": "command", "channels": [0], "source": "sox x.wav -t wav -"}]}, sups)],
    }
    for reason, cases in bad.items():
        for rec_case, sup_case in cases:
            with pytest.raises(RejectedInput, match=reason):
                parse_recording(rec_case, sup_case)
    url = {**rec, "sources": [{"type": "url", "channels": [0], "source": "file:///data/u1.wav"}]}
    assert parse_recording(url, sups)[0] == "/data/u1.wav"


def test_prepare_and_ingest_with_rejects(corpus, tmp_path):
    out = tmp_path / "manifests"
    write_jsonl_gz(out / "tiny_recordings_train-clean.jsonl.gz", [
        recording("a", corpus / "real" / "a.wav"),
        recording("b", corpus / "real" / "b.flac", rate=8_000, samples=4_000),
        "{not json",
        recording("a", corpus / "real" / "a.wav"),             # repeated id
        recording("c", corpus / "fake" / "espeak" / "c.wav", channels=2),
        recording("lost", corpus / "real" / "lost.wav"),        # no such file
        recording("mute", corpus / "real" / "a.wav"),           # no supervision
    ])
    write_jsonl_gz(out / "tiny_supervisions_train-clean.jsonl.gz", [
        supervision("a", "bonafide", speaker="s1", language="en"),
        supervision("b", "real", speaker="s2"),
        supervision("c", "spoof", custom={"generator": "espeak"}),
        supervision("lost", "spoof"),
        supervision("ghost", "spoof"),                          # no such recording
        {"id": "x"},                                            # not a supervision
    ])
    assert manifest_pairs(out / "tiny_supervisions_train-clean.jsonl.gz") == manifest_pairs(out)
    entries = list(prepare_lhotse(out, allow_outside_root=True))
    rejects = {e.source.rsplit("/", 1)[1]: (e.reason, e.detail) for e in entries if isinstance(e, CorpusReject)}
    assert {k: v[0] for k, v in rejects.items()} == {
        "tiny_supervisions_train-clean.jsonl.gz:6": "bad_row", "tiny_recordings_train-clean.jsonl.gz:3": "bad_row",
        "tiny_recordings_train-clean.jsonl.gz:4": "duplicate_entry",
        "tiny_recordings_train-clean.jsonl.gz:6": "missing", "tiny_recordings_train-clean.jsonl.gz:7": "bad_label",
        "tiny_supervisions_train-clean.jsonl.gz:5": "bad_row"}
    assert "recording 'ghost', which tiny_recordings_train-clean.jsonl.gz does not hold" in rejects[
        "tiny_supervisions_train-clean.jsonl.gz:5"][1]
    items = [e for e in entries if isinstance(e, CorpusItem)]
    assert [(Path(i.source).relative_to(corpus).as_posix(), i.label, i.split, i.speaker, i.generator)
            for i in items] == [("real/a.wav", "bonafide", "train", "s1", None),
                                ("real/b.flac", "bonafide", "train", "s2", None),
                                ("fake/espeak/c.wav", "spoof", "train", None, "espeak")]
    assert items[0].attributes == {"lhotse_recording_id": "a", "lhotse_part": "train-clean"}
    # without --allow-outside-root, absolute paths elsewhere are refused
    assert {e.reason for e in prepare_lhotse(out) if isinstance(e, CorpusReject)} >= {"outside_root"}

    lake = str(tmp_path / "lake")
    for _ in range(2):  # the second run adds nothing
        summary = ingest(lake, "tiny", corpus_entries("lhotse", out, OUTSIDE), OUTSIDE)
    assert (summary.clips, summary.rejects, summary.skipped) == (0, 0, 9)
    assert Lake(lake).connect().execute("select count(*) from clips").fetchone() == (3,)


def test_folder_corpus_round_trips_through_export_and_ingest(corpus, tmp_path):
    first, second = str(tmp_path / "lake1"), str(tmp_path / "lake2")
    ingest(first, "rt", corpus_entries("folder", corpus, IngestConfig()))
    summary = export_lhotse(first, tmp_path / "out1")
    assert summary.recordings == 4 and [Path(p).name for p in summary.manifests] == [
        "rt_recordings.jsonl.gz", "rt_supervisions.jsonl.gz"]
    recs, sups = (read_jsonl_gz(Path(p)) for p in summary.manifests)
    stereo = next(r for r in recs if r["sources"][0]["source"].endswith("c.wav"))
    assert stereo["channel_ids"] == [0, 1] and stereo["sampling_rate"] == 16_000 and stereo["num_samples"] == 8_000
    sup = next(s for s in sups if s["recording_id"] == stereo["id"])
    assert sup["custom"] == {"label": "spoof", "clip_id": stereo["id"], "generator": "espeak"}
    assert sup["channel"] == [0, 1] and sup["duration"] == 0.5

    ingest(second, "rt", corpus_entries("lhotse", tmp_path / "out1", OUTSIDE), OUTSIDE)
    assert clips(second) == clips(first)
    again = export_lhotse(second, tmp_path / "out2")
    for one, two in zip(summary.manifests, again.manifests, strict=True):
        assert Path(one).read_bytes() == Path(two).read_bytes()


def test_export_per_split_and_embedded_audio(tmp_path):
    data = {name: tone(tmp_path / "src" / name, freq).read_bytes() for name, freq in (("a.wav", 300), ("b.flac", 400))}
    write_hf_parquet(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet", [
        {"audio": audio(data["a.wav"], "a.wav"), "label": 0, "speaker": "s1", "snr_db": 3.0}])
    write_hf_parquet(tmp_path / "hf" / "data" / "test-00000-of-00001.parquet", [
        {"audio": audio(data["b.flac"], None), "label": 1, "speaker": None, "snr_db": None}])
    lake = str(tmp_path / "lake")
    ingest(lake, "hf", corpus_entries("hf-parquet", tmp_path / "hf", IngestConfig()))
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--lake", lake, "--lhotse", str(tmp_path / "out"), "--corpus", "hf"])
    assert result.exit_code == 0, result.output
    assert "2 recordings in 4 manifests" in result.output and "2 embedded clips written to audio/" in result.output
    recs = read_jsonl_gz(tmp_path / "out" / "hf_recordings_test.jsonl.gz")
    path = Path(recs[0]["sources"][0]["source"])
    assert path.parent == tmp_path / "out" / "audio" / "hf" and path.suffix == ".flac"
    assert path.read_bytes() == data["b.flac"]
    sup = read_jsonl_gz(tmp_path / "out" / "hf_supervisions_train.jsonl.gz")[0]
    assert sup["speaker"] == "s1" and sup["custom"]["attributes"] == {"audio_path": "a.wav", "snr_db": "3.0"}
    rerun = runner.invoke(main, ["export", "--lake", lake, "--lhotse", str(tmp_path / "out")])
    assert rerun.exit_code == 0 and "embedded" not in rerun.output  # the audio files are kept
    assert runner.invoke(main, ["export", "--lake", lake]).exit_code == 2
    missing = runner.invoke(main, ["export", "--lake", lake, "--lhotse", str(tmp_path / "x"), "--corpus", "nope"])
    assert missing.exit_code == 1 and "corpus 'nope' has no clips" in missing.output


def test_bad_paths_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="holds no"):
        list(prepare_lhotse(tmp_path))
    write_jsonl_gz(tmp_path / "x_recordings.jsonl.gz", [])
    with pytest.raises(ConfigError, match="x_supervisions.jsonl.gz not found"):
        list(prepare_lhotse(tmp_path))


def test_round_trip_with_lhotse_itself(corpus, tmp_path):
    lhotse = pytest.importorskip("lhotse")
    recordings = lhotse.RecordingSet.from_recordings(
        lhotse.Recording.from_file(path, recording_id=path.stem)
        for path in sorted(corpus.rglob("*.*")))
    supervisions = lhotse.SupervisionSet.from_segments(
        lhotse.SupervisionSegment(id=r.id, recording_id=r.id, start=0.0, duration=r.duration,
                                  channel=r.channel_ids[0] if r.num_channels == 1 else r.channel_ids,
                                  speaker=f"spk-{r.id}", language="en", gender="m", text=f"utterance {r.id}",
                                  custom={"label": "spoof" if "fake" in r.sources[0].source else "bonafide"})
        for r in recordings)
    (tmp_path / "in").mkdir()
    recordings.to_file(tmp_path / "in" / "c_recordings_dev.jsonl.gz")
    supervisions.to_file(tmp_path / "in" / "c_supervisions_dev.jsonl.gz")
    lake = str(tmp_path / "lake")
    ingest(lake, "c", corpus_entries("lhotse", tmp_path / "in", OUTSIDE), OUTSIDE)
    summary = export_lhotse(lake, tmp_path / "out")
    got_recs = lhotse.RecordingSet.from_file(tmp_path / "out" / "c_recordings_dev.jsonl.gz").to_eager()
    got_sups = lhotse.SupervisionSet.from_file(tmp_path / "out" / "c_supervisions_dev.jsonl.gz").to_eager()
    lhotse.validate_recordings_and_supervisions(got_recs, got_sups)
    assert summary.recordings == 4 and sorted(got_recs.ids) == sorted(recordings.ids)
    for rec in recordings:
        got = got_recs[rec.id]
        assert (got.sources[0].source, got.sampling_rate, got.num_samples, got.channel_ids) == (
            rec.sources[0].source, rec.sampling_rate, rec.num_samples, rec.channel_ids)
        assert got.load_audio().shape == rec.load_audio().shape
    for sup in supervisions:
        got = got_sups[sup.id]
        assert (got.speaker, got.language, got.gender, got.text, got.custom["label"]) == (
            sup.speaker, sup.language, sup.gender, sup.text, sup.custom["label"])
        assert got.custom["split"] == "dev"


def test_a_line_that_is_not_utf8_rejects_that_line_only(corpus, tmp_path):
    out = tmp_path / "manifests"
    good = json.dumps(recording("a", corpus / "real" / "a.wav")).encode()
    (out / "x_recordings.jsonl").parent.mkdir(parents=True)
    (out / "x_recordings.jsonl").write_bytes(b'{"id": "caf\xe9"}\n' + good + b"\n")
    (out / "x_supervisions.jsonl").write_text(json.dumps(supervision("a", "bonafide")) + "\n")
    first, second = prepare_lhotse(out, allow_outside_root=True)
    assert (first.reason, first.source.rsplit("/", 1)[1]) == ("bad_row", "x_recordings.jsonl:1")
    assert "byte 0xe9 at byte offset 11 of the line is not UTF-8" in first.detail
    assert isinstance(second, CorpusItem) and second.attributes["lhotse_recording_id"] == "a"
