"""The ingest flow: plan in the flow, probe shards in parallel on Dask workers.

Run it with ``dfpipe ingest`` (the command runs this flow), or import it.
The work itself lives in :mod:`dfpipe.ingest`; this module only wires it to Prefect
(retries, the Dask task runner) and shows a progress bar as shards complete.
"""

from __future__ import annotations

import os
import time

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from dfpipe.config import DaskConfig, IngestConfig
from dfpipe.flows._common import completed, run_stage
from dfpipe.ingest import (
    DEFAULT_CONFIG,
    IngestShard,
    IngestSummary,
    ShardResult,
    corpus_entries,
    ingest_shard,
    plan_ingest,
    summarize,
)

DEFAULT_DASK = DaskConfig()


# Retries cover worker loss and flaky storage; bad *inputs* never raise (they become rejects),
# and a retried shard rewrites nothing already committed. Inputs are plain specs, so no cache.
@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def probe_shard(lake_uri: str, corpus: str, shard: IngestShard, config: IngestConfig) -> ShardResult:
    """Probe one shard's files and commit its clips/rejects rows (:func:`dfpipe.ingest.ingest_shard`)."""
    return ingest_shard(lake_uri, corpus, shard, config)


@flow(name="ingest", validate_parameters=False)
def ingest_flow(
    lake_uri: str,
    corpus: str,
    corpus_format: str,
    path: str,
    config: IngestConfig = DEFAULT_CONFIG,
    show_progress: bool = True,
) -> IngestSummary:
    """Ingest the corpus at ``path`` (read by the adapter ``corpus_format``) into the lake.

    Use :func:`run_ingest_flow` to choose the Dask cluster; called directly, the flow runs
    on whatever task runner it was given (``ingest_flow.with_options(task_runner=...)``).
    """
    started = time.perf_counter()
    plan = plan_ingest(lake_uri, corpus, corpus_entries(corpus_format, path, config), config)
    futures = probe_shard.map(unmapped(lake_uri), unmapped(corpus), list(plan.shards), unmapped(config))
    results = list(completed(list(futures), f"ingest {corpus}", show_progress))
    return summarize(lake_uri, plan, results, time.perf_counter() - started)


def run_ingest_flow(
    lake_uri: str,
    corpus: str,
    corpus_format: str,
    path: str | os.PathLike[str],
    *,
    config: IngestConfig = DEFAULT_CONFIG,
    dask_config: DaskConfig = DEFAULT_DASK,
    show_progress: bool = True,
) -> IngestSummary:
    """Run :func:`ingest_flow` in this process, on a LocalCluster or on the scheduler in
    ``dask_config`` (:func:`dfpipe.flows._common.run_stage`)."""
    return run_stage(ingest_flow, dask_config, lake_uri, corpus, corpus_format, os.fspath(path), config,
                     show_progress)
