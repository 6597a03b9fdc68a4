"""``dfpipe condition``: make audio conditions (codecs, corruptions, polish) into ``audio``."""

from __future__ import annotations

import time

import click

from dfpipe.cli._common import dask_options, friendly_errors, lake_option, split_option, splits_text
from dfpipe.config import ConditionsConfig, DaskConfig


@click.command()
@lake_option
@click.option("--corpus", required=True, help="Corpus already in the lake's clips table.")
@click.option("--conditions", required=True,
              help="Comma-separated condition names: flac, mp3_128k, opus_32k, aac_64k, corrupt, polished, "
                   "noise_snr10, corrupt+mp3_64k, ... (see docs/conditions.md).")
@click.option("--seed", type=int, default=ConditionsConfig.seed, show_default=True,
              help="Base seed; each clip's seed is a hash of (clip, condition, seed).")
@click.option("--clips-per-shard", type=int, default=ConditionsConfig.clips_per_shard, show_default=True,
              help="Clips per unit of parallel work and of commit.")
@split_option
@click.option("--loudness", type=float, default=ConditionsConfig.polish_loudness_lufs, show_default=True,
              help="EBU R128 target of 'polished' (LUFS).")
@dask_options
@friendly_errors
def condition(lake: str, corpus: str, conditions: str, seed: int, clips_per_shard: int, splits: tuple[str, ...],
              loudness: float, dask_config: DaskConfig) -> None:
    """Encode every clip of a corpus (or of some splits) under each condition (ffmpeg, in
    parallel on Dask).

    Clips ffmpeg cannot handle become rejects rows; re-running only does what is missing.
    'raw' needs no work (features read the original files).

    \b
    Examples:
      dfpipe condition --lake lake --corpus demo --conditions flac,mp3_128k,corrupt,polished
      dfpipe condition --lake lake --corpus demo --conditions corrupt+mp3_64k --workers 4
      dfpipe condition --lake lake --corpus asv5 --conditions corrupt+mp3_128k --split train
    """
    from dfpipe.conditions.grammar import parse_condition
    from dfpipe.flows.conditions import run_conditions_flow
    from dfpipe.lake import Lake

    names = [name.strip() for name in conditions.split(",") if name.strip()]
    config = ConditionsConfig(seed=seed, clips_per_shard=clips_per_shard, polish_loudness_lufs=loudness)
    for name in names:  # a typo fails here, before a cluster and a Prefect server start
        parse_condition(name, config.audio.sample_rate)
    started = time.perf_counter()
    summary = run_conditions_flow(Lake(lake).uri, corpus, names, config=config, dask_config=dask_config,
                                  splits=splits or None)
    where = Lake(lake)
    click.echo(
        f"{corpus}{splits_text(splits)}: {summary.rows} audio rows and {summary.rejects} rejects written for "
        f"{', '.join(names)} in {summary.shards} shards; {time.perf_counter() - started:.1f} s\n"
        f"wrote {where.table_path('audio', {'corpus': corpus})} and {where.table_path('rejects', {'corpus': corpus})}"
    )
