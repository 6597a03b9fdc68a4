"""Generic folder corpus: the class is the top folder, the generator the one below ``fake``.

Layout::

    ROOT/
      real/**/<file>                 bona fide (any depth, any audio container)
      fake/<generator>/**/<file>     spoof made by <generator> (e.g. fake/espeak/a.wav)
      fake/<file>                    spoof, generator unknown (NULL)

Source: any folder a user arranges this way. Labels come from the folder names only;
nothing else at the top level is read. Every file under ``real``/``fake`` is an item (ingest
rejects the ones that are not audio); a symlink that leads out of ROOT is a reject.
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
        split: split name given to every item (``None``: the corpus does not say).
        allow_outside_root: accept symlinks leading out of the root.

    Raises:
        ConfigError: when the root has neither ``real/`` nor ``fake/``.
    """
    root = corpus_root(path)
    tops = [root / name for name in CLASS_FOLDERS if (root / name).is_dir()]
    if not tops:
        raise ConfigError(f"{root} has neither real/ nor fake/: not a folder-layout corpus")
    for top in tops:
        for file in walk_files(top):
            relpath = Path(os.path.relpath(file, root)).as_posix()
            try:
                source, relpath = resolve_member(root, relpath, allow_outside_root=allow_outside_root)
                label, generator = parse_relpath(relpath)
            except RejectedInput as exc:
                yield CorpusReject(source=str(file), reason=exc.reason, detail=exc.detail)
                continue
            yield CorpusItem(source=source, relpath=relpath, label=label, origin=relpath,
                             split=split, generator=generator)
