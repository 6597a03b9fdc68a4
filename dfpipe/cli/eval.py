"""``dfpipe eval`` and ``dfpipe export-scores``: ASVspoof5-format score files and the
publishable record (Arena ``scores.txt`` + ``result.yaml``, Hugging Face ``.eval_results``)."""

from __future__ import annotations

import click

from dfpipe.cli._common import TableData, format_option, friendly_errors, lake_option, print_tables
from dfpipe.cli.metrics import metrics_config_options
from dfpipe.config import WINDOW_POLICIES, MetricsConfig, RecordConfig

_SHOWN = {
    "score_metrics": ["grouping", "group_value", "n_bonafide", "n_spoof", "eer", "eer_threshold",
                      "min_dcf", "act_dcf", "cllr", "reason"],
    "threshold_metrics": ["grouping", "group_value", "policy", "accuracy", "precision", "recall",
                          "f1", "mcc", "specificity", "reason"],
}
"""Columns of the table view; csv and json print every column."""


@click.command("eval")
@click.option("--scores", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Score file: filename<TAB>cm-score with a header (higher = bona fide).")
@click.option("--keys", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Key file: filename<TAB>cm-label (bonafide/spoof) with a header; extra "
                   "columns attack, codec, speaker, language, family, condition become groupings. "
                   "With --record: a file_name,label CSV to use instead of the record's keys.csv.")
@click.option("--record", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Check a result.yaml (from export-scores --record): the pinned files' sha256, "
                   "n_trials, and the EER recomputed and compared at the record's eer_decimals. "
                   "Exits 1 on any mismatch.")
@format_option()
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@metrics_config_options
@friendly_errors
def eval_command(scores: str | None, keys: str | None, record: str | None, output_format: str, as_json: bool,
                 config: MetricsConfig) -> None:
    """EER, minDCF, actDCF, Cllr and threshold metrics of an ASVspoof5-format score file,
    or the check of a published record.

    Uses the same SQL as `dfpipe metrics` (EER exactly as the ASVspoof evaluation package),
    overall and per extra key column (attack groups pool all bona fide rows).

    \b
    Examples:
      dfpipe eval --scores scores.tsv --keys keys.tsv --format json
      dfpipe eval --record results/mel-cnn-itw/result.yaml
    """
    output_format = "json" if as_json else output_format
    if record is not None:
        if scores is not None:
            raise click.UsageError("--record checks the record's own score file: drop --scores")
        _check(record, keys, output_format, config)
        return
    if scores is None or keys is None:
        raise click.UsageError("give --scores and --keys, or --record result.yaml")
    from dfpipe.metrics import evaluate_score_files

    result = evaluate_score_files(scores, keys, config)
    tables = []
    for name, shown in _SHOWN.items():
        rows = result[name]
        columns = shown if output_format == "table" else list(rows[0]) if rows else shown
        tables.append(TableData(columns, [[row[c] for c in columns] for row in rows], title=name))
    print_tables(tables, output_format)


def _check(record: str, keys: str | None, output_format: str, config: MetricsConfig) -> None:
    from dfpipe.metrics import check_record

    checked = check_record(record, keys=keys, config=config)
    r = checked.record
    if output_format == "table":
        click.echo(f"ok: {r.system} on {r.dataset_id}@{r.dataset_revision} split {r.split}: "
                   f"EER {r.eer_text()} % over {r.n_trials} trials ({r.n_skipped} skipped), recomputed from "
                   f"{r.scores_file} (sha256 {r.scores_sha256[:12]}...) with {checked.keys}")
        return
    print_tables([TableData(
        ["ok", "system", "dataset_id", "revision", "split", "eer_percent", "eer_percent_recomputed", "n_trials",
         "n_skipped", "scores_sha256", "keys"],
        [[True, r.system, r.dataset_id, r.dataset_revision, r.split, r.eer_percent, checked.eer_percent,
          checked.n_trials, r.n_skipped, r.scores_sha256, checked.keys]])], output_format)


@click.command("export-scores")
@lake_option
@click.option("--run", "run_id", required=True, help="run_id of the predictions.")
@click.option("--epoch", required=True, type=int, help="Epoch (1-based).")
@click.option("--dataset", required=True, help="Dataset name (val, test, ood, ...).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="ASVspoof5 score file to write (filename<TAB>cm-score).")
@click.option("--keys-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the matching key file (filename<TAB>cm-label).")
@click.option("--record", "record_dir", type=click.Path(file_okay=False), default=None,
              help="Write the publishable record in this folder: scores.txt, keys.csv, result.yaml "
                   "and .eval_results/<dataset>.yaml (docs/metrics.md).")
@click.option("--system", default=None, help="System name in the record [default: the run's arch].")
@click.option("--dataset-id", default=None, help="Public id of the dataset, e.g. a Hugging Face dataset id "
              "(needed with --record).")
@click.option("--revision", default=None, help="The dataset's revision: git sha, version (needed with --record).")
@click.option("--split", default=None, help="The dataset's split [default: --dataset].")
@click.option("--window-policy", type=click.Choice(WINDOW_POLICIES), default=RecordConfig.window_policy,
              show_default=True, help="How each file became one score; the lake's predictions are the "
              "front end's centre crop (AudioConfig.clip_seconds).")
@click.option("--ids", type=click.Choice(["clip_id", "path"]), default=RecordConfig.ids, show_default=True,
              help="Utterance ids of scores.txt: the lake's clip_id, or the file's path in its corpus.")
@click.option("--task-id", default=None, help="task_id of the Hugging Face entry [default: the split].")
@click.option("--source-url", default=None, help="source.url of the Hugging Face entry (where the record lives).")
@friendly_errors
def export_scores_command(lake: str, run_id: str, epoch: int, dataset: str, out: str | None,
                          keys_out: str | None, record_dir: str | None, system: str | None,
                          dataset_id: str | None, revision: str | None, split: str | None, window_policy: str,
                          ids: str, task_id: str | None, source_url: str | None) -> None:
    """Write predictions as an ASVspoof5 score file, and/or as a publishable record.

    --out: filename<TAB>cm-score, higher = bona fide. --record DIR: the Speech DF Arena's
    scores.txt (utterance id and score per line), keys.csv, result.yaml pinning both by
    sha256 with the EER (the metric SQL's, in percent), n_trials, n_skipped and the window
    policy, and a Hugging Face .eval_results/<dataset>.yaml entry. `dfpipe eval --record`
    checks it.

    \b
    Examples:
      dfpipe export-scores --lake lake --run RUN --epoch 3 --dataset ood --out ood.tsv
      dfpipe export-scores --lake lake --run RUN --epoch 3 --dataset ood --record results/itw \\
          --system mel-cnn --dataset-id org/in-the-wild --revision 1a2b3c --split test
    """
    if out is None and record_dir is None:
        raise click.UsageError("give --out FILE, --record DIR, or both")
    if record_dir is not None and not (dataset_id and revision):
        raise click.UsageError("--record needs --dataset-id and --revision (what was evaluated, exactly)")
    if keys_out is not None and out is None:
        raise click.UsageError("--keys-out goes with --out")
    from dfpipe.metrics import export_record, export_scores

    if out is not None:
        rows = export_scores(lake, run_id=run_id, epoch=epoch, dataset=dataset, out=out, keys_out=keys_out)
        click.echo(f"wrote {rows:,} scores to {out}" + (f" and keys to {keys_out}" if keys_out else ""))
    if record_dir is not None:
        written = export_record(
            lake, run_id=run_id, epoch=epoch, dataset=dataset, out_dir=record_dir, system=system,
            dataset_id=dataset_id, revision=revision, split=split, task_id=task_id, source_url=source_url,
            config=RecordConfig(window_policy=window_policy, ids=ids))
        r = written.record
        click.echo(f"EER {r.eer_text()} % of {r.system} on {r.dataset_id}@{r.dataset_revision} split {r.split}: "
             f"{r.n_trials:,} trials, {r.n_skipped:,} skipped")
        click.echo("wrote " + ", ".join(written.files))
