"""The conditions flow: plan in the flow, make each shard's audio on a Dask worker.

Run it with ``dfpipe condition`` (the command runs this flow), or import it.
The work lives in :mod:`dfpipe.conditions`; this module wires it to Prefect (retries, the
Dask task runner) and shows a progress bar as shards complete.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from dfpipe.conditions import ConditionShard, condition_shard, plan_conditions
from dfpipe.config import ConditionsConfig, DaskConfig
from dfpipe.flows._common import collect, run_stage
from dfpipe.stage_kit import StageSummary


# Retries cover worker loss and flaky storage; clips ffmpeg cannot handle never raise (they
# become rejects rows), and a retried shard rewrites nothing already committed.
@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def make_condition_shard(shard: ConditionShard, config: ConditionsConfig) -> StageSummary:
    """Encode one shard's clips under its condition (:func:`dfpipe.conditions.condition_shard`)."""
    return condition_shard(shard, config)


@flow(name="conditions", validate_parameters=False)
def conditions_flow(lake_uri: str, corpus: str, conditions: list[str],
                    config: ConditionsConfig | None = None, show_progress: bool = True,
                    splits: list[str] | None = None) -> StageSummary:
    """Make every missing (clip, condition) of ``corpus`` (of ``splits``; ``None``: every
    clip) into the ``audio`` table.

    Use :func:`run_conditions_flow` to choose the Dask cluster.
    """
    config = config or ConditionsConfig()
    shards = plan_conditions(lake_uri, corpus, conditions, config, splits=splits)
    futures = make_condition_shard.map(shards, unmapped(config))
    return collect(list(futures), f"condition {corpus}", show_progress)


def run_conditions_flow(lake_uri: str, corpus: str, conditions: list[str], *,
                        config: ConditionsConfig | None = None, dask_config: DaskConfig | None = None,
                        show_progress: bool = True, splits: Iterable[str] | None = None) -> StageSummary:
    """Run :func:`conditions_flow` in this process, on a LocalCluster or on the scheduler in
    ``dask_config`` (:func:`dfpipe.flows._common.run_stage`)."""
    return run_stage(conditions_flow, dask_config or DaskConfig(), lake_uri, corpus, list(conditions), config,
                     show_progress, None if splits is None else list(splits))
