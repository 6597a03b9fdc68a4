"""The scoring flows: lake clips (``dfpipe score``) and archives (``dfpipe score-archive``).

The scoring task asks Dask for a ``GPU`` resource when the cluster has one (see
:mod:`flows.train`); archive decoding fans out over the same cluster's workers.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect_dask import get_dask_client

from dfpipe.config import DaskConfig, ScoreConfig
from dfpipe.score import ArchiveSummary, score_archive
from flows._common import dask_task_runner
from flows.train import cluster_gpus, gpu_annotation


@task(retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def score_archive_task(paths: list[str], checkpoint: str, out: str, config: ScoreConfig) -> ArchiveSummary:
    """Score an archive; decoding runs on the cluster; a retry skips files already written."""
    with get_dask_client() as client:
        return score_archive(paths, checkpoint, out, config=config, executor=client)


@flow(name="score-archive", validate_parameters=False)
def _score_archive(paths: list[str], checkpoint: str, out: str, config: ScoreConfig) -> ArchiveSummary:
    with gpu_annotation(cluster_gpus.submit().result()):
        future = score_archive_task.submit(paths, checkpoint, out, config)
    return future.result()


def score_archive_flow(*, paths: list[str], checkpoint: str, out: str, config: ScoreConfig | None = None,
                       dask_config: DaskConfig | None = None) -> ArchiveSummary:
    """Run the archive-scoring flow on a LocalCluster, or on the scheduler in ``dask_config``."""
    runner = dask_task_runner(dask_config or DaskConfig())
    return _score_archive.with_options(task_runner=runner)(paths, checkpoint, out, config or ScoreConfig())


if __name__ == "__main__":
    from dfpipe.cli.score import score_archive as _cli

    _cli()
