"""``dfpipe eval`` / ``dfpipe export-scores`` on ASVspoof5-format files vs the numpy reference."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from asv_reference import act_dcf, cllr, eer, min_dcf, p_spoof, threshold_metrics
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.lake import Lake, conform

FIXED_BONAFIDE = [2, 1, 0.5, -0.2, 3]
FIXED_SPOOF = [-2, -1, 0.1, -3, -0.7, 0.8]


def write_files(tmp_path, scores, labels, **extra_columns):
    names = [f"file_{i:06d}" for i in range(len(scores))]
    score_path, key_path = tmp_path / "scores.tsv", tmp_path / "keys.tsv"
    score_path.write_text("filename\tcm-score\n" + "".join(f"{n}\t{s!r}\n" for n, s in zip(names, scores)))
    header = "\t".join(["filename", "cm-label", *extra_columns])
    lines = ["\t".join([n, label, *(str(c[i]) for c in extra_columns.values())])
             for i, (n, label) in enumerate(zip(names, labels))]
    key_path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return score_path, key_path


def run_eval(score_path, key_path) -> dict:
    result = CliRunner().invoke(main, ["eval", "--scores", str(score_path), "--keys", str(key_path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def group(rows, grouping="overall", value="all"):
    (row,) = [r for r in rows if r["grouping"] == grouping and r["group_value"] == value]
    return row


def assert_matches_reference(got_scores, got_threshold, scores, is_spoof):
    bonafide, spoof = scores[~is_spoof], scores[is_spoof]
    assert (got_scores["eer"], got_scores["eer_threshold"]) == eer(bonafide, spoof)
    for name, reference in [("min_dcf", min_dcf(bonafide, spoof)[0]), ("act_dcf", act_dcf(bonafide, spoof)[0]),
                            ("cllr", cllr(bonafide, spoof))]:
        assert abs(got_scores[name] - reference) <= 1e-12, name
    expected = threshold_metrics(is_spoof, p_spoof(scores) >= 0.5)
    assert {k: got_threshold[k] for k in expected} == expected


def test_eval_fixed_vector(tmp_path):
    scores = FIXED_BONAFIDE + FIXED_SPOOF
    labels = ["bonafide"] * 5 + ["spoof"] * 6
    result = run_eval(*write_files(tmp_path, scores, labels))
    row = group(result["score_metrics"])
    assert round(row["eer"], 6) == 0.183333 and row["eer_threshold"] == 0.1
    assert round(row["min_dcf"], 6) == 0.333333 and round(row["act_dcf"], 6) == 0.333333
    assert round(row["cllr"], 6) == 0.591583
    assert [r["grouping"] for r in result["score_metrics"]] == ["overall"]


def test_eval_100k_rows_with_ties_and_groupings_matches_reference(tmp_path):
    rng = np.random.default_rng(5)
    n = 100_000
    is_spoof = rng.random(n) < 0.7
    # rounded scores: many ties across and within classes
    scores = np.round(rng.normal(0, 1.5, n) + np.where(is_spoof, -1.0, 1.0), 2)
    attacks = np.where(is_spoof, np.array(["A01", "A02", "A03"])[rng.integers(0, 3, n)], "-")
    codecs = np.array(["mp3", "flac"])[rng.integers(0, 2, n)]
    labels = np.where(is_spoof, "spoof", "bonafide")
    result = run_eval(*write_files(tmp_path, scores.tolist(), labels.tolist(), attack=attacks, codec=codecs,
                                   ignored=np.zeros(n, int)))
    assert_matches_reference(group(result["score_metrics"]), group(result["threshold_metrics"]), scores, is_spoof)
    for attack in ["A01", "A02", "A03"]:  # per attack: that attack's spoofs + all bona fide
        rows = (~is_spoof) | (attacks == attack)
        assert_matches_reference(group(result["score_metrics"], "generator", attack),
                                 group(result["threshold_metrics"], "generator", attack),
                                 scores[rows], is_spoof[rows])
    for codec in ["mp3", "flac"]:
        rows = codecs == codec
        assert_matches_reference(group(result["score_metrics"], "source_codec", codec),
                                 group(result["threshold_metrics"], "source_codec", codec),
                                 scores[rows], is_spoof[rows])
    assert {r["grouping"] for r in result["score_metrics"]} == {"overall", "generator", "source_codec"}


def test_export_scores_round_trips_through_eval(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, 50)
    labels = np.where(rng.random(50) < 0.5, "spoof", "bonafide")
    lake.write_shard("predictions", conform("predictions", pa.table({
        "run_id": ["R"] * 50, "epoch": [2] * 50, "dataset": ["ood"] * 50,
        "clip_id": [f"c{i:02d}" for i in range(50)], "corpus": ["x"] * 50, "condition": ["flac"] * 50,
        "label": labels, "spoof_logit": logits,
    })), shard="p")
    out, keys = tmp_path / "s.tsv", tmp_path / "k.tsv"
    result = CliRunner().invoke(main, ["export-scores", "--lake", lake.uri, "--run", "R", "--epoch", "2",
                                       "--dataset", "ood", "--out", str(out), "--keys-out", str(keys)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "filename\tcm-score"
    cm_scores = -logits  # the ASVspoof direction: higher = bona fide
    assert [float(line.split("\t")[1]) for line in out.read_text().splitlines()[1:]] == cm_scores.tolist()
    got = run_eval(out, keys)
    assert_matches_reference(group(got["score_metrics"]), group(got["threshold_metrics"]),
                             cm_scores, labels == "spoof")
    missing = CliRunner().invoke(main, ["export-scores", "--lake", lake.uri, "--run", "R", "--epoch", "9",
                                        "--dataset", "ood", "--out", str(out)])
    assert missing.exit_code != 0 and "no predictions" in missing.output


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (["1.0", "x"], ["bonafide", "spoof"], "non-numeric scores"),
        (["1.0", "2.0"], ["bonafide", "fake"], "labels other than bonafide/spoof"),
    ],
)
def test_eval_rejects_bad_files_with_a_reason(tmp_path, scores, labels, message):
    result = CliRunner().invoke(main, ["eval", "--scores", str(write_files(tmp_path, scores, labels)[0]),
                                       "--keys", str(tmp_path / "keys.tsv")])
    assert result.exit_code != 0 and message in result.output


def test_eval_rejects_unmatched_filenames(tmp_path):
    score_path, key_path = write_files(tmp_path, [1.0, 2.0], ["bonafide", "spoof"])
    key_path.write_text("filename\tcm-label\nfile_000000\tbonafide\nother\tspoof\n")
    result = CliRunner().invoke(main, ["eval", "--scores", str(score_path), "--keys", str(key_path)])
    assert result.exit_code != 0
    assert "1 scored files missing from the key file" in result.output
    assert "1 key entries without a score" in result.output
