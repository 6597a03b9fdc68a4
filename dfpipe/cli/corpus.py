"""``dfpipe corpus``: build the built-in demo corpus, check it for shortcuts, lay out stand-ins."""

from __future__ import annotations

import click

from dfpipe.cli._common import TableData, dask_options, format_option, friendly_errors, print_tables
from dfpipe.config import (
    STANDIN_RELEASES,
    DaskConfig,
    DemoCorpusConfig,
    StandinConfig,
    demo_corpus_dir,
)


@click.group()
def corpus() -> None:
    """The built-in demo corpus: real speech and seven speech generators, offline."""


@corpus.command("build-demo")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Corpus folder (one per size and seed).")
@click.option("--size", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="small: about 200 clips (tests); full: every usable bona fide recording (demo).")
@click.option("--seed", type=int, default=DemoCorpusConfig.seed, show_default=True, help="Plan seed.")
@dask_options
@friendly_errors
def build_demo(out_dir: str, size: str, seed: int, dask_config: DaskConfig) -> None:
    """Build (or reuse) the demo corpus in OUT: audio, manifest.csv, ATTRIBUTION.md.

    Bona fide: Asterisk IVR prompts and PocketSphinx utterances; spoof: espeak-ng,
    Festival (diphone, unit selection, HTS; Italian voices ood only), Flite (diphone,
    clustergen), Piper (neural, ood only). Both classes go through one channel. A finished
    build with the same arguments returns at once; an interrupted one resumes.

    \b
    Examples:
      dfpipe corpus build-demo --out corpora/demo-full --size full --workers 2
      dfpipe corpus check corpora/demo-full
      dfpipe ingest --lake lake --corpus demo --format csv corpora/demo-full/manifest.csv
    """
    from dfpipe.corpora.demo import build_demo_corpus, cached_build
    from dfpipe.flows._common import dask_client
    from dfpipe.progress import Progress

    summary = cached_build(out_dir, size, seed)
    if summary is None:
        with dask_client(dask_config) as client, Progress() as progress:
            summary = build_demo_corpus(out_dir, size, seed, executor=client, on_progress=progress.update)
    excluded = ", ".join(f"{verdict} {n}" for verdict, n in summary.excluded.items())
    click.echo(
        f"{'cache hit: ' if summary.cached else ''}{summary.clips} clips in {summary.out_dir} "
        f"({summary.built} rendered, {summary.skipped} already there, {summary.rejected} rejected) "
        f"in {summary.seconds:.1f} s\n"
        f"bona fide sources not used: {excluded} ({summary.non_speech} not speech by the VAD check)\n"
        f"wrote {summary.out_dir / 'manifest.csv'} and {summary.out_dir / 'ATTRIBUTION.md'}"
    )


@corpus.command("build-standin")
@click.option("--like", type=click.Choice(STANDIN_RELEASES), required=True, help="The release whose layout to copy.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New folder to write.")
@click.option("--n", type=int, default=StandinConfig.n, show_default=True,
              help="Clips per protocol file / split (the whole corpus for in-the-wild, deepfake-eval-2024).")
@click.option("--seed", type=int, default=StandinConfig.seed, show_default=True, help="Draw seed.")
@dask_options
@friendly_errors
def build_standin(like: str, out_dir: str, n: int, seed: int, dask_config: DaskConfig) -> None:
    """Lay out a stand-in corpus in OUT: the release's exact layout (folders, protocol or
    metadata files with every column; ASVspoof5 with its Track 2 files), the demo corpus'
    audio. Check a study end to end on it (dfpipe study --rehearse) before the real corpus
    arrives; its numbers mean nothing.

    \b
    Examples:
      dfpipe corpus build-standin --like asvspoof5 --out standins/asv5
      ASVSPOOF5=standins/asv5 ... dfpipe study studies/seed-study.yaml --lake lake --rehearse
    """
    from dfpipe.corpora.demo import build_demo_corpus, cached_build
    from dfpipe.corpora.standin import build_standin as build
    from dfpipe.flows._common import dask_client

    source = demo_corpus_dir("small", DemoCorpusConfig.seed)
    if cached_build(source, "small", DemoCorpusConfig.seed) is None:
        click.echo(f"building the small demo corpus (the stand-in's audio) in {source}")
        with dask_client(dask_config) as client:
            build_demo_corpus(source, "small", DemoCorpusConfig.seed, executor=client)
    summary = build(like, out_dir, source, StandinConfig(n=n, seed=seed))
    click.echo(f"{like} stand-in: {summary.rows} clips ({summary.files} audio files) in {summary.seconds:.1f} s\n"
               f"ingest it with: dfpipe ingest --format {like} {summary.root} --corpus NAME")


@corpus.command("check")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False))
@format_option(help="table: the markdown table; csv: comma-separated, LF line ends; json: a list of objects.")
@friendly_errors
def check(corpus_dir: str, output_format: str) -> None:
    """Shortcut check: a logistic regression on cheap per-clip features (duration, RMS,
    peak, 95 % roll-off, leading/trailing silence), trained on train; its EER on test and
    ood must be near chance. Exits 1 when either is below the limit.

    \b
    Example:
      dfpipe corpus check corpora/demo-full
    """
    from dfpipe.corpora.demo.check import format_table, shortcut_check

    results = shortcut_check(corpus_dir)
    if output_format == "table":
        click.echo(format_table(results))
    else:
        print_tables([TableData(["split", "bonafide", "spoof", "eer", "passed"],
                                [(r.split, r.bonafide, r.spoof, r.eer, r.passed) for r in results])], output_format)
    if not all(r.passed for r in results):
        raise SystemExit(1)
