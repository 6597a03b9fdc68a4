"""Corpus adapters: each turns one corpus layout into :class:`CorpusItem` s (or rejects).

One module per corpus (lhotse-recipe style): its docstring describes the layout, source and
label conventions; a pure parser handles one manifest line; ``prepare_<corpus>(path, ...)``
yields items and :class:`CorpusReject` s in a stable order. :data:`ADAPTERS` maps the
``dfpipe ingest --format`` names to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dfpipe.corpora._base import (
    CorpusEntry,
    CorpusItem,
    CorpusReject,
    normalise_label,
    normalise_split,
)
from dfpipe.corpora.asvspoof5 import prepare_asvspoof5
from dfpipe.corpora.csv_manifest import prepare_csv_manifest
from dfpipe.corpora.deepfake_eval_2024 import prepare_deepfake_eval_2024
from dfpipe.corpora.folder import prepare_folder
from dfpipe.corpora.hf_parquet import prepare_hf_parquet
from dfpipe.corpora.in_the_wild import prepare_in_the_wild
from dfpipe.corpora.lhotse_manifest import prepare_lhotse

Adapter = Callable[..., Iterator[CorpusEntry]]
"""``prepare(path, *, allow_outside_root=False, ...) -> items and rejects``; the other
keyword-only parameters are the adapter's options (``dfpipe ingest --label-column`` ...)."""

ADAPTERS: dict[str, Adapter] = {
    "folder": prepare_folder,
    "csv": prepare_csv_manifest,
    "in-the-wild": prepare_in_the_wild,
    "deepfake-eval-2024": prepare_deepfake_eval_2024,
    "asvspoof5": prepare_asvspoof5,
    "hf-parquet": prepare_hf_parquet,
    "lhotse": prepare_lhotse,
}

__all__ = ["ADAPTERS", "Adapter", "CorpusEntry", "CorpusItem", "CorpusReject", "normalise_label", "normalise_split"]
