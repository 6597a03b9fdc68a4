"""dfpipe's exceptions.

Input problems raise a :class:`DfpipeError` subclass with a reason a person can act on;
stage code catches :class:`RejectedInput` at the shard boundary and turns it into a
``rejects`` row, so one bad file never stops a batch and never vanishes.
"""

from __future__ import annotations


class DfpipeError(Exception):
    """Base class: every error dfpipe raises on purpose."""


class ConfigError(DfpipeError, ValueError):
    """A configuration value is invalid or conflicts with another one."""


class LakeError(DfpipeError):
    """The lake refused an operation (schema mismatch, shard already written, ...)."""


class RejectedInput(DfpipeError):
    """One input item cannot be used; becomes a ``rejects`` row with this message.

    Args:
        reason: short machine-groupable cause, e.g. ``"undecodable"``, ``"empty"``.
        detail: the human-readable explanation (what was wrong, what to do).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
