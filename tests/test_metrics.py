"""The metric SQL (sql/*.sql via dfpipe.metrics) against an independent numpy reference.

Scores in these tests are ASVspoof cm-scores (higher = bona fide); the lake stores
``spoof_logit = -cm_score``.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from asv_reference import act_dcf, cllr, eer, min_dcf, p_spoof, threshold_metrics
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, matthews_corrcoef, precision_score, recall_score

from dfpipe.conditions.grammar import describe_condition
from dfpipe.config import MetricsConfig
from dfpipe.errors import ConfigError
from dfpipe.lake import Lake, conform
from dfpipe.metrics import (
    SQL_DIR,
    attach_metrics,
    build_models,
    check_dependencies,
    compute_metrics,
    load_models,
    select_models,
)
from dfpipe.schemas import TABLES

FIXED_BONAFIDE = [2, 1, 0.5, -0.2, 3]
FIXED_SPOOF = [-2, -1, 0.1, -3, -0.7, 0.8]


def prediction_rows(run_id: str, epoch: int, dataset: str, bonafide, spoof, **columns) -> pa.Table:
    """predictions rows of one run/epoch/dataset from cm-scores (clip ids c0, c1, ...)."""
    scores = [float(s) for s in [*bonafide, *spoof]]
    n = len(scores)
    labels = ["bonafide"] * len(bonafide) + ["spoof"] * len(spoof)
    generators = [None] * len(bonafide) + [f"g{i % 2 + 1}" for i in range(len(spoof))]
    data = {
        "run_id": [run_id] * n, "epoch": [epoch] * n, "dataset": [dataset] * n,
        "clip_id": [f"c{i}" for i in range(n)], "corpus": ["demo"] * n, "condition": ["flac"] * n,
        "label": labels, "spoof_logit": [-s for s in scores], "generator": generators,
        "family": [None if g is None else "neural" for g in generators],
    }
    data.update(columns)
    return conform("predictions", pa.table(data))


def sql_metrics(tables: list[pa.Table], config: MetricsConfig | None = None) -> dict[str, list[dict]]:
    """score_metrics and threshold_metrics of predictions rows, on an in-memory DuckDB."""
    con = duckdb.connect()
    con.register("predictions_rows", pa.concat_tables(tables))
    con.execute("create view predictions as select * from predictions_rows")
    build_models(con, config or MetricsConfig(), select_models(load_models(), ["threshold_metrics"]))
    return {name: records(con, f"select * from {name}") for name in ("score_metrics", "threshold_metrics")}


def records(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def only(rows: list[dict], **where) -> dict:
    matches = [r for r in rows if all(r[k] == v for k, v in where.items())]
    assert len(matches) == 1, (where, matches)
    return matches[0]


def assert_close(actual, expected, tol=1e-12):
    if expected is None:
        assert actual is None
    else:
        assert actual is not None and abs(actual - expected) <= tol, (actual, expected)


def check_against_reference(bonafide, spoof):
    result = sql_metrics([prediction_rows("r", 1, "test", bonafide, spoof)])
    row = only(result["score_metrics"], grouping="overall")
    expected_eer, expected_threshold = eer(bonafide, spoof)
    assert row["eer"] == expected_eer and row["eer_threshold"] == expected_threshold
    expected_min_dcf, expected_min_dcf_threshold = min_dcf(bonafide, spoof)
    assert_close(row["min_dcf"], expected_min_dcf)
    assert row["min_dcf_threshold"] == expected_min_dcf_threshold
    assert_close(row["act_dcf"], act_dcf(bonafide, spoof)[0])
    assert_close(row["cllr"], cllr(bonafide, spoof))
    labels = np.array([False] * len(bonafide) + [True] * len(spoof))
    predicted = p_spoof([*bonafide, *spoof]) >= 0.5
    got = only(result["threshold_metrics"], grouping="overall", policy="p_spoof_0.5")
    for name, value in threshold_metrics(labels, predicted).items():
        assert got[name] == value, name
    return row


# -- fixed vectors ------------------------------------------------------------------------
def test_fixed_vector_matches_the_asvspoof5_package():
    row = check_against_reference(FIXED_BONAFIDE, FIXED_SPOOF)
    assert row["eer"] == pytest.approx(0.183333, abs=1e-6)
    assert row["eer_threshold"] == 0.1
    assert row["min_dcf"] == pytest.approx(0.333333, abs=1e-6)
    assert row["act_dcf"] == pytest.approx(0.333333, abs=1e-6)
    assert row["act_dcf_threshold"] == pytest.approx(-math.log(1.9), abs=1e-15)
    assert row["cllr"] == pytest.approx(0.591583, abs=1e-6)


def test_ties_are_broken_bona_fide_first():
    row = check_against_reference([1, 2, 2, 0], [2, 2])
    assert row["eer"] == 1.0


def test_degenerate_groups_give_null_with_a_reason():
    result = sql_metrics([
        prediction_rows("r", 1, "spoof_only", [], [0.5, -1.0]),
        prediction_rows("r", 1, "one_row", [1.0], []),
    ])
    for dataset, reason in [("spoof_only", "no bona fide rows"), ("one_row", "no spoof rows")]:
        row = only(result["score_metrics"], dataset=dataset, grouping="overall")
        assert (row["eer"], row["min_dcf"], row["act_dcf"], row["cllr"]) == (None,) * 4
        assert row["reason"] == reason
        policy = only(result["threshold_metrics"], dataset=dataset, grouping="overall",
                      policy="p_spoof_0.5")
        # a zero denominator gives 0 (sklearn's zero_division=0), the reason is kept
        assert policy["mcc"] == 0 and policy["reason"] is not None
        assert policy["accuracy"] is not None  # defined even with one class
        val_eer = only(result["threshold_metrics"], dataset=dataset, grouping="overall",
                       policy="val_eer")
        assert val_eer["accuracy"] is None and val_eer["reason"].startswith("no val eer")


# -- properties over random score sets with ties ------------------------------------------
tied_scores = st.lists(st.integers(-4, 4).map(lambda s: s / 2), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None)
@given(bonafide=tied_scores, spoof=tied_scores)
def test_sql_equals_reference_on_tied_scores(bonafide, spoof):
    check_against_reference(bonafide, spoof)


@settings(max_examples=25, deadline=None)
@given(val_bonafide=tied_scores, val_spoof=tied_scores, bonafide=tied_scores, spoof=tied_scores)
def test_val_eer_policy_applies_the_val_threshold(val_bonafide, val_spoof, bonafide, spoof):
    result = sql_metrics([
        prediction_rows("r", 3, "val", val_bonafide, val_spoof),
        prediction_rows("r", 3, "ood", bonafide, spoof),
    ])
    threshold = eer(val_bonafide, val_spoof)[1]
    got = only(result["threshold_metrics"], dataset="ood", grouping="overall", policy="val_eer")
    assert got["threshold"] == threshold
    labels = np.array([False] * len(bonafide) + [True] * len(spoof))
    expected = threshold_metrics(labels, np.array([*bonafide, *spoof]) <= threshold)
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_large_tied_blocks_match_the_reference(seed):
    """Thousands of rows on a few scores: the metrics are found inside tied blocks."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(0, 1, 7), 1)
    bonafide = rng.choice(values + 0.3, 3000).tolist()
    spoof = rng.choice(values, 5000).tolist()
    check_against_reference(bonafide, spoof)


def test_min_dcf_inside_a_large_tied_block_with_other_costs():
    bonafide = [0.0, 1.0, 1.0, 2.0] * 500
    spoof = [0.5] * 4000 + [1.0] * 3000 + [3.0] * 10
    config = MetricsConfig(p_spoof=0.3, c_miss=1.0, c_fa=2.0)
    row = only(sql_metrics([prediction_rows("r", 1, "test", bonafide, spoof)], config)["score_metrics"],
               grouping="overall")
    expected, threshold = min_dcf(bonafide, spoof, 0.3, 1.0, 2.0)
    assert row["min_dcf_threshold"] == threshold
    assert_close(row["min_dcf"], expected)
    assert (row["eer"], row["eer_threshold"]) == eer(bonafide, spoof)


def test_generator_groups_pool_all_bona_fide():
    bonafide, spoof = [1.0, 0.3, -0.2], [-1.0, 0.5, -2.0, 0.0]
    result = sql_metrics([prediction_rows("r", 1, "test", bonafide, spoof)])
    for generator, spoofs in [("g1", spoof[0::2]), ("g2", spoof[1::2])]:
        row = only(result["score_metrics"], grouping="generator", group_value=generator)
        assert (row["n_bonafide"], row["n_spoof"]) == (3, 2)
        assert row["eer"] == eer(bonafide, spoofs)[0]
    assert only(result["score_metrics"], grouping="family", group_value="neural")["n_spoof"] == 4


def test_parameters_are_bound_from_the_config():
    config = MetricsConfig(threshold=0.25, p_spoof=0.1, c_miss=2.0, c_fa=5.0)
    result = sql_metrics([prediction_rows("r", 1, "test", FIXED_BONAFIDE, FIXED_SPOOF)], config)
    row = only(result["score_metrics"], grouping="overall")
    assert_close(row["min_dcf"], min_dcf(FIXED_BONAFIDE, FIXED_SPOOF, 0.1, 2.0, 5.0)[0])
    assert_close(row["act_dcf"], act_dcf(FIXED_BONAFIDE, FIXED_SPOOF, 0.1, 2.0, 5.0)[0])
    assert only(result["threshold_metrics"], grouping="overall", policy="val_eer")
    got = only(result["threshold_metrics"], grouping="overall", policy="p_spoof_0.25")
    labels = np.array([False] * 5 + [True] * 6)
    expected = threshold_metrics(labels, p_spoof([*FIXED_BONAFIDE, *FIXED_SPOOF]) >= 0.25)
    assert {k: got[k] for k in expected} == expected


# -- the study lake: given rows -> expected rows per metric file --------------------------
# cm-scores per (run, epoch, dataset): (bona fide, spoof). P(spoof) >= 0.5 <=> cm_score <= 0.
STUDY = {
    ("A", 1, "val"): ([2, 1], [-1, 1.5]),  # eer 0.5
    ("A", 1, "test"): ([1, 2], [-1, -2]),
    ("A", 1, "ood"): ([-1, 2], [-1, -2]),  # accuracy 0.75
    ("A", 2, "val"): ([2, 1], [-1, -2]),  # eer 0 -> best epoch of A
    ("A", 2, "test"): ([1, -0.5], [-1, 0.5]),  # accuracy 0.5, eer 0.5
    ("A", 2, "test_polished"): ([-1, -0.5], [1, 0.5]),  # accuracy 0, eer 1
    ("A", 2, "ood"): ([1, 2], [-1, -2, 3]),  # accuracy 0.8
    ("B", 1, "val"): ([2, 1], [-1, -2]),
    ("B", 1, "test"): ([1, 2], [-1, -2]),  # accuracy 1
    ("B", 1, "ood"): ([1, -2], [1, 2, -1]),  # accuracy 0.4
}


def run_rows(run_ids: list[str], conditions: list[str], **columns) -> pa.Table:
    """runs rows as `dfpipe train` writes them: codec and corruption from the condition grammar."""
    n = len(run_ids)
    described = [describe_condition(c) for c in conditions]
    data = {
        "run_id": run_ids, "arch": ["mel_cnn"] * n, "train_corpus": ["custom"] * n, "train_condition": conditions,
        "codec": [codec for codec, _ in described], "corruption": [corruption for _, corruption in described],
        "seed": [0] * n, "epochs_planned": [1] * n, "params": [1] * n, "trainable_params": [1] * n,
        "checkpoint_bytes": [1] * n, "device": ["cpu"] * n, "config_json": ["{}"] * n,
    }
    data.update(columns)
    return conform("runs", pa.table(data))


@pytest.fixture(scope="module")
def study_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    lake = Lake(str(root))
    tables = [prediction_rows(run, epoch, dataset, b, s) for (run, epoch, dataset), (b, s) in STUDY.items()]
    lake.write_shard("predictions", pa.concat_tables(tables), shard="study")
    lake.write_shard("runs", run_rows(
        ["A", "B"], ["flac", "corrupt+mp3_128k"], arch=["mel_cnn", "mel_aasist"], train_corpus=["custom", "asv5"],
        epochs_planned=[2, 1], params=[400_000, 2_000_000], trainable_params=[400_000, 2_000_000],
        checkpoint_bytes=[435_000, 2_200_000],
    ), shard="runs")
    lake.write_shard("epochs", pa.table({
        "run_id": ["A", "A"], "epoch": [1, 2], "train_loss": [0.6, 0.4], "train_acc": [0.7, 0.9],
        "val_loss": [0.5, 0.3], "n_train": [100, 100], "checkpoint_uri": ["a1.pt", "a2.pt"], "checkpoint_bytes": [435_000] * 2,
        "wall_s": [1.0, 1.0],
    }), shard="epochs")
    summary = compute_metrics(str(root), MetricsConfig(bootstrap_samples=30))
    return lake, summary


def table(lake: Lake, name: str, order: str = "") -> list[dict]:
    con = lake.connect()
    attach_metrics(con, lake)
    return records(con, f"select * from {name} {order}")


def test_stg_predictions_converts_the_score_direction(study_lake):
    lake, _ = study_lake
    con = lake.connect()
    build_models(con, MetricsConfig(), select_models(load_models(), ["stg_predictions"]))
    rows = records(con, "select cm_score, spoof_logit, p_spoof, is_spoof, label from stg_predictions "
                        "where run_id = 'A' and epoch = 1 and dataset = 'val' order by clip_id")
    assert [(r["cm_score"], r["is_spoof"]) for r in rows] == [(2, False), (1, False), (-1, True), (1.5, True)]
    assert all(r["spoof_logit"] == -r["cm_score"] and r["p_spoof"] == p_spoof(r["cm_score"]) for r in rows)


def test_best_epochs(study_lake):
    rows = table(study_lake[0], "best_epochs", "where epoch_policy = 'best_val_eer' order by run_id")
    assert [(r["run_id"], r["best_epoch"], r["best_val_eer"], r["reported_epoch"]) for r in rows] == [
        ("A", 2, 0.0, 2), ("B", 1, 0.0, 1)]
    # 'last': A's last committed epoch; B has no epochs row, so its last scored epoch, with a reason
    rows = table(study_lake[0], "best_epochs", "where epoch_policy = 'last' order by run_id")
    assert [(r["run_id"], r["best_epoch"], r["reported_epoch"], r["reason"]) for r in rows] == [
        ("A", 2, 2, None), ("B", 1, 1, "no committed epoch (no epochs row): last scored epoch reported")]


def test_training_dynamics(study_lake):
    rows = table(study_lake[0], "training_dynamics")
    assert [(r["run_id"], r["epoch"], r["train_loss"], r["val_eer"], r["test_accuracy"], r["ood_accuracy"])
            for r in rows] == [("A", 1, 0.6, 0.5, 1.0, 0.75), ("A", 2, 0.4, 0.0, 0.5, 0.8),
                               ("B", 1, None, 0.0, 1.0, 0.4)]
    assert rows[1]["test_eer"] == eer(*STUDY[("A", 2, "test")])[0] == 0.5
    assert [r["val_loss"] for r in rows] == [0.5, 0.3, None]  # B has no epochs row
    expected = threshold_metrics([False, False, True, True], [False, True, True, False])  # A, epoch 2, test
    assert (rows[1]["test_precision"], rows[1]["test_recall"]) == (expected["precision"], expected["recall"])


def test_ablation_matrix_parses_codec_and_corruption(study_lake):
    rows = table(study_lake[0], "ablation_matrix", "where epoch_policy = 'best_val_eer'")
    assert [(r["arch"], r["train_corpus"], r["codec"], r["training_audio"], r["ood_accuracy"]) for r in rows] == [
        ("mel_aasist", "asv5", "mp3_128k", "corrupt", 0.4), ("mel_cnn", "custom", "flac", "clean", 0.8)]
    b = rows[0]
    expected = threshold_metrics([False, False, True, True, True], [False, True, False, False, True])
    assert (b["ood_precision"], b["ood_recall"], b["ood_specificity"], b["ood_mcc"]) == (
        expected["precision"], expected["recall"], expected["specificity"], expected["mcc"])


def test_polished_gap(study_lake):
    (row,) = table(study_lake[0], "polished_gap")
    assert (row["run_id"], row["epoch"], row["dataset"], row["polished_dataset"]) == ("A", 2, "test", "test_polished")
    assert (row["n_shared_clips"], row["raw_accuracy"], row["polished_accuracy"], row["accuracy_gap"]) == (4, 0.5, 0.0, 0.5)
    assert (row["raw_eer"], row["polished_eer"], row["eer_gap"], row["eer_ratio"]) == (0.5, 1.0, 0.5, 2.0)
    assert row["reason"] is None


def test_leaderboard_and_correlation(study_lake):
    rows = table(study_lake[0], "leaderboard", "where epoch_policy = 'best_val_eer'")
    assert [(r["ood_rank"], r["run_id"], r["ood_accuracy"], r["test_accuracy"], r["test_rank"]) for r in rows] == [
        (1, "A", 0.8, 0.5, 2), (2, "B", 0.4, 1.0, 1)]
    (corr,) = table(study_lake[0], "leaderboard_correlation", "where epoch_policy = 'best_val_eer'")
    assert corr["n_runs"] == 2 and corr["pearson"] == pytest.approx(-1.0) and corr["spearman"] == pytest.approx(-1.0)


def test_model_size(study_lake):
    rows = table(study_lake[0], "model_size", "where epoch_policy = 'best_val_eer'")
    assert [(r["run_id"], r["params"], r["checkpoint_mb"], r["ood_eer"]) for r in rows] == [
        ("A", 400_000, 0.435, eer(*STUDY[("A", 2, "ood")])[0]), ("B", 2_000_000, 2.2, eer(*STUDY[("B", 1, "ood")])[0])]
    assert rows[0]["ood_accuracy_per_mb"] == pytest.approx(0.8 / 0.435)


def test_bootstrap_intervals_are_seeded_and_bracket_plausible_values(study_lake, tmp_path):
    lake, _ = study_lake
    rows = table(lake, "bootstrap_intervals")
    assert {(r["run_id"], r["epoch"], r["dataset"]) for r in rows} == {
        ("A", 2, "val"), ("A", 2, "test"), ("A", 2, "test_polished"), ("A", 2, "ood"),
        ("B", 1, "val"), ("B", 1, "test"), ("B", 1, "ood")}
    for row in rows:
        assert row["n_replicates"] == 30
        assert 0 <= row["accuracy_ci_low"] <= row["accuracy_ci_high"] <= 1
        assert row["eer_ci_low"] is None or 0 <= row["eer_ci_low"] <= row["eer_ci_high"] <= 1
    con = lake.connect()
    build_models(con, MetricsConfig(bootstrap_samples=30))
    again = records(con, "select * from bootstrap_intervals")
    assert again == rows  # same seed, same draws
    build_models(con, MetricsConfig(bootstrap_samples=30, bootstrap_seed=7))
    assert records(con, "select * from bootstrap_intervals") != rows


def test_score_metrics_rows_equal_the_reference_for_every_dataset(study_lake):
    rows = table(study_lake[0], "score_metrics", "where grouping = 'overall'")
    assert len(rows) == len(STUDY)
    for row in rows:
        bonafide, spoof = STUDY[(row["run_id"], row["epoch"], row["dataset"])]
        assert (row["eer"], row["eer_threshold"]) == eer(bonafide, spoof)
        assert_close(row["min_dcf"], min_dcf(bonafide, spoof)[0])
        assert_close(row["cllr"], cllr(bonafide, spoof))


# -- the runner ---------------------------------------------------------------------------
def test_materialised_tables_parquet_and_duckdb_file(study_lake):
    _, summary = study_lake
    import pyarrow.parquet as pq

    for name, rows in summary.rows.items():
        assert pq.read_table(f"{summary.parquet_dir}/{name}.parquet").num_rows == rows
    con = duckdb.connect(summary.database, read_only=True)
    assert con.execute("select count(*) from leaderboard where epoch_policy = 'best_val_eer'").fetchall() == [(2,)]
    # the macros travel with the file: EER of any relation, per any grouping key
    con.execute("create temp table pair as select 1 as group_id, * from "
                "(values (1.0, false), (0.0, true)) as t(cm_score, is_spoof)")
    assert con.execute("select eer, eer_threshold from asv_metrics('pair')").fetchall() == [(0.0, 0.0)]


def test_sql_files_run_unchanged_in_plain_duckdb(study_lake):
    """A metric file is plain SQL: on metrics.duckdb it reproduces its own table."""
    _, summary = study_lake
    con = duckdb.connect(summary.database, read_only=True)
    for model in load_models():
        if model.materialized == "table":
            got = sorted(con.execute(model.sql).fetchall(), key=repr)
            assert got == sorted(con.execute(f"select * from {model.name}").fetchall(), key=repr), model.name


def test_attach_metrics_makes_dfpipe_query_see_the_tables(study_lake, tmp_path):
    lake, _ = study_lake
    con = lake.connect()
    names = attach_metrics(con, lake)
    assert {"score_metrics", "leaderboard", "metric_params"} <= set(names)
    assert con.execute("select threshold, p_spoof, c_miss, c_fa from metric_params").fetchall() == [(0.5, 0.05, 1.0, 10.0)]
    assert attach_metrics(duckdb.connect(), Lake(str(tmp_path))) == []


def test_models_are_ordered_by_their_declared_dependencies(tmp_path):
    order = [m.name for m in load_models()]
    for model in load_models():
        assert all(order.index(ref) < order.index(model.name) for ref in model.refs)
    (tmp_path / "a.sql").write_text("-- materialized: view\n-- depends_on: b\nselect * from b")
    (tmp_path / "b.sql").write_text("-- materialized: view\n-- depends_on: predictions, metric_params\nselect 1")
    assert [(m.name, m.refs, m.sources) for m in load_models(tmp_path)] == [
        ("b", frozenset(), {"predictions", "metric_params"}), ("a", {"b"}, frozenset())]
    # declared, not guessed: a name in the SQL text is no dependency
    (tmp_path / "c.sql").write_text("-- materialized: view\n-- depends_on:\nselect 'a' as b")
    assert next(m for m in load_models(tmp_path) if m.name == "c").depends_on == frozenset()
    (tmp_path / "b.sql").write_text("-- materialized: view\n-- depends_on: a\nselect * from a")
    with pytest.raises(ConfigError, match="cycle"):
        load_models(tmp_path)
    (tmp_path / "b.sql").write_text("-- materialized: view\n-- depends_on: predictions, nowhere\nselect 1")
    with pytest.raises(ConfigError, match=r"b\.sql: depends_on names \['nowhere'\]"):
        load_models(tmp_path)
    (tmp_path / "b.sql").write_text("-- materialized: view\nselect * from predictions")
    with pytest.raises(ConfigError, match="b.sql: add a '-- depends_on"):
        load_models(tmp_path)
    (tmp_path / "b.sql").write_text("-- depends_on: predictions\nselect 1")
    with pytest.raises(ConfigError, match="materialized"):
        load_models(tmp_path)


def test_every_model_declares_what_it_reads():
    """Each sql/ model builds alone, beside stand-ins for its declared dependencies only."""
    check_dependencies()


@pytest.mark.parametrize("undeclared", ["a lake table", "a model", "a macro"])
def test_a_model_reading_an_undeclared_relation_fails(tmp_path, undeclared):
    for name in ["stg_predictions", "stg_runs", "asv_det_curve", "asv_block_metrics", "asv_metrics"]:
        (tmp_path / f"{name}.sql").write_text((SQL_DIR / f"{name}.sql").read_text())
    sql = {
        "a lake table": "-- depends_on: stg_predictions\n"
                        "select * from stg_predictions inner join runs using (run_id)",
        "a model": "-- depends_on: predictions, stg_predictions\n"
                   "select * from stg_predictions inner join stg_runs using (run_id)",
        "a macro": "-- depends_on: stg_predictions\n"
                   "select * from asv_metrics('stg_predictions')",
    }[undeclared]
    (tmp_path / "leaky.sql").write_text(f"-- materialized: table\n{sql}")
    with pytest.raises(ConfigError, match=r"sql/leaky\.sql reads a relation its '-- depends_on:' line"):
        check_dependencies(load_models(tmp_path))


def test_score_groups_key_every_group_once_and_the_long_form_agrees(study_lake):
    """grouped_scores (rows joined to their groups by cell_id) gives score_metrics' values."""
    con = study_lake[0].connect()
    build_models(con, MetricsConfig(), select_models(load_models(), ["score_metrics", "grouped_scores", "asv_metrics"]))
    assert con.execute("select count(*) - count(distinct (run_id, epoch, dataset, grouping, group_value)) "
                       "from score_groups").fetchall() == [(0,)]
    long_form = records(con, """
        select groups.run_id, groups.epoch, groups.dataset, groups.grouping, groups.group_value,
               long_form.n_bonafide, long_form.n_spoof, long_form.eer, long_form.eer_threshold, long_form.min_dcf
        from asv_metrics('grouped_scores') as long_form inner join score_groups as groups using (group_id)
        order by all""")
    assert long_form == records(con, """
        select run_id, epoch, dataset, grouping, group_value, n_bonafide, n_spoof, eer, eer_threshold, min_dcf
        from score_metrics order by all""")
    assert len(long_form) > len(STUDY)


def test_one_headline_policy_names_the_threshold_metrics_the_study_tables_read():
    config = MetricsConfig(threshold=0.25)
    con = duckdb.connect()
    con.register("rows", pa.concat_tables([prediction_rows("r", 1, "test", FIXED_BONAFIDE, FIXED_SPOOF),
                                           prediction_rows("r", 1, "ood", FIXED_SPOOF, FIXED_BONAFIDE)]))
    con.execute("create view predictions as select * from rows")
    con.register("empty_epochs", TABLES["epochs"].empty_table())
    con.execute("create view epochs as select * from empty_epochs")
    build_models(con, config, select_models(load_models(), ["training_dynamics"]))
    assert records(con, "select * from headline_policy") == [
        {"policy": "p_spoof_0.25", "threshold_scale": "p_spoof", "threshold": 0.25}]
    assert {r["policy"] for r in records(con, "select policy from threshold_metrics")} == {"p_spoof_0.25", "val_eer"}
    (dynamics,) = records(con, "select * from training_dynamics")
    expected = threshold_metrics(np.array([False] * 5 + [True] * 6),
                                 p_spoof([*FIXED_BONAFIDE, *FIXED_SPOOF]) >= 0.25)
    assert (dynamics["test_accuracy"], dynamics["test_f1"], dynamics["test_mcc"]) == (
        expected["accuracy"], expected["f1"], expected["mcc"])


def test_ablation_matrix_reads_codec_and_corruption_recorded_with_the_run():
    conditions = ["noise_snr10+flac", "corrupt+mp3_64k", "flac", "polished", "raw"]
    run_ids = [f"r{i}" for i in range(len(conditions))]
    predictions = pa.concat_tables([prediction_rows(run, 1, "ood", [1.0, 2.0], [-1.0]) for run in run_ids])
    for runs, expected in [
        (run_rows(run_ids, conditions), [
            ("r0", "flac", "noise_snr10", "corrupt"), ("r1", "mp3_64k", "corrupt", "corrupt"),
            ("r2", "flac", None, "clean"), ("r3", "flac", "polished", "corrupt"), ("r4", "raw", None, "clean")]),
        # a runs table written before the columns existed: nothing is parsed, nothing guessed
        (run_rows(run_ids, conditions).drop_columns(["codec", "corruption"]),
         [(run, None, None, None) for run in run_ids]),
    ]:
        con = duckdb.connect()
        for name, data in {"predictions": predictions, "runs": runs,
                           "epochs": TABLES["epochs"].empty_table()}.items():
            con.register(f"{name}_rows", data)
            con.execute(f"create view {name} as select * from {name}_rows")
        build_models(con, MetricsConfig(), select_models(load_models(), ["ablation_matrix"]))
        rows = con.execute("select run_id, codec, corruption, training_audio from ablation_matrix "
                           "where epoch_policy = 'best_val_eer' order by run_id").fetchall()
        assert rows == expected


def reference_bootstrap(rows: list[tuple[str, float, bool]], *, run_id: str, epoch: int, dataset: str,
                        samples: int, seed: int, threshold: float = 0.5) -> dict:
    """Percentile intervals from numpy, on the draws the documented scheme names.

    Scheme (bootstrap_resamples): rows numbered 0..n-1 in (clip_id, cm_score) order; draw j of
    replicate r (1-based) takes row hash(hash(seed, run_id, epoch, dataset), r, j) mod n.
    DuckDB's hash() only names the row indices; the resampling, the per-replicate accuracy and
    EER (asv_reference) and the quantiles are numpy.
    """
    ordered = sorted(rows)
    cm = np.array([r[1] for r in ordered])
    is_spoof = np.array([r[2] for r in ordered])
    n = len(ordered)
    draws = duckdb.execute(
        "select (hash(hash(?::bigint, ?::varchar, ?::integer, ?::varchar), r.range, j.range) % ?::ubigint)::bigint "
        "as row_index from range(1, ?::bigint + 1) as r cross join range(?::bigint) as j order by r.range, j.range",
        [seed, run_id, epoch, dataset, n, samples, n],
    ).fetchnumpy()["row_index"].reshape(samples, n)
    accuracies, eers = [], []
    for pick in draws:
        accuracies.append(np.mean((p_spoof(cm[pick]) >= threshold) == is_spoof[pick]))
        eers.append(eer(cm[pick][~is_spoof[pick]], cm[pick][is_spoof[pick]])[0])
    defined = [e for e in eers if e is not None]
    return {
        "n_rows": n, "n_replicates": samples, "n_replicates_without_eer": samples - len(defined),
        "accuracy": float(np.mean((p_spoof(cm) >= threshold) == is_spoof)),
        "accuracy_ci_low": float(np.quantile(accuracies, 0.025)),
        "accuracy_ci_high": float(np.quantile(accuracies, 0.975)),
        "eer": eer(cm[~is_spoof], cm[is_spoof])[0],
        "eer_ci_low": float(np.quantile(defined, 0.025)) if defined else None,
        "eer_ci_high": float(np.quantile(defined, 0.975)) if defined else None,
    }


@pytest.mark.parametrize("seed", [0, 7])
def test_bootstrap_intervals_equal_an_independent_resampling(seed):
    """Every bootstrap_intervals row against numpy on the same draws: counts exactly, the
    quantiles of the (exactly equal) replicate values to 1e-12 (interpolation rounding)."""
    rng = np.random.default_rng(seed)
    datasets = {
        "val": (np.round(rng.normal(1, 1, 18), 1), np.round(rng.normal(-1, 1, 22), 1)),
        "test": (np.round(rng.normal(0.5, 1, 9), 0), np.round(rng.normal(-0.5, 1, 14), 0)),
        "tiny": (np.array([0.5]), np.array([-1.0, 0.5])),  # many replicates draw one class only
    }
    tables = [prediction_rows("R", 2, name, b.tolist(), s.tolist()) for name, (b, s) in datasets.items()]
    tables.append(prediction_rows("R", 1, "val", [0.0, 0.0], [0.0]))  # epoch 1 is not reported
    config = MetricsConfig(bootstrap_samples=150, bootstrap_seed=seed)
    con = duckdb.connect()
    con.register("rows", pa.concat_tables(tables))
    con.execute("create view predictions as select * from rows")
    con.register("empty_epochs", TABLES["epochs"].empty_table())  # best_epochs reads the committed epochs
    con.execute("create view epochs as select * from empty_epochs")
    build_models(con, config, select_models(load_models(), ["bootstrap_intervals"]))
    got = {r["dataset"]: r for r in records(con, "select * from bootstrap_intervals")}
    assert set(got) == set(datasets) and {r["epoch"] for r in got.values()} == {2}
    for name, (bonafide, spoof) in datasets.items():
        n_bonafide = len(bonafide)
        rows = [(f"c{i}", float(score), i >= n_bonafide) for i, score in enumerate([*bonafide, *spoof])]
        expected = reference_bootstrap(rows, run_id="R", epoch=2, dataset=name, samples=150, seed=seed)
        row = got[name]
        for key in ["n_rows", "n_replicates", "n_replicates_without_eer", "accuracy", "eer"]:
            assert row[key] == expected[key], (name, key)
        for key in ["accuracy_ci_low", "accuracy_ci_high", "eer_ci_low", "eer_ci_high"]:
            assert_close(row[key], expected[key])
    assert got["tiny"]["n_replicates_without_eer"] > 0


# -- epoch policies: every table that picks an epoch has a row per run per policy ---------
# R: epochs 1-3 committed, epoch 4 scored but never committed (a killed run); lowest val eer at
# epoch 2. S: scored by `dfpipe score` only (no epochs rows); lowest val eer at epoch 1.
POLICY_STUDY = {
    ("R", 1, "val"): ([2, 1], [-1, 1.5]),  # eer 0.5
    ("R", 2, "val"): ([2, 1], [-1, -2]),  # eer 0: best_val_eer -> 2
    ("R", 3, "val"): ([2, 1], [-1, 1.5]),  # last committed -> 3
    ("R", 4, "val"): ([2, 1], [-1, 1.5]),
    ("R", 1, "test"): ([1, 2], [-1, -2]),
    ("R", 2, "test"): ([1, -0.5], [-1, 0.5]),
    ("R", 3, "test"): ([1, 2], [-1, 0.5, -3]),
    ("R", 4, "test"): ([1, 2], [-1, -2]),
    ("R", 2, "ood"): ([1, -1], [-1, -2, 3]),
    ("R", 3, "ood"): ([1, 2], [-1, -2, -3]),
    ("S", 1, "val"): ([2, 1], [-1, -2]),  # eer 0: best_val_eer -> 1
    ("S", 2, "val"): ([2, 1], [-1, 1.5]),  # last scored -> 2
    ("S", 1, "test"): ([1, 2], [-1, -2]),
    ("S", 2, "test"): ([-1, 2], [-1, -2]),
    ("S", 1, "ood"): ([1, 2], [1, -2, -3]),
    ("S", 2, "ood"): ([-1, -2], [-1, -2, -3]),  # all predicted spoof: specificity 0, mcc 0 (the mp3 row)
}
EXPECTED_EPOCHS = {("R", "best_val_eer"): 2, ("R", "last"): 3, ("S", "best_val_eer"): 1, ("S", "last"): 2}


@pytest.fixture(scope="module")
def policy_con():
    con = duckdb.connect()
    tables = {
        "predictions": pa.concat_tables([prediction_rows(run, epoch, dataset, b, s)
                                         for (run, epoch, dataset), (b, s) in POLICY_STUDY.items()]),
        "runs": run_rows(["R", "S"], ["flac", "corrupt+mp3_128k"], params=[400_000, 2_000_000],
                         checkpoint_bytes=[435_000, 2_200_000]),
        "epochs": conform("epochs", pa.table({
            "run_id": ["R"] * 3, "epoch": [1, 2, 3], "train_loss": [0.6, 0.5, 0.4], "train_acc": [0.7, 0.8, 0.9],
            "val_loss": [0.7, 0.2, 0.6], "n_train": [100] * 3, "checkpoint_uri": ["r1.pt", "r2.pt", "r3.pt"],
            "checkpoint_bytes": [435_000] * 3, "wall_s": [1.0] * 3})),
    }
    for name, schema in TABLES.items():
        con.register(f"{name}_rows", tables.get(name, schema.empty_table()))
        con.execute(f"create view {name} as select * from {name}_rows")
    build_models(con, MetricsConfig(bootstrap_samples=20))
    return con


def reference_at(run_id: str, epoch: int, dataset: str) -> dict:
    bonafide, spoof = POLICY_STUDY[(run_id, epoch, dataset)]
    return threshold_metrics([False] * len(bonafide) + [True] * len(spoof),
                             p_spoof([*bonafide, *spoof]) >= 0.5)


def test_epoch_policies_are_the_configured_ones(policy_con):
    assert [r["epoch_policy"] for r in records(policy_con, "select epoch_policy from epoch_policies")] == list(
        MetricsConfig.epoch_policies)
    assert MetricsConfig.reported_epoch_policy in MetricsConfig.epoch_policies


def test_run_results_report_both_epoch_policies(policy_con):
    rows = records(policy_con, "select * from run_results order by run_id, epoch_policy")
    assert {(r["run_id"], r["epoch_policy"]): r["reported_epoch"] for r in rows} == EXPECTED_EPOCHS
    assert len(rows) == len(EXPECTED_EPOCHS)
    for row in rows:
        test, ood = (reference_at(row["run_id"], row["reported_epoch"], d) for d in ("test", "ood"))
        assert (row["test_accuracy"], row["test_precision"], row["test_recall"], row["test_f1"], row["test_mcc"]) == (
            test["accuracy"], test["precision"], test["recall"], test["f1"], test["mcc"])
        assert (row["ood_accuracy"], row["ood_specificity"], row["ood_mcc"]) == (
            ood["accuracy"], ood["specificity"], ood["mcc"])
        assert row["best_epoch"] == EXPECTED_EPOCHS[(row["run_id"], "best_val_eer")]
    last = {r["run_id"]: r for r in rows if r["epoch_policy"] == "last"}
    assert (last["R"]["val_loss"], last["R"]["reason"]) == (0.6, None)
    assert last["S"]["reason"] == "no committed epoch (no epochs row): last scored epoch reported"
    # the study's MP3-corrupt row: everything predicted spoof reports 0, not null, and why
    assert (last["S"]["ood_specificity"], last["S"]["ood_mcc"]) == (0.0, 0.0)
    (mp3,) = records(policy_con, "select * from threshold_metrics where run_id = 'S' and epoch = 2 "
                                 "and dataset = 'ood' and grouping = 'overall' and policy = 'p_spoof_0.5'")
    assert (mp3["specificity"], mp3["mcc"], mp3["reason"]) == (0.0, 0.0, "nothing predicted bona fide")


def test_every_table_that_picks_an_epoch_has_a_row_per_run_per_policy(policy_con):
    for name in ("best_epochs", "leaderboard", "ablation_matrix", "model_size"):
        rows = records(policy_con, f"select * from {name}")
        assert sorted((r["run_id"], r["epoch_policy"]) for r in rows) == sorted(EXPECTED_EPOCHS), name
        if "reported_epoch" in rows[0]:
            assert {(r["run_id"], r["epoch_policy"]): r["reported_epoch"] for r in rows} == EXPECTED_EPOCHS, name
    # ranks are within a policy: R leads on ood at its best val epoch, S at its last epoch
    board = records(policy_con, "select epoch_policy, ood_rank, run_id, ood_accuracy from leaderboard")
    for policy in MetricsConfig.epoch_policies:
        ranked = [r for r in board if r["epoch_policy"] == policy]
        assert [r["ood_rank"] for r in ranked] == [1, 2]
        assert ranked[0]["ood_accuracy"] >= ranked[1]["ood_accuracy"]
    correlation = records(policy_con, "select epoch_policy, n_runs from leaderboard_correlation")
    assert correlation == [{"epoch_policy": p, "n_runs": 2} for p in sorted(MetricsConfig.epoch_policies)]
    intervals = records(policy_con, "select run_id, epoch_policy, epoch, dataset from bootstrap_intervals")
    assert sorted(intervals, key=repr) == sorted((
        {"run_id": run, "epoch_policy": policy, "epoch": epoch, "dataset": dataset}
        for (run, policy), epoch in EXPECTED_EPOCHS.items()
        for (r, e, dataset) in POLICY_STUDY if (r, e) == (run, epoch)), key=repr)


@pytest.mark.filterwarnings("ignore:A single label was found")  # the one-class cases, on purpose
def test_threshold_metrics_with_a_zero_denominator_follow_sklearn():
    """The reference's zero-denominator values are sklearn's zero_division=0 (an independent check)."""
    cases = [([0, 0, 1], [0, 0, 0]), ([0, 1, 1], [1, 1, 1]), ([1, 1], [1, 0]), ([0, 0], [0, 1]), ([0], [0])]
    for labels, predicted in cases:
        y, p = np.array(labels, bool), np.array(predicted, bool)
        got = threshold_metrics(y, p)
        assert got["precision"] == precision_score(y, p, zero_division=0)
        assert got["recall"] == recall_score(y, p, zero_division=0)
        assert got["specificity"] == recall_score(~y, ~p, zero_division=0)
        assert got["f1"] == f1_score(y, p, zero_division=0)
        assert got["mcc"] == matthews_corrcoef(y, p)


def test_epochs_written_before_val_loss_existed_read_as_null():
    con = duckdb.connect()
    old = conform("epochs", pa.table({  # a lake file of an older version: no val_loss column
        "run_id": ["A"], "epoch": [1], "train_loss": [0.6], "train_acc": [0.7], "n_train": [100],
        "checkpoint_uri": ["a1.pt"], "checkpoint_bytes": [1], "wall_s": [1.0]})).drop_columns(["val_loss"])
    con.register("old_epochs", old)
    con.execute("create view epochs as select * from old_epochs")
    build_models(con, MetricsConfig(), select_models(load_models(), ["stg_epochs"]))
    assert records(con, "select run_id, epoch, train_loss, val_loss from stg_epochs") == [
        {"run_id": "A", "epoch": 1, "train_loss": 0.6, "val_loss": None}]
