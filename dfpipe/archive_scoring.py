"""Scoring archives: a checkpoint over audio files on disk (globs, folders), into a Parquet folder.

:func:`score_archive` writes ``OUT/scores/part-*.parquet`` (schema
:data:`dfpipe.schemas.ARCHIVE_SCORES`) and ``OUT/rejects/part-*.parquet`` (schema ``REJECTS``)
for files that cannot be decoded. (Scoring clips of the lake into ``predictions`` is
:mod:`dfpipe.score`.)

Pipeline: Dask workers decode files (``files_per_task`` per task, at most
``max_in_flight`` tasks submitted and not yet consumed, so memory stays bounded whatever
the archive size) -> this process cuts each file into the study's centre crop and
clip-length windows every ``hop_s`` over the whole file (:func:`dfpipe.frontend.windows`),
computes features on the inference device and runs the model in batches of ``batch_size``
-> per file: centre-crop logit, mean and max window logit -> every ``files_per_part`` files
one Parquet part is committed (:func:`dfpipe.lake.atomic_write`). A re-run skips every file
already in ``OUT`` (scored or rejected), so a killed run resumes where it stopped.

Hostile files: workers decode in the decoder sandbox (:mod:`dfpipe.audio_io`), so a file
that crashes or hangs the decoder is one ``rejects`` row (``decoder_crashed``,
``decoder_timeout``), as are NaN/Inf samples, constant audio, files under
``ScoreConfig.min_duration_s`` and symbolic links to nothing or to themselves. A file longer
than ``ScoreConfig.max_in_memory_s`` is never held whole: the worker counts its samples,
then this process decodes it again and scores its windows as they stream
(:func:`streamed_rows`), so an hours-long file costs one batch of memory.
"""

from __future__ import annotations

import glob
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from dfpipe import checkpoints
from dfpipe.audio_io import check_signal, decode_chunks
from dfpipe.config import AudioConfig, FrontendConfig, ScoreConfig
from dfpipe.devices import DeviceContext, select_device
from dfpipe.errors import DfpipeError, RejectedInput
from dfpipe.frontend import LFCCFrontend, MelFrontend, fit_length, peak_normalize, windows
from dfpipe.lake import atomic_write, stable_id
from dfpipe.models import Batch, Detector, dataclass_from_dict
from dfpipe.predictions import spoof_logits
from dfpipe.progress import Progress
from dfpipe.schemas import ARCHIVE_SCORES
from dfpipe.stage_kit import Executor, as_source_uri, local_path, reject_row, rejects_table

STAGE = "score-archive"
"""``rejects.stage`` of archive scoring."""
_PHASE = "scoring"


@dataclass(frozen=True)
class ArchiveSummary:
    """What :func:`score_archive` did."""

    out: str
    files: int  # files found by the paths and globs
    skipped: int  # already in OUT from an earlier run
    scored: int
    rejected: int
    audio_s: float  # seconds of audio scored by this call
    wall_s: float
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (path, reason: detail)


@dataclass(frozen=True)
class DecodedFile:
    """A worker's answer for one file: the waveform, or why there is none."""

    path: str
    wave: np.ndarray | None = None  # float32 mono at the detector's sample rate; None: too long to hold
    samples: int = 0  # its length at that rate
    reason: str = ""  # set when rejected
    detail: str = ""


def expand_paths(paths_or_globs: Iterable[str]) -> list[str]:
    """Absolute paths, sorted and unique: folders are searched recursively for files, glob
    patterns are expanded (``**`` too), other entries are kept as given (a missing file is
    then rejected, not silently dropped). Each is a lake string
    (:func:`dfpipe.stage_kit.as_source_uri`: a name that is not UTF-8 becomes a ``file://`` URI
    of its bytes, so it is scored and written like any other)."""
    return sorted({as_source_uri(os.path.abspath(p)) for p in _found_files(paths_or_globs)})


def count_files(paths_or_globs: Iterable[str], up_to: int) -> int:
    """How many files :func:`expand_paths` lists, counted no further than ``up_to``: enough to
    tell a small archive (scored in-process) from a large one without walking all of it twice."""
    found: set[str] = set()
    for path in _found_files(paths_or_globs):
        found.add(os.path.abspath(path))
        if len(found) >= up_to:
            break
    return len(found)


def _found_files(paths_or_globs: Iterable[str]) -> Iterator[str]:
    """The files of ``paths_or_globs`` as they are found (repeats included): folders
    recursively, glob patterns expanded, other entries as given."""
    for item in paths_or_globs:
        if os.path.isdir(item):
            yield from (str(p) for p in Path(item).rglob("*") if p.is_file() or _broken_link(p))
        elif glob.has_magic(item):
            yield from (p for p in glob.iglob(item, recursive=True) if os.path.isfile(p) or _broken_link(Path(p)))
        else:
            yield item


def _broken_link(path: Path) -> bool:
    """A symbolic link to nothing (or to itself): listed, so it gets a reject row."""
    return path.is_symlink() and not path.exists()


def decode_files(paths: Sequence[str], sample_rate: int, config: ScoreConfig | None = None) -> list[DecodedFile]:
    """Decode each file to mono float32 at ``sample_rate`` in the decoder sandbox (the Dask
    task of score-archive): a file that crashes or hangs the decoder is that file's reject.

    A file longer than ``config.max_in_memory_s`` comes back with its length only (``wave``
    ``None``); :func:`score_archive` streams it. Rejects: the decoder's reasons
    (:func:`dfpipe.audio_io.probe`), ``too_short`` and ``constant_signal``
    (:func:`dfpipe.audio_io.check_signal`, on the decoded mono samples).
    """
    config = config or ScoreConfig()
    return [_decode_file(path, sample_rate, config) for path in paths]


def _decode_file(path: str, sample_rate: int, config: ScoreConfig) -> DecodedFile:
    held: list[np.ndarray] | None = []
    samples, low, high = 0, np.inf, -np.inf
    try:
        for block in decode_chunks(local_path(path), sample_rate, config=config.decode, isolated=True):
            samples += block.shape[0]
            if block.size:
                low, high = min(low, float(block.min())), max(high, float(block.max()))
            if held is not None:
                held.append(block)
                if samples > config.max_in_memory_s * sample_rate:
                    held = None  # too long to hold: count it here, stream it in score_archive
        check_signal(samples / sample_rate, low, high, config.min_duration_s, config.decode)
    except RejectedInput as exc:
        return DecodedFile(path, reason=exc.reason, detail=exc.detail)
    return DecodedFile(path, None if held is None else np.concatenate(held), samples=samples)


def clip_rows(wave: np.ndarray, hop_s: float, audio: AudioConfig) -> np.ndarray:
    """``(1 + n_windows, clip_samples)``: row 0 is the centre crop (exactly
    :func:`dfpipe.frontend.load_clip`), then the :func:`dfpipe.frontend.windows` of the
    whole file; each row is peak-normalised on its own, as the detector saw clips in training.

    Works on the decoded array, so one decode serves both the crop and the windows.
    """
    centre = peak_normalize(fit_length(wave, audio.clip_samples))
    return np.stack([centre, *(window for _, window in windows(wave, hop_s, audio))])


def streamed_rows(blocks: Iterable[np.ndarray], samples: int, hop_s: float, audio: AudioConfig
                  ) -> Iterator[tuple[bool, np.ndarray]]:
    """The rows of :func:`clip_rows` for a file of ``samples`` samples decoded as ``blocks``,
    as ``(is_centre, row)`` in the order the audio passes, holding only the samples the next
    row needs (one clip plus one block), whatever the file's length.

    Raises:
        RejectedInput: ``decoder_error`` when the blocks end before ``samples``.
    """
    size, rate = audio.clip_samples, audio.sample_rate
    hop = max(1, round(hop_s * rate))
    starts = list(range(0, max(samples - size, 0) + 1, hop))  # as frontend.windows
    if samples > size and starts[-1] + size < samples:
        starts.append(samples - size)
    wanted = sorted([(start, False) for start in starts] + [(max(samples - size, 0) // 2, True)])
    held, held_from, index = np.zeros(0, np.float32), 0, 0
    for block in blocks:
        held = np.concatenate([held, block])
        while index < len(wanted) and wanted[index][0] + size <= held_from + held.shape[0]:
            start, is_centre = wanted[index]
            yield is_centre, peak_normalize(held[start - held_from:start - held_from + size].copy())
            index += 1
        keep = wanted[index][0] if index < len(wanted) else held_from + held.shape[0]
        held, held_from = held[keep - held_from:], keep
    while index < len(wanted) and held_from + held.shape[0] >= samples:  # a file shorter than a clip
        start, is_centre = wanted[index]
        yield is_centre, peak_normalize(fit_length(held[start - held_from:], size))
        index += 1
    if index < len(wanted):
        raise RejectedInput("decoder_error", f"the second decode ended before the {samples} samples of the first")


class Inference:
    """Features + model on the inference device: :meth:`logits` of ``(N, clip_samples)``
    float32 waveforms, in batches of ``batch_size`` (the front end runs on the device too)."""

    def __init__(self, model: Detector, frontend: FrontendConfig, ctx: DeviceContext, batch_size: int) -> None:
        self.model, self.ctx, self.batch_size = model, ctx, batch_size
        self.mel = MelFrontend(frontend).to(ctx.device).eval() if "mel" in model.needs else None
        self.lfcc = LFCCFrontend(frontend).to(ctx.device).eval() if "lfcc" in model.needs else None

    @torch.no_grad()
    def logits(self, rows: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(rows), self.batch_size):
            wave = torch.from_numpy(rows[start:start + self.batch_size]).to(self.ctx.device)
            batch = Batch(mel=self.mel(wave) if self.mel else None, lfcc=self.lfcc(wave) if self.lfcc else None,
                          waveform=wave if "waveform" in self.model.needs else None)
            out.append(spoof_logits(self.model, batch, self.ctx).cpu())
        return torch.cat(out).double().numpy()


def score_archive(
    paths_or_globs: Sequence[str],
    checkpoint: str,
    out: str,
    *,
    config: ScoreConfig | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ArchiveSummary:
    """Score every audio file of ``paths_or_globs`` with ``checkpoint`` into the folder ``out``.

    Args:
        paths_or_globs: files, folders (recursive) and glob patterns.
        checkpoint: an ``epoch-NNN.pt`` (path or fsspec URL).
        out: output folder (created); files already listed there are skipped.
        config: batch size, hop, task size, in-flight bound, part size, device.
        executor: ``None`` (decode here) or anything with ``submit`` (a Dask Client).
        progress: show progress with files/s (a bar on a terminal, a line per tenth otherwise).
        log: where the summary and the rejected files are printed.

    Returns:
        An :class:`ArchiveSummary`.

    Raises:
        DfpipeError: unreadable checkpoint, or nothing matched ``paths_or_globs``.
    """
    started = time.perf_counter()
    config = config or ScoreConfig()
    files = expand_paths(paths_or_globs)
    if not files:
        raise DfpipeError(f"no file matches {list(paths_or_globs)}")
    done = _listed(out)
    todo = [p for p in files if p not in done]
    ctx = select_device(config.device, amp=config.amp, amp_dtypes=config.amp_dtypes,
                        cpu_threads=config.cpu_threads)
    model, meta = checkpoints.load_model(checkpoint, ctx.device)
    frontend = dataclass_from_dict(FrontendConfig, meta["frontend_config"])
    inference = Inference(model, frontend, ctx, config.batch_size)
    tag = {"arch": model.arch, "run_id": meta.get("run_id", ""), "epoch": int(meta.get("epoch", 0))}

    scored: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    pending: list[tuple[str, float, np.ndarray]] = []  # decoded, not yet through the model
    totals = {"scored": 0, "rejected": 0, "audio_s": 0.0}
    all_rejects: list[tuple[str, str]] = []

    def run_model() -> None:
        if not pending:
            return
        logits = inference.logits(np.concatenate([rows for _, _, rows in pending]))
        offset = 0
        for path, duration_s, rows in pending:
            own = logits[offset:offset + len(rows)]
            offset += len(rows)
            scored.append({"path": path, "duration_s": duration_s, "n_windows": len(rows) - 1,
                           "spoof_logit_center": own[0], "spoof_logit_window_mean": own[1:].mean(),
                           "spoof_logit_window_max": own[1:].max(), **tag})
            totals["audio_s"] += duration_s
        pending.clear()

    def commit() -> None:
        if scored:
            _write_part(out, "scores", "path", pa.Table.from_pylist(scored).select(ARCHIVE_SCORES.names)
                        .cast(ARCHIVE_SCORES))
        if rejected:
            _write_part(out, "rejects", "source_uri", rejects_table(rejected))
        totals["scored"] += len(scored)
        totals["rejected"] += len(rejected)
        scored.clear()
        rejected.clear()

    tasks = [todo[i:i + config.files_per_task] for i in range(0, len(todo), config.files_per_task)]
    with Progress(progress, unit="files", rate=True) as bar:
        bar.update(_PHASE, 0, len(todo))
        for decoded in bounded_map(lambda chunk: decode_files(chunk, frontend.audio.sample_rate, config),
                                   tasks, executor, config.max_in_flight):
            for item in decoded:
                if not item.reason and item.wave is None:  # too long to hold: stream it here
                    try:
                        scored.append({**score_streamed(item.path, item.samples, inference, config,
                                                        frontend.audio), **tag})
                        totals["audio_s"] += item.samples / frontend.audio.sample_rate
                    except RejectedInput as exc:
                        item = DecodedFile(item.path, reason=exc.reason, detail=exc.detail)
                if item.reason:
                    rejected.append(reject_row(STAGE, item.path, item.reason, item.detail))
                    all_rejects.append((item.path, f"{item.reason}: {item.detail}"))
                elif item.wave is not None:
                    pending.append((item.path, len(item.wave) / frontend.audio.sample_rate,
                                    clip_rows(item.wave, config.hop_s, frontend.audio)))
                    if sum(len(rows) for _, _, rows in pending) >= config.batch_size:
                        run_model()
                if len(scored) + len(rejected) + len(pending) >= config.files_per_part:
                    run_model()
                    commit()
            bar.advance(_PHASE, len(decoded))
        run_model()
        commit()

    summary = ArchiveSummary(out=out, files=len(files), skipped=len(files) - len(todo), scored=totals["scored"],
                             rejected=totals["rejected"], audio_s=totals["audio_s"],
                             wall_s=time.perf_counter() - started, rejects=all_rejects)
    for path, why in all_rejects:
        log(f"rejected {path}: {why}")
    return summary


def score_streamed(path: str, samples: int, inference: Inference, config: ScoreConfig,
                   audio: AudioConfig) -> dict[str, Any]:
    """Score a file too long to hold (:data:`ScoreConfig.max_in_memory_s`): decode it again in
    the sandbox and run the model on :func:`streamed_rows` a batch at a time, keeping only the
    centre logit and the windows' running sum and maximum. Same row as an in-memory file."""
    centre, total, peak, count = 0.0, 0.0, -np.inf, 0
    batch: list[tuple[bool, np.ndarray]] = []

    def flush() -> None:
        nonlocal centre, total, peak, count
        if batch:
            logits = inference.logits(np.stack([row for _, row in batch]))
            for (is_centre, _), logit in zip(batch, logits, strict=True):
                if is_centre:
                    centre = float(logit)
                else:
                    total, peak, count = total + float(logit), max(peak, float(logit)), count + 1
            batch.clear()

    blocks = decode_chunks(local_path(path), audio.sample_rate, config=config.decode, isolated=True)
    for row in streamed_rows(blocks, samples, config.hop_s, audio):
        batch.append(row)
        if len(batch) >= config.batch_size:
            flush()
    flush()
    return {"path": path, "duration_s": samples / audio.sample_rate, "n_windows": count,
            "spoof_logit_center": centre, "spoof_logit_window_mean": total / count,
            "spoof_logit_window_max": peak}


def bounded_map(fn: Callable[[Any], Any], items: Sequence[Any], executor: Executor | None,
                max_in_flight: int) -> Iterator[Any]:
    """Like :func:`dfpipe.stage_kit.map_shards`, but with at most ``max_in_flight`` tasks
    submitted and not yet consumed (results in completion order), so a huge input never
    piles results up in memory."""
    if executor is None:
        yield from map(fn, items)
        return
    queue = iter(items)
    pending = {executor.submit(fn, item) for item in itertools.islice(queue, max_in_flight)}
    while pending:
        finished, pending = _wait_first(pending, executor)
        for future in finished:
            pending.update(executor.submit(fn, item) for item in itertools.islice(queue, 1))
            yield future.result()


def _wait_first(futures: set[Any], executor: Executor) -> tuple[set[Any], set[Any]]:
    if hasattr(executor, "gather"):  # a distributed.Client
        from distributed import wait

        result = wait(list(futures), return_when="FIRST_COMPLETED")
    else:
        import concurrent.futures

        result = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
    return set(result.done), set(result.not_done)


def _listed(out: str) -> set[str]:
    """Paths already in ``out`` (scored or rejected)."""
    listed: set[str] = set()
    for kind, column in (("scores", "path"), ("rejects", "source_uri")):
        for part in sorted(glob.glob(os.path.join(out, kind, "part-*.parquet"))):
            listed.update(pq.read_table(part, columns=[column]).column(column).to_pylist())
    return listed


def _write_part(out: str, kind: str, key: str, table: pa.Table) -> None:
    """Commit ``table`` as ``out/kind/part-<hash of its key column>.parquet`` (atomically)."""
    folder = os.path.join(out, kind)
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, f"part-{stable_id(*table.column(key).to_pylist(), length=16)}.parquet")
    atomic_write(final, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
