"""Values of tabular corpus metadata (Parquet columns, lhotse ``custom`` fields) as clip fields.

Shared by the adapters that read typed metadata rather than CSV strings
(:mod:`dfpipe.corpora.hf_parquet`, :mod:`dfpipe.corpora.lhotse_manifest`): how a value becomes
an ``attributes`` string, how a label column maps to the two classes, and how a file name
tells its split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from dfpipe.corpora._base import normalise_label, normalise_split
from dfpipe.errors import ConfigError, RejectedInput

_WORDS = re.compile(r"[-_.\s]+")


def value_text(value: Any, names: Sequence[str] | None = None) -> str | None:
    """A metadata value as a string for ``attributes`` (``None``: nothing to keep).

    Integers of a ClassLabel (``names``) become their name (``-1``, HF's 'no label', and
    other out-of-range values become ``None``); booleans ``true``/``false``; floats their
    ``repr``; dicts and lists JSON with sorted keys; binary values are dropped.

    >>> value_text(1, ["bonafide", "spoof"]), value_text(20.5), value_text({"b": 1, "a": [2]})
    ('spoof', '20.5', '{"a": [2], "b": 1}')
    """
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if names is not None:
            return str(names[value]) if 0 <= value < len(names) else None
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def map_label(raw: Any, text: str | None, bonafide_value: str | None) -> str:
    """``bonafide`` / ``spoof`` of a label value.

    Args:
        raw: the value as stored (an int for a ClassLabel).
        text: its text (:func:`value_text`: the ClassLabel name).
        bonafide_value: the one value meaning bona fide, compared with ``text`` and ``raw``
            case-insensitively; every other value is spoof. ``None``: ``text`` must be a
            spelling :func:`dfpipe.corpora.normalise_label` knows.

    Raises:
        RejectedInput: ``bad_label`` (no value, or a value that names no class).
    """
    if text is None or not text.strip():
        raise RejectedInput("bad_label", f"the label is {raw!r}")
    if bonafide_value is not None:
        wanted = bonafide_value.strip().lower()
        return "bonafide" if wanted in {text.strip().lower(), str(raw).strip().lower()} else "spoof"
    try:
        return normalise_label(text)
    except RejectedInput as exc:
        raise RejectedInput(exc.reason, f"{exc.detail}; or say which value is bona fide with --bonafide-value"
                            ) from None


def split_word(text: str) -> str | None:
    """``text`` as a split, or its first ``-``/``_``/``.``-separated word that is one.

    >>> split_word("train-00000-of-00002"), split_word("CompSpoof_dev"), split_word("0000")
    ('train', 'dev', None)
    """
    for word in (text, *_WORDS.split(text)):
        found = exact_split(word)
        if found:
            return found
    return None


def exact_split(text: str | None) -> str | None:
    """``text`` as a split (aliases included), or ``None`` when it is not one."""
    try:
        return normalise_split(text)
    except RejectedInput:
        return None


def option_split(split: str | None) -> str | None:
    """The ``--split`` option, normalised.

    Raises:
        ConfigError: naming the option, when it is not a split.
    """
    try:
        return normalise_split(split)
    except RejectedInput as exc:
        raise ConfigError(f"--split: {exc.detail}") from None


def require_option(option: str, value: str) -> str:
    """``value``, or a :class:`ConfigError` naming ``option`` when it is empty."""
    if not value or not value.strip():
        raise ConfigError(f"{option} must not be empty")
    return value
