"""``dfpipe study``, ``dfpipe demo`` and ``dfpipe report``: whole studies and their report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dfpipe.cli._common import (
    TableData,
    dask_options,
    format_option,
    friendly_errors,
    lake_option,
    note,
    print_tables,
)
from dfpipe.config import DaskConfig, MetricsConfig

if TYPE_CHECKING:
    from dfpipe.study import Study, StudyPlan

STUDIES = Path(__file__).resolve().parents[2] / "studies"
"""The studies shipped with dfpipe (``demo.yaml``, ``demo-quick.yaml``, ``seed-study.yaml``)."""


@click.command()
@click.argument("study_file", type=click.Path(exists=True, dir_okay=False))
@lake_option
@click.option("--dry-run", is_flag=True, help="List every stage's work and every run, then stop.")
@click.option("--rehearse", is_flag=True,
              help="Every run at laptop scale (1 epoch, a few dozen clips per split, a tiny random WavLM): "
                   "checks the study end to end; use a scratch lake.")
@click.option("--report-dir", default=None, help="Where the report goes (default LAKE/report).")
@format_option()
@dask_options
@friendly_errors
def study(study_file: str, lake: str, dry_run: bool, rehearse: bool, report_dir: str | None, output_format: str,
          dask_config: DaskConfig) -> None:
    """Run a study file: ingest -> conditions -> features -> train -> metrics -> report.

    Re-running a killed study resumes it: every stage skips what the lake already holds.

    \b
    Example:
      dfpipe study studies/seed-study.yaml --lake s3://bucket/lake --dry-run
    """
    from dfpipe.study import load_study, plan_study

    spec = load_study(study_file)
    if rehearse:
        from dfpipe.study.rehearsal import rehearse as scale_down

        rehearsal = scale_down(spec)
        spec = rehearsal.study
        note("rehearsal, scaled down:\n" + "\n".join(f"  {line}" for line in rehearsal.scaled), output_format)
    if dry_run:
        _print_plan(spec, plan_study(spec), output_format)
        return
    _run(study_file, lake, report_dir, dask_config, output_format, rehearse=rehearse)


@click.command()
@lake_option
@click.option("--quick", is_flag=True, help="The small corpus, one condition pair, 2 epochs: a few minutes.")
@click.option("--report-dir", default=None, help="Where the report goes (default LAKE/report).")
@format_option()
@dask_options
@friendly_errors
def demo(lake: str, quick: bool, report_dir: str | None, output_format: str, dask_config: DaskConfig) -> None:
    """The main job: build the demo corpus and run studies/demo.yaml on it, to the report.

    Builds (or reuses, from ~/.cache/dfpipe) the built-in corpus of real speech and seven
    speech generators, makes FLAC/MP3 x clean/corrupt training audio and a polished test
    copy, trains Mel-CNN and Mel-MultiScale on each on the CPU, scores every epoch on
    val, test, OOD and polished test, computes every metric table and writes the report.
    """
    _run(str(STUDIES / ("demo-quick.yaml" if quick else "demo.yaml")), lake, report_dir, dask_config,
         output_format)


@click.command()
@lake_option
@click.option("--out", "out_dir", default=None, help="Report folder (default LAKE/report).")
@friendly_errors
def report(lake: str, out_dir: str | None) -> None:
    """Write the HTML report (figures + tables) from the lake's metric tables."""
    from dfpipe.report import write_report

    page = write_report(lake, out_dir or f"{lake.rstrip('/')}/report")
    click.echo(f"wrote {page}")


def _run(study_file: str, lake: str, report_dir: str | None, dask_config: DaskConfig,
         output_format: str = "table", *, rehearse: bool = False) -> None:
    from dfpipe.flows.server import prefect_api
    from dfpipe.flows.study import study_flow
    from dfpipe.lake import Lake

    with prefect_api():  # the study and its stage flows report to one server
        result = study_flow(study_file, lake, dask_config.address, report_dir, rehearse=rehearse)
    con = Lake(lake).connect()
    from dfpipe.metrics import attach_metrics

    attach_metrics(con, Lake(lake))
    board = con.execute(
        "select ood_rank, arch, train_condition, reported_epoch, ood_accuracy, test_accuracy, ood_eer, test_eer "
        "from leaderboard where epoch_policy = ? order by ood_rank", [MetricsConfig.reported_epoch_policy]
    )
    print_tables([TableData([d[0] for d in board.description], board.fetchall(),
                            title="leaderboard (ranked by OOD accuracy)", null="–",
                            display={name: "{:.3f}".format for name in _FLOAT_COLUMNS})], output_format)
    corr = con.execute("select n_runs, pearson, spearman, reason from leaderboard_correlation "
                       "where epoch_policy = ?", [MetricsConfig.reported_epoch_policy]).fetchone()
    note(f"test vs OOD accuracy across {corr[0]} runs: pearson {_fmt(corr[1])}, spearman {_fmt(corr[2])}"
         + (f" ({corr[3]})" if corr[3] else ""), output_format)
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.stage_seconds.items())
    note(f"stage times: {stages}", output_format)
    note(f"lake: {Lake(lake).uri}   metrics: {Lake(lake).uri}/metrics.duckdb   report: {result.report}",
         output_format)


def _print_plan(spec: Study, plan: StudyPlan, output_format: str = "table") -> None:
    evals = ", ".join(f"{name}={spec.data_spec(name)}" + (f" every {s.every} epochs" if s.every > 1 else "")
                      for name, s in spec.eval_sets.items())
    for line in (f"study {spec.name}",
                 f"  ingest: {', '.join(f'{c} ({spec.corpora[c].format})' for c in plan.corpora)}",
                 f"  conditions: {', '.join(map(_slice_text, plan.conditions)) or 'none'}",
                 f"  features: {', '.join(map(_slice_text, plan.features))}",
                 f"  eval sets: {evals}"):
        note(line, output_format)
    rows = []
    for run in plan.runs:
        every = spec.eval_every(run.train_set)
        evals = " ".join((dataset if dataset == name else f"{dataset}={name}")
                         + (f"/{every[dataset]}" if dataset in every else "")
                         for dataset, name in spec.eval_roles(run.train_set).items())
        rows.append([run.name, run.arch, f"{run.train_set} ({spec.data_spec(run.train_set)})",
                     spec.train_sets[run.train_set].balance or "-", run.model.describe() or "-",
                     f"{run.init_from[0]}@{run.init_from[1]}" if run.init_from else "-", run.epochs, evals])
    print_tables([TableData(["run", "architecture", "train set", "balance", "model", "init_from", "epochs",
                             "eval sets (/N: every N epochs)"], rows, title=f"runs ({len(plan.runs)})")],
                 output_format)


def _slice_text(data: tuple[str, str | None, str]) -> str:
    """``corpus:condition@split`` of a plan's (corpus, split, condition); ``@*``: every clip."""
    corpus, split, condition = data
    return f"{corpus}:{condition}@{split or '*'}"


_FLOAT_COLUMNS = ("ood_accuracy", "test_accuracy", "ood_eer", "test_eer")
"""The leaderboard's float columns, shown with 3 decimals."""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
