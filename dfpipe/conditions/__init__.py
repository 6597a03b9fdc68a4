"""Audio conditions: ffmpeg makes each clip's audio conditions into the ``audio`` table.

=====================================  ==============================================================
:mod:`dfpipe.conditions.grammar`       condition names: the grammar, :func:`parse_condition`,
                                       :func:`describe_condition` (pure Python, no FFmpeg)
:mod:`dfpipe.conditions.dsp`           making one clip's condition: FFmpeg encoders and filter
                                       graphs, the seeded corruptions, ``polished``
                                       (:func:`apply_condition`)
:mod:`dfpipe.conditions.stage`         the stage: :func:`plan_conditions`, :func:`condition_shard`,
                                       :func:`run_conditions`
=====================================  ==============================================================

The names below are re-exported here. Only :mod:`~dfpipe.conditions.grammar` is imported
with the package; the FFmpeg and stage modules load on first use, so importing the grammar
(training, the run record) never loads PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dfpipe.conditions.grammar import CODECS, CORRUPTIONS, Step, describe_condition, parse_condition

if TYPE_CHECKING:
    from dfpipe.conditions.dsp import apply_condition, encode, run_filters, stored_format
    from dfpipe.conditions.stage import (
        STAGE,
        ConditionShard,
        clip_seed,
        condition_shard,
        plan_conditions,
        run_conditions,
    )

_LAZY = {
    **dict.fromkeys(["apply_condition", "encode", "run_filters", "stored_format"], "dsp"),
    **dict.fromkeys(["STAGE", "ConditionShard", "clip_seed", "condition_shard", "plan_conditions",
                     "run_conditions"], "stage"),
}

__all__ = [
    "CODECS", "CORRUPTIONS", "STAGE", "ConditionShard", "Step", "apply_condition", "clip_seed", "condition_shard",
    "describe_condition", "encode", "parse_condition", "plan_conditions", "run_conditions", "run_filters",
    "stored_format",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
