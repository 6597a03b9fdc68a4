"""Declarative studies: one YAML file names the corpora, their roles and the run matrix.

A study file is validated by :class:`Study` and expanded by :func:`plan_study` into the
work it implies, in stage order: corpora to ingest, (corpus, condition) pairs to make,
features to compute, and the runs to train (architecture × training set × seed). The
conditions are *derived* from the training and evaluation sets, never declared twice.

Example (``studies/demo.yaml`` is the full one)::

    name: demo
    corpora:
      demo: {format: demo, size: full, seed: 0}
    train_sets:
      flac_clean: {corpus: demo, condition: flac}
      mp3_corrupt: {corpus: demo, condition: corrupt+mp3_64k}
    eval_sets:
      test: {corpus: demo, condition: flac, split: test}
      ood: {corpus: demo, condition: flac, split: ood}
      test_polished: {corpus: demo, condition: polished, split: test}
    experiments:
      - {name: main, architectures: [mel-cnn, mel-multiscale], train: [flac_clean, mp3_corrupt]}
    epochs: {mel-cnn: 4, mel-multiscale: 4}

Paths in a study file may use ``${VAR}`` environment variables; relative paths are
relative to the study file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dfpipe.config import RAW_CONDITION, VAL_DATASET, TrainConfig
from dfpipe.errors import ConfigError
from dfpipe.lake import atomic_write, stable_id

if TYPE_CHECKING:
    from dfpipe.clipsets import DataSpec

CorpusFormat = Literal["demo", "folder", "csv", "in-the-wild", "deepfake-eval-2024", "asvspoof5"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusSpec(_Strict):
    """Where a corpus comes from. ``format: demo`` builds the built-in corpus."""

    format: CorpusFormat
    path: str | None = None
    """Corpus root (not for ``demo``, which is built into the demo cache)."""
    size: Literal["small", "full"] = "full"
    """``demo`` only: which size to build."""
    seed: int = 0
    """``demo`` only: the build seed."""
    allow_outside_root: bool = False
    sample: dict[str, int] | None = None
    """``demo`` only: ingest at most this many clips per split (``{train: 400, ...}``),
    half per label, a seeded draw: sizes a CPU demo without rebuilding the corpus."""

    @model_validator(mode="after")
    def _path_matches_format(self) -> CorpusSpec:
        if self.format == "demo" and self.path is not None:
            raise ValueError("format 'demo' is built, not read: remove 'path'")
        if self.format != "demo" and not self.path:
            raise ValueError(f"format {self.format!r} needs a 'path'")
        if self.sample is not None and self.format != "demo":
            raise ValueError("'sample' applies to the demo corpus only (dfpipe never rewrites your manifests)")
        if self.sample is not None and any(n < 2 for n in self.sample.values()):
            raise ValueError(f"'sample' sizes must be >= 2 (one per label), got {self.sample}")
        return self


class DataSetSpec(_Strict):
    """A train or eval set of a study file: a slice of a corpus in one audio condition.

    What runs take is a :class:`dfpipe.clipsets.DataSpec`, built by :meth:`to_data_spec`.
    """

    corpus: str
    condition: str = RAW_CONDITION
    split: str | None = None
    """Only clips of this split (``None``: training sets use ``train``, eval sets all clips)."""

    def to_data_spec(self, default_split: str | None) -> DataSpec:
        """This set as the trainer's :class:`~dfpipe.clipsets.DataSpec` (``split`` unset:
        ``default_split``, ``None`` = every clip)."""
        from dfpipe.clipsets import DataSpec  # torch: only when runs are built

        return DataSpec(corpus=self.corpus, condition=self.condition, split=self.split or default_split)


class Experiment(_Strict):
    """One block of the run matrix: every architecture × every named training set."""

    name: str
    architectures: list[str] = Field(min_length=1)
    train: list[str] = Field(min_length=1)
    """Names from ``train_sets``."""


class TrainingOverrides(_Strict):
    """Changes to the study's training recipe (:class:`dfpipe.config.TrainConfig`); unset
    fields keep the recipe's values."""

    lr: float | None = Field(default=None, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, gt=0)

    def apply(self, config: TrainConfig) -> TrainConfig:
        return dataclasses.replace(config, **self.model_dump(exclude_none=True))


class Study(_Strict):
    """A whole study: corpora → conditions → features → runs → metrics → report."""

    name: str
    corpora: dict[str, CorpusSpec] = Field(min_length=1)
    train_sets: dict[str, DataSetSpec] = Field(min_length=1)
    eval_sets: dict[str, DataSetSpec] = Field(min_length=1)
    """Dataset names in ``predictions``: ``test`` (in-distribution), ``ood`` and a polished
    variant such as ``test_polished`` are the roles the metric SQL reads (docs/metrics.md)."""
    experiments: list[Experiment] = Field(min_length=1)
    epochs: int | dict[str, int] | None = None
    """Epochs for every run, or per architecture; unset: the recipe's own per-architecture
    value (:meth:`dfpipe.config.TrainConfig.epochs_for`: 50 mel, 15 WavLM, as in the study)."""
    seeds: list[int] = Field(default=[0], min_length=1)
    training: TrainingOverrides = TrainingOverrides()
    wavlm_path: str | None = None
    """Local folder or Hugging Face cache name of WavLM-Large, for the WavLM architectures."""

    @model_validator(mode="after")
    def _references_exist(self) -> Study:
        for name, spec in {**self.train_sets, **self.eval_sets}.items():
            if spec.corpus not in self.corpora:
                raise ValueError(f"set {name!r} names corpus {spec.corpus!r}, not in corpora")
        if VAL_DATASET in self.eval_sets:
            raise ValueError(f"'{VAL_DATASET}' is the name of each run's own validation split; rename the eval set")
        for experiment in self.experiments:
            for train in experiment.train:
                if train not in self.train_sets:
                    raise ValueError(f"experiment {experiment.name!r} names train set {train!r}, not in train_sets")
            if isinstance(self.epochs, dict):
                missing = set(experiment.architectures) - set(self.epochs)
                if missing:
                    raise ValueError(f"epochs has no entry for {sorted(missing)}")
        return self

    def epochs_for(self, arch: str) -> int:
        if self.epochs is None:
            return TrainConfig().epochs_for(arch)
        return self.epochs if isinstance(self.epochs, int) else self.epochs[arch]

    def train_config(self, run: PlannedRun) -> TrainConfig:
        """The trainer's config for one planned run (epochs, seed, overrides)."""
        return self.training.apply(TrainConfig(epochs=run.epochs, seed=run.seed))

    def data_spec(self, name: str) -> str:
        """A train or eval set as ``CORPUS:CONDITION[@SPLIT]`` text, as the study file says it
        (for display, e.g. ``--dry-run``); runs take :meth:`train_data` / :meth:`eval_data`."""
        spec = {**self.train_sets, **self.eval_sets}[name]
        return f"{spec.corpus}:{spec.condition}" + (f"@{spec.split}" if spec.split else "")

    def train_data(self, name: str) -> DataSpec:
        """Train set ``name`` as the trainer's data spec (split unset: the recipe's
        :attr:`~dfpipe.config.TrainConfig.default_train_split`)."""
        return self.train_sets[name].to_data_spec(TrainConfig.default_train_split)

    def eval_data(self) -> dict[str, DataSpec]:
        """Every eval set by name, as data specs (split unset: every clip)."""
        return {name: spec.to_data_spec(None) for name, spec in self.eval_sets.items()}

    def arch_config(self, arch: str) -> Any:
        """``arch``'s default config, pointed at ``wavlm_path`` for the WavLM models;
        ``None`` (the defaults) otherwise."""
        if not (arch.startswith("wavlm") and self.wavlm_path):
            return None
        from dfpipe.models import default_config  # torch: only when a WavLM run is planned

        return dataclasses.replace(default_config(arch), wavlm=self.wavlm_path)


@dataclass(frozen=True)
class PlannedRun:
    """One training run the study implies."""

    experiment: str
    arch: str
    train_set: str
    seed: int
    epochs: int


@dataclass(frozen=True)
class StudyPlan:
    """Everything a study will do, in stage order (what ``--dry-run`` prints)."""

    corpora: tuple[str, ...]
    conditions: tuple[tuple[str, str], ...]  # (corpus, condition), raw excluded
    features: tuple[tuple[str, str], ...]  # (corpus, condition), raw included
    runs: tuple[PlannedRun, ...]


def load_study(path: str | os.PathLike[str]) -> Study:
    """Read and validate a study file, expanding ``${VAR}`` and resolving relative paths.

    Raises:
        ConfigError: naming the file and every invalid field.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(_expand_env(path.read_text(), path))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read study file {path}: {exc}") from exc
    try:
        study = Study.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"study file {path} is invalid:\n{exc}") from exc
    corpora = {
        name: spec.model_copy(update={"path": str((path.parent / spec.path).resolve())})
        if spec.path and not re.match(r"^[a-z0-9]+://", spec.path) else spec
        for name, spec in study.corpora.items()
    }
    return study.model_copy(update={"corpora": corpora})


def plan_study(study: Study) -> StudyPlan:
    """Expand a study into its stages' work, deduplicated, in a stable order."""
    data_sets = [*study.train_sets.values(), *study.eval_sets.values()]
    features = sorted({(spec.corpus, spec.condition) for spec in data_sets})
    runs: dict[tuple[str, str, int], PlannedRun] = {}
    for experiment in study.experiments:
        for arch in experiment.architectures:
            for train in experiment.train:
                for seed in study.seeds:  # a run shared by two experiments is listed under the first
                    runs.setdefault((arch, train, seed),
                                    PlannedRun(experiment.name, arch, train, seed, study.epochs_for(arch)))
    return StudyPlan(
        corpora=tuple(sorted({spec.corpus for spec in data_sets})),
        conditions=tuple(pair for pair in features if pair[1] != RAW_CONDITION),
        features=tuple(features),
        runs=tuple(runs.values()),
    )


def _expand_env(text: str, path: Path) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"study file {path} uses ${{{name}}}, which is not set in the environment")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", substitute, text)


def sample_manifest(manifest: str | os.PathLike[str], per_split: dict[str, int], seed: int) -> Path:
    """Write a stratified sample of a demo ``manifest.csv`` beside it; return its path.

    Each split keeps at most ``per_split[split]`` rows, half of each label, chosen by a
    seeded hash of the path (deterministic, stable when the corpus grows); splits not
    named are dropped. Rows keep their relative paths, so the sample reads the same files.
    """
    source = Path(manifest)
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    chosen = []
    for split, limit in sorted(per_split.items()):
        for label in ("bonafide", "spoof"):
            group = [r for r in rows if r["split"] == split and r["label"] == label]
            group.sort(key=lambda r: stable_id(str(seed), r["path"]))
            chosen.extend(group[: limit // 2])
    chosen.sort(key=lambda r: r["path"])
    key = stable_id(json.dumps(per_split, sort_keys=True), str(seed), length=8)
    target = source.with_name(f"manifest.sample-{key}.csv")

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(chosen)

    atomic_write(str(target), write)
    return target
