"""The study's Hessian figure: a curvature-band gauge over every clip's trace.

:func:`hessian_summary_figure` builds the matplotlib ``Figure`` (no pyplot, no display);
:func:`plot_hessian_summary` saves it. (:func:`dfpipe.diagnostics.stage.hessian_figure` draws
a committed result from its lake rows.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

import numpy as np

from dfpipe.config import DiagnosticsConfig
from dfpipe.diagnostics.landscape import TraceSummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SYMLOG_SPAN = 100
"""Per-clip traces whose largest magnitude exceeds this many times the median magnitude
are drawn on a symmetric log axis (a linear one would hide all but the tail)."""


def hessian_summary_figure(summary: TraceSummary, per_clip: Sequence[float] | np.ndarray,
                           bands: tuple[float, float] = DiagnosticsConfig.bands) -> Figure:
    """The study's Hessian figure as a matplotlib ``Figure`` (two axes: gauge, then traces).

    Top axes: trace ÷ parameters on a log gauge with the flat / moderate / sharp bands
    (cut points ``bands``, the study's (0.001, 0.01)); a value <= 0 is pinned to the left
    edge and labelled. Bottom axes: every clip's trace on one axis with min, median, mean
    and max marked (one vertical line and one ``"<name> <value>"`` text each) and the
    mean ± one std band shaded; the x axis is ``symlog`` when the traces span more than
    :data:`SYMLOG_SPAN` times their median magnitude. It plots the measured statistics
    only; it is not a slice of the loss surface.
    """
    from matplotlib.figure import Figure

    flat_below, sharp_above = bands
    low, high = flat_below / 100, sharp_above * 100
    figure = Figure(figsize=(9, 5.2))
    gauge, axis = figure.subplots(2, 1, height_ratios=[1, 1.6])
    for start, stop, colour, name in ((low, flat_below, "#7fbf7f", "flat"),
                                      (flat_below, sharp_above, "#f2c45a", "moderate"),
                                      (sharp_above, high, "#e07a6a", "sharp")):
        gauge.axvspan(start, stop, color=colour, alpha=0.8)
        gauge.text(math.sqrt(start * stop), 0.5, name, ha="center", va="center", fontsize=10)
    shown = min(max(summary.trace_per_param, low), high)
    gauge.axvline(shown, color="black", linewidth=2.5)
    off_scale = "" if shown == summary.trace_per_param else ", off scale: drawn at the edge"
    gauge.annotate(f"trace ÷ params = {summary.trace_per_param:.6g} ({summary.band}{off_scale})",
                   xy=(shown, 1.0), xytext=(0, 4), textcoords="offset points", ha="center",
                   va="bottom", fontsize=10, annotation_clip=False)
    gauge.set_xscale("log")
    gauge.set_xlim(low, high)
    gauge.set_yticks([])
    gauge.set_xlabel(f"Hessian trace ÷ trainable parameters ({summary.trainable_params:,} params)")

    values = np.asarray(per_clip, dtype=np.float64)
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=values.size)  # fixed: reproducible figure
    axis.axvspan(summary.mean - summary.std, summary.mean + summary.std, color="#9ecae1", alpha=0.5,
                 label="mean ± std")
    axis.scatter(values, jitter, s=12, color="#4a4a4a", alpha=0.6, label=f"per-clip trace (n={values.size})")
    # callouts at staggered heights: min, median and mean often sit within a few pixels
    for height, (value, name, style) in zip((0.3, 0.55, 0.8, 0.3), ((summary.min, "min", ":"),
                                                                    (summary.median, "median", "--"),
                                                                    (summary.mean, "mean", "-"),
                                                                    (summary.max, "max", ":"))):
        axis.axvline(value, color="#08519c", linestyle=style, linewidth=1.5)
        axis.text(value, height, f"{name} {value:,.4g}", ha="center", va="bottom", fontsize=8,
                  bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    magnitudes = np.abs(values[values != 0])
    heavy_tailed = magnitudes.size > 1 and magnitudes.max() > SYMLOG_SPAN * np.median(magnitudes)
    if heavy_tailed:  # per-clip traces often span decades: a linear axis hides all but the tail
        axis.set_xscale("symlog", linthresh=float(np.percentile(magnitudes, 5)))
        # the clips set the view; mean - std may reach far below them (the band is cut there)
        axis.set_xlim(min(1.5 * summary.min, 0.0), 2 * max(summary.max, 0.0) or None)
    axis.set_ylim(-0.5, 1.05)
    axis.set_yticks([])
    axis.set_xlabel(f"Hutchinson trace per clip ({summary.draws} Rademacher draws each)"
                    + (", symmetric log scale" if heavy_tailed else ""))
    axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(f"Hessian trace: mean {summary.mean:,.2f} · std {summary.std:,.2f} · "
                    f"mean loss {summary.mean_loss:.4f}", fontsize=11)
    figure.tight_layout()
    return figure


def plot_hessian_summary(summary: TraceSummary, per_clip: Sequence[float] | np.ndarray, path: str | IO[bytes],
                         bands: tuple[float, float] = DiagnosticsConfig.bands) -> str | IO[bytes]:
    """Save :func:`hessian_summary_figure` to ``path`` (a file name: format from the suffix;
    or a binary file object: PNG).

    Returns:
        ``path``.
    """
    hessian_summary_figure(summary, per_clip, bands).savefig(path, dpi=120)
    return path
