"""``dfpipe eval`` and ``dfpipe export-scores``: ASVspoof5-format score files."""

from __future__ import annotations

import json
import sys

import click

from dfpipe.cli._common import friendly_errors, lake_option
from dfpipe.cli.metrics import metrics_config_options
from dfpipe.config import MetricsConfig

_SHOWN = {
    "score_metrics": ["grouping", "group_value", "n_bonafide", "n_spoof", "eer", "eer_threshold",
                      "min_dcf", "act_dcf", "cllr", "reason"],
    "threshold_metrics": ["grouping", "group_value", "policy", "accuracy", "precision", "recall",
                          "f1", "mcc", "specificity", "reason"],
}


@click.command("eval")
@click.option("--scores", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Score file: filename<TAB>cm-score with a header (higher = bona fide).")
@click.option("--keys", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Key file: filename<TAB>cm-label (bonafide/spoof) with a header; extra "
                   "columns attack, codec, speaker, language, family, condition become groupings.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@metrics_config_options
@friendly_errors
def eval_command(scores: str, keys: str, as_json: bool, config: MetricsConfig) -> None:
    """EER, minDCF, actDCF, Cllr and threshold metrics of an ASVspoof5-format score file.

    Uses the same SQL as `dfpipe metrics` (EER exactly as the ASVspoof evaluation package),
    overall and per extra key column (attack groups pool all bona fide rows).

    \b
    Example:
      dfpipe eval --scores scores.tsv --keys keys.tsv --json
    """
    from dfpipe.metrics import evaluate_score_files

    result = evaluate_score_files(scores, keys, config)
    if as_json:
        json.dump(result, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name, columns in _SHOWN.items():
        table = Table(*columns, title=name)
        for row in result[name]:
            table.add_row(*(_cell(row[c]) for c in columns))
        console.print(table)


@click.command("export-scores")
@lake_option
@click.option("--run", "run_id", required=True, help="run_id of the predictions.")
@click.option("--epoch", required=True, type=int, help="Epoch (1-based).")
@click.option("--dataset", required=True, help="Dataset name (val, test, ood, ...).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Score file to write.")
@click.option("--keys-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the matching key file (filename<TAB>cm-label).")
@friendly_errors
def export_scores_command(lake: str, run_id: str, epoch: int, dataset: str, out: str,
                          keys_out: str | None) -> None:
    """Write predictions as an ASVspoof5 score file (filename<TAB>cm-score, higher = bona fide).

    \b
    Example:
      dfpipe export-scores --lake lake --run RUN --epoch 3 --dataset ood --out ood.tsv
    """
    from dfpipe.metrics import export_scores

    rows = export_scores(lake, run_id=run_id, epoch=epoch, dataset=dataset, out=out, keys_out=keys_out)
    click.echo(f"wrote {rows:,} scores to {out}" + (f" and keys to {keys_out}" if keys_out else ""))


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
