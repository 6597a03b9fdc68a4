"""``dfpipe ingest``: probe a corpus into the lake's ``clips`` and ``rejects`` tables."""

from __future__ import annotations

import click

from dfpipe.cli._common import dask_options, friendly_errors, lake_option
from dfpipe.config import SPLITS, DaskConfig, HFParquetConfig, IngestConfig, LhotseConfig
from dfpipe.corpora import ADAPTERS


@click.command()
@lake_option
@click.option("--corpus", required=True, help="Corpus name in the lake (letters, digits, . _ -).")
@click.option("--format", "corpus_format", type=click.Choice(list(ADAPTERS)), required=True,
              help="Layout of PATH (see docs/ingest.md).")
@click.option("--allow-outside-root", is_flag=True,
              help="Accept manifest paths and symlinks that lead outside the corpus root.")
@click.option("--files-per-shard", type=int, default=IngestConfig.files_per_shard, show_default=True,
              help="Files per unit of parallel work and of commit.")
@click.option("--label-column", default=None,
              help="hf-parquet: the column holding the label; lhotse: the supervisions' custom key [default: "
                   + ", ".join(dict.fromkeys((HFParquetConfig.label_column, LhotseConfig.label_column))) + "].")
@click.option("--bonafide-value", default=None,
              help="hf-parquet, lhotse: the one label value meaning bona fide (e.g. 0); every other "
                   "value is spoof. Default: labels must spell the class out (bonafide/spoof/real/fake...).")
@click.option("--audio-column", default=None,
              help=f"hf-parquet: the Audio column holding each clip's bytes [default: {HFParquetConfig.audio_column}].")
@click.option("--path-column", default=None,
              help=f"hf-parquet tables without audio: the column naming files [default: {HFParquetConfig.path_column}].")
@click.option("--split", type=click.Choice(SPLITS), default=None,
              help="Split of every clip (folder, in-the-wild, hf-parquet, lhotse); overrides the corpus' own.")
@click.option("--encoding", default=None,
              help="csv, in-the-wild, deepfake-eval-2024, hf-parquet CSV tables: the manifest's text encoding "
                   "(e.g. cp1252). Default: its byte-order mark's (UTF-8/16/32), else UTF-8.")
@dask_options
@click.argument("path", type=click.Path(exists=True))
@friendly_errors
def ingest(lake: str, corpus: str, corpus_format: str, allow_outside_root: bool, files_per_shard: int,
           label_column: str | None, bonafide_value: str | None, audio_column: str | None,
           path_column: str | None, split: str | None, encoding: str | None, dask_config: DaskConfig,
           path: str) -> None:
    """Probe every file of the corpus at PATH; good ones become clips, bad ones rejects.

    Re-running adds nothing; after an interrupted run it finishes the rest.

    \b
    Examples:
      dfpipe ingest --lake lake --corpus itw --format in-the-wild release_in_the_wild/
      dfpipe ingest --lake lake --corpus mine --format csv --workers 4 data/manifest.csv
      dfpipe ingest --lake lake --corpus asv19 --format hf-parquet --label-column label asv19-hf/
      dfpipe ingest --lake lake --corpus libri --format lhotse --allow-outside-root manifests/
      dfpipe query --lake lake "select label, count(*) from clips group by 1"
    """
    from dfpipe.flows.ingest import run_ingest_flow
    from dfpipe.ingest import check_adapter_options
    from dfpipe.lake import Lake, check_name

    check_name("corpus", corpus)  # before a cluster starts
    given = {"label_column": label_column, "bonafide_value": bonafide_value, "audio_column": audio_column,
             "path_column": path_column, "split": split, "encoding": encoding}
    config = IngestConfig(files_per_shard=files_per_shard, allow_outside_root=allow_outside_root,
                          adapter_options={name: value for name, value in given.items() if value is not None})
    check_adapter_options(corpus_format, config)  # before a cluster starts
    summary = run_ingest_flow(lake, corpus, corpus_format, path, config=config, dask_config=dask_config)
    reasons = ", ".join(f"{reason} {n}" for reason, n in summary.reasons.items()) or "none"
    where = Lake(lake)
    click.echo(
        f"{corpus}: {summary.clips} clips and {summary.rejects} rejects added ({reasons}); "
        f"{summary.skipped} inputs already in the lake; {summary.seconds:.1f} s\n"
        f"wrote {where.table_path('clips', {'corpus': corpus})} and "
        f"{where.table_path('rejects', {'corpus': corpus})}"
    )
