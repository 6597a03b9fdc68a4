"""Declarative studies: one YAML file names the corpora, their roles and the run matrix.

A study file is validated by :class:`Study` and expanded by :func:`plan_study` into the
work it implies, in stage order: corpora to ingest, (corpus, split, condition) triples to
make and to compute features for, and the runs to train (architecture × training set ×
seed). The conditions are *derived* from the training and evaluation sets the runs use,
never declared twice, and only for the splits those sets read: an ASVspoof5 train set in
``corrupt+mp3_128k`` conditions the ``train`` split, not the million clips of the corpus.

Example (``studies/demo.yaml`` is the full one)::

    name: demo
    corpora:
      demo: {format: demo, size: full, seed: 0}
    train_sets:
      flac_clean: {corpus: demo, condition: flac}
      mp3_corrupt: {corpus: demo, condition: corrupt+mp3_64k, balance: undersample}
    eval_sets:
      test: {corpus: demo, condition: flac, split: test}
      ood: {corpus: demo, condition: flac, split: ood, every: 2}
      test_polished: {corpus: demo, condition: polished, split: test}
    experiments:
      - {name: main, architectures: [mel-cnn, mel-multiscale], train: [flac_clean, mp3_corrupt]}
      - {name: tuned, architectures: [mel-cnn], train: [flac_clean], epochs: 2, seeds: [1, 2],
         training: {lr: 1.0e-3}, init_from: "main:mp3_corrupt@mel-cnn@3"}
    epochs: {mel-cnn: 4, mel-multiscale: 4}

An eval set scored at every epoch can be costly (ASVspoof5 eval: 681 K clips):
``every: N`` scores it at epochs N, 2N, ... and always at the run's last epoch
(:meth:`Study.eval_every`; default 1, the study's rule of every epoch).

A train set may also name the eval sets that are its runs' ``test`` and ``ood``
(``test: asv5_eval``, :meth:`Study.eval_roles`); an experiment may change the WavLM models'
``model: {unfreeze_layers: none | [first, last] | all-but-first}``. Unset fields take
:class:`dfpipe.config.TrainConfig`'s and the architectures' defaults.

Paths in a study file may use ``${VAR}`` environment variables; relative paths are
relative to the study file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dfpipe.config import (
    POLISHED_SUFFIX,
    RAW_CONDITION,
    VAL_DATASET,
    TrainConfig,
    parse_unfreeze_layers,
)
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
    """An eval set of a study file: a slice of a corpus in one audio condition (and the base
    of a train set, :class:`TrainSetSpec`).

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


class EvalSetSpec(DataSetSpec):
    """An eval set: the data, and how often runs score it."""

    every: int = Field(default=1, ge=1)
    """Score this set every ``every`` epochs (and always at a run's last epoch); 1: every epoch."""


ROLES = ("test", "ood")
"""Dataset names a train set may point at one of the study's eval sets (its own held-out set
and OOD benchmark), so the metric SQL's roles hold for every run whatever it trained on."""


class TrainSetSpec(DataSetSpec):
    """A train set: the data, its class balancing and the eval sets that play its roles."""

    balance: str | None = None
    """:attr:`dfpipe.config.TrainConfig.balance` for every run on this set (unset: the recipe's)."""
    test: str | None = None
    """The eval set written as this set's runs' ``test`` (its own held-out set); unset: the
    eval set named ``test``, if any."""
    ood: str | None = None
    """As ``test``, for the dataset ``ood``."""

    @model_validator(mode="after")
    def _balance_is_known(self) -> TrainSetSpec:
        if self.balance is not None and self.balance not in TrainConfig.BALANCE_MODES:
            raise ValueError(f"balance must be one of {TrainConfig.BALANCE_MODES}, got {self.balance!r}")
        return self


class TrainingOverrides(_Strict):
    """Changes to the training recipe (:class:`dfpipe.config.TrainConfig`); unset fields keep
    the recipe's values (the study's block over the defaults, an experiment's over the study's)."""

    lr: float | None = Field(default=None, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, gt=0)
    val_fraction: float | None = Field(default=None, gt=0, lt=1)
    grad_clip: float | None = Field(default=None, gt=0)

    def apply(self, config: TrainConfig) -> TrainConfig:
        return dataclasses.replace(config, **self.model_dump(exclude_none=True))


class ModelOverrides(_Strict):
    """Changes to an architecture's default config (:mod:`dfpipe.config`); unset: the default."""

    unfreeze_layers: str | tuple[int, int] | None = None
    """WavLM models: ``none`` (frozen), ``[first, last]`` (0-based, inclusive) or ``all-but-first``."""

    @model_validator(mode="after")
    def _layers_parse(self) -> ModelOverrides:
        if isinstance(self.unfreeze_layers, str):
            try:
                parse_unfreeze_layers(self.unfreeze_layers)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    def apply(self, config: Any) -> Any:
        if self.unfreeze_layers is None:
            return config
        layers = self.unfreeze_layers
        return dataclasses.replace(config, unfreeze_layers=parse_unfreeze_layers(layers)
                                   if isinstance(layers, str) else layers)

    def describe(self) -> str:
        """The overrides as ``--dry-run`` shows them (empty: none)."""
        layers = self.unfreeze_layers
        if layers is None:
            return ""
        return f"unfreeze {layers if isinstance(layers, str) else f'{layers[0]}-{layers[1]}'}"


class Experiment(_Strict):
    """One block of the run matrix: every architecture × every named training set × seed,
    with this block's own epochs, seeds, model and recipe changes and warm start."""

    name: str
    architectures: list[str] = Field(min_length=1)
    train: list[str] = Field(min_length=1)
    """Names from ``train_sets``."""
    epochs: int | dict[str, int] | None = None
    """As the study's ``epochs``, for this block's runs (unset: the study's)."""
    seeds: list[int] | None = Field(default=None, min_length=1)
    """Unset: the study's ``seeds``."""
    model: ModelOverrides = ModelOverrides()
    training: TrainingOverrides = TrainingOverrides()
    """Over the study's ``training`` block."""
    init_from: str | None = None
    """``[<experiment>:]<train set>@<arch>[@epoch]``: every run of the block starts from the
    model weights of that run of this study (same seed when the study plans one, else its
    only run; ``experiment:`` picks among several) at that epoch (default: its last). The
    source is trained first."""

    @model_validator(mode="after")
    def _overrides_fit(self) -> Experiment:
        if self.model.unfreeze_layers is not None:
            others = [arch for arch in self.architectures if not arch.startswith("wavlm")]
            if others:
                raise ValueError(f"experiment {self.name!r}: unfreeze_layers applies to WavLM models, not {others}")
        if self.init_from is not None:
            parse_init_from(self.init_from)
        return self


class Study(_Strict):
    """A whole study: corpora → conditions → features → runs → metrics → report."""

    name: str
    corpora: dict[str, CorpusSpec] = Field(min_length=1)
    train_sets: dict[str, TrainSetSpec] = Field(min_length=1)
    eval_sets: dict[str, EvalSetSpec] = Field(min_length=1)
    """Dataset names in ``predictions``: ``test`` (in-distribution), ``ood`` and a polished
    variant such as ``test_polished`` are the roles the metric SQL reads (docs/metrics.md);
    a train set's ``test``/``ood`` rename its runs' sets to them (:meth:`eval_roles`)."""
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
        for name, spec in self.train_sets.items():
            for role in ROLES:
                target = getattr(spec, role)
                if target is not None and target not in self.eval_sets:
                    raise ValueError(f"train set {name!r} names {role} set {target!r}, not in eval_sets")
        for experiment in self.experiments:
            for train in experiment.train:
                if train not in self.train_sets:
                    raise ValueError(f"experiment {experiment.name!r} names train set {train!r}, not in train_sets")
            epochs = experiment.epochs if experiment.epochs is not None else self.epochs
            if isinstance(epochs, dict):
                missing = set(experiment.architectures) - set(epochs)
                if missing:
                    raise ValueError(f"epochs has no entry for {sorted(missing)}")
            if experiment.init_from is not None and parse_init_from(experiment.init_from)[1] not in self.train_sets:
                raise ValueError(f"experiment {experiment.name!r}: init_from {experiment.init_from!r} names a "
                                 "train set not in train_sets")
        return self

    def epochs_for(self, arch: str, experiment: Experiment | None = None) -> int:
        epochs = experiment.epochs if experiment is not None and experiment.epochs is not None else self.epochs
        if epochs is None:
            return TrainConfig().epochs_for(arch)
        return epochs if isinstance(epochs, int) else epochs[arch]

    def train_config(self, run: PlannedRun, init_from: str | None = None) -> TrainConfig:
        """The trainer's config for one planned run: epochs, seed, its train set's balancing,
        its sparse eval sets (:meth:`eval_every`), the study's then the experiment's recipe
        overrides, and (a warm-started run) the checkpoint URI of its source (``init_from``,
        which the flow knows once the source ran).

        Raises:
            ConfigError: a warm-started run without ``init_from``.
        """
        if (run.init_from is None) != (init_from is None):
            raise ConfigError(f"run {run.name}: init_from {init_from!r} does not match its plan ({run.init_from})")
        base = TrainConfig(epochs=run.epochs, seed=run.seed, balance=self.train_sets[run.train_set].balance,
                           init_from=init_from, eval_every=self.eval_every(run.train_set))
        return run.training.apply(self.training.apply(base))

    def data_spec(self, name: str) -> str:
        """A train or eval set as ``CORPUS:CONDITION[@SPLIT]`` text, as the study file says it
        (for display, e.g. ``--dry-run``); runs take :meth:`train_data` / :meth:`eval_data`."""
        spec = {**self.train_sets, **self.eval_sets}[name]
        return f"{spec.corpus}:{spec.condition}" + (f"@{spec.split}" if spec.split else "")

    def train_data(self, name: str) -> DataSpec:
        """Train set ``name`` as the trainer's data spec (split unset: the recipe's
        :attr:`~dfpipe.config.TrainConfig.default_train_split`)."""
        return self.train_sets[name].to_data_spec(TrainConfig.default_train_split)

    def eval_roles(self, train_set: str | None = None) -> dict[str, str]:
        """``{dataset name: eval set name}`` for the runs on ``train_set``.

        Every eval set is written under its own name, except where the train set names one
        for a role (``test: asv5_eval``): that set is written as the role (``test``), its
        polished twin ``<set>_polished`` (when the study has one) as ``<role>_polished``,
        and the sets that had those names are not scored for these runs.
        """
        spec = self.train_sets.get(train_set) if train_set else None
        renamed: dict[str, str | None] = {}  # eval set -> its dataset name here (None: not scored)
        for role in ROLES:
            source = getattr(spec, role) if spec is not None else None
            for suffix in ("", POLISHED_SUFFIX) if source is not None else ():
                renamed.setdefault(role + suffix, None)  # displaced, unless it is the source itself
                if source + suffix in self.eval_sets:
                    renamed[source + suffix] = role + suffix
        return {dataset: name for name in self.eval_sets if (dataset := renamed.get(name, name)) is not None}

    def eval_data(self, train_set: str | None = None) -> dict[str, DataSpec]:
        """The eval sets of the runs on ``train_set`` by dataset name (:meth:`eval_roles`), as
        data specs (split unset: every clip)."""
        return {dataset: self.eval_sets[name].to_data_spec(None) for dataset, name in self.eval_roles(train_set).items()}

    def eval_every(self, train_set: str | None = None) -> dict[str, int]:
        """``{dataset name: N}`` for the eval sets of the runs on ``train_set`` scored every N
        > 1 epochs (:attr:`EvalSetSpec.every`; the others, and ``val``, every epoch)."""
        return {dataset: self.eval_sets[name].every for dataset, name in self.eval_roles(train_set).items()
                if self.eval_sets[name].every > 1}

    def used_data(self, train_set: str) -> list[DataSlice]:
        """``(corpus, split, condition)`` of every set a run on ``train_set`` reads: the train
        set (split unset: :attr:`~dfpipe.config.TrainConfig.default_train_split`) and its eval
        sets (:meth:`eval_roles`; split unset: ``None``, every clip)."""
        spec = self.train_sets[train_set]
        used = [(spec.corpus, spec.split or TrainConfig.default_train_split, spec.condition)]
        for name in self.eval_roles(train_set).values():
            used.append((self.eval_sets[name].corpus, self.eval_sets[name].split, self.eval_sets[name].condition))
        return used

    def arch_config(self, arch: str, model: ModelOverrides | None = None) -> Any:
        """``arch``'s default config, pointed at ``wavlm_path`` for the WavLM models and with
        ``model``'s overrides; ``None`` (the defaults) when neither changes it."""
        wavlm = arch.startswith("wavlm") and self.wavlm_path
        if not wavlm and (model is None or model == ModelOverrides()):
            return None
        from dfpipe.models import default_config  # torch: only when a changed config is planned

        config = default_config(arch)
        if wavlm:
            config = dataclasses.replace(config, wavlm=self.wavlm_path)
        return model.apply(config) if model is not None else config


def parse_init_from(text: str) -> tuple[str | None, str, str, int | None]:
    """``[<experiment>:]<train set>@<arch>[@epoch]`` -> ``(experiment or None, train set,
    arch, epoch or None)``; the experiment picks one run where the study has several.

    Raises:
        ValueError: another shape (pydantic reports it with the field).
    """
    experiment, _, rest = text.rpartition(":")
    parts = rest.split("@")
    if len(parts) not in (2, 3) or not all(parts) or (len(parts) == 3 and not parts[2].isdigit()) or (
            _ and not experiment):
        raise ValueError(f"init_from {text!r}: expected [<experiment>:]<train set>@<arch>[@epoch]")
    epoch = int(parts[2]) if len(parts) == 3 else None
    if epoch == 0:
        raise ValueError(f"init_from {text!r}: epochs count from 1")
    return experiment or None, parts[0], parts[1], epoch


@dataclass(frozen=True)
class PlannedRun:
    """One training run the study implies."""

    experiment: str
    arch: str
    train_set: str
    seed: int
    epochs: int
    model: ModelOverrides
    training: TrainingOverrides
    init_from: tuple[str, int] | None = None
    """``(source run name, epoch)``: the planned run whose checkpoint starts this one."""

    @property
    def name(self) -> str:
        """Unique within a plan: ``experiment/arch/train set/seedN``."""
        return f"{self.experiment}/{self.arch}/{self.train_set}/seed{self.seed}"


DataSlice = tuple[str, str | None, str]
"""``(corpus, split, condition)``; split ``None``: every clip of the corpus."""


@dataclass(frozen=True)
class StudyPlan:
    """Everything a study will do, in stage order (what ``--dry-run`` prints)."""

    corpora: tuple[str, ...]
    conditions: tuple[DataSlice, ...]
    """What the conditions stage makes (raw excluded): one triple per (corpus, split,
    condition) a planned run reads, or only ``(corpus, None, condition)`` when a run reads
    every clip of it; sorted by corpus, condition, split."""
    features: tuple[DataSlice, ...]
    """As ``conditions``, raw included: what the features stage computes."""
    runs: tuple[PlannedRun, ...]
    """Warm-started runs come after their sources."""


def splits_by_pair(slices: Iterable[DataSlice]) -> dict[tuple[str, str], tuple[str, ...] | None]:
    """``{(corpus, condition): splits}`` of ``slices`` (``None``: every clip), for the stages'
    ``splits`` filter (:func:`dfpipe.conditions.plan_conditions`, :func:`dfpipe.features.plan_features`)."""
    grouped: dict[tuple[str, str], tuple[str, ...] | None] = {}
    for corpus, split, condition in slices:
        known = grouped.get((corpus, condition), ())
        grouped[(corpus, condition)] = None if split is None or known is None else tuple(sorted({*known, split}))
    return grouped


def _slices(used: Iterable[DataSlice]) -> tuple[DataSlice, ...]:
    """``used`` deduplicated, a pair read whole replacing its splits, in a stable order."""
    return tuple(sorted(((corpus, split, condition) for (corpus, condition), splits in splits_by_pair(used).items()
                         for split in (splits or (None,))),
                        key=lambda s: (s[0], s[2], s[1] or "")))


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
    """Expand a study into its stages' work, deduplicated, in a stable order.

    Raises:
        ConfigError: an ``init_from`` that names no planned run (or several), an epoch past
            the source's last, or a circle of warm starts.
    """
    data_sets = [*study.train_sets.values(), *study.eval_sets.values()]
    runs: dict[tuple, tuple[PlannedRun, str | None]] = {}
    for experiment in study.experiments:
        for arch in experiment.architectures:
            for train in experiment.train:
                for seed in experiment.seeds or study.seeds:
                    run = PlannedRun(experiment.name, arch, train, seed, study.epochs_for(arch, experiment),
                                     experiment.model, experiment.training)
                    # A run shared by two experiments is listed under the first. Epochs are not
                    # part of a run's identity (a finished run can be extended): two epoch
                    # counts for one run would train it once and extend it.
                    key = (arch, train, seed, run.model, run.training, experiment.init_from)
                    if key in runs and runs[key][0].epochs != run.epochs:
                        raise ConfigError(f"runs {runs[key][0].name} and {run.name} are one run with "
                                          f"{runs[key][0].epochs} and {run.epochs} epochs; give them one count")
                    runs.setdefault(key, (run, experiment.init_from))
    resolved = [dataclasses.replace(run, init_from=_resolve_init_from(run, ref, [r for r, _ in runs.values()]))
                for run, ref in runs.values()]
    features = _slices(used for train_set in dict.fromkeys(run.train_set for run in resolved)
                       for used in study.used_data(train_set))
    return StudyPlan(
        corpora=tuple(sorted({spec.corpus for spec in data_sets})),
        conditions=tuple(s for s in features if s[2] != RAW_CONDITION),
        features=features,
        runs=_sources_first(resolved),
    )


def _resolve_init_from(run: PlannedRun, ref: str | None, runs: list[PlannedRun]) -> tuple[str, int] | None:
    """The planned run (and epoch) that ``ref`` (``<train set>@<arch>[@epoch]``) names for ``run``."""
    if ref is None:
        return None
    experiment, train_set, arch, epoch = parse_init_from(ref)
    matches = [r for r in runs if (r.train_set, r.arch) == (train_set, arch) and r != run
               and experiment in (None, r.experiment)]
    same_seed = [r for r in matches if r.seed == run.seed]
    candidates = same_seed or matches
    if len(candidates) != 1:
        found = "no" if not candidates else f"{len(candidates)} ({', '.join(r.name for r in candidates)})"
        raise ConfigError(f"run {run.name}: init_from {ref!r} must name one run of this study; it names {found}")
    source = candidates[0]
    if epoch is not None and epoch > source.epochs:
        raise ConfigError(f"run {run.name}: init_from {ref!r} asks for epoch {epoch}, but {source.name} trains "
                          f"{source.epochs} epochs")
    return source.name, epoch or source.epochs


def _sources_first(runs: list[PlannedRun]) -> tuple[PlannedRun, ...]:
    """``runs`` in their order, except that each warm-started run follows its source.

    Raises:
        ConfigError: warm starts that go round in a circle.
    """
    by_name = {run.name: run for run in runs}
    ordered: dict[str, PlannedRun] = {}
    visiting: list[str] = []

    def visit(run: PlannedRun) -> None:
        if run.name in ordered:
            return
        if run.name in visiting:
            raise ConfigError(f"init_from goes round in a circle: {' -> '.join([*visiting, run.name])}")
        visiting.append(run.name)
        if run.init_from is not None:
            visit(by_name[run.init_from[0]])
        visiting.pop()
        ordered[run.name] = run

    for run in runs:
        visit(run)
    return tuple(ordered.values())


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
