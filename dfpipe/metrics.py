"""Metric tables: the DuckDB SQL in ``sql/``, run over the lake, materialised as Parquet.

Every metric is computed in SQL; this module only finds the SQL files, orders them by
their declared dependencies, binds the parameters and writes the results:

* ``sql/<relation>.sql`` holds one relation named like the file. A header line
  ``-- materialized: view|table|intermediate|macro`` says what it becomes: ``view``,
  ``table`` and ``intermediate`` files are one ``select`` (the runner wraps it in
  ``create or replace view/table <name> as``), ``macro`` files are a complete
  ``create or replace macro`` statement. An ``intermediate`` is a table computed once
  because several models read it, but it is not an output: it is not written to Parquet,
  and ``metrics.duckdb`` holds it as a view. A header line ``-- depends_on: a, b`` names
  every relation the file reads (:func:`dfpipe.metric_tables.load_models` reads and checks
  it; :func:`check_dependencies` proves it complete).
* Parameters (:class:`dfpipe.config.MetricsConfig`) live in a one-row relation
  ``metric_params`` that the runner creates with bound values; the SQL reads it like any
  table, so every file also runs in the plain ``duckdb`` CLI on ``LAKE/metrics.duckdb``.
* Score direction: the lake stores ``spoof_logit`` (higher = spoof); ``stg_predictions``
  adds ``cm_score = -spoof_logit`` (ASVspoof direction, higher = bona fide). ASVspoof score
  files are converted at this edge (:func:`read_score_files`, :func:`export_scores`).

* Memory: every connection runs under ``MetricsConfig.memory_limit`` and spills to
  ``MetricsConfig.temp_directory`` (:func:`dfpipe.metric_tables.metrics_connection`); the SQL
  sticks to operators DuckDB can spill (hash aggregates, joins, sorts) on the per-cell score
  blocks, so the predictions may be many times larger than memory.

Outputs of :func:`compute_metrics`: ``LAKE/metrics/<relation>.parquet`` for every table
(and ``metric_params``), and ``LAKE/metrics.duckdb`` with the same tables plus the macros.
Reading them back (:func:`dfpipe.metric_tables.attach_metrics`) is in the foundation
module :mod:`dfpipe.metric_tables`, so readers need not import this stage.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from dfpipe.config import VAL_DATASET, AudioConfig, MetricsConfig, RecordConfig
from dfpipe.errors import ConfigError, DfpipeError
from dfpipe.lake import Lake, _sql_list, atomic_write, conform
from dfpipe.metric_tables import (
    METRICS_DATABASE,
    METRICS_FOLDER,
    PARAMS_RELATION,
    SQL_DIR,
    SqlModel,
    attach_metrics,
    fs_uri,
    limit_memory,
    load_models,
    metrics_connection,
    spill_directory,
)
from dfpipe.publish import (
    ScoreRecord,
    WindowPolicy,
    arena_keys_text,
    arena_scores_text,
    check_utterance_ids,
    hf_file_name,
    read_arena_keys,
    read_arena_scores,
    sha256_file,
    write_text,
)
from dfpipe.schemas import TABLES

__all__ = [
    "EVAL_RELATIONS", "EVAL_RUN", "KEY_COLUMN_ALIASES", "METRICS_DATABASE", "METRICS_FOLDER",
    "PARAMS_RELATION", "SQL_DIR", "MetricsSummary", "RecordCheck", "SqlModel", "WrittenRecord",
    "attach_metrics", "bind_params", "build_models", "check_dependencies", "check_record", "compute_metrics",
    "evaluate_score_files", "export_record", "export_scores", "load_models", "read_score_files", "select_models",
]

EVAL_RUN = "eval"
"""run_id / dataset given to the rows of an ASVspoof score file in :func:`evaluate_score_files`."""

EVAL_RELATIONS = ("score_metrics", "threshold_metrics")
"""What :func:`evaluate_score_files` computes (a score file has no runs, epochs or val set)."""

KEY_COLUMN_ALIASES: dict[str, str] = {
    "attack": "generator",
    "attack_label": "generator",
    "attack_tag": "generator",
    "generator": "generator",
    "family": "family",
    "codec": "source_codec",
    "source_codec": "source_codec",
    "condition": "condition",
    "speaker": "speaker",
    "language": "language",
}
"""Extra key-file columns that become groupings, mapped to their ``predictions`` column."""


@dataclass(frozen=True)
class MetricsSummary:
    """What :func:`compute_metrics` wrote: rows per table, where, and how much DuckDB spilled."""

    rows: dict[str, int]
    parquet_dir: str
    database: str
    spilled_bytes: int = 0
    """The most DuckDB held in its temp_directory after a model was built (0: everything
    fit in memory_limit)."""


def select_models(models: Iterable[SqlModel], targets: Iterable[str]) -> list[SqlModel]:
    """The models ``targets`` need (themselves and the models they declare, transitively), in
    order.

    Raises:
        ConfigError: naming an unknown target.
    """
    targets = list(targets)
    ordered = list(models)
    by_name = {m.name: m for m in ordered}
    unknown = set(targets) - set(by_name)
    if unknown:
        raise ConfigError(f"unknown metric relations {sorted(unknown)}; known: {sorted(by_name)}")
    needed = _closure(targets, lambda name: by_name[name].refs)
    return [m for m in ordered if m.name in needed]


def bind_params(con: duckdb.DuckDBPyConnection, config: MetricsConfig) -> None:
    """Create the one-row ``metric_params`` relation from ``config`` (bound values)."""
    con.execute(
        f"create or replace table {PARAMS_RELATION} as select "
        "?::double as threshold, ?::double as p_spoof, ?::double as c_miss, "
        "?::double as c_fa, ?::bigint as bootstrap_samples, ?::bigint as bootstrap_seed",
        [config.threshold, config.p_spoof, config.c_miss, config.c_fa,
         config.bootstrap_samples, config.bootstrap_seed],
    )


def build_models(
    con: duckdb.DuckDBPyConnection,
    config: MetricsConfig,
    models: Iterable[SqlModel] | None = None,
    on_built: Callable[[SqlModel], None] | None = None,
) -> list[SqlModel]:
    """Create every model on ``con``, which must already have the lake's tables as views.

    ``on_built`` is called after each model is created.

    Returns:
        The models built, in order.

    Raises:
        DfpipeError: naming the SQL file, when DuckDB rejects it.
    """
    built = list(load_models() if models is None else models)
    bind_params(con, config)
    for model in built:
        try:
            con.execute(_create_statement(model))
        except duckdb.Error as exc:
            raise DfpipeError(f"sql/{model.name}.sql failed: {exc}") from exc
        if on_built is not None:
            on_built(model)
    return built


def check_dependencies(models: Iterable[SqlModel] | None = None) -> None:
    """Prove every model's ``-- depends_on:`` line complete: build each one alone.

    In dependency order, each model is built in a fresh connection that holds only what it
    declares: empty stand-ins (same columns and types) for the models and lake tables it
    names, ``metric_params`` with the default values, and the macros it names (created with
    what they declare in turn, since DuckDB binds a macro when it is created). A name the
    file reads but did not declare is then missing, and DuckDB says which. The model is then
    built on a reference connection (empty lake tables, every model so far) from which the
    stand-ins of its dependants take their columns.

    Raises:
        ConfigError: naming the file that reads a relation it did not declare.
        DfpipeError: when a model fails for another reason.
    """
    ordered = list(load_models() if models is None else models)
    by_name = {m.name: m for m in ordered}
    reference = duckdb.connect()
    _register_tables(reference, {name: schema.empty_table() for name, schema in TABLES.items()})
    bind_params(reference, MetricsConfig())
    try:
        for model in ordered:
            _build_alone(model, by_name, reference)
            reference.execute(_create_statement(model))
    finally:
        reference.close()


def _build_alone(model: SqlModel, by_name: Mapping[str, SqlModel], reference: duckdb.DuckDBPyConnection) -> None:
    present = _with_macros(model.depends_on, by_name)
    con = duckdb.connect()
    try:
        _register_tables(con, {name: TABLES[name].empty_table() for name in present if name in TABLES})
        if PARAMS_RELATION in present:
            bind_params(con, MetricsConfig())
        for dep in (by_name[name] for name in sorted(present) if name in by_name):
            if dep.materialized != "macro":  # a stand-in: the columns and types, no rows
                described = reference.execute(f"describe {dep.name}").fetchall()
                columns = [f'"{column}" {kind}' for column, kind, *_ in described]
                con.execute(f"create table {dep.name} ({', '.join(columns)})")
        for dep in (m for m in by_name.values() if m.name in present and m.materialized == "macro"):
            con.execute(dep.sql)  # by_name is in dependency order, so a macro's macros come first
        con.execute(_create_statement(model))
    except duckdb.CatalogException as exc:
        raise ConfigError(
            f"sql/{model.name}.sql reads a relation its '-- depends_on:' line does not declare "
            f"(declared: {', '.join(sorted(model.depends_on)) or 'nothing'}): {exc}") from exc
    except duckdb.Error as exc:
        raise DfpipeError(f"sql/{model.name}.sql failed: {exc}") from exc
    finally:
        con.close()


def _with_macros(names: Iterable[str], by_name: Mapping[str, SqlModel]) -> set[str]:
    """``names`` plus what their macros declare, transitively (a macro binds when created)."""
    def declared_by_macro(name: str) -> Iterable[str]:
        model = by_name.get(name)
        return model.depends_on if model is not None and model.materialized == "macro" else ()

    return _closure(names, declared_by_macro)


def _closure(names: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    """``names`` and every name reachable from them through ``edges``."""
    reached: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in reached:
            reached.add(name)
            stack.extend(edges(name))
    return reached


def _register_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table]) -> None:
    """Each Arrow table as a view named like the lake table it stands for."""
    for name, data in tables.items():
        con.register(f"_{name}_source", data)
        con.execute(f"create view {name} as select * from _{name}_source")


def _create_statement(model: SqlModel) -> str:
    if model.materialized == "macro":
        return model.sql
    kind = "table" if model.materialized == "intermediate" else model.materialized
    return f"create or replace {kind} {model.name} as\n{model.sql}"


def compute_metrics(lake_uri: str, config: MetricsConfig | None = None) -> MetricsSummary:
    """Run every metric model over the lake and materialise the tables.

    Writes ``LAKE/metrics/<relation>.parquet`` (each atomically: temporary name, then
    rename) for every ``table`` model and ``metric_params``, then ``LAKE/metrics.duckdb``
    (built in a temporary file, then moved into place) holding the same tables and the
    macros, so ``duckdb LAKE/metrics.duckdb`` can query them.

    Args:
        lake_uri: lake root (folder or fsspec URL).
        config: thresholds, DCF costs, memory limit and spill folder; defaults to
            :class:`MetricsConfig` ().

    Returns:
        A :class:`MetricsSummary` with the row count of every table written.
    """
    config = config or MetricsConfig()
    lake = Lake(lake_uri)
    with metrics_connection(lake, config) as con:
        # the tables that need an order say so (order by); others may stream out of order
        con.execute("set preserve_insertion_order = false")
        spilled = [0]

        def note_spill(_: SqlModel) -> None:
            # tables that outgrew memory_limit stay in the temp files while they are read
            held = con.execute("select coalesce(sum(size), 0) from duckdb_temporary_files()").fetchall()[0][0]
            spilled[0] = max(spilled[0], int(held))

        models = build_models(con, config, on_built=note_spill)
        tables = [PARAMS_RELATION] + [m.name for m in models if m.materialized == "table"]
        folder = f"{lake.root}/{METRICS_FOLDER}"
        lake.fs.makedirs(folder, exist_ok=True)
        rows = {}
        for name in tables:
            data = con.sql(f"select * from {name}").to_arrow_table()
            rows[name] = data.num_rows
            _write_parquet(lake, f"{folder}/{name}.parquet", data)
        database = f"{lake.root}/{METRICS_DATABASE}"
        _write_database(con, lake, database, tables, models)
    return MetricsSummary(rows=rows, parquet_dir=fs_uri(lake, folder), database=fs_uri(lake, database),
                          spilled_bytes=spilled[0])


# -- ASVspoof score files ----------------------------------------------------------------
def read_score_files(scores: str | os.PathLike[str], keys: str | os.PathLike[str]) -> pa.Table:
    """Join an ASVspoof5-format score file and key file into ``predictions`` rows.

    Score file: tab-separated with a header, ``filename<TAB>cm-score`` (higher = bona fide).
    Key file: tab-separated with a header, ``filename<TAB>cm-label`` (``bonafide``/``spoof``)
    and optional extra columns; those named in :data:`KEY_COLUMN_ALIASES` (``attack``,
    ``codec``, ``speaker``...) fill the matching ``predictions`` column and so become
    groupings; others are ignored. Columns are taken by position for the first two.

    Returns:
        A table in the ``predictions`` schema: run_id and dataset ``"eval"``, epoch 0,
        clip_id = filename, ``spoof_logit = -cm_score``.

    Raises:
        DfpipeError: unreadable files, non-numeric scores, labels other than
            bonafide/spoof, duplicate filenames, or filenames in only one of the files.
    """
    con = duckdb.connect()
    try:
        score_rows = _read_tsv(con, scores, "score file")
        key_rows = _read_tsv(con, keys, "key file")
    finally:
        con.close()
    return _predictions_from_rows(score_rows, key_rows, f"{scores} / {keys}")


def _predictions_from_rows(score_rows: pa.Table, key_rows: pa.Table, where: str) -> pa.Table:
    """Score rows (filename, score, ...) and key rows (filename, label, extra columns...),
    all strings, checked and joined into ``predictions`` rows (:func:`read_score_files`)."""
    score_names, key_names = score_rows.column_names, key_rows.column_names
    if len(score_names) < 2 or len(key_names) < 2:
        raise DfpipeError("score and key files need a header and >= 2 tab-separated columns")
    con = duckdb.connect()
    con.register("score_rows", score_rows.rename_columns(["filename", "cm_score", *score_names[2:]]))
    extra = {KEY_COLUMN_ALIASES[c.lower()]: c for c in key_names[2:] if c.lower() in KEY_COLUMN_ALIASES}
    key_table = key_rows.select([0, 1, *[key_names.index(c) for c in extra.values()]])
    con.register("key_rows", key_table.rename_columns(["filename", "label", *extra]))
    checks = con.execute(
        """
        select
            (select count(*) from score_rows where try_cast(cm_score as double) is null),
            (select count(*) from key_rows where label not in ('bonafide', 'spoof')),
            (select count(*) - count(distinct filename) from score_rows),
            (select count(*) - count(distinct filename) from key_rows),
            (select count(*) from score_rows anti join key_rows using (filename)),
            (select count(*) from key_rows anti join score_rows using (filename))
        """
    ).fetchall()[0]
    problems = [
        f"{n} {what}"
        for n, what in zip(
            checks,
            ["non-numeric scores", "labels other than bonafide/spoof", "duplicate filenames in the score file",
             "duplicate filenames in the key file", "scored files missing from the key file",
             "key entries without a score"],
        )
        if n
    ]
    if problems:
        raise DfpipeError(f"{where}: " + "; ".join(problems))
    # condition is required in predictions: key files without one get "eval"
    condition = "coalesce(key_rows.condition, ?)" if "condition" in extra else "?"
    extra_select = "".join(f", key_rows.{column}" for column in extra if column != "condition")
    table = con.sql(
        f"""
        select
            ? as run_id, 0 as epoch, ? as dataset, filename as clip_id, ? as corpus,
            {condition} as condition, label,
            -cast(cm_score as double) as spoof_logit{extra_select}
        from score_rows inner join key_rows using (filename)
        order by filename
        """,
        params=[EVAL_RUN, EVAL_RUN, EVAL_RUN, EVAL_RUN],
    ).to_arrow_table()
    con.close()
    return conform("predictions", table)


def evaluate_score_files(
    scores: str | os.PathLike[str],
    keys: str | os.PathLike[str],
    config: MetricsConfig | None = None,
) -> dict[str, list[dict[str, object]]]:
    """ASVspoof-style evaluation of a score file with the same SQL as the lake metrics.

    The files become a ``predictions`` view (:func:`read_score_files`) on an in-memory
    DuckDB connection, every model of ``sql/`` runs on it, and the per-group rows are
    returned.

    Returns:
        ``{"score_metrics": [...], "threshold_metrics": [...]}`` (:data:`EVAL_RELATIONS`): one dict per group
        (grouping ``overall`` first), threshold metrics at the headline policy
        ``p_spoof_<threshold>`` only (``headline_policy``; a score file has no validation set
        for ``val_eer``).
    """
    return _evaluate(read_score_files(scores, keys), config)


def _evaluate(predictions: pa.Table, config: MetricsConfig | None) -> dict[str, list[dict[str, object]]]:
    """:func:`evaluate_score_files` of ``predictions`` rows (run and dataset :data:`EVAL_RUN`)."""
    config = config or MetricsConfig()
    with spill_directory(config) as folder, duckdb.connect() as con:
        limit_memory(con, config, folder)
        _register_tables(con, {
            name: predictions if name == "predictions" else schema.empty_table() for name, schema in TABLES.items()
        })
        build_models(con, config, select_models(load_models(), EVAL_RELATIONS))
        # groupings the key file filled (condition and corpus otherwise hold the placeholder)
        shown = ["overall"] + [
            column for column in sorted(set(KEY_COLUMN_ALIASES.values()))
            if set(predictions.column(column).to_pylist()) - {None, EVAL_RUN}
        ]
        where = "where grouping in (select unnest(?::varchar[]))"
        order = "order by grouping != 'overall', grouping, group_value"
        return {
            "score_metrics": _records(
                con, f"select * exclude (run_id, epoch, dataset) from score_metrics {where} {order}", [shown]
            ),
            "threshold_metrics": _records(
                con,
                "select * exclude (run_id, epoch, dataset) from threshold_metrics "
                f"{where} and policy in (select policy from headline_policy) {order}",
                [shown],
            ),
        }


def export_scores(
    lake_uri: str,
    *,
    run_id: str,
    epoch: int,
    dataset: str,
    out: str | os.PathLike[str],
    keys_out: str | os.PathLike[str] | None = None,
) -> int:
    """Write one run/epoch/dataset of ``predictions`` as an ASVspoof5 score file.

    Score file: ``filename<TAB>cm-score`` with a header, filename = clip_id, cm-score =
    ``-spoof_logit`` printed with 17 significant digits (round-trips a float64 exactly).
    ``keys_out`` optionally writes the matching key file ``filename<TAB>cm-label``.

    Returns:
        Rows written.

    Raises:
        DfpipeError: when the lake holds no such predictions.
    """
    with metrics_connection(Lake(lake_uri), MetricsConfig()) as con:
        rows = con.execute(
            "select clip_id, -spoof_logit, label from predictions "
            "where run_id = ? and epoch = ? and dataset = ? order by clip_id",
            [run_id, epoch, dataset],
        ).fetchall()
    if not rows:
        raise DfpipeError(
            f"no predictions for run {run_id!r}, epoch {epoch}, dataset {dataset!r} in {lake_uri}"
        )
    _write_tsv(out, ["filename", "cm-score"], ((clip, f"{score:.17g}") for clip, score, _ in rows))
    if keys_out is not None:
        _write_tsv(keys_out, ["filename", "cm-label"], ((clip, label) for clip, _, label in rows))
    return len(rows)


# -- publishable records -----------------------------------------------------------------
@dataclass(frozen=True)
class WrittenRecord:
    """What :func:`export_record` wrote: the record and the files, record first."""

    record: ScoreRecord
    files: list[str]


@dataclass(frozen=True)
class RecordCheck:
    """What :func:`check_record` verified: the record, the EER recomputed (percent, not
    rounded), the trials counted in the score file, and the key file used."""

    record: ScoreRecord
    eer_percent: float
    n_trials: int
    keys: str


_RECORD_IDS = {"clip_id": "p.clip_id", "path": "c.source_relpath"}


def export_record(
    lake_uri: str,
    *,
    run_id: str,
    epoch: int,
    dataset: str,
    out_dir: str | os.PathLike[str],
    dataset_id: str,
    revision: str,
    system: str | None = None,
    split: str | None = None,
    task_id: str | None = None,
    source_url: str | None = None,
    config: RecordConfig | None = None,
    metrics_config: MetricsConfig | None = None,
    audio: AudioConfig | None = None,
) -> WrittenRecord:
    """Write one run/epoch/dataset of ``predictions`` as a publishable record (:mod:`dfpipe.publish`).

    ``out_dir`` gets ``scores.txt`` (``<id> <cm-score>``, cm-score = ``-spoof_logit``),
    ``keys.csv``, ``result.yaml`` and ``.eval_results/<dataset>.yaml``. The EER is computed
    from the written files by the same path as :func:`check_record` (the metric SQL), so
    the record checks by construction. ``n_skipped`` counts the clips of the corpus splits
    the predictions cover that have no prediction (rejected before scoring); ``val`` is
    drawn from clips that had inputs, so it skips none.

    Args:
        system: the record's system name; default the run's ``arch``.
        split: default ``dataset``.
        task_id: the Hugging Face entry's ``task_id``; default the split.
        config: ids, window policy, EER decimals, file names (:class:`RecordConfig`).
        audio: the front end's clip (the window policy's length and rate).

    Raises:
        ConfigError: a window policy other than ``centre-crop`` (the lake's predictions
            are the front end's centre crops).
        DfpipeError: no such predictions, ids a score file cannot hold, no ``runs`` row
            to name the system, or an undefined EER (one class only).
    """
    config = config or RecordConfig()
    audio = audio or AudioConfig()
    if config.window_policy != "centre-crop":
        raise ConfigError(
            f"window policy {config.window_policy!r}: the lake's predictions are centre crops of "
            f"{audio.clip_seconds:g} s (AudioConfig.clip_seconds), so their record says centre-crop"
        )
    with metrics_connection(Lake(lake_uri), metrics_config or MetricsConfig()) as con:
        key = [run_id, epoch, dataset]
        rows = con.execute(
            f"select {_RECORD_IDS[config.ids]} as uid, -p.spoof_logit, p.label from predictions p "
            "left join clips c on c.clip_id = p.clip_id and c.corpus = p.corpus "
            "where p.run_id = ? and p.epoch = ? and p.dataset = ? order by uid",
            key,
        ).fetchall()
        if not rows:
            raise DfpipeError(f"no predictions for run {run_id!r}, epoch {epoch}, dataset {dataset!r} in {lake_uri}")
        if any(uid is None for uid, _, _ in rows):
            raise DfpipeError("--ids path: some predictions have no clips row to take the path from")
        check_utterance_ids(uid for uid, _, _ in rows)
        if system is None:
            found = con.execute("select arch from runs where run_id = ?", [run_id]).fetchone()
            if found is None:
                raise DfpipeError(f"run {run_id!r} has no runs row to name the system: give a system name")
            system = found[0]
        n_skipped = 0 if dataset == VAL_DATASET else con.execute(
            """
            with predicted as (
                select distinct clip_id, corpus, split from predictions where run_id = ? and epoch = ? and dataset = ?
            )
            select count(*) from clips c
            where exists (select 1 from predicted p where p.corpus = c.corpus and p.split is not distinct from c.split)
              and not exists (select 1 from predicted p where p.clip_id = c.clip_id and p.corpus = c.corpus)
            """,
            key,
        ).fetchone()[0]

    out = Path(out_dir)
    hf_dir = out / config.hf_folder
    hf_dir.mkdir(parents=True, exist_ok=True)
    scores, keys = out / config.scores_file, out / config.keys_file
    write_text(scores, arena_scores_text((uid, score) for uid, score, _ in rows))
    write_text(keys, arena_keys_text((uid, label) for uid, _, label in rows))
    overall = _record_metrics(scores, keys, metrics_config)
    if overall["eer"] is None:
        raise DfpipeError(f"the EER of run {run_id!r} epoch {epoch} on {dataset!r} is undefined: {overall['reason']}")
    record = ScoreRecord(
        system=system, dataset_id=dataset_id, dataset_revision=revision, split=split or dataset,
        eer_percent=float(f"{overall['eer'] * 100:.{config.eer_decimals}f}"), eer_decimals=config.eer_decimals,
        n_trials=len(rows), n_bonafide=int(overall["n_bonafide"]), n_spoof=int(overall["n_spoof"]),
        n_skipped=int(n_skipped), scores_file=config.scores_file, scores_sha256=sha256_file(scores),
        keys_file=config.keys_file, keys_sha256=sha256_file(keys),
        window_policy=WindowPolicy("centre-crop", audio.clip_seconds, audio.sample_rate),
        producer={"tool": "dfpipe", "version": _version(), "lake": Lake(lake_uri).uri, "run_id": run_id,
                  "epoch": epoch, "lake_dataset": dataset, "ids": config.ids},
    )
    record_path = out / config.record_file
    write_text(record_path, record.to_yaml())
    hf_path = hf_dir / hf_file_name(dataset_id)
    write_text(hf_path, yaml.safe_dump(record.hf_entry(task_id, source_url), sort_keys=False, allow_unicode=True))
    return WrittenRecord(record, [str(record_path), str(scores), str(keys), str(hf_path)])


def check_record(
    record_path: str | os.PathLike[str],
    keys: str | os.PathLike[str] | None = None,
    config: MetricsConfig | None = None,
) -> RecordCheck:
    """Check a ``result.yaml``: the sha256 of its score file (and key file), the trials
    counted in the score file, and the EER recomputed by the metric SQL (as :func:`evaluate_score_files`)
    against ``eer_percent``, both rounded to the record's ``eer_decimals``.

    Args:
        record_path: the ``result.yaml``; its files are named relative to its folder.
        keys: a ``file_name,label`` CSV to use instead of the record's pinned ``keys.csv``
            (e.g. the dataset's official protocol; its hash is then not checked).

    Raises:
        DfpipeError: one line naming the first mismatch (an invalid record, a changed or
            missing file, another trial count, another EER).
    """
    record = ScoreRecord.load(record_path)
    folder = Path(record_path).parent
    scores = _pinned(folder, record.scores_file, record.scores_sha256, record_path)
    if keys is None:
        if record.keys_file is None:
            raise DfpipeError(f"{record_path} pins no key file: give one (--keys)")
        keys = _pinned(folder, record.keys_file, record.keys_sha256, record_path)
    n_trials = read_arena_scores(scores).num_rows
    if n_trials != record.n_trials:
        raise DfpipeError(f"{scores}: {n_trials} trials, the record's n_trials is {record.n_trials}")
    overall = _record_metrics(scores, keys, config)
    if overall["eer"] is None:
        raise DfpipeError(f"{scores}: the EER is undefined ({overall['reason']})")
    recomputed = overall["eer"] * 100
    if record.eer_text(recomputed) != record.eer_text():
        raise DfpipeError(
            f"{record_path}: EER {record.eer_text(recomputed)} % recomputed from {record.scores_file} does not "
            f"match the record's eer_percent {record.eer_text()} (compared at {record.eer_decimals} decimals)"
        )
    return RecordCheck(record, recomputed, n_trials, os.fspath(keys))


def _pinned(folder: Path, name: str, sha256: str | None, record_path: str | os.PathLike[str]) -> Path:
    """``folder/name`` after checking it exists and has the record's sha256."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise DfpipeError(f"{record_path}: file {name!r} must be a path inside the record's folder")
    path = folder / name
    if not path.is_file():
        raise DfpipeError(f"{record_path}: pinned file {path} is missing")
    got = sha256_file(path)
    if got != sha256:
        raise DfpipeError(f"{path}: sha256 {got} does not match the record's {sha256} (the file changed)")
    return path


def _record_metrics(scores: Path, keys: str | os.PathLike[str], config: MetricsConfig | None) -> dict[str, object]:
    """The ``overall`` score_metrics row of an Arena score file and key file."""
    predictions = _predictions_from_rows(read_arena_scores(scores), read_arena_keys(keys), f"{scores} / {keys}")
    return _evaluate(predictions, config)["score_metrics"][0]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dfpipe")
    except PackageNotFoundError:
        return "unknown"


# -- helpers -----------------------------------------------------------------------------
def _read_tsv(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str], what: str) -> pa.Table:
    try:
        return con.sql(
            "select * from read_csv(?, delim = '\t', header = true, all_varchar = true, quote = '')",
            params=[str(path)],
        ).to_arrow_table()
    except duckdb.Error as exc:
        raise DfpipeError(f"cannot read the {what} {path}: {exc}") from exc


def _write_tsv(path: str | os.PathLike[str], header: list[str], rows: Iterable[tuple[str, str]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as sink:
            writer = csv.writer(sink, delimiter="\t", lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)

    atomic_write(os.fspath(path), write)


def _records(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> list[dict[str, object]]:
    result = con.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def _write_parquet(lake: Lake, final: str, data: pa.Table) -> None:
    def write(tmp: str) -> None:
        with lake.fs.open(tmp, "wb") as sink:
            pq.write_table(data, sink, compression="zstd")

    atomic_write(final, write, lake.fs)


def _write_database(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    final: str,
    tables: list[str],
    models: list[SqlModel],
) -> None:
    """Write a fresh DuckDB file with ``tables``, then move it to ``final``.

    For a local lake the file also gets the lake's tables as views over their Parquet
    files and the ``view`` and ``macro`` models, so every ``sql/`` file runs in the plain
    duckdb CLI on it; ``intermediate`` models become views there too. A remote lake's file
    holds the tables and macros only (its views would need the lake's credentials).
    """
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, METRICS_DATABASE)
        con.execute("attach ? as metrics_out", [local])
        try:
            for name in tables:
                con.execute(f"create table metrics_out.{name} as select * from {name}")
            if lake.is_local:
                for name in TABLES:
                    if lake.files(name):
                        # DDL takes no bound parameters; the path is the lake's own.
                        glob = _sql_list([f"{lake.table_path(name)}/**/*.parquet"])
                        con.execute(
                            f"create view metrics_out.{name} as select * from read_parquet("
                            f"{glob}, union_by_name = true, hive_partitioning = false)"
                        )
                    else:
                        con.execute(f"create table metrics_out.{name} as select * from {name}")
            con.execute("use metrics_out")
            for model in models:
                if model.materialized == "macro":
                    con.execute(model.sql)
                elif model.materialized in ("view", "intermediate") and lake.is_local:
                    con.execute(f"create view {model.name} as\n{model.sql}")
            con.execute("use memory")
        finally:
            con.execute("detach metrics_out")
        atomic_write(final, lambda tmp: lake.fs.put_file(local, tmp), lake.fs)

