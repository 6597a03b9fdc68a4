"""The study model and plan (no Prefect, no Dask)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dfpipe.config import TrainConfig
from dfpipe.errors import ConfigError
from dfpipe.study import load_study, plan_study, sample_manifest, splits_by_pair

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def test_seed_study_dry_run_plans_the_full_matrix(monkeypatch, tmp_path):
    for var in ("CUSTOM_CORPUS", "CUSTOM_CORPUS_LARGE", "ASVSPOOF5", "DFEVAL2024", "WAVLM_LARGE"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    study = load_study(STUDIES / "seed-study.yaml")
    plan = plan_study(study)
    runs = {run.name: run for run in plan.runs}
    by_experiment = {}
    for run in plan.runs:
        by_experiment.setdefault(run.experiment, []).append(run)
    # main 4 + ablation 8 mel + 4 WavLM + cross-domain 6 + polished 3 + unfreezing 2 + ViT 1
    assert {name: len(group) for name, group in by_experiment.items()} == {
        "main": 4, "ablation-asv5": 8, "ablation-custom": 4, "cross-domain": 6, "polished-resumed": 1,
        "polished-fresh": 1, "polished-larger": 1, "unfreeze-none": 1, "unfreeze-all-but-first": 1, "vit": 1}
    # the main comparison: ASV5 balanced (undersampled), mel 50 epochs, WavLM 15, test = ASV5 eval
    assert {(r.arch, r.epochs) for r in by_experiment["main"]} == {
        ("mel-cnn", 50), ("mel-multiscale", 50), ("wavlm-cnn", 15), ("wavlm-aasist", 15)}
    main_aasist = runs["main/wavlm-aasist/asv5_balanced/seed0"]
    assert study.train_config(main_aasist).balance == "undersample"
    assert study.arch_config("wavlm-aasist", main_aasist.model).unfreeze_layers == (12, 23)
    assert study.eval_roles("asv5_balanced") == {"test": "asv5_eval", "ood": "ood"}
    assert study.eval_data("asv5_balanced")["test"].split == "eval"
    # the ablation's WavLM runs: custom clean/corrupt, WavLM frozen, 20 epochs, the custom holdout
    for run in by_experiment["ablation-custom"]:
        assert run.epochs == 20 and study.arch_config(run.arch, run.model).unfreeze_layers is None
        assert study.train_config(run).balance is None
    assert study.eval_roles("custom_clean")["test"] == "test"
    assert "test_polished" in study.eval_roles("custom_clean")
    # cross-domain: three seeds each, all from the main comparison's ASV5 WavLM+AASIST, after it
    order = [run.name for run in plan.runs]
    for run in by_experiment["cross-domain"]:
        assert run.init_from == ("main/wavlm-aasist/asv5_balanced/seed0", 15)
        assert order.index(run.name) > order.index(main_aasist.name)
    assert sorted((r.train_set, r.seed) for r in by_experiment["cross-domain"]) == [
        (t, s) for t in ("custom_clean", "custom_corrupt") for s in (0, 1, 2)]
    resumed = by_experiment["polished-resumed"][0]
    assert resumed.init_from == ("ablation-custom/wavlm-cnn/custom_clean/seed0", 17) and resumed.epochs == 2
    assert study.arch_config("wavlm-aasist", runs["unfreeze-all-but-first/wavlm-aasist/asv5_balanced/seed0"]
                             .model).unfreeze_layers == "all-but-first"
    assert runs["vit/mel-vit/asv5_balanced/seed0"].epochs == 50
    # only the splits the runs read: ASV5's codec x corruption audio for its train split, its
    # eval split in flac only; Deepfake-Eval-2024 (no split in the study) whole, as raw
    asv5 = {(split, condition) for corpus, split, condition in plan.conditions if corpus == "asv5"}
    assert asv5 == {("train", c) for c in ("flac", "corrupt+flac", "mp3_128k", "corrupt+mp3_128k")} | {
        ("eval", "flac")}
    assert ("dfeval", None, "raw") in plan.features and not any(c == "dfeval" for c, _, _ in plan.conditions)
    assert {s[:3:2] for s in plan.features} - {s[:3:2] for s in plan.conditions} == {("dfeval", "raw")}
    assert study.data_spec("ood") == "dfeval:raw"
    assert study.arch_config("wavlm-aasist").wavlm == str(tmp_path / "wavlm_large")
    assert study.arch_config("mel-cnn") is None


def test_demo_studies_validate():
    for name in ("demo.yaml", "demo-quick.yaml"):
        plan = plan_study(load_study(STUDIES / name))
        assert {r.arch for r in plan.runs} == {"mel-cnn", "mel-multiscale"}
        assert ("demo", "test", "polished") in plan.conditions  # the polished twin of test only
        assert not any(condition == "polished" and split != "test" for _, split, condition in plan.features)


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


SMALL = """
name: s
corpora: {c: {format: folder, path: data}, d: {format: folder, path: other}}
train_sets:
  a: {corpus: c, condition: flac, balance: weight}
  b: {corpus: d, condition: flac, test: d_test, ood: d_ood}
eval_sets:
  test: {corpus: c, condition: flac, split: test}
  test_polished: {corpus: c, condition: polished, split: test}
  d_test: {corpus: d, condition: flac, split: test}
  d_test_polished: {corpus: d, condition: polished, split: test}
  ood: {corpus: c, condition: flac, split: ood}
  d_ood: {corpus: d, condition: flac, split: ood}
training: {lr: 0.001, batch_size: 8}
"""


def _study(tmp_path, experiments: str, base: str = SMALL):
    path = tmp_path / "s.yaml"
    path.write_text(base + experiments)
    return load_study(path)


def test_experiment_overrides_roles_and_balance_reach_the_trainer(tmp_path):
    study = _study(tmp_path, """
experiments:
  - {name: e, architectures: [mel-cnn], train: [a, b]}
  - name: tuned
    architectures: [wavlm-aasist]
    train: [b]
    epochs: 3
    seeds: [4, 5]
    model: {unfreeze_layers: [1, 2]}
    training: {lr: 0.01, grad_clip: 2.0}
""")
    runs = {run.name: run for run in plan_study(study).runs}
    assert list(runs) == ["e/mel-cnn/a/seed0", "e/mel-cnn/b/seed0", "tuned/wavlm-aasist/b/seed4",
                          "tuned/wavlm-aasist/b/seed5"]
    mel_a, tuned = runs["e/mel-cnn/a/seed0"], runs["tuned/wavlm-aasist/b/seed5"]
    # the study's recipe over TrainConfig's defaults, the experiment's over the study's
    assert mel_a.epochs == TrainConfig().epochs_for("mel-cnn")
    cfg = study.train_config(mel_a)
    assert (cfg.balance, cfg.lr, cfg.batch_size, cfg.grad_clip) == ("weight", 1e-3, 8, TrainConfig.grad_clip)
    cfg = study.train_config(tuned)
    assert (cfg.epochs, cfg.seed, cfg.balance, cfg.lr, cfg.batch_size, cfg.grad_clip) == (3, 5, None, 0.01, 8, 2.0)
    assert study.arch_config("wavlm-aasist", tuned.model).unfreeze_layers == (1, 2)
    assert study.arch_config("mel-cnn", mel_a.model) is None
    # a train set's roles: its own held-out set is `test` (its polished twin `test_polished`),
    # its OOD set `ood`; the sets they displace are not scored for its runs
    assert study.eval_roles("b") == {"test": "d_test", "test_polished": "d_test_polished", "ood": "d_ood"}
    assert study.eval_roles("a") == {name: name for name in study.eval_sets}
    assert str(study.eval_data("b")["test_polished"]) == "d:polished@test"
    with pytest.raises(ConfigError, match="does not match its plan"):
        study.train_config(mel_a, init_from="lake/checkpoints/x/epoch-001.pt")


def test_init_from_resolves_to_a_planned_run_trained_first(tmp_path):
    study = _study(tmp_path, """
experiments:
  - {name: tune, architectures: [mel-cnn], train: [b], seeds: [0, 1], init_from: "a@mel-cnn@2"}
  - {name: base, architectures: [mel-cnn], train: [a], epochs: 4}
""")
    plan = plan_study(study)
    assert [run.name for run in plan.runs] == ["base/mel-cnn/a/seed0", "tune/mel-cnn/b/seed0",
                                               "tune/mel-cnn/b/seed1"]
    assert {run.init_from for run in plan.runs[1:]} == {("base/mel-cnn/a/seed0", 2)}
    init = "lake/checkpoints/r/epoch-002.pt"
    assert study.train_config(plan.runs[1], init).init_from == init


@pytest.mark.parametrize(
    "experiments, message",
    [
        ("[{name: t, architectures: [mel-cnn], train: [b], init_from: a@mel-cnn}]",
         "must name one run of this study; it names no"),
        (("[{name: t, architectures: [mel-cnn], train: [b], init_from: a@mel-cnn@9},"
         " {name: u, architectures: [mel-cnn], train: [a], epochs: 3}]"), "asks for epoch 9, but u/mel-cnn/a/seed0"),
        (("[{name: t, architectures: [mel-cnn], train: [b], init_from: a@mel-cnn},"
         " {name: u, architectures: [mel-cnn], train: [a], init_from: b@mel-cnn}]"), "round in a circle"),
        (("[{name: t, architectures: [mel-cnn], train: [b], init_from: a@mel-cnn},"
         " {name: u, architectures: [mel-cnn], train: [a]}, {name: v, architectures: [mel-cnn], train: [a], "
         "training: {lr: 0.1}}]"), r"it names 2 \(u/mel-cnn/a/seed0, v/mel-cnn/a/seed0\)"),
        (("[{name: u, architectures: [mel-cnn], train: [a]}, {name: v, architectures: [mel-cnn], train: [a],"
         " epochs: 7}]"), "one run with 50 and 7 epochs"),
        ("[{name: t, architectures: [mel-cnn], train: [b], init_from: a}]", "expected"),
        ("[{name: t, architectures: [mel-cnn], train: [b], init_from: x@mel-cnn}]", "names a train set not in"),
        ("[{name: t, architectures: [mel-cnn, wavlm-cnn], train: [a], model: {unfreeze_layers: none}}]",
         r"applies to WavLM models, not \['mel-cnn'\]"),
        ("[{name: t, architectures: [wavlm-cnn], train: [a], model: {unfreeze_layers: half}}]",
         "expected none, all-but-first or FIRST,LAST"),
    ],
)
def test_bad_warm_starts_and_overrides_name_the_problem(tmp_path, experiments, message):
    with pytest.raises(ConfigError, match=message):
        plan_study(_study(tmp_path, f"experiments: {experiments}\n"))


# -- what a run's balance and init_from do in the trainer --------------------------------------

@pytest.fixture(scope="module")
def imbalanced_lake(tmp_path_factory):
    """A real folder corpus of 3 bona fide and 9 spoof clips (1 : 3), ingested, with features."""
    from ingest_fixtures import tone

    from dfpipe.config import FeaturesConfig, IngestConfig
    from dfpipe.features import run_features
    from dfpipe.ingest import corpus_entries, ingest

    root = tmp_path_factory.mktemp("imbalanced")
    for i in range(3):
        tone(root / "corpus" / "train" / "real" / f"r{i}.wav", 200 + 37 * i, seconds=1.0, noise=True)
    for i in range(9):
        tone(root / "corpus" / "train" / "fake" / "gen" / f"f{i}.wav", 300 + 53 * i, seconds=1.0)
    lake = str(root / "lake")
    config = IngestConfig()
    ingest(lake, "tiny", corpus_entries("folder", root / "corpus", config), config)
    run_features(lake, "tiny", "raw", FeaturesConfig())
    return lake


def _train(lake, eval_data=None, **fields):
    from dfpipe.train import train

    cfg = TrainConfig(**{"epochs": 1, "batch_size": 4, "lr": 1e-3, "device": "cpu", "cpu_threads": 1,
                         "val_fraction": 0.25, **fields})
    return train(cfg, lake, arch="mel-cnn", train_data="tiny@train", eval_data=eval_data, log=lambda line: None)


def test_balance_is_drawn_on_clip_ids_and_is_part_of_the_run(imbalanced_lake):
    import json

    from dfpipe.lake import Lake

    plain, under, weighted = (_train(imbalanced_lake, balance=b) for b in (None, "undersample", "weight"))
    assert plain.n_train + plain.n_val == 12 and weighted.n_train + weighted.n_val == 12
    assert under.n_train + under.n_val == 6  # the 9 spoofs drawn down to the 3 bona fide
    assert len({plain.run_id, under.run_id, weighted.run_id}) == 3
    con = Lake(imbalanced_lake).connect()
    labels = con.execute("select p.label, count(distinct p.clip_id) from predictions p where run_id = ? "
                         "group by all order by all", [under.run_id]).fetchall()
    assert labels == [("bonafide", 1), ("spoof", 1)]  # val: a quarter of each label
    configs = dict(con.execute("select run_id, config_json from runs").fetchall())
    assert json.loads(configs[under.run_id])["balance"] == "undersample"
    assert "balance" not in json.loads(configs[plain.run_id])  # unbalanced runs keep their old ids
    # same clips, same initial weights: only the spoof loss weight (3/9) tells them apart
    losses = dict(con.execute("select run_id, train_loss from epochs").fetchall())
    assert losses[weighted.run_id] < 0.8 * losses[plain.run_id]
    # the draw is seeded: the same run again trains on the same clips (it is already done)
    assert _train(imbalanced_lake, balance="undersample").run_id == under.run_id


def test_init_from_starts_from_the_source_weights(imbalanced_lake, tmp_path):
    import torch

    from dfpipe import checkpoints
    from dfpipe.errors import DfpipeError

    source = _train(imbalanced_lake, seed=3)
    # an lr this small leaves the weights where the warm start put them
    warm = _train(imbalanced_lake, seed=3, init_from=source.checkpoint_uri, lr=1e-12)
    assert warm.run_id not in (source.run_id, _train(imbalanced_lake, seed=3, lr=1e-12).run_id)
    started = dict(checkpoints.load_model(source.checkpoint_uri)[0].named_parameters())
    for name, value in checkpoints.load_model(warm.checkpoint_uri)[0].named_parameters():
        torch.testing.assert_close(value, started[name], atol=1e-7, rtol=0)
    with pytest.raises(DfpipeError, match="init_from: checkpoint .* does not exist .train the source run first"):
        _train(imbalanced_lake, init_from=str(tmp_path / "none" / "epoch-001.pt"))


# -- only the work the runs need: (corpus, split, condition) triples, sparse eval sets ---------

SLICES = """
name: s
corpora: {c: {format: folder, path: data}, d: {format: folder, path: other}}
train_sets:
  flac: {corpus: c, condition: flac}
  mp3: {corpus: c, condition: mp3_64k, split: dev, test: c_dev}
  unused: {corpus: c, condition: opus_32k}
eval_sets:
  test: {corpus: c, condition: flac, split: test}
  c_dev: {corpus: c, condition: mp3_64k, split: dev}
  whole: {corpus: d, condition: flac}
  d_test: {corpus: d, condition: flac, split: test, every: 3}
"""


def test_plan_lists_the_splits_each_run_reads(tmp_path):
    study = _study(tmp_path, "experiments: [{name: e, architectures: [mel-cnn], train: [mp3]}]\n", SLICES)
    plan = plan_study(study)
    # mp3's runs: its train set (split dev) and its eval sets, `test` replaced by c_dev; d's flac
    # is read whole by `whole`, so its test split is not listed on its own; no opus (unused)
    assert plan.features == (("c", "dev", "mp3_64k"), ("d", None, "flac"))
    assert plan.conditions == plan.features
    study = _study(tmp_path, "experiments: [{name: e, architectures: [mel-cnn], train: [flac, mp3]}]\n", SLICES)
    plan = plan_study(study)
    # a train set without a split reads `train`; flac's runs score `test` (not displaced for them)
    assert plan.conditions == (("c", "test", "flac"), ("c", "train", "flac"), ("c", "dev", "mp3_64k"),
                               ("d", None, "flac"))
    assert splits_by_pair(plan.conditions) == {("c", "flac"): ("test", "train"), ("c", "mp3_64k"): ("dev",),
                                               ("d", "flac"): None}
    assert splits_by_pair([("c", "a", "raw"), ("c", None, "raw"), ("c", "b", "raw")]) == {("c", "raw"): None}


def test_an_eval_set_every_n_epochs_reaches_the_trainer(tmp_path):
    study = _study(tmp_path, "experiments: [{name: e, architectures: [mel-cnn], train: [flac, mp3]}]\n", SLICES)
    runs = {run.train_set: run for run in plan_study(study).runs}
    assert study.eval_sets["d_test"].every == 3 and study.eval_sets["whole"].every == 1
    assert study.eval_every("flac") == {"d_test": 3}
    assert study.train_config(runs["mp3"]).eval_every == {"d_test": 3}
    assert TrainConfig().eval_every == {}


@pytest.mark.parametrize(
    "base, old, new, train, message",
    [
        (SMALL, "b: {corpus: d, condition: flac, test: d_test, ood: d_ood}",
         "b: {corpus: d, condition: flac, balance: oversample}", "b", "balance must be one of"),
        (SMALL, "b: {corpus: d, condition: flac, test: d_test, ood: d_ood}",
         "b: {corpus: d, condition: flac, test: nope}", "b", "names test set 'nope', not in eval_sets"),
        (SLICES, "whole: {corpus: d, condition: flac}", "whole: {corpus: d, condition: flac, every: 0}", "flac",
         "greater than or equal to 1"),
        (SLICES, "whole: {corpus: d, condition: flac}", "whole: {corpus: d, condition: flac, every: two}", "flac",
         "valid integer"),
        # train sets train every epoch
        (SLICES, "flac: {corpus: c, condition: flac}", "flac: {corpus: c, condition: flac, every: 2}", "flac",
         "(?s)flac.every.*Extra inputs are not permitted"),
    ],
)
def test_bad_train_and_eval_set_fields_name_the_problem(tmp_path, base, old, new, train, message):
    assert old in base  # else the case would test the unpatched study
    with pytest.raises(ConfigError, match=message):
        _study(tmp_path, f"experiments: [{{name: e, architectures: [mel-cnn], train: [{train}]}}]\n",
               base.replace(old, new))


def test_a_zero_eval_every_is_refused():
    with pytest.raises(ConfigError, match=r"eval_every\['d_test'\] must be an integer >= 1"):
        TrainConfig(eval_every={"d_test": 0})


def test_dry_run_shows_the_splits_and_the_sparse_sets(tmp_path):
    from click.testing import CliRunner

    from dfpipe.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(SLICES + "experiments: [{name: e, architectures: [mel-cnn], train: [mp3]}]\n")
    result = CliRunner().invoke(main, ["study", str(path), "--dry-run", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "conditions: c:mp3_64k@dev, d:flac@*" in result.stderr
    assert "d_test=d:flac@test every 3 epochs" in result.stderr
    row = next(csv.DictReader(result.stdout.splitlines()))
    assert row["eval sets (/N: every N epochs)"] == "test=c_dev whole d_test/3"


def test_a_sparse_eval_set_is_scored_at_its_epochs_and_the_last(imbalanced_lake):
    from dfpipe.lake import Lake
    from dfpipe.metrics import compute_metrics

    summary = _train(imbalanced_lake, epochs=3, eval_every={"test": 2}, eval_data={"test": "tiny@train"})
    con = Lake(imbalanced_lake).connect()
    scored = con.execute("select dataset, list(distinct epoch order by epoch) from predictions where run_id = ? "
                         "group by all order by all", [summary.run_id]).fetchall()
    assert scored == [("test", [2, 3]), ("val", [1, 2, 3])]
    # the metric tables leave an unscored epoch empty, never a zero
    compute_metrics(imbalanced_lake)
    from dfpipe.metrics import attach_metrics

    attach_metrics(con, Lake(imbalanced_lake))
    curves = con.execute("select epoch, test_accuracy, test_eer, val_eer from training_dynamics where run_id = ? "
                         "order by epoch", [summary.run_id]).fetchall()
    assert [(epoch, accuracy is None) for epoch, accuracy, _, _ in curves] == [(1, True), (2, False), (3, False)]
    assert curves[0][2] is None and curves[0][3] is not None
    # only complete epochs (every set scored) compete for the best validation eer
    reported = con.execute("select epoch_policy, reported_epoch from best_epochs where run_id = ? order by 1",
                           [summary.run_id]).fetchall()
    assert reported[0][0] == "best_val_eer" and reported[0][1] in (2, 3) and reported[1] == ("last", 3)
