"""The diagnostics flow: one Prefect task per checkpoint, each on a Dask worker.

Run it with ``python -m flows.diagnose --run RUN ...`` (the same options as
``dfpipe diagnose``, which calls :func:`dfpipe.diagnostics.diagnose` in-process for its
progress bar). The work lives in :mod:`dfpipe.diagnostics`; this module wires it to Prefect.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from dfpipe.config import DaskConfig, DiagnosticsConfig
from dfpipe.diagnostics import DiagnoseSummary, diagnose
from flows._common import dask_task_runner


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def diagnose_checkpoint(lake_uri: str, run_id: str, epoch: int | None, holdout: str | None,
                        config: DiagnosticsConfig, overwrite: bool) -> DiagnoseSummary:
    """Diagnose one checkpoint (:func:`dfpipe.diagnostics.diagnose`); skips committed results."""
    return diagnose(lake_uri, run_id, epoch, holdout, config, overwrite=overwrite)


@flow(name="diagnose", validate_parameters=False)
def diagnose_flow(lake_uri: str, checkpoints: Sequence[tuple[str, int | None]], holdout: str | None = None,
                  config: DiagnosticsConfig | None = None, overwrite: bool = False) -> list[DiagnoseSummary]:
    """Diagnose every ``(run_id, epoch)`` of ``checkpoints`` (epoch ``None``: the run's last)."""
    config = config or DiagnosticsConfig()
    futures = diagnose_checkpoint.map(unmapped(lake_uri), [run for run, _ in checkpoints],
                                      [epoch for _, epoch in checkpoints], unmapped(holdout), unmapped(config),
                                      unmapped(overwrite))
    return [future.result() for future in futures]


def run_diagnose_flow(lake_uri: str, checkpoints: Sequence[tuple[str, int | None]], *, holdout: str | None = None,
                      config: DiagnosticsConfig | None = None, overwrite: bool = False,
                      dask_config: DaskConfig | None = None) -> list[DiagnoseSummary]:
    """Run :func:`diagnose_flow` on a LocalCluster, or on the scheduler in ``dask_config``."""
    runner = dask_task_runner(dask_config or DaskConfig())
    return diagnose_flow.with_options(task_runner=runner)(lake_uri, list(checkpoints), holdout, config, overwrite)


if __name__ == "__main__":
    from dfpipe.cli.diagnose import diagnose as _cli

    _cli()
