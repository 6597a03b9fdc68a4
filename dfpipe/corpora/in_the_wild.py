"""In-the-Wild (Müller et al., Interspeech 2022): public-figure speech found online.

Layout (as released, ``release_in_the_wild/``)::

    ROOT/meta.csv        header ``file,speaker,label``
    ROOT/0.wav ... ROOT/31778.wav

Source: https://deepfake-total.com/in_the_wild. Labels ``bona-fide`` / ``spoof``; the
corpus has no split (pass ``split="ood"`` when using it as the out-of-distribution set)
and no generator names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from dfpipe.config import ManifestConfig
from dfpipe.corpora._base import (
    CorpusEntry,
    blank_to_none,
    csv_rows,
    find_manifest,
    manifest_entries,
    normalise_label,
)

MANIFEST = "meta.csv"
REQUIRED = ("file", "speaker", "label")


def parse_row(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """``(file, CorpusItem fields)`` of one ``meta.csv`` row.

    Sample input line: ``0.wav,Alec Guinness,spoof``.

    Raises:
        RejectedInput: ``bad_label``.
    """
    extra = {k: v for k, v in row.items() if k not in REQUIRED and v}
    return row["file"], {"label": normalise_label(row["label"]),
                         "speaker": blank_to_none(row["speaker"]), "attributes": extra}


def prepare_in_the_wild(
    path: str | os.PathLike[str], *, split: str | None = None, encoding: str | None = ManifestConfig.encoding,
    allow_outside_root: bool = False
) -> Iterator[CorpusEntry]:
    """Items of In-the-Wild, in ``meta.csv`` order.

    Args:
        path: the corpus folder (or its ``meta.csv``).
        split: split given to every item (``None``: the corpus does not say).
        encoding: ``meta.csv``'s text encoding (``None``: detected, see :class:`ManifestConfig`).
        allow_outside_root: accept ``file`` values outside the folder.

    Raises:
        ConfigError: no ``meta.csv``, a header without ``file,speaker,label``, or text that
            does not decode.
    """
    root, manifest = find_manifest(path, MANIFEST)

    def parse(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
        raw, fields = parse_row(row)
        return raw, {**fields, "split": split}

    yield from manifest_entries(root, manifest, csv_rows(manifest, REQUIRED, encoding), parse,
                                allow_outside_root=allow_outside_root)
