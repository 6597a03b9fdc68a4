"""Progress of long-running work: a live bar on a terminal, a line per tenth in a log.

Every long-running command reports through :class:`Progress` (the shard flows'
``completed``, the demo-corpus build, archive scoring, ``dfpipe diagnose``):

- when stdout is a terminal, a rich progress bar (one row per phase);
- otherwise (a pipe, a file, ``nohup``, a CI log) rich would print nothing, so one plain
  line per phase is written to stderr when the phase starts and each time it passes
  another tenth of its total: ``features demo:flac: 40/100 shards (40 %, 12 s)``. At most
  eleven lines per phase, flushed at once, so a log shows that work is moving.

A phase is named by its description; :meth:`Progress.update` (``progress(phase, done,
total)``, the signature of the stages' progress callbacks) and :meth:`Progress.advance` move
it.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Self


def stdout_is_terminal() -> bool:
    """Whether stdout is an interactive terminal, as rich decides it (``FORCE_COLOR``,
    ``TTY_COMPATIBLE`` and Jupyter included): where a live bar or a cut-to-width table can be shown."""
    from rich.console import Console

    return Console().is_terminal


class Progress:
    """Progress of one or more phases (a context manager).

    Args:
        enabled: ``False`` shows and prints nothing (callers' ``show_progress=False``).
        unit: what is counted (``shards``, ``files``, ``pairs``...); with ``rate`` the bar and
            the lines also show units per second.
        rate: show the rate (units per second).
        transient: remove the bar when done (terminal only).
    """

    def __init__(self, enabled: bool = True, *, unit: str = "", rate: bool = False, transient: bool = False) -> None:
        self.enabled, self.unit, self.rate, self.transient = enabled, unit, rate, transient
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._logged: dict[str, int] = {}

    def __enter__(self) -> Self:
        if self.enabled and stdout_is_terminal():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
            if self.rate:
                columns.append(TextColumn("{task.fields[rate]}"))
            columns.append(TimeRemainingColumn())
            self._bar = RichProgress(*columns, transient=self.transient)
            self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, value, traceback)
            self._bar = None

    @property
    def live(self) -> bool:
        """Whether a live bar is shown (else progress goes out as lines, or not at all)."""
        return self._bar is not None

    def update(self, phase: str, done: int, total: int) -> None:
        """``phase`` has ``done`` of ``total`` units finished (starts the phase when new)."""
        self._done[phase], self._total[phase] = done, total  # counted even when not shown (advance)
        if not self.enabled:
            return
        now = time.perf_counter()
        started = self._started.setdefault(phase, now)
        rate = f"{done / max(now - started, 1e-9):.1f} {self.unit or 'units'}/s" if done else "-"
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(phase, total=total, rate=rate)
            self._bar.update(self._tasks[phase], completed=done, total=total, rate=rate)
            return
        tenth = min(done * 10 // total, 10) if total > 0 else 10
        if tenth > self._logged.get(phase, -1):
            self._logged[phase] = tenth
            percent = f"{100 * done // total} %" if total > 0 else "100 %"
            unit = f" {self.unit}" if self.unit else ""
            speed = f", {rate}" if self.rate and done else ""
            print(f"{phase}: {done:,}/{total:,}{unit} ({percent}, {now - started:.0f} s{speed})",
                  file=sys.stderr, flush=True)

    def advance(self, phase: str, n: int = 1) -> None:
        """``n`` more units of ``phase`` are finished (the phase must have been started by :meth:`update`)."""
        self.update(phase, self._done.get(phase, 0) + n, self._total[phase])
