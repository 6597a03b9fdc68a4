"""The publishable record: ``export-scores --record`` -> ``eval --record`` round trip, and a
tampered score file or record that fails the check (exit 1, one line)."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest
import yaml
from asv_reference import eer
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.lake import Lake, conform

N = 60
SKIPPED = 3  # clips of the evaluated split that got no prediction


def make_lake(tmp_path):
    """A lake with 60 predictions of run R epoch 2 on dataset ood, and 3 more test clips unscored."""
    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(7)
    logits = np.round(rng.normal(0, 2, N), 3)  # rounded: ties, as real 3-decimal logits
    labels = np.where(np.arange(N) % 3 == 0, "bonafide", "spoof")
    ids = [f"c{i:02d}" for i in range(N + SKIPPED)]
    lake.write_shard("predictions", conform("predictions", pa.table({
        "run_id": ["R"] * N, "epoch": [2] * N, "dataset": ["ood"] * N, "clip_id": ids[:N],
        "corpus": ["itw"] * N, "condition": ["flac"] * N, "label": labels, "spoof_logit": logits,
        "split": ["test"] * N,
    })), shard="p")
    n = N + SKIPPED
    lake.write_shard("clips", conform("clips", pa.table({
        "clip_id": ids, "corpus": ["itw"] * n, "split": ["test"] * n,
        "label": [*labels, "spoof", "spoof", "bonafide"],
        "source_uri": [f"/data/itw/wav/{i}.wav" for i in range(n)],
        "source_relpath": [f"wav/{i}.wav" for i in range(n)], "source_codec": ["pcm_s16le"] * n,
        "source_format": ["wav"] * n, "duration_s": [3.0] * n, "sample_rate": [16000] * n,
        "channels": [1] * n, "size_bytes": [96044] * n, "content_sha256": [f"{i:064x}" for i in range(n)],
    })), shard="c")
    return lake, -logits, labels  # cm scores: higher = bona fide


def export(lake, out, *extra):
    return CliRunner().invoke(main, [
        "export-scores", "--lake", lake.uri, "--run", "R", "--epoch", "2", "--dataset", "ood",
        "--record", str(out), "--system", "mel-cnn-flac", "--dataset-id", "example/in-the-wild",
        "--revision", "1f2e3d4c", "--split", "test", *extra])


def check(record, *extra):
    return CliRunner().invoke(main, ["eval", "--record", str(record), *extra])


@pytest.fixture
def exported(tmp_path):
    lake, cm_scores, labels = make_lake(tmp_path)
    out = tmp_path / "record"
    result = export(lake, out)
    assert result.exit_code == 0, result.output
    return out, cm_scores, labels


def test_export_record_writes_the_arena_files_and_round_trips(exported):
    out, cm_scores, labels = exported
    raw = (out / "scores.txt").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert len(lines) == N  # no header
    assert [line.split(" ")[0] for line in lines] == [f"c{i:02d}" for i in range(N)]
    assert [float(line.split(" ")[1]) for line in lines] == cm_scores.tolist()
    assert (out / "keys.csv").read_text().splitlines()[:2] == ["file_name,label", f"c00,{labels[0]}"]

    record = yaml.safe_load((out / "result.yaml").read_text())
    reference, _ = eer(cm_scores[labels == "bonafide"], cm_scores[labels == "spoof"])
    assert record["schema_version"] == 1 and record["system"] == "mel-cnn-flac"
    assert record["dataset"] == {"id": "example/in-the-wild", "revision": "1f2e3d4c", "split": "test"}
    assert record["eer_decimals"] == 4 and record["eer_percent"] == round(float(reference) * 100, 4)
    assert (record["n_trials"], record["n_bonafide"], record["n_spoof"]) == (N, N // 3, N - N // 3)
    assert record["n_skipped"] == SKIPPED
    assert record["scores"]["file"] == "scores.txt"
    assert record["scores"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert record["keys"]["sha256"] == hashlib.sha256((out / "keys.csv").read_bytes()).hexdigest()
    assert record["window_policy"] == {"name": "centre-crop", "window_seconds": 3.0, "sample_rate_hz": 16000}
    assert record["producer"]["run_id"] == "R" and record["producer"]["epoch"] == 2

    ok = check(out / "result.yaml")
    assert ok.exit_code == 0, ok.output
    assert f"EER {record['eer_percent']:.4f} %" in ok.output and f"{N} trials" in ok.output


def test_hugging_face_entry_follows_the_eval_results_format(exported):
    out, _, _ = exported
    record = yaml.safe_load((out / "result.yaml").read_text())
    entries = yaml.safe_load((out / ".eval_results" / "in-the-wild.yaml").read_text())
    assert entries == [{
        "dataset": {"id": "example/in-the-wild", "task_id": "test", "revision": "1f2e3d4c"},
        "value": record["eer_percent"],
        "notes": entries[0]["notes"],
    }]
    assert "EER (%)" in entries[0]["notes"] and record["scores"]["sha256"] in entries[0]["notes"]
    hub = pytest.importorskip("huggingface_hub")
    if hasattr(hub, "parse_eval_result_entries"):  # the Hub's own reader of .eval_results/*.yaml
        (entry,) = hub.parse_eval_result_entries(entries)
        assert (entry.dataset_id, entry.task_id, entry.dataset_revision, entry.value) == (
            "example/in-the-wild", "test", "1f2e3d4c", record["eer_percent"])


def test_a_tampered_score_file_fails_the_check(exported):
    out, _, _ = exported
    scores = out / "scores.txt"
    original = scores.read_text()
    first, rest = original.split("\n", 1)
    scores.write_text(f"{first.split(' ')[0]} -99\n{rest}")  # one score changed
    result = check(out / "result.yaml")
    assert result.exit_code == 1
    assert "sha256" in result.output and "does not match" in result.output
    assert len(result.output.strip().splitlines()) == 1

    # scores reversed and the hash updated in the record to match: the recomputed EER catches it
    scores.write_text("".join(f"{uid} {-float(score)!r}\n" for uid, score in
                              (line.split(" ") for line in original.splitlines())))
    record = yaml.safe_load((out / "result.yaml").read_text())
    record["scores"]["sha256"] = hashlib.sha256(scores.read_bytes()).hexdigest()
    (out / "result.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    result = check(out / "result.yaml")
    assert result.exit_code == 1 and "EER" in result.output and "does not match" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_tampered_record_fails_the_check(exported):
    out, _, _ = exported
    path = out / "result.yaml"
    record = yaml.safe_load(path.read_text())
    stated = record["eer_percent"]
    record["eer_percent"] = round(stated + 0.0001, 4)  # one unit of the stated precision
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    result = check(path)
    assert result.exit_code == 1 and f"{stated:.4f}" in result.output and "EER" in result.output

    record["eer_percent"], record["n_trials"] = stated, N + 1
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    result = check(path)
    assert result.exit_code == 1 and "n_trials" in result.output

    record["n_trials"], record["schema_version"] = N, 99
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    result = check(path)
    assert result.exit_code == 1 and "schema_version" in result.output

    (out / "keys.csv").write_text((out / "keys.csv").read_text().replace("bonafide", "spoof", 1))
    record["schema_version"] = 1
    path.write_text(yaml.safe_dump(record, sort_keys=False))
    result = check(path)
    assert result.exit_code == 1 and "keys.csv" in result.output and "sha256" in result.output


def test_record_options(tmp_path):
    lake, _, _ = make_lake(tmp_path)
    by_path = export(lake, tmp_path / "by-path", "--ids", "path", "--task-id", "itw_test")
    assert by_path.exit_code == 0, by_path.output
    assert (tmp_path / "by-path" / "scores.txt").read_text().startswith("wav/0.wav ")
    assert check(tmp_path / "by-path" / "result.yaml").exit_code == 0
    entries = yaml.safe_load((tmp_path / "by-path" / ".eval_results" / "in-the-wild.yaml").read_text())
    assert entries[0]["dataset"]["task_id"] == "itw_test"

    windowed = export(lake, tmp_path / "w", "--window-policy", "windowed-mean")
    assert windowed.exit_code != 0 and "centre" in windowed.output
    missing = CliRunner().invoke(main, ["export-scores", "--lake", lake.uri, "--run", "R", "--epoch", "2",
                                        "--dataset", "ood", "--record", str(tmp_path / "m")])
    assert missing.exit_code != 0 and "--dataset-id" in missing.output
