"""The training flow: one task that trains a detector, on a GPU worker when the cluster has one.

Run it with ``dfpipe train`` (the command runs this flow), or import it.
The work lives in :func:`dfpipe.train.train`; this module wires it to Prefect and Dask
(:func:`dfpipe.flows._common.run_on_gpu_if_any` places it on a GPU worker when there is one).
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dfpipe.clipsets import DataSpec
from dfpipe.config import DaskConfig, TrainConfig
from dfpipe.flows._common import run_on_gpu_if_any, run_stage
from dfpipe.train import TrainSummary, train


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def train_task(cfg: TrainConfig, lake_uri: str, arch: str, train_data: DataSpec,
               eval_data: dict[str, DataSpec], model_config: object | None) -> TrainSummary:
    """Train (or resume) one run; a retry resumes after the last committed epoch."""
    return train(cfg, lake_uri, arch=arch, train_data=train_data, eval_data=eval_data, model_config=model_config)


@flow(name="train", validate_parameters=False)
def _train(lake_uri: str, arch: str, train_data: DataSpec, eval_data: dict[str, DataSpec], cfg: TrainConfig,
           model_config: object | None) -> TrainSummary:
    return run_on_gpu_if_any(train_task, cfg, lake_uri, arch, train_data, eval_data, model_config)


def train_flow(*, lake_uri: str, arch: str, train_data: DataSpec, eval_data: dict[str, DataSpec] | None = None,
               cfg: TrainConfig | None = None, model_config: object | None = None,
               dask_config: DaskConfig | None = None) -> TrainSummary:
    """Run the training flow in this process, or on the scheduler in ``dask_config``
    (:func:`dfpipe.flows._common.run_stage`: one task)."""
    return run_stage(_train, dask_config or DaskConfig(), lake_uri, arch, train_data, dict(eval_data or {}),
                     cfg or TrainConfig(), model_config)
