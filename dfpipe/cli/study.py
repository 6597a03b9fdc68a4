"""``dfpipe study``, ``dfpipe demo`` and ``dfpipe report``: whole studies and their report."""

from __future__ import annotations

from pathlib import Path

import click

from dfpipe.cli._common import dask_options, friendly_errors, lake_option
from dfpipe.config import DaskConfig

STUDIES = Path(__file__).resolve().parents[2] / "studies"
"""The studies shipped with dfpipe (``demo.yaml``, ``demo-quick.yaml``, ``seed-study.yaml``)."""


@click.command()
@click.argument("study_file", type=click.Path(exists=True, dir_okay=False))
@lake_option
@click.option("--dry-run", is_flag=True, help="List every stage's work and every run, then stop.")
@click.option("--report-dir", default=None, help="Where the report goes (default LAKE/report).")
@dask_options
@friendly_errors
def study(study_file: str, lake: str, dry_run: bool, report_dir: str | None, dask_config: DaskConfig) -> None:
    """Run a study file: ingest -> conditions -> features -> train -> metrics -> report.

    Re-running a killed study resumes it: every stage skips what the lake already holds.

    \b
    Example:
      dfpipe study studies/seed-study.yaml --lake s3://bucket/lake --dry-run
    """
    from dfpipe.study import load_study, plan_study

    spec = load_study(study_file)
    if dry_run:
        _print_plan(spec, plan_study(spec))
        return
    _run(study_file, lake, report_dir, dask_config)


@click.command()
@lake_option
@click.option("--quick", is_flag=True, help="The small corpus, one condition pair, 2 epochs: a few minutes.")
@click.option("--report-dir", default=None, help="Where the report goes (default LAKE/report).")
@dask_options
@friendly_errors
def demo(lake: str, quick: bool, report_dir: str | None, dask_config: DaskConfig) -> None:
    """The main job: build the demo corpus and run studies/demo.yaml on it, to the report.

    Builds (or reuses, from ~/.cache/dfpipe) the built-in corpus of real speech and seven
    speech generators, makes FLAC/MP3 x clean/corrupt training audio and a polished test
    copy, trains Mel-CNN and Mel-MultiScale on each on the CPU, scores every epoch on
    val, test, OOD and polished test, computes every metric table and writes the report.
    """
    _run(str(STUDIES / ("demo-quick.yaml" if quick else "demo.yaml")), lake, report_dir, dask_config)


@click.command()
@lake_option
@click.option("--out", "out_dir", default=None, help="Report folder (default LAKE/report).")
@friendly_errors
def report(lake: str, out_dir: str | None) -> None:
    """Write the HTML report (figures + tables) from the lake's metric tables."""
    from dfpipe.report import write_report

    page = write_report(lake, out_dir or f"{lake.rstrip('/')}/report")
    click.echo(f"wrote {page}")


def _run(study_file: str, lake: str, report_dir: str | None, dask_config: DaskConfig) -> None:
    from dfpipe.flows.study import study_flow
    from dfpipe.lake import Lake

    result = study_flow(study_file, lake, dask_config.address, report_dir)
    con = Lake(lake).connect()
    from dfpipe.metrics import attach_metrics

    attach_metrics(con, Lake(lake))
    board = con.execute(
        "select ood_rank, arch, train_condition, reported_epoch, ood_accuracy, test_accuracy, ood_eer, test_eer "
        "from leaderboard order by ood_rank"
    )
    _echo_table([d[0] for d in board.description], board.fetchall())
    corr = con.execute("select n_runs, pearson, spearman, reason from leaderboard_correlation").fetchone()
    click.echo(f"test vs OOD accuracy across {corr[0]} runs: pearson {_fmt(corr[1])}, spearman {_fmt(corr[2])}"
               + (f" ({corr[3]})" if corr[3] else ""))
    stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.stage_seconds.items())
    click.echo(f"stage times: {stages}")
    click.echo(f"lake: {Lake(lake).uri}   metrics: {Lake(lake).uri}/metrics.duckdb   report: {result.report}")


def _print_plan(spec: object, plan: object) -> None:
    click.echo(f"study {spec.name}")
    click.echo(f"  ingest: {', '.join(f'{c} ({spec.corpora[c].format})' for c in plan.corpora)}")
    click.echo(f"  conditions: {', '.join(f'{c}:{k}' for c, k in plan.conditions) or 'none'}")
    click.echo(f"  features: {', '.join(f'{c}:{k}' for c, k in plan.features)}")
    click.echo(f"  eval sets: {', '.join(f'{n}={spec.data_spec(n)}' for n in spec.eval_sets)}")
    click.echo(f"  runs ({len(plan.runs)}):")
    for run in plan.runs:
        click.echo(f"    [{run.experiment}] {run.arch:15s} train={spec.data_spec(run.train_set):28s} "
                   f"seed={run.seed} epochs={run.epochs}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _echo_table(names: list[str], rows: list[tuple]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*names, title="leaderboard (ranked by OOD accuracy)")
    for row in rows:
        table.add_row(*("–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    Console().print(table)
