"""The study report: one self-contained HTML page of the metric tables and the study's figures.

Everything shown comes from the materialised metric tables (``dfpipe metrics``, the SQL in
``sql/``); this module only draws and lays out. Figures are PNG files in the output folder,
also embedded in ``index.html`` so the page can be mailed or archived on its own.

Figures, as in the study: test vs OOD accuracy per run; precision vs recall on OOD;
training curves (validation EER, test accuracy, OOD accuracy by epoch); the ablation
matrix; the polished gap; model size vs OOD accuracy; the Hessian-trace gauge when
``dfpipe diagnose`` has run.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the report is written, never shown
import matplotlib.pyplot as plt
import pyarrow as pa
import pyarrow.compute as pc

from dfpipe.config import MetricsConfig
from dfpipe.lake import Lake
from dfpipe.metric_tables import attach_metrics

_TABLES = {
    "leaderboard": "Leaderboard: runs ranked by OOD accuracy, per epoch policy "
                   "(best_val_eer = lowest validation EER, last = last epoch)",
    "leaderboard_correlation": "Does test accuracy predict OOD accuracy? (across runs)",
    "ablation_matrix": "Ablation matrix: architecture × training data × codec × clean/corrupt, on OOD",
    "polished_gap": "Polished vs raw audio, same run and epoch",
    "model_size": "Model size vs OOD performance",
    "run_results": "Held-out test and OOD metrics per run (reported epoch of each epoch policy)",
    "diagnostics_report": "Loss-landscape diagnostics (dfpipe diagnose): the study's table and the complementary checks",
}
_SHOWN_WHEN_NOT_EMPTY = {"diagnostics_report"}
_FLOAT_DIGITS = 4


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    png: bytes


def write_report(lake_uri: str, out_dir: str | Path, *, title: str = "dfpipe study") -> Path:
    """Write ``out_dir/index.html`` and one PNG per figure; returns the HTML path.

    Raises:
        DfpipeError: when ``dfpipe metrics`` has not materialised the metric tables yet.
    """
    lake = Lake(lake_uri)
    con = lake.connect()
    attach_metrics(con, lake)
    tables = {name: con.sql(f"select * from {name}").to_arrow_table() for name in _TABLES}  # names are ours
    tables = {name: table for name, table in tables.items() if table.num_rows or name not in _SHOWN_WHEN_NOT_EMPTY}
    dynamics = con.sql("select * from training_dynamics").to_arrow_table()
    # The threshold the metric tables were computed at (``dfpipe metrics --threshold``).
    threshold = con.execute("select threshold from metric_params").fetchone()[0]
    # The figures show the default epoch policy's rows; the tables show every policy's.
    runs, sizes = (_at_reported_epoch_policy(tables[name]) for name in ("run_results", "model_size"))
    figures = [
        _accuracy_bars(runs, threshold),
        _precision_recall(runs),
        _training_curves(dynamics, runs),
        _polished_gap(tables["polished_gap"], runs),
        _model_size(sizes),
        *_diagnostics(con),
    ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        (out / f"{figure.name}.png").write_bytes(figure.png)
    page = out / "index.html"
    page.write_text(_page(title, figures, tables, threshold), encoding="utf-8")
    return page


# -- figures -------------------------------------------------------------------------------
def _at_reported_epoch_policy(table: pa.Table) -> pa.Table:
    """The rows of ``table`` at :attr:`MetricsConfig.reported_epoch_policy` (one per run)."""
    return table.filter(pc.field("epoch_policy") == MetricsConfig.reported_epoch_policy)


def _labels(table: pa.Table) -> list[str]:
    return [f"{a}\n{c}" for a, c in zip(table["arch"].to_pylist(), table["train_condition"].to_pylist())]


def _accuracy_bars(runs: pa.Table, threshold: float) -> Figure:
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * runs.num_rows + 2), 4))
    x = range(runs.num_rows)
    test = [v if v is not None else 0 for v in runs["test_accuracy"].to_pylist()]
    ood = [v if v is not None else 0 for v in runs["ood_accuracy"].to_pylist()]
    ax.bar([i - 0.2 for i in x], test, width=0.4, label="test (in-distribution)")
    ax.bar([i + 0.2 for i in x], ood, width=0.4, label="OOD")
    ax.set_xticks(list(x), _labels(runs), fontsize=7)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")  # chance level of a two-class accuracy
    ax.set_ylabel(f"accuracy at P(spoof) >= {threshold:g}")
    ax.legend()
    return _figure("accuracy_test_vs_ood", "Test vs OOD accuracy per run", fig)


def _precision_recall(runs: pa.Table) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for arch in sorted(set(runs["arch"].to_pylist())):
        rows = [r for r in runs.to_pylist() if r["arch"] == arch and r["ood_recall"] is not None]
        ax.scatter([r["ood_recall"] for r in rows], [r["ood_precision"] or 0 for r in rows], label=arch, s=40)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("OOD recall (spoof)")
    ax.set_ylabel("OOD precision (spoof)")
    ax.legend(fontsize=8)
    return _figure("ood_precision_recall", "Precision vs recall on the OOD set", fig)


def _training_curves(dynamics: pa.Table, runs: pa.Table) -> Figure:
    panels = (("val_eer", "validation EER"), ("test_accuracy", "test accuracy"), ("ood_accuracy", "OOD accuracy"))
    names = {r["run_id"]: f"{r['arch']} {r['train_condition']}" for r in runs.to_pylist()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    rows = dynamics.to_pylist()
    for ax, (column, label) in zip(axes, panels):
        for run_id in sorted({r["run_id"] for r in rows}, key=lambda run: names.get(run, run)):
            points = [(r["epoch"], r[column]) for r in rows if r["run_id"] == run_id and r[column] is not None]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, label=names.get(run_id, run_id[:8]))
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.set_title(label)
    axes[0].legend(fontsize=7, title="run")
    return _figure("training_curves", "Training curves by epoch", fig)


def _polished_gap(gaps: pa.Table, runs: pa.Table) -> Figure:
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * gaps.num_rows + 2), 4))
    rows = [r for r in gaps.to_pylist() if r["raw_accuracy"] is not None]
    names = {r["run_id"]: f"{r['arch']} {r['train_condition']}" for r in runs.to_pylist()}
    labels = [f"{names.get(r['run_id'], r['run_id'][:8])} e{r['epoch']}" for r in rows]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["raw_accuracy"] for r in rows], width=0.4, label="raw")
    ax.bar([i + 0.2 for i in x], [r["polished_accuracy"] or 0 for r in rows], width=0.4, label="polished")
    ax.set_xticks(list(x), labels, rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    if rows:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no dataset X with a polished twin X_polished", ha="center", transform=ax.transAxes)
    return _figure("polished_gap", "Raw vs polished accuracy, same run and epoch", fig)


def _model_size(sizes: pa.Table) -> Figure:
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for row in sizes.to_pylist():
        if row["ood_accuracy"] is not None:
            ax.scatter(row["params"], row["ood_accuracy"], s=40)
            ax.annotate(row["arch"], (row["params"], row["ood_accuracy"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("OOD accuracy")
    ax.set_ylim(0, 1)
    return _figure("model_size", "Model size vs OOD accuracy", fig)


def _diagnostics(con: object) -> list[Figure]:
    """The Hessian-trace figure of each ``dfpipe diagnose`` result, when there are any."""
    from dfpipe.diagnostics.figure import plot_hessian_summary
    from dfpipe.diagnostics.landscape import stored_trace_summary

    results = con.execute(
        "select diagnostics_id, any_value(run_id), any_value(epoch) from diagnostics_summary "
        "group by all order by all").fetchall()
    figures = []
    for diagnostics_id, run_id, epoch in results:
        rows = con.execute("select metric, value, detail from diagnostics_summary "
                           "where diagnostics_id = ? and layer is null", [diagnostics_id]).fetchall()
        traces = [trace for (trace,) in con.execute(
            "select trace from diagnostics_hessian where diagnostics_id = ?", [diagnostics_id]).fetchall()]
        band = next(detail for metric, _, detail in rows if metric == "trace_per_param")
        summary = stored_trace_summary({metric: value for metric, value, _ in rows}, band, len(traces))
        buffer = io.BytesIO()
        plot_hessian_summary(summary, traces, buffer)
        figures.append(Figure(f"hessian_{diagnostics_id[:8]}",
                              f"Loss-landscape sharpness: run {run_id[:8]} epoch {epoch}", buffer.getvalue()))
    return figures


def _figure(name: str, title: str, fig: plt.Figure) -> Figure:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return Figure(name, title, buffer.getvalue())


# -- page ----------------------------------------------------------------------------------
def _cell(value: object) -> str:
    if value is None:
        return '<td class="null">–</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.{_FLOAT_DIGITS}f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _html_table(table: pa.Table) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in table.column_names)
    body = "".join("<tr>" + "".join(_cell(v) for v in row.values()) + "</tr>" for row in table.to_pylist())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, figures: list[Figure], tables: dict[str, pa.Table], threshold: float) -> str:
    figure_html = "".join(
        f'<figure><img alt="{html.escape(f.title)}" src="data:image/png;base64,'
        f'{base64.b64encode(f.png).decode()}"><figcaption>{html.escape(f.title)} '
        f"({f.name}.png)</figcaption></figure>"
        for f in figures
    )
    table_html = "".join(
        f"<h2>{html.escape(caption)}</h2><p class=src>sql/{name}.sql</p><div class=wide>{_html_table(tables[name])}</div>"
        for name, caption in _TABLES.items() if name in tables
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
figure {{ display: inline-block; margin: 0 1em 1.5em 0; vertical-align: top; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 12px; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; }} th {{ background: #f3f3f3; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }} td.null {{ color: #aaa; }}
div.wide {{ overflow-x: auto; }}  /* wide tables scroll instead of running off the page */
p.src {{ color: #777; margin: -0.6em 0 0.4em; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Every number below is computed by DuckDB SQL over the lake's predictions (<code>sql/</code>);
accuracy-type metrics at P(spoof) &gt;= {threshold:g}; EER per the ASVspoof evaluation conventions.</p>
{figure_html}{table_html}
</body></html>
"""
