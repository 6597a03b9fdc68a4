"""``dfpipe corpus``: build the built-in demo corpus and check it for shortcuts."""

from __future__ import annotations

import click

from dfpipe.cli._common import dask_options, friendly_errors
from dfpipe.config import DaskConfig, DemoCorpusConfig


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
    Festival (diphone, HTS), Flite (diphone, clustergen), Piper (neural, ood only). Both
    classes go through one channel. A finished build with the same arguments returns at
    once; an interrupted one resumes.

    \b
    Examples:
      dfpipe corpus build-demo --out corpora/demo-full --size full --workers 2
      dfpipe corpus check corpora/demo-full
      dfpipe ingest --lake lake --corpus demo --format csv corpora/demo-full/manifest.csv
    """
    from dfpipe.corpora.demo import build_demo_corpus, cached_build
    from dfpipe.flows._common import dask_client

    summary = cached_build(out_dir, size, seed)
    if summary is None:
        with dask_client(dask_config) as client, click.progressbar(length=1, label="rendering pairs") as bar:

            def progress(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)

            summary = build_demo_corpus(out_dir, size, seed, executor=client, on_progress=progress)
    excluded = ", ".join(f"{verdict} {n}" for verdict, n in summary.excluded.items())
    click.echo(
        f"{'cache hit: ' if summary.cached else ''}{summary.clips} clips in {summary.out_dir} "
        f"({summary.built} rendered, {summary.skipped} already there, {summary.rejected} rejected) "
        f"in {summary.seconds:.1f} s\n"
        f"bona fide sources not used: {excluded} ({summary.non_speech} not speech by the VAD check)\n"
        f"wrote {summary.out_dir / 'manifest.csv'} and {summary.out_dir / 'ATTRIBUTION.md'}"
    )


@corpus.command("check")
@click.argument("corpus_dir", type=click.Path(exists=True, file_okay=False))
@friendly_errors
def check(corpus_dir: str) -> None:
    """Shortcut check: a logistic regression on cheap per-clip features (duration, RMS,
    peak, 95 % roll-off, leading/trailing silence), trained on train; its EER on test and
    ood must be near chance. Exits 1 when either is below the limit.

    \b
    Example:
      dfpipe corpus check corpora/demo-full
    """
    from dfpipe.corpora.demo.check import format_table, shortcut_check

    results = shortcut_check(corpus_dir)
    click.echo(format_table(results))
    if not all(r.passed for r in results):
        raise SystemExit(1)
