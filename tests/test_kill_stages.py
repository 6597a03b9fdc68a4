"""Crash consistency of every stage: SIGKILL at a commit or between two, re-run, compare.

Each stage (ingest, conditions, features, training, lake scoring, ``score-archive``,
``metrics``) runs on a tiny real corpus (ffmpeg tones) in a child process that the lake's
own hooks SIGKILL at a chosen commit of :func:`dfpipe.lake.atomic_write`:

- ``DFPIPE_KILL_AFTER_COMMITS=N``: right after the N-th commit (a kill at a commit boundary);
- ``DFPIPE_KILL_BEFORE_COMMIT=N``: once the N-th temporary file is whole, before its rename
  (a kill between commits: an orphan temporary file stays on disk).

Then the stage runs again, uninterrupted, and everything it owns must equal an uninterrupted
run: every lake table (sorted rows), checkpoint bytes, metric tables, archive scores; no
duplicate keys, no row lost, and no temporary file listed by the lake or read by a reader.

Kill points are deterministic. Stages with a handful of commits are killed at every one;
training and metrics (11 and 16 commits) at a seeded sample that always holds the first
and the last. ``DFPIPE_KILL_TRIALS=all`` (or a number: kill points per stage and hook)
runs more; ``DFPIPE_KILL_REPORT=FILE`` writes the trial counts as JSON
(``benchmarks/bench_kill_stages.py`` runs both).

Children are forked from a multiprocessing fork server that imported dfpipe once, so a trial
costs the stage's own work, not a fresh interpreter and torch import.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from audio_helpers import write_clips
from ingest_fixtures import copy, tone

from dfpipe.archive_scoring import score_archive
from dfpipe.conditions.stage import run_conditions
from dfpipe.config import ConditionsConfig, FeaturesConfig, IngestConfig, ScoreConfig, TrainConfig
from dfpipe.features import run_features
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import (
    KILL_AFTER_COMMITS_ENV,
    KILL_BEFORE_COMMIT_ENV,
    Lake,
    commit_count,
    is_temporary,
)
from dfpipe.metrics import compute_metrics
from dfpipe.schemas import TABLES
from dfpipe.score import score
from dfpipe.train import train

CORPUS = "kill"
INGEST = IngestConfig(files_per_shard=4)
CONDITION = "corrupt+mp3_64k"  # lossy and randomly corrupted: the hardest to repeat exactly
CONDITIONS = ConditionsConfig(clips_per_shard=4)
FEATURES = FeaturesConfig(clips_per_shard=4)
TRAIN = TrainConfig(epochs=2, batch_size=4, lr=1e-3, device="cpu")
SCORE = ScoreConfig(files_per_part=3, files_per_task=1, device="cpu")
HOOKS = (KILL_AFTER_COMMITS_ENV, KILL_BEFORE_COMMIT_ENV)

TRIALS_ENV = "DFPIPE_KILL_TRIALS"
"""Kill points per sampled stage and hook (default ``SAMPLED_TRIALS``); ``all``: every commit."""
REPORT_ENV = "DFPIPE_KILL_REPORT"
"""A JSON file to write the trial counts to."""
SAMPLED_TRIALS = 3
SAMPLED = {"train", "metrics"}
SAMPLE_SEED = 16
CHILD_TIMEOUT_S = 120
TIMING_COLUMNS = {"wall_s"}  # measured, never repeated exactly
LOGIT_RTOL, LOGIT_ATOL = 1e-5, 1e-6
"""score-archive batches windows across files: after a resume a file's windows may share a
forward pass with other neighbours, and float32 logits then differ in the last bits."""

KEYS = {  # the grain of each table: a key seen twice is a duplicated row
    "clips": ("clip_id",),
    "rejects": ("stage", "source_uri", "condition"),
    "audio": ("clip_id", "condition"),
    "features": ("clip_id", "condition", "frontend_version"),
    "runs": ("run_id",),
    "epochs": ("run_id", "epoch"),
    "predictions": ("run_id", "epoch", "dataset", "clip_id", "condition"),
    "archive/scores": ("path",),
    "archive/rejects": ("source_uri",),
}


# -- the stages, as a child runs them ------------------------------------------------------
def _lake(work: str) -> str:
    return os.path.join(work, "lake")


def _run_id(work: str) -> str:
    return Lake(_lake(work)).read("runs", columns=["run_id"]).column("run_id")[0].as_py()


def _ingest(work: str, corpus: str) -> None:
    ingest(_lake(work), CORPUS, corpus_entries("folder", corpus, INGEST), INGEST)


def _conditions(work: str, corpus: str) -> None:
    run_conditions(_lake(work), CORPUS, [CONDITION], CONDITIONS)


def _features(work: str, corpus: str) -> None:
    run_features(_lake(work), CORPUS, "raw", FEATURES)


def _train(work: str, corpus: str) -> None:
    train(TRAIN, _lake(work), arch="mel-cnn", train_data=CORPUS, eval_data={"test": f"{CORPUS}@test"},
          log=lambda line: None)


def _score(work: str, corpus: str) -> None:
    score(_lake(work), _run_id(work), f"{CORPUS}@test", dataset="rescored", epoch=1, config=SCORE)


def _score_archive(work: str, corpus: str) -> None:
    (checkpoint,) = Path(_lake(work), "checkpoints").glob("*/epoch-002.pt")
    score_archive([corpus], str(checkpoint), os.path.join(work, "archive"), config=SCORE, progress=False,
                  log=lambda line: None)


def _metrics(work: str, corpus: str) -> None:
    compute_metrics(_lake(work))


STAGES: dict[str, Callable[[str, str], None]] = {
    "ingest": _ingest, "conditions": _conditions, "features": _features, "train": _train,
    "score": _score, "score-archive": _score_archive, "metrics": _metrics,
}
"""In pipeline order: each stage's input is the lake the stages before it left."""
OWNS = {  # what each stage writes: compared after every trial
    "ingest": ["clips", "rejects"], "conditions": ["audio", "rejects"], "features": ["features", "rejects"],
    "train": ["runs", "epochs", "predictions", "checkpoints"], "score": ["predictions"],
    "score-archive": ["archive/scores", "archive/rejects"], "metrics": ["metrics"],
}


def _child(stage: str, work: str, corpus: str, hook: str, commit: int) -> None:
    """Run ``stage`` in a process the ``hook`` kills at its ``commit``-th commit."""
    os.environ[hook] = str(commit)
    STAGES[stage](work, corpus)


# -- what a reader sees --------------------------------------------------------------------
def _sorted(data: pa.Table, work: str) -> pa.Table:
    """``data`` minus timing columns, with ``work`` (the trial's folder, part of stored URIs
    such as ``epochs.checkpoint_uri``) written ``WORK``, in a canonical order (by every
    string and number column)."""
    data = data.drop_columns([c for c in data.column_names if c in TIMING_COLUMNS])
    for i, f in enumerate(data.schema):
        if pa.types.is_string(f.type):
            data = data.set_column(i, f, pc.replace_substring(data.column(i), work, "WORK"))
    keys = [f.name for f in data.schema
            if pa.types.is_string(f.type) or pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    return data.sort_by([(key, "ascending") for key in keys])


def _parquet_folder(folder: Path, pattern: str) -> pa.Table | None:
    # The readers' own patterns (archive_scoring._listed, metric_tables.attach_metrics):
    # names ending in .parquet, which a temporary name never does.
    parts = sorted(folder.glob(pattern))
    return pa.concat_tables(pq.read_table(p) for p in parts) if parts else None


def _view(work: str, what: str) -> dict[str, object]:
    """What readers see of ``what`` (a lake table, ``checkpoints``, ``metrics`` or an
    ``archive/<kind>`` folder): ``{name: sorted table or file bytes}``."""
    root = Path(work)
    if what in TABLES:
        lake = Lake(_lake(work))
        assert not [f for f in lake.files(what) if is_temporary(f)], f"{what}: the lake lists a temporary file"
        return {what: _sorted(lake.read(what), work)}
    if what == "checkpoints":
        folder = root / "lake" / "checkpoints"
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.pt"))}
    if what == "metrics":
        folder, database = root / "lake" / "metrics", root / "lake" / "metrics.duckdb"
        view: dict[str, object] = {p.stem: _sorted(pq.read_table(p), work) for p in sorted(folder.glob("*.parquet"))}
        if database.exists():
            with duckdb.connect(str(database), read_only=True) as con:
                view["metrics.duckdb"] = con.execute(
                    "select table_name, table_type from information_schema.tables order by all").fetchall()
        return view
    data = _parquet_folder(root / what, "part-*.parquet")
    return {what: None if data is None else _sorted(data, work)}


def _temporaries(work: str) -> list[Path]:
    return [p for p in Path(work).rglob("*") if is_temporary(p.name)]


def _key_counts(what: str, data: object) -> Counter[tuple]:
    if what not in KEYS or data is None:
        return Counter()
    assert isinstance(data, pa.Table)
    return Counter(zip(*(data.column(k).to_pylist() for k in KEYS[what]), strict=True))


def _assert_same(stage: str, got: dict[str, object], want: dict[str, object], tally: Counter[str]) -> None:
    """``got`` equals ``want`` (archive logits to ``LOGIT_RTOL``/``ATOL``); counts lost and duplicated keys."""
    for what, expected in want.items():
        keys_got, keys_want = _key_counts(what, got.get(what)), _key_counts(what, expected)
        tally["rows_lost"] += sum((keys_want - keys_got).values())
        tally["rows_duplicated"] += sum(n - 1 for n in keys_got.values() if n > 1)
    assert sorted(got) == sorted(want), f"{stage}: files differ"
    for what, expected in want.items():
        actual = got[what]
        if what == "archive/scores" and expected is not None and actual is not None:
            logits = [c for c in expected.column_names if c.startswith("spoof_logit")]
            assert actual.drop_columns(logits).equals(expected.drop_columns(logits)), what
            for name in logits:
                np.testing.assert_allclose(actual.column(name).to_numpy(), expected.column(name).to_numpy(),
                                           rtol=LOGIT_RTOL, atol=LOGIT_ATOL, err_msg=name)
        elif isinstance(expected, pa.Table):
            assert isinstance(actual, pa.Table) and actual.equals(expected), (
                f"{stage}: {what} differs ({actual.num_rows if isinstance(actual, pa.Table) else actual} rows vs "
                f"{expected.num_rows})")
        else:
            assert actual == expected, f"{stage}: {what} differs"


def _owned(stage: str, work: str) -> dict[str, object]:
    view: dict[str, object] = {}
    for what in OWNS[stage]:
        view.update(_view(work, what))
    return view


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split folder corpus: 8 train and 4 test tones, half real, half fake; one byte copy
    (a duplicate) and one empty file (rejects)."""
    root = tmp_path_factory.mktemp("kill-corpus") / "corpus"
    for i in range(12):
        split, label = ("train" if i < 8 else "test"), ("real" if i % 2 else "fake/gen")
        suffix = ".flac" if i % 3 == 0 else ".wav"
        tone(root / split / label / f"t{i:02}{suffix}", 200 + 37 * i, noise=i % 2 == 1)
    copy(root / "train" / "real" / "t01.wav", root / "train" / "real" / "t01_copy.wav")
    (root / "test" / "real" / "empty.wav").write_bytes(b"")
    return root


class Pipeline:
    """The uninterrupted runs, made in this process on demand: each stage on a copy of the
    work folder the stage before it left (so a test of ingest never waits for training)."""

    def __init__(self, corpus: Path, base: Path) -> None:
        self.corpus, self.base = corpus, base
        self.runs: dict[str, tuple[Path, Path, int]] = {}

    def __getitem__(self, stage: str) -> tuple[Path, Path, int]:
        """``(input work folder, output work folder, commits made)`` of ``stage``."""
        order = list(STAGES)
        if stage not in self.runs:
            if order.index(stage) == 0:
                previous = self.base / "empty"
                previous.mkdir()
            else:
                previous = self._input_after(order[order.index(stage) - 1])
            done = self.base / stage
            shutil.copytree(previous, done)
            before = commit_count()
            STAGES[stage](str(done), str(self.corpus))
            self.runs[stage] = (previous, done, commit_count() - before)
        return self.runs[stage]

    def _input_after(self, stage: str) -> Path:
        done = self[stage][1]
        if stage != "ingest":
            return done
        # plus a clip whose file does not decode: the later stages reject it
        prepared = self.base / "ingest+broken"
        if not prepared.exists():
            shutil.copytree(done, prepared)
            broken = self.base / "broken.wav"
            broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
            write_clips(Lake(_lake(str(prepared))), CORPUS, [broken])
        return prepared


@pytest.fixture(scope="module")
def pipeline(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(corpus, tmp_path_factory.mktemp("kill-pipeline"))


@pytest.fixture(scope="module")
def forkserver() -> Iterator[multiprocessing.context.BaseContext]:
    for hook in HOOKS:  # the server's environment is every child's
        assert hook not in os.environ, f"{hook} is set in the test environment"
    context = multiprocessing.get_context("forkserver")
    # What this module imported of dfpipe (torch, pyarrow, PyAV...): imported once, by the
    # server. Not this module itself: the server does not see the test folder on its path.
    context.set_forkserver_preload(sorted(m for m in sys.modules if m.split(".")[0] == "dfpipe"))
    yield context


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, int]] = {}
    yield counts
    if path := os.environ.get(REPORT_ENV):
        Path(path).write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")


def kill_points(stage: str, commits: int) -> list[int]:
    """The commits to kill ``stage`` at: all, or a seeded sample holding the first and the last."""
    every = list(range(1, commits + 1))
    wanted = os.environ.get(TRIALS_ENV)
    if wanted == "all" or (wanted is None and stage not in SAMPLED):
        return every
    n = int(wanted) if wanted else SAMPLED_TRIALS
    if n >= commits:
        return every
    return sorted({1, commits, *random.Random(f"{SAMPLE_SEED}-{stage}").sample(range(2, commits), max(n - 2, 0))})


# -- the test ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_killed_at_or_between_commits_resumes_to_the_same_tables(
        stage, pipeline, corpus, forkserver, report, tmp_path):
    before, reference, commits = pipeline[stage]
    assert commits >= 1, f"{stage} committed nothing"
    want = _owned(stage, str(reference))
    tally: Counter[str] = Counter()
    for hook in HOOKS:
        for commit in kill_points(stage, commits):
            work = tmp_path / f"{hook}-{commit}"
            shutil.copytree(before, work)
            child = forkserver.Process(target=_child, args=(stage, str(work), str(corpus), hook, commit))
            child.start()
            child.join(CHILD_TIMEOUT_S)
            if child.exitcode is None:
                child.kill()
                child.join()
            assert child.exitcode == -signal.SIGKILL, f"{stage} {hook}={commit}: exit {child.exitcode}"
            orphans = _temporaries(str(work))
            if hook == KILL_BEFORE_COMMIT_ENV:  # killed between write and rename: one orphan, unread
                assert len(orphans) == 1, orphans
            else:
                assert orphans == [], orphans
            _owned(stage, str(work))  # readers of the half-done work ignore the orphan
            STAGES[stage](str(work), str(corpus))
            _assert_same(stage, _owned(stage, str(work)), want, tally)
            tally["trials"] += 1
            tally["orphans_left_unread"] += len(orphans)
    report[stage] = {"commits": commits, **tally}
    assert tally["rows_lost"] == tally["rows_duplicated"] == 0
