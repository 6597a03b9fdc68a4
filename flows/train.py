"""The training flow: one task that trains a detector, on a GPU worker when the cluster has one.

Run it with ``dfpipe train`` or ``python -m flows.train --arch mel-cnn --train demo ...``.
The work lives in :func:`dfpipe.train.train`; this module wires it to Prefect and Dask.
Dask workers that own a GPU are started with ``dask worker ... --resources GPU=1``; when
any worker advertises one, the training task asks for it, otherwise the same code runs on
the CPU of whichever worker takes it.
"""

from __future__ import annotations

import contextlib

import dask
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import get_dask_client

from dfpipe.config import DaskConfig, TrainConfig
from dfpipe.train import TrainSummary, train
from flows._common import dask_task_runner


@task(cache_policy=NO_CACHE)
def cluster_gpus() -> int:
    """GPUs advertised by the cluster's workers (``resources={"GPU": n}``)."""
    with get_dask_client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        return int(sum(w.get("resources", {}).get("GPU", 0) for w in workers))


def gpu_annotation(gpus: int) -> contextlib.AbstractContextManager[object]:
    """Ask Dask for one GPU when the cluster has any; no constraint otherwise."""
    return dask.annotate(resources={"GPU": 1}) if gpus else contextlib.nullcontext()


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def train_task(cfg: TrainConfig, lake_uri: str, arch: str, train_data: str, eval_data: dict[str, str],
               model_config: object | None) -> TrainSummary:
    """Train (or resume) one run; a retry resumes after the last committed epoch."""
    return train(cfg, lake_uri, arch=arch, train_data=train_data, eval_data=eval_data, model_config=model_config)


@flow(name="train", validate_parameters=False)
def _train(lake_uri: str, arch: str, train_data: str, eval_data: dict[str, str], cfg: TrainConfig,
           model_config: object | None) -> TrainSummary:
    with gpu_annotation(cluster_gpus.submit().result()):
        future = train_task.submit(cfg, lake_uri, arch, train_data, eval_data, model_config)
    return future.result()


def train_flow(*, lake_uri: str, arch: str, train_data: str, eval_data: dict[str, str] | None = None,
               cfg: TrainConfig | None = None, model_config: object | None = None,
               dask_config: DaskConfig | None = None) -> TrainSummary:
    """Run the training flow on a LocalCluster, or on the scheduler in ``dask_config``."""
    runner = dask_task_runner(dask_config or DaskConfig())
    return _train.with_options(task_runner=runner)(lake_uri, arch, train_data, dict(eval_data or {}),
                                                   cfg or TrainConfig(), model_config)


if __name__ == "__main__":
    from dfpipe.cli.train import train as _cli

    _cli()
