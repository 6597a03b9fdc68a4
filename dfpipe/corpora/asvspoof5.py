"""ASVspoof 5 (Wang et al., 2024): protocol files plus folders of FLAC files.

Layout, as the release unpacks (``ASVspoof5_protocols.tar.gz`` and the ``flac_*`` tars)::

    ROOT/ASVspoof5_protocols/ASVspoof5.train.tsv               Track 1 (and 2): training set
    ROOT/ASVspoof5_protocols/ASVspoof5.dev.track_1.tsv         Track 1: development set
    ROOT/ASVspoof5_protocols/ASVspoof5.eval.track_1.tsv        Track 1: evaluation set
    ROOT/ASVspoof5_protocols/ASVspoof5.{dev,eval}.track_2.{enroll,trial}.tsv   Track 2 (SASV)
    ROOT/ASVspoof5_protocols/ASVspoof5.codec.config.csv        codec conditions
    ROOT/flac_T/T_0000000000.flac      audio, found by file name anywhere under ROOT
    ROOT/flac_D/..., ROOT/flac_E_eval/...

Protocol files are found anywhere under ROOT (the protocols folder, or the root itself as
some mirrors keep them). Only Track 1 (stand-alone countermeasure) protocols are read:
``ASVspoof5.train.tsv`` and ``ASVspoof5.<split>.track_1.tsv``. Track 2 files have other
columns (enrolment lists, target/non-target trials) and are left alone, not rejected.

Track 1 lines are whitespace-separated (despite ``.tsv``): speaker, file name (no extension),
gender, codec, codec quality, codec seed, attack tag, attack label, key
(``bonafide``/``spoof``), then optional trailing columns (kept as ``extra_<n>``; the release
has one, ``TMP``); ``-`` means none. A line with too few columns, a key that is neither class,
or bytes that are not UTF-8 is a ``bad_row`` / ``bad_label`` reject naming its line; the
other lines go on. Source: https://zenodo.org/records/14498691. The
generator is the attack label (``A11``) or, when that is ``-``, the attack tag; NULL for bona
fide. Gender, codec, codec quality, codec seed and attack tag go to ``clips.attributes``. The
split comes from the protocol file's name (``train``/``dev``/``eval``) unless given.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dfpipe.corpora._base import (
    CorpusEntry,
    blank_to_none,
    corpus_root,
    decoded_line,
    manifest_entries,
    normalise_label,
    normalise_split,
)
from dfpipe.errors import ConfigError, RejectedInput

COLUMNS = ("speaker", "file", "gender", "codec", "codec_q", "codec_seed", "attack_tag", "attack_label", "key")
PROTOCOL_GLOB = "ASVspoof5.*.tsv"
_TRACK_1 = re.compile(r"^ASVspoof5\.(train|[a-z]+\.track_1)\.tsv$")
_SPLIT_IN_NAME = re.compile(r"(?:^|[._-])(train|dev|eval)(?:[._-]|$)", re.IGNORECASE)
_NOT_A_GENERATOR = {"bonafide", "bona-fide"}


def parse_line(line: str) -> dict[str, Any]:
    """CorpusItem fields plus ``file`` of one protocol line.

    Sample input line: ``T_4850 T_0000000000 F - - - AC3 A05 spoof -``.

    Raises:
        RejectedInput: ``bad_row`` (fewer than 9 columns) or ``bad_label``.
    """
    values = line.split()
    if len(values) < len(COLUMNS):
        raise RejectedInput("bad_row", f"expected {len(COLUMNS)} whitespace-separated columns, got {len(values)}: {line.strip()!r}")
    row = dict(zip(COLUMNS, values))
    label = normalise_label(row["key"])
    attack = blank_to_none(row["attack_label"]) or blank_to_none(row["attack_tag"])
    attributes = {k: row[k] for k in ("gender", "codec", "codec_q", "codec_seed", "attack_tag", "attack_label")
                  if blank_to_none(row[k])}
    attributes.update({f"extra_{i}": v for i, v in enumerate(values[len(COLUMNS):]) if blank_to_none(v)})
    generator = None if label == "bonafide" or (attack or "").lower() in _NOT_A_GENERATOR else attack
    return {"file": row["file"], "label": label, "speaker": blank_to_none(row["speaker"]),
            "generator": generator, "attributes": attributes}


def split_of(protocol: Path) -> str | None:
    """``train``/``dev``/``eval`` from a protocol file name (``ASVspoof5.dev.track_1.tsv``)."""
    match = _SPLIT_IN_NAME.search(protocol.name)
    return match.group(1).lower() if match else None


def is_track_1(protocol: Path) -> bool:
    """True for the Track 1 protocols (``ASVspoof5.train.tsv``, ``ASVspoof5.dev.track_1.tsv``)."""
    return bool(_TRACK_1.match(protocol.name))


def find_protocols(root: Path) -> list[Path]:
    """Every Track 1 protocol file under ``root`` (recursively), in path order."""
    found = (p for p in root.rglob(PROTOCOL_GLOB) if p.is_file() and is_track_1(p))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def prepare_asvspoof5(
    path: str | os.PathLike[str],
    *,
    protocols: list[str | os.PathLike[str]] | None = None,
    split: str | None = None,
    allow_outside_root: bool = False,
) -> Iterator[CorpusEntry]:
    """Items of ASVspoof 5, protocol by protocol, in line order.

    Args:
        path: corpus root (or one protocol file; its folder is then the root).
        protocols: protocol files to read (default: every Track 1 protocol under the root).
        split: split of every item (default: from each protocol's name).
        allow_outside_root: accept FLAC files that resolve outside the root.

    Raises:
        ConfigError: no Track 1 protocol file, a Track 2 protocol named explicitly, or a FLAC
            name found twice under the root.
    """
    given = Path(os.path.abspath(path))
    root = corpus_root(given.parent if given.is_file() else given)
    files = [Path(p) for p in protocols] if protocols else [given] if given.is_file() else find_protocols(root)
    if not files:
        raise ConfigError(f"no Track 1 protocol file (ASVspoof5.train.tsv, ASVspoof5.*.track_1.tsv) under {root}; "
                          "pass the protocol path")
    for protocol in files:
        if protocol.name.startswith("ASVspoof5.") and ".track_2." in protocol.name:
            raise ConfigError(f"{protocol} is a Track 2 (SASV) protocol; dfpipe reads Track 1 protocols "
                              "(ASVspoof5.train.tsv, ASVspoof5.*.track_1.tsv)")
    flac = _index_flac(root)
    for protocol in files:
        parse = functools.partial(_parse, flac, normalise_split(split) if split else split_of(protocol))
        with open(protocol, "rb") as handle:
            rows = [(n, decoded_line(line)) for n, line in enumerate(handle, 1) if line.strip()]
        yield from manifest_entries(root, protocol, rows, parse, allow_outside_root=allow_outside_root)


def _parse(flac: dict[str, str], split: str | None, line: str) -> tuple[str, dict[str, Any]]:
    fields = parse_line(line)
    name = fields.pop("file")
    return flac.get(name, name + ".flac"), {**fields, "split": split}


def _index_flac(root: Path) -> dict[str, str]:
    """``{file name without .flac: relpath}`` of every FLAC file under ``root``."""
    index: dict[str, str] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name.lower().endswith(".flac"):
                relpath = Path(os.path.relpath(Path(dirpath) / name, root)).as_posix()
                stem = name[: -len(".flac")]
                if stem in index:
                    raise ConfigError(f"{name} is both {index[stem]} and {relpath} under {root}")
                index[stem] = relpath
    return index
