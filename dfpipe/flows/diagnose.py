"""The diagnostics flow: one Prefect task per checkpoint.

``dfpipe diagnose`` runs this flow (:func:`run_diagnose_flow`): by default on Prefect's
in-process thread runner, so the command's progress callback sees every phase; with
``--dask-address`` (or ``--workers``) on a Dask cluster, one task per Dask worker. The work
lives in :func:`dfpipe.diagnostics.diagnose`; this module wires it to Prefect.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from dfpipe.config import DaskConfig, DiagnosticsConfig
from dfpipe.diagnostics import DiagnoseSummary, ProgressFn, diagnose
from dfpipe.errors import DfpipeError
from dfpipe.flows._common import dask_task_runner
from dfpipe.flows.server import prefect_api


def _not_a_user_error(task: object, task_run: object, state: State) -> bool:
    """Retry lost workers and the like, not a :class:`DfpipeError` (a rerun says the same)."""
    return not isinstance(state.data, DfpipeError)


@task(retries=1, retry_delay_seconds=5, retry_condition_fn=_not_a_user_error, cache_policy=NO_CACHE)
def diagnose_checkpoint(lake_uri: str, run_id: str, epoch: int | None, holdout: str | None,
                        config: DiagnosticsConfig, overwrite: bool,
                        progress: ProgressFn | None = None) -> DiagnoseSummary:
    """Diagnose one checkpoint (:func:`dfpipe.diagnostics.diagnose`); skips committed results."""
    return diagnose(lake_uri, run_id, epoch, holdout, config, overwrite=overwrite, progress=progress)


@flow(name="diagnose", validate_parameters=False)
def diagnose_flow(lake_uri: str, checkpoints: Sequence[tuple[str, int | None]], holdout: str | None = None,
                  config: DiagnosticsConfig | None = None, overwrite: bool = False,
                  progress: ProgressFn | None = None) -> list[DiagnoseSummary]:
    """Diagnose every ``(run_id, epoch)`` of ``checkpoints`` (epoch ``None``: the run's last)."""
    config = config or DiagnosticsConfig()
    futures = diagnose_checkpoint.map(unmapped(lake_uri), [run for run, _ in checkpoints],
                                      [epoch for _, epoch in checkpoints], unmapped(holdout), unmapped(config),
                                      unmapped(overwrite), unmapped(progress))
    return [future.result() for future in futures]


def run_diagnose_flow(lake_uri: str, checkpoints: Sequence[tuple[str, int | None]], *, holdout: str | None = None,
                      config: DiagnosticsConfig | None = None, overwrite: bool = False,
                      dask_config: DaskConfig | None = None,
                      progress: ProgressFn | None = None) -> list[DiagnoseSummary]:
    """Run :func:`diagnose_flow`: in this process (Prefect's thread runner) when ``dask_config``
    is ``None``, else on a LocalCluster or on the scheduler in ``dask_config``.

    Args:
        progress: ``progress(phase, done, total)`` of each checkpoint; in-process runs only
            (a callback does not travel to Dask workers).

    Raises:
        ValueError: a ``progress`` callback with a ``dask_config``.
    """
    if dask_config is None:
        runner = ThreadPoolTaskRunner()
    elif progress is not None:
        raise ValueError("progress callbacks run in-process only: pass dask_config=None to use one")
    else:
        runner = dask_task_runner(dask_config)
    with prefect_api():
        return diagnose_flow.with_options(task_runner=runner)(lake_uri, list(checkpoints), holdout, config,
                                                              overwrite, progress)
