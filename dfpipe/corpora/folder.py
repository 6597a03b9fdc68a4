"""Generic folder corpus: the class is the top folder, the generator the one below ``fake``.

Layout::

    ROOT/
      real/**/<file>                 bona fide (any depth, any audio container)
      fake/<generator>/**/<file>     spoof made by <generator> (e.g. fake/espeak-ng/a.wav)
      fake/<file>                    spoof, generator unknown (NULL)

or, with splits, the same below one folder per split::

    ROOT/train/real/..., ROOT/train/fake/<generator>/...
    ROOT/test/real/...,  ROOT/test/fake/<generator>/...   (train, dev, test, ood, eval; val -> dev)

Source: any folder a user arranges this way. Labels (and splits) come from the folder names
only; nothing else at the top level is read. Every file under ``real``/``fake`` is an item
(ingest rejects the ones that are not audio); a symlink that leads out of ROOT is a reject.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from dfpipe.corpora._base import (
    CorpusEntry,
    CorpusItem,
    CorpusReject,
    corpus_root,
    normalise_split,
    resolve_member,
    walk_files,
)
from dfpipe.errors import ConfigError, RejectedInput

CLASS_FOLDERS = {"real": "bonafide", "fake": "spoof"}


def parse_relpath(relpath: str) -> tuple[str, str | None]:
    """``(label, generator)`` of a file from its path relative to ROOT.

    Sample input: ``fake/piper_joe/speaker1/utt_001.wav`` -> ``("spoof", "piper_joe")``.

    Raises:
        RejectedInput: ``bad_label`` when the top folder is neither ``real`` nor ``fake``.
    """
    parts = relpath.split("/")
    label = CLASS_FOLDERS.get(parts[0])
    if label is None or len(parts) < 2:
        raise RejectedInput("bad_label", f"{relpath} is not under real/ or fake/")
    generator = parts[1] if label == "spoof" and len(parts) > 2 else None
    return label, generator


def prepare_folder(
    path: str | os.PathLike[str], *, split: str | None = None, allow_outside_root: bool = False
) -> Iterator[CorpusEntry]:
    """Items of a ``real/`` + ``fake/<generator>/`` folder, in path order.

    Args:
        path: corpus root.
        split: split name given to every item (``None``: from the split folders, if any;
            otherwise the corpus does not say).
        allow_outside_root: accept symlinks leading out of the root.

    Raises:
        ConfigError: when the root has neither ``real/`` nor ``fake/``, nor split folders
            holding them.
    """
    root = corpus_root(path)
    if any((root / name).is_dir() for name in CLASS_FOLDERS):
        parts = [(root, split)]
    else:
        parts = [(folder, split or normalise_split(folder.name)) for folder in split_folders(root)]
    if not parts:
        raise ConfigError(f"{root} has neither real/ nor fake/, nor split folders holding them "
                          "(train/real, test/fake/<generator>, ...): not a folder-layout corpus")
    for base, part_split in parts:
        for top in (base / name for name in CLASS_FOLDERS):
            for file in walk_files(top) if top.is_dir() else ():
                relpath = Path(os.path.relpath(file, root)).as_posix()
                try:
                    source, relpath = resolve_member(root, relpath, allow_outside_root=allow_outside_root)
                    label, generator = parse_relpath(Path(os.path.relpath(file, base)).as_posix())
                except RejectedInput as exc:
                    yield CorpusReject(source=str(file), reason=exc.reason, detail=exc.detail)
                    continue
                yield CorpusItem(source=source, relpath=relpath, label=label, origin=relpath,
                                 split=part_split, generator=generator)


def split_folders(root: Path) -> list[Path]:
    """The folders of ``root`` named like a split (``train``, ``val``, ...) that hold ``real/``
    or ``fake/``, in name order."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            normalise_split(folder.name)
        except RejectedInput:
            continue
        if any((folder / name).is_dir() for name in CLASS_FOLDERS):
            found.append(folder)
    return found
