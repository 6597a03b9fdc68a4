"""Loss-landscape and representation diagnostics of a trained checkpoint.

The study behind dfpipe (SPEC.md, "Loss-landscape diagnostics") asks whether a trained
detector sits in a flat or sharp minimum, and backs the single curvature number with
complementary checks. The package has three parts:

- :mod:`~dfpipe.diagnostics.landscape`: the checks, plain functions over a generic
  ``torch.nn.Module``, a loss and batches of ``(inputs, labels)`` (pure torch/numpy, no lake);
- :mod:`~dfpipe.diagnostics.figure`: the study's Hessian figure;
- :mod:`~dfpipe.diagnostics.stage`: :func:`diagnose`, all of the checks on a lake checkpoint,
  writing the ``diagnostics_hessian``, ``diagnostics_summary`` and ``diagnostics_linearity``
  tables (``dfpipe diagnose`` runs it through :mod:`dfpipe.flows.diagnose`).

=============================  ============================================================
function                       what it measures
=============================  ============================================================
:func:`hutchinson_trace`       tr(H) of each clip's loss by Hutchinson's estimator
:func:`summarize_traces`       mean/std/min/max/median, trace ÷ parameters and its band
:func:`collect_outputs`        logits, labels, embeddings and mean loss of a clip set
:func:`gradient_snr`           consistency of per-clip gradients
:func:`weight_norms`           L2 and RMS weight per parameter tensor and in total
:func:`davies_bouldin`         cluster separation of embeddings (spoof vs bona fide)
:func:`expected_calibration_error`  ECE of the predicted-class confidence (Guo et al.)
:func:`local_linearity`        first-order Taylor error of the loss along random directions
:func:`plot_hessian_summary`   the study's figure: band gauge + per-clip trace axis
:func:`diagnose`               the stage: all of the above on a lake checkpoint
=============================  ============================================================

Every name below is importable from ``dfpipe.diagnostics`` itself.
"""

from __future__ import annotations

from dfpipe.diagnostics.figure import (
    SYMLOG_SPAN,
    hessian_summary_figure,
    plot_hessian_summary,
)
from dfpipe.diagnostics.landscape import (
    GradientSNR,
    HutchinsonTraces,
    LabelledBatch,
    LinearityRow,
    LossFn,
    Outputs,
    TraceSummary,
    WeightNorm,
    clip_loss,
    collect_outputs,
    count_trainable,
    curvature_band,
    davies_bouldin,
    evaluation_mode,
    expected_calibration_error,
    gradient_snr,
    hutchinson_trace,
    local_linearity,
    stored_trace_summary,
    summarize_traces,
    trainable_parameters,
    weight_norms,
)
from dfpipe.diagnostics.stage import (
    COMPLEMENTARY_TABLE,
    SPEC_TABLE,
    DiagnoseSummary,
    ProgressFn,
    diagnose,
    hessian_figure,
)

__all__ = [
    "COMPLEMENTARY_TABLE",
    "SPEC_TABLE",
    "SYMLOG_SPAN",
    "DiagnoseSummary",
    "GradientSNR",
    "HutchinsonTraces",
    "LabelledBatch",
    "LinearityRow",
    "LossFn",
    "Outputs",
    "ProgressFn",
    "TraceSummary",
    "WeightNorm",
    "clip_loss",
    "collect_outputs",
    "count_trainable",
    "curvature_band",
    "davies_bouldin",
    "diagnose",
    "evaluation_mode",
    "expected_calibration_error",
    "gradient_snr",
    "hessian_figure",
    "hessian_summary_figure",
    "hutchinson_trace",
    "local_linearity",
    "plot_hessian_summary",
    "stored_trace_summary",
    "summarize_traces",
    "trainable_parameters",
    "weight_norms",
]
