"""The scoring flows: lake clips (``dfpipe score``) and archives (``dfpipe score-archive``).

Both commands run these flows. The work lives in :func:`dfpipe.score.score` and
:func:`dfpipe.archive_scoring.score_archive`; this module wires them to Prefect and Dask.
The scoring task asks Dask for a ``GPU`` resource when the cluster has one (see
:func:`dfpipe.flows._common.run_on_gpu_if_any`); archive decoding fans out over the same cluster's workers.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dfpipe.archive_scoring import ArchiveSummary, count_files, score_archive
from dfpipe.clipsets import DataSpec
from dfpipe.config import DaskConfig, ScoreConfig
from dfpipe.flows._common import run_on_gpu_if_any, run_stage, task_executor
from dfpipe.score import ScoreSummary, score

# -- lake clips -> predictions --------------------------------------------------------------


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def score_task(lake_uri: str, run_id: str, data: DataSpec, dataset: str | None, epoch: int | None,
               config: ScoreConfig) -> ScoreSummary:
    """Score one data spec with a run's checkpoint; a retry rewrites the same shard."""
    return score(lake_uri, run_id, data, dataset=dataset, epoch=epoch, config=config)


@flow(name="score", validate_parameters=False)
def _score(lake_uri: str, run_id: str, data: DataSpec, dataset: str | None, epoch: int | None,
           config: ScoreConfig) -> ScoreSummary:
    return run_on_gpu_if_any(score_task, lake_uri, run_id, data, dataset, epoch, config)


def score_flow(*, lake_uri: str, run_id: str, data: DataSpec, dataset: str | None = None,
               epoch: int | None = None, config: ScoreConfig | None = None,
               dask_config: DaskConfig | None = None) -> ScoreSummary:
    """Run the lake-scoring flow in this process, or on the scheduler in ``dask_config``
    (:func:`dfpipe.flows._common.run_stage`: one task)."""
    return run_stage(_score, dask_config or DaskConfig(), lake_uri, run_id, data, dataset, epoch,
                     config or ScoreConfig())


# -- archive files -> a Parquet folder ------------------------------------------------------


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def score_archive_task(paths: list[str], checkpoint: str, out: str, config: ScoreConfig) -> ArchiveSummary:
    """Score an archive; decoding runs on the cluster (if any); a retry skips files already written."""
    with task_executor() as executor:
        return score_archive(paths, checkpoint, out, config=config, executor=executor)


@flow(name="score-archive", validate_parameters=False)
def _score_archive(paths: list[str], checkpoint: str, out: str, config: ScoreConfig) -> ArchiveSummary:
    return run_on_gpu_if_any(score_archive_task, paths, checkpoint, out, config)


def score_archive_flow(*, paths: list[str], checkpoint: str, out: str, config: ScoreConfig | None = None,
                       dask_config: DaskConfig | None = None) -> ArchiveSummary:
    """Run the archive-scoring flow in this process, on a LocalCluster or on the scheduler in
    ``dask_config``, by the archive's decode tasks (:func:`dfpipe.flows._common.run_stage`)."""
    config = config or ScoreConfig()
    dask_config = dask_config or DaskConfig()
    # Counted only as far as the in-process limit: the task itself lists the archive.
    enough = (dask_config.in_process_shards * config.files_per_task) + 1
    decode_tasks = -(-count_files(paths, enough) // config.files_per_task)
    return run_stage(_score_archive, dask_config, paths, checkpoint, out, config,
                     shards=decode_tasks)
