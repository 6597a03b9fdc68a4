"""What every flow shares: the Dask task runner built from a :class:`DaskConfig`."""

from __future__ import annotations

from prefect_dask import DaskTaskRunner

from dfpipe.config import DaskConfig


def dask_task_runner(config: DaskConfig) -> DaskTaskRunner:
    """A ``DaskTaskRunner`` joining ``config.address``, or starting a LocalCluster."""
    if config.address:
        return DaskTaskRunner(address=config.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": config.n_workers,
            "threads_per_worker": config.threads_per_worker,
            "processes": True,
            "dashboard_address": None,
        },
    )
