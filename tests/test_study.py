"""The study model and plan (no Prefect, no Dask)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dfpipe.errors import ConfigError
from dfpipe.study import load_study, plan_study, sample_manifest

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def test_seed_study_dry_run_plans_the_full_matrix(monkeypatch, tmp_path):
    for var in ("CUSTOM_CORPUS", "ASVSPOOF5", "DFEVAL2024", "WAVLM_LARGE"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    study = load_study(STUDIES / "seed-study.yaml")
    plan = plan_study(study)
    # main: 4 architectures on custom; ablation: 8 mel runs on ASVspoof5 + 4 WavLM runs on
    # custom clean/corrupt, two of which are the main comparison's: 14 distinct runs.
    assert len(plan.runs) == 14
    assert {(r.arch, r.epochs) for r in plan.runs} == {
        ("mel-cnn", 50), ("mel-multiscale", 50), ("wavlm-cnn", 15), ("wavlm-aasist", 15)}
    assert sum(r.experiment == "ablation-asv5" for r in plan.runs) == 8
    assert ("asv5", "corrupt+mp3_128k") in plan.conditions
    assert ("dfeval", "raw") in plan.features and ("dfeval", "raw") not in plan.conditions
    assert study.data_spec("ood") == "dfeval:raw"
    assert study.arch_config("wavlm-aasist").wavlm == str(tmp_path / "wavlm_large")
    assert study.arch_config("mel-cnn") is None


def test_demo_studies_validate():
    for name in ("demo.yaml", "demo-quick.yaml"):
        plan = plan_study(load_study(STUDIES / name))
        assert {r.arch for r in plan.runs} == {"mel-cnn", "mel-multiscale"}
        assert ("demo", "polished") in plan.conditions


@pytest.mark.parametrize(
    "patch, message",
    [
        ("train_sets: {a: {corpus: nope, condition: flac}}", "names corpus 'nope'"),
        ("eval_sets: {val: {corpus: c, condition: flac}}", "'val' is the name"),
        ("epochs: {mel-cnn: 3}", "epochs has no entry for ['mel-multiscale']"),
        ("bogus: 1", "Extra inputs are not permitted"),
    ],
)
def test_invalid_studies_name_the_problem(tmp_path, patch, message):
    base = {
        "name": "name: s",
        "corpora": "corpora: {c: {format: folder, path: data}}",
        "train_sets": "train_sets: {a: {corpus: c, condition: flac}}",
        "eval_sets": "eval_sets: {test: {corpus: c, condition: flac}}",
        "experiments": "experiments: [{name: e, architectures: [mel-cnn, mel-multiscale], train: [a]}]",
    }
    key = patch.split(":")[0]
    base[key] = patch
    path = tmp_path / "s.yaml"
    path.write_text("\n".join(base.values()))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_study(path)


def test_unset_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_DFPIPE_VAR", raising=False)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ncorpora: {c: {format: folder, path: ${NO_SUCH_DFPIPE_VAR}}}\n")
    with pytest.raises(ConfigError, match="NO_SUCH_DFPIPE_VAR"):
        load_study(path)


def test_sample_manifest_is_stratified_and_deterministic(tmp_path):
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "generator", "family", "speaker", "language", "split"])
        for i in range(40):
            writer.writerow([f"a/{i}.flac", "bonafide" if i % 2 else "spoof", "", "", "", "en",
                             "train" if i < 30 else "test"])
    first = sample_manifest(manifest, {"train": 10, "test": 4}, seed=0)
    content = first.read_bytes()
    assert sample_manifest(manifest, {"train": 10, "test": 4}, seed=0).read_bytes() == content
    with open(first, newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = {(r["split"], r["label"]): 0 for r in rows}
    for r in rows:
        counts[(r["split"], r["label"])] += 1
    assert counts == {("train", "bonafide"): 5, ("train", "spoof"): 5, ("test", "bonafide"): 2, ("test", "spoof"): 2}
    other = sample_manifest(manifest, {"train": 10, "test": 4}, seed=1)
    assert other != first and other.read_bytes() != content
