"""Any corpus described by a CSV manifest.

Layout::

    ROOT/manifest.csv     (any name; ROOT is the folder holding it)
    ROOT/<path>           files named by the manifest, relative to ROOT

Columns: ``path,label`` required; ``generator,family,speaker,language,split`` optional;
any other column is kept in ``clips.attributes``. Labels: ``bonafide``/``bona-fide``/
``real``/``human``/``genuine`` -> bonafide, ``spoof``/``fake``/``deepfake``/``synthetic``/
``generated``/``ai`` -> spoof, case-insensitive; anything else (``0``/``1`` included) is a
``bad_label`` reject. Splits: train/dev/test/ood/eval (val/validation -> dev).
Encoding: a byte-order mark's (UTF-8, UTF-16, UTF-32), else UTF-8, else ``--encoding``
(:func:`dfpipe.corpora._base.manifest_text`); CRLF line ends and quoted fields as ``csv`` reads them.
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
    normalise_split,
)

REQUIRED = ("path", "label")
OPTIONAL = ("generator", "family", "speaker", "language")


def parse_row(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """``(path, CorpusItem fields)`` of one manifest row.

    Sample input: ``{"path": "fake/a.wav", "label": "Fake", "generator": "espeak-ng",
    "split": "train", "snr": "20"}`` -> ``("fake/a.wav", {"label": "spoof", "generator":
    "espeak-ng", "split": "train", "attributes": {"snr": "20"}, ...})``.

    Raises:
        RejectedInput: ``bad_label`` or ``bad_split``.
    """
    fields: dict[str, Any] = {name: blank_to_none(row.get(name)) for name in OPTIONAL}
    fields["label"] = normalise_label(row["label"])
    fields["split"] = normalise_split(row.get("split"))
    known = {*REQUIRED, *OPTIONAL, "split"}
    fields["attributes"] = {k: v for k, v in row.items() if k not in known and v}
    return row["path"], fields


def prepare_csv_manifest(
    path: str | os.PathLike[str], *, encoding: str | None = ManifestConfig.encoding, allow_outside_root: bool = False
) -> Iterator[CorpusEntry]:
    """Items of a CSV manifest, in row order.

    Args:
        path: the manifest file, or a folder holding ``manifest.csv``.
        encoding: the manifest's text encoding (``None``: detected, see :class:`ManifestConfig`).
        allow_outside_root: accept paths outside the manifest's folder.

    Raises:
        ConfigError: no manifest, a header without ``path`` and ``label``, or text that does
            not decode.
    """
    root, manifest = find_manifest(path, "manifest.csv")
    yield from manifest_entries(root, manifest, csv_rows(manifest, REQUIRED, encoding), parse_row,
                                allow_outside_root=allow_outside_root)
