"""The study flow: a whole study file, stage by stage, as one Prefect flow.

    build demo corpora -> ingest -> conditions and features (the splits the runs read) ->
    train every run (every epoch scored on val and each eval set, or every N epochs for a
    set that says ``every: N``; a warm-started run after its source, from the source's
    checkpoint) -> metrics -> report

Every stage up to training is a sub-flow of its own (``dfpipe/flows/<stage>.py``); metrics
and the report run in this flow's process (DuckDB, matplotlib). Every stage skips work
already committed to the lake, so a killed study re-run resumes where it stopped: finished
shards, features and epochs are not redone, and a half-trained run continues from its last
epoch. All stages share one Dask cluster (a LocalCluster started here, or
``dask_address``). Run it with ``dfpipe study FILE`` or ``dfpipe demo``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from dfpipe import checkpoints
from dfpipe.config import DaskConfig, IngestConfig, demo_corpus_dir
from dfpipe.corpora.demo import build_demo_corpus
from dfpipe.flows._common import dask_client, dask_config_from_env
from dfpipe.flows.conditions import run_conditions_flow
from dfpipe.flows.features import run_features_flow
from dfpipe.flows.ingest import run_ingest_flow
from dfpipe.flows.train import train_flow
from dfpipe.lake import Lake
from dfpipe.metrics import compute_metrics
from dfpipe.report import write_report
from dfpipe.study import load_study, plan_study, sample_manifest, splits_by_pair


@dataclass
class StudyResult:
    """What a study run did: run ids and the seconds each stage took."""

    run_ids: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    report: str = ""


@task(retries=1, cache_policy=NO_CACHE)
def build_demo(size: str, seed: int, scheduler: str) -> str:
    """Build (or reuse from the cache) the demo corpus; returns its manifest path."""
    from distributed import Client

    from dfpipe.progress import Progress

    out = demo_corpus_dir(size, seed)
    with Client(scheduler) as client, Progress() as progress:
        build_demo_corpus(out, size, seed, executor=client, on_progress=progress.update)
    return str(out / "manifest.csv")


@flow(name="study", validate_parameters=False)
def study_flow(study_file: str, lake: str, dask_address: str | None = None, report_dir: str | None = None,
               show_progress: bool = True, rehearse: bool = False) -> StudyResult:
    """Run every stage of the study in ``study_file`` against the lake at ``lake``
    (``rehearse``: at rehearsal scale, :func:`dfpipe.study.rehearsal.rehearse`)."""
    study = load_study(study_file)
    ingest_config = IngestConfig()
    if rehearse:
        from dfpipe.study.rehearsal import rehearse as scale_down

        rehearsal = scale_down(study)
        study, ingest_config = rehearsal.study, rehearsal.ingest
    plan = plan_study(study)
    result = StudyResult()
    # A deployment run gets its cluster from the worker's environment (infra/compose.yaml).
    with dask_client(dask_config_from_env(dask_address)) as client:
        dask = DaskConfig(address=client.scheduler.address)

        with _timed(result.stage_seconds, "ingest"):
            for name in plan.corpora:
                spec = study.corpora[name]
                if spec.format == "demo":
                    manifest = build_demo(spec.size, spec.seed, dask.address)
                    if spec.sample:
                        manifest = str(sample_manifest(manifest, spec.sample, spec.seed))
                    run_ingest_flow(lake, name, "csv", manifest, config=ingest_config, dask_config=dask,
                                    show_progress=show_progress)
                else:
                    run_ingest_flow(lake, name, spec.format, spec.path, config=ingest_config, dask_config=dask,
                                    show_progress=show_progress)

        with _timed(result.stage_seconds, "conditions"):
            # One conditions flow per corpus and split selection: only the clips runs read.
            by_selection: dict[tuple[str, tuple[str, ...] | None], list[str]] = defaultdict(list)
            for (corpus, condition), splits in splits_by_pair(plan.conditions).items():
                by_selection[(corpus, splits)].append(condition)
            for (corpus, splits), conditions in by_selection.items():
                run_conditions_flow(lake, corpus, conditions, splits=splits, dask_config=dask,
                                    show_progress=show_progress)

        with _timed(result.stage_seconds, "features"):
            for (corpus, condition), splits in splits_by_pair(plan.features).items():
                run_features_flow(lake, corpus, condition, splits=splits, dask_config=dask,
                                  show_progress=show_progress)

        with _timed(result.stage_seconds, "train"):
            run_ids: dict[str, str] = {}  # planned run name -> run id; sources train first (plan order)
            for run in plan.runs:
                init_from = None
                if run.init_from is not None:
                    source, epoch = run.init_from
                    init_from = checkpoints.epoch_uri(checkpoints.run_dir(Lake(lake).uri, run_ids[source]), epoch)
                summary = train_flow(lake_uri=lake, arch=run.arch, train_data=study.train_data(run.train_set),
                                     eval_data=study.eval_data(run.train_set),
                                     cfg=study.train_config(run, init_from),
                                     model_config=study.arch_config(run.arch, run.model), dask_config=dask)
                run_ids[run.name] = summary.run_id
                result.run_ids.append(summary.run_id)

    with _timed(result.stage_seconds, "metrics"):
        compute_metrics(lake)
    with _timed(result.stage_seconds, "report"):
        result.report = str(write_report(lake, report_dir or f"{lake.rstrip('/')}/report", title=study.name))
    return result


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the block's wall time to ``seconds[stage]`` (the study's per-stage timing)."""
    started = time.perf_counter()
    yield
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started
