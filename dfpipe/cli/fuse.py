"""``dfpipe fuse``: a linear logistic fusion of several runs' scores, as a pseudo-run (in-process)."""

from __future__ import annotations

import click

from dfpipe.cli._common import friendly_errors, lake_option
from dfpipe.config import CalibrationConfig


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@click.command()
@lake_option
@click.option("--runs", required=True, help="Comma-separated run ids (two or more).")
@click.option("--epochs", default=None,
              help="Comma-separated epochs, one per run (default: each run's last committed epoch).")
@click.option("--on", "dataset", required=True, help="Dev set: a predictions.dataset every run scored.")
@click.option("--prior", type=float, default=CalibrationConfig.prior, show_default=True,
              help="Spoof prior of the prior-weighted fit.")
@friendly_errors
def fuse(lake: str, runs: str, epochs: str | None, dataset: str, prior: float) -> None:
    """Fuse runs: spoof LLR = sum of w_i * logit_i + b, fitted on a dev set.

    The fused LLRs are written to predictions as the pseudo-run fusion-<hash> (epoch 0) for
    every dataset all the runs scored, so `dfpipe metrics` reports it like any run.

    \b
    Example:
      dfpipe fuse --lake lake --runs 3f2a...,9c1e... --on val
    """
    from dfpipe.calibration import fuse as fit
    from dfpipe.errors import DfpipeError

    try:
        chosen = [int(e) for e in _ids(epochs)] if epochs else None
    except ValueError as exc:
        raise DfpipeError(f"--epochs must be integers, got {epochs!r}") from exc
    summary = fit(lake, _ids(runs), on=dataset, epochs=chosen, config=CalibrationConfig(prior=prior))
    terms = " ".join(f"{w:+.4g} * [{name}]" for w, name in zip(summary.score_map.weights, summary.score_map.inputs))
    click.echo(f"pseudo-run {summary.run_id}: spoof LLR = {terms} {summary.score_map.intercept:+.4g}")
    for name, n in sorted(summary.datasets.items()):
        click.echo(f"wrote {n} fused predictions of dataset {name!r}")
    click.echo(f"weights in {summary.fusion_uri}; run `dfpipe metrics` to see its tables")
