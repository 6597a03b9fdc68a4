"""``dfpipe calibrate``: fit a run's score calibration on a dev set (in-process, no flow:
one logistic regression over one dataset's predictions takes well under a second)."""

from __future__ import annotations

import click

from dfpipe.cli._common import friendly_errors, lake_option
from dfpipe.config import CalibrationConfig


@click.command()
@lake_option
@click.option("--run", "run_id", required=True, help="A run id (see the runs table).")
@click.option("--epoch", type=int, default=None, help="Default: the run's last committed epoch.")
@click.option("--on", "dataset", required=True,
              help="Dev set: a predictions.dataset of that run and epoch (e.g. val, or one you scored).")
@click.option("--prior", type=float, default=CalibrationConfig.prior, show_default=True,
              help="Spoof prior of the prior-weighted fit (default: the effective prior of the DCF costs).")
@friendly_errors
def calibrate(lake: str, run_id: str, epoch: int | None, dataset: str, prior: float) -> None:
    """Fit spoof LLR = slope * logit + intercept on a dev set and store it with the checkpoint.

    The map goes to the lake's calibrations table (the metric tables calibrated_scores,
    calibration_metrics and bayes_threshold_metrics apply it: run `dfpipe metrics`) and to
    epoch-NNN.calibration.json beside the checkpoint (`dfpipe detect` applies it).

    \b
    Example:
      dfpipe calibrate --lake lake --run 3f2a... --on val
      dfpipe metrics --lake lake
      dfpipe query --lake lake "select * from calibration_metrics where is_held_out"
    """
    from dfpipe.calibration import calibrate as fit

    summary = fit(lake, run_id, on=dataset, epoch=epoch, config=CalibrationConfig(prior=prior))
    fitted = summary.score_map
    click.echo(f"run {summary.run_id} epoch {summary.epoch}: spoof LLR = {fitted.weights[0]:.6g} * logit "
               f"{fitted.intercept:+.6g}, fitted on {fitted.fitted_on!r} ({fitted.n_bonafide} bona fide, "
               f"{fitted.n_spoof} spoof, prior {fitted.prior:.4g}); wrote the calibrations table"
               + (f" and {summary.calibration_uri}" if summary.calibration_uri else ""))
