"""``dfpipe diagnose``: loss-landscape and representation diagnostics of a checkpoint.

The command runs the diagnose flow (:func:`dfpipe.flows.diagnose.run_diagnose_flow`): in
this process by default, so its progress callback drives the bar; on a Dask cluster with
``--dask-address`` / ``--workers``.
"""

from __future__ import annotations

import time
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
from dfpipe.config import DaskConfig, DiagnosticsConfig

if TYPE_CHECKING:
    from dfpipe.diagnostics import DiagnoseSummary


@click.command()
@lake_option
@click.option("--run", "run_id", required=True, help="Run id (see `dfpipe query \"select * from runs\"`).")
@click.option("--epoch", type=int, default=None, help="1-based epoch [default: the run's last].")
@click.option("--holdout", default=None, metavar="CORPUS[:COND][@SPLIT]",
              help="Clips to diagnose on [default: the run's eval set 'test', else its first one].")
@click.option("--per-class", type=int, default=DiagnosticsConfig.per_class, show_default=True,
              help="Spoof and bona fide clips each in the holdout (and the train sample).")
@click.option("--draws", type=int, default=DiagnosticsConfig.draws, show_default=True,
              help="Hutchinson Rademacher draws per clip.")
@click.option("--directions", type=int, default=DiagnosticsConfig.directions, show_default=True,
              help="Random weight directions of the local-linearity check (per scale).")
@click.option("--seed", type=int, default=DiagnosticsConfig.seed, show_default=True,
              help="Seed of the holdout draw, the Rademacher vectors and the directions.")
@click.option("--device", default=DiagnosticsConfig.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--figure", type=click.Path(dir_okay=False), default=None,
              help="Also draw the Hessian summary figure here (.png, .pdf, .svg).")
@click.option("--overwrite", is_flag=True, help="Recompute even if these diagnostics are in the lake.")
@format_option()
@dask_options
@friendly_errors
def diagnose(lake: str, run_id: str, epoch: int | None, holdout: str | None, per_class: int, draws: int,
             directions: int, seed: int, device: str, figure: str | None, overwrite: bool, output_format: str,
             dask_config: DaskConfig) -> None:
    """Hessian trace (Hutchinson), generalisation gap, gradient SNR, weight norms,
    Davies-Bouldin, calibration and local linearity of one checkpoint.

    Writes diagnostics_hessian (per clip), diagnostics_summary and diagnostics_linearity;
    `dfpipe metrics` turns them into the diagnostics_report table. Runs the diagnose flow
    in this process (with progress); --dask-address or --workers run it on a Dask cluster.

    \b
    Examples:
      dfpipe diagnose --lake lake --run 3f2a... --holdout demo:flac@test
      dfpipe query --lake lake "select * from diagnostics_summary where layer is null"
    """
    from dfpipe.diagnostics import hessian_figure
    from dfpipe.flows.diagnose import run_diagnose_flow
    from dfpipe.lake import Lake

    config = DiagnosticsConfig(per_class=per_class, draws=draws, directions=directions, seed=seed, device=device)
    where = Lake(lake)
    started = time.perf_counter()
    if dask_config.address or dask_config.n_workers:  # opt-in: a cluster, which no callback reaches
        click.echo("diagnosing on Dask: progress is in the worker logs", err=True)
        [result] = run_diagnose_flow(where.uri, [(run_id, epoch)], holdout=holdout, config=config,
                                     overwrite=overwrite, dask_config=dask_config)
    else:
        result = _in_process(where.uri, run_id, epoch, holdout, config, overwrite)

    summary = TableData(
        ["Metric", "Value"], result.table(),
        title=f"run {result.run_id} epoch {result.epoch} on {result.holdout} "
              f"({int(result.metrics['clips_spoof'])} spoof + {int(result.metrics['clips_bonafide'])} "
              f"bona fide, {int(result.metrics['hessian_draws'])} draws per clip)")
    three = "{:.3g}".format
    linearity = TableData(
        ["Scale (x ||w||)", "Actual dL", "Taylor dL", "Rel. error (median)"],
        [(row.scale, row.actual_change_mean, row.predicted_change_mean, row.rel_error_median)
         for row in result.linearity],
        title="Local linearity along random weight directions",
        display={"Scale (x ||w||)": "{:g}".format, "Actual dL": three, "Taylor dL": three,
                 "Rel. error (median)": three})
    print_tables([summary, linearity], output_format)
    if figure:
        note(f"figure: {hessian_figure(where.uri, result, figure)}", output_format)
    state = "already in the lake (use --overwrite to recompute)" if result.skipped else "written"
    note(f"diagnostics {state}: {where.table_path('diagnostics_summary', {'run_id': result.run_id})} "
         f"(+ diagnostics_hessian, diagnostics_linearity), shard {result.shard}; "
         f"{time.perf_counter() - started:.1f} s", output_format)


def _in_process(lake_uri: str, run_id: str, epoch: int | None, holdout: str | None, config: DiagnosticsConfig,
                overwrite: bool) -> DiagnoseSummary:
    """The flow on Prefect's thread runner, with a live bar; when stdout is not a terminal,
    one line per tenth of each phase instead (:class:`dfpipe.progress.Progress`)."""
    from dfpipe.flows.diagnose import run_diagnose_flow
    from dfpipe.progress import Progress

    with Progress(transient=True) as progress:
        [result] = run_diagnose_flow(lake_uri, [(run_id, epoch)], holdout=holdout, config=config,
                                     overwrite=overwrite, progress=progress.update)
    return result
