"""``dfpipe diagnose``: loss-landscape and representation diagnostics of a checkpoint."""

from __future__ import annotations

import time

import click

from dfpipe.cli._common import friendly_errors, lake_option
from dfpipe.config import DiagnosticsConfig


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
@friendly_errors
def diagnose(lake: str, run_id: str, epoch: int | None, holdout: str | None, per_class: int, draws: int,
             directions: int, seed: int, device: str, figure: str | None, overwrite: bool) -> None:
    """Hessian trace (Hutchinson), generalisation gap, gradient SNR, weight norms,
    Davies-Bouldin, calibration and local linearity of one checkpoint.

    Writes diagnostics_hessian (per clip), diagnostics_summary and diagnostics_linearity;
    `dfpipe metrics` turns them into the diagnostics_report table.

    \b
    Examples:
      dfpipe diagnose --lake lake --run 3f2a... --holdout demo:flac@test
      dfpipe query --lake lake "select * from diagnostics_summary where layer is null"
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from dfpipe.diagnostics import diagnose as run_diagnose
    from dfpipe.diagnostics import hessian_figure
    from dfpipe.lake import Lake

    config = DiagnosticsConfig(per_class=per_class, draws=draws, directions=directions, seed=seed, device=device)
    started = time.perf_counter()
    with Progress(transient=True) as bar:
        tasks: dict[str, int] = {}
        logged: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)
            if not bar.console.is_terminal:  # no live bar in logs: a line per tenth instead
                tenth = done * 10 // max(total, 1)
                if tenth > logged.get(phase, -1):
                    logged[phase] = tenth
                    click.echo(f"{phase}: {done}/{total} ({time.perf_counter() - started:.0f} s)", err=True)

        result = run_diagnose(Lake(lake).uri, run_id, epoch, holdout, config, overwrite=overwrite,
                              progress=progress)

    console = Console()
    table = Table("Metric", "Value", title=f"run {result.run_id} epoch {result.epoch} on {result.holdout} "
                  f"({int(result.metrics['clips_spoof'])} spoof + {int(result.metrics['clips_bonafide'])} "
                  f"bona fide, {int(result.metrics['hessian_draws'])} draws per clip)")
    for label, value in result.table():
        table.add_row(label, value)
    console.print(table)
    linearity = Table("Scale (x ||w||)", "Actual dL", "Taylor dL", "Rel. error (median)",
                      title="Local linearity along random weight directions")
    for row in result.linearity:
        linearity.add_row(f"{row.scale:g}", f"{row.actual_change_mean:.3g}", f"{row.predicted_change_mean:.3g}",
                          f"{row.rel_error_median:.3g}")
    console.print(linearity)
    where = Lake(lake)
    if figure:
        click.echo(f"figure: {hessian_figure(where.uri, result, figure)}")
    state = "already in the lake (use --overwrite to recompute)" if result.skipped else "written"
    click.echo(f"diagnostics {state}: {where.table_path('diagnostics_summary', {'run_id': result.run_id})} "
               f"(+ diagnostics_hessian, diagnostics_linearity), shard {result.shard}; "
               f"{time.perf_counter() - started:.1f} s")
