"""What the flows share: the one way to reach Dask, and summing shard results with progress.

Dask is reached two ways, both built from a :class:`~dfpipe.config.DaskConfig` by
:func:`local_cluster_kwargs` (the one place the LocalCluster settings are written):

- :func:`dask_task_runner`: the Prefect ``DaskTaskRunner`` a stage flow runs its tasks on;
- :func:`dask_client`: a plain ``distributed.Client`` (the study flow's shared cluster,
  the demo-corpus build, the benchmarks), usable as the ``executor`` of a stage function.

Inside a task that itself fans out, ``prefect_dask.get_dask_client()`` reaches the
runner's cluster. GPU work (training, scoring) goes through :func:`run_on_gpu_if_any`:
Dask workers that own a GPU are started with ``dask worker ... --resources GPU=1``; when
any worker advertises one, the task asks for it, otherwise the same code runs on the CPU
of whichever worker takes it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import dask
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed
from prefect_dask import DaskTaskRunner, get_dask_client

from dfpipe.config import DASK_ADDRESS_ENV, DaskConfig
from dfpipe.progress import Progress
from dfpipe.stage_kit import StageSummary

R = TypeVar("R")


def local_cluster_kwargs(config: DaskConfig) -> dict[str, Any]:
    """The ``distributed.LocalCluster`` arguments of ``config``: worker processes, no dashboard."""
    return {
        "n_workers": config.n_workers,
        "threads_per_worker": config.threads_per_worker,
        "processes": True,
        "dashboard_address": None,
    }


def dask_config_from_env(address: str | None = None) -> DaskConfig:
    """``address``, else ``$DFPIPE_DASK_ADDRESS``, else a LocalCluster (``DaskConfig()``)."""
    return DaskConfig(address=address or os.environ.get(DASK_ADDRESS_ENV) or None)


def dask_task_runner(config: DaskConfig) -> DaskTaskRunner:
    """A ``DaskTaskRunner`` joining ``config.address``, or starting a LocalCluster."""
    if config.address:
        return DaskTaskRunner(address=config.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(config))


@contextmanager
def dask_client(config: DaskConfig) -> Iterator[Any]:
    """A ``distributed.Client``: joined to ``config.address`` or on a new LocalCluster."""
    from distributed import Client, LocalCluster

    if config.address:
        with Client(config.address) as client:
            yield client
        return
    with LocalCluster(**local_cluster_kwargs(config)) as cluster, Client(cluster) as client:
        yield client


def completed(futures: list[PrefectFuture[R]], description: str, show_progress: bool) -> Iterator[R]:
    """The futures' results as they complete, with progress (one step per shard): a bar on a
    terminal, a line per tenth of the shards otherwise (:class:`dfpipe.progress.Progress`)."""
    with Progress(show_progress, unit="shards") as progress:
        progress.update(description, 0, len(futures))
        for future in as_completed(futures):
            yield future.result()
            progress.advance(description)


def collect(futures: list[PrefectFuture[StageSummary]], description: str, show_progress: bool) -> StageSummary:
    """Sum shard summaries as they complete, with a progress bar (conditions and features flows)."""
    return StageSummary.total(completed(futures, description, show_progress))


@task(cache_policy=NO_CACHE)
def cluster_gpus() -> int:
    """GPUs advertised by the cluster's workers (``resources={"GPU": n}``)."""
    with get_dask_client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        return int(sum(w.get("resources", {}).get("GPU", 0) for w in workers))


def gpu_annotation(gpus: int) -> contextlib.AbstractContextManager[object]:
    """Ask Dask for one GPU when the cluster has any; no constraint otherwise."""
    return dask.annotate(resources={"GPU": 1}) if gpus else contextlib.nullcontext()


def run_on_gpu_if_any(gpu_task: Task[..., R], *args: Any) -> R:
    """Submit ``gpu_task(*args)`` asking for a GPU when the cluster has one; wait for its result."""
    with gpu_annotation(cluster_gpus.submit().result()):
        future = gpu_task.submit(*args)
    return future.result()
