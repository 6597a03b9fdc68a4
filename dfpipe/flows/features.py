"""The features flow: plan in the flow, compute each shard's features on a Dask worker.

Run it with ``dfpipe features`` (the command runs this flow), or import it.
The work lives in :mod:`dfpipe.features`; this module wires it to Prefect.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from dfpipe.config import DaskConfig, FeaturesConfig
from dfpipe.features import FeatureShard, feature_shard, plan_features
from dfpipe.flows._common import collect, run_stage
from dfpipe.stage_kit import StageSummary


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def make_feature_shard(shard: FeatureShard, config: FeaturesConfig) -> StageSummary:
    """Compute and commit one shard's features (:func:`dfpipe.features.feature_shard`)."""
    return feature_shard(shard, config)


@flow(name="features", validate_parameters=False)
def features_flow(lake_uri: str, corpus: str, condition: str, config: FeaturesConfig | None = None,
                  show_progress: bool = True, splits: list[str] | None = None) -> StageSummary:
    """Compute every missing features row of (corpus, condition) at this front-end version
    (of ``splits``; ``None``: every clip)."""
    config = config or FeaturesConfig()
    shards = plan_features(lake_uri, corpus, condition, config, splits=splits)
    futures = make_feature_shard.map(shards, unmapped(config))
    return collect(list(futures), f"features {corpus}:{condition}", show_progress)


def run_features_flow(lake_uri: str, corpus: str, condition: str, *, config: FeaturesConfig | None = None,
                      dask_config: DaskConfig | None = None, show_progress: bool = True,
                      splits: Iterable[str] | None = None) -> StageSummary:
    """Run :func:`features_flow` in this process, on a LocalCluster or on the scheduler in
    ``dask_config`` (:func:`dfpipe.flows._common.run_stage`)."""
    return run_stage(features_flow, dask_config or DaskConfig(), lake_uri, corpus, condition, config,
                     show_progress, None if splits is None else list(splits))
