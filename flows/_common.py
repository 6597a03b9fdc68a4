"""What the flows share: the Dask task runner, and summing shard results with a progress bar."""

from __future__ import annotations

from prefect.futures import PrefectFuture, as_completed
from prefect_dask import DaskTaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dfpipe.conditions import StageSummary
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


def collect(futures: list[PrefectFuture[StageSummary]], description: str, show_progress: bool) -> StageSummary:
    """Sum shard summaries as they complete, with a progress bar (conditions and features flows)."""
    total = StageSummary()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress) as progress:
        bar = progress.add_task(description, total=len(futures))
        for future in as_completed(futures):
            total = total + future.result()
            progress.advance(bar)
    return total
