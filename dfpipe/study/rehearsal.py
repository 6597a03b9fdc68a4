"""Rehearsal: a study scaled down to run end to end on a laptop (``dfpipe study --rehearse``).

:func:`rehearse` takes a loaded :class:`~dfpipe.study.Study` and returns the same matrix
(every corpus, condition, eval set, experiment, architecture, seed and warm start) at
:class:`~dfpipe.config.RehearsalConfig` scale, with a line for each thing it scaled down:

- every run trains ``epochs`` epochs (1); a warm start from a named epoch starts from the
  source's last one instead (the source has only that one);
- every corpus is ingested at ``clips_per_split`` clips per split, labels keeping their
  shares (:attr:`dfpipe.config.IngestConfig.sample_per_split`, passed to every ingest);
- the batch size is ``batch_size`` (the study's and every experiment's);
- WavLM-Large is replaced by a random WavLM with its architecture flags and 24 layers, but
  tiny widths, built offline once into the dfpipe cache (:func:`rehearsal_wavlm`).

It is part of the study stage: it rewrites a study object and changes nothing but scale.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dfpipe.config import IngestConfig, RehearsalConfig, TrainConfig, cache_dir
from dfpipe.lake import stable_id
from dfpipe.study import Study, TrainingOverrides

_LAST_EPOCH = re.compile(r"@\d+$")
"""The ``@<epoch>`` ending of an ``init_from`` (:func:`dfpipe.study.parse_init_from`)."""


@dataclass(frozen=True)
class Rehearsal:
    """A study at rehearsal scale, the ingest settings it needs and what was scaled down."""

    study: Study
    ingest: IngestConfig
    scaled: tuple[str, ...]


def rehearse(study: Study, config: RehearsalConfig | None = None) -> Rehearsal:
    """``study`` at rehearsal scale (see the module docstring)."""
    config = config or RehearsalConfig()
    scaled = [f"epochs: every run {config.epochs} (study: {_epochs_text(study.epochs)})",
              f"corpora: at most {config.clips_per_split} clips per split, labels keeping their shares "
              + f"({', '.join(study.corpora)})",
              f"batch size: {config.batch_size} (study: {study.training.batch_size or 'the recipe default'})"]
    experiments = []
    for experiment in study.experiments:
        update: dict[str, object] = {"epochs": None, "training": _small_batch(experiment.training, None)}
        source = _LAST_EPOCH.sub("", experiment.init_from or "")
        if source != (experiment.init_from or ""):
            update["init_from"] = source
            scaled.append(f"experiment {experiment.name}: init_from {experiment.init_from} -> {source} "
                          f"(the source's last epoch, {config.epochs})")
        experiments.append(experiment.model_copy(update=update))
    update = {"epochs": config.epochs, "experiments": experiments,
              "training": _small_batch(study.training, config.batch_size)}
    if any(arch.startswith("wavlm") for e in study.experiments for arch in e.architectures):
        folder = rehearsal_wavlm(config)
        update["wavlm_path"] = str(folder)
        scaled.append(f"WavLM: a random 24-layer WavLM {config.wavlm_hidden_size} wide in {folder} "
                      f"(study: {study.wavlm_path or 'WavLM-Large'})")
    rehearsed = Study.model_validate({**study.model_dump(), **{k: _dump(v) for k, v in update.items()}})
    ingest = IngestConfig(sample_per_split=config.clips_per_split, sample_seed=config.seed)
    return Rehearsal(study=rehearsed, ingest=ingest, scaled=tuple(scaled))


def rehearsal_wavlm(config: RehearsalConfig) -> Path:
    """Folder of the rehearsal's random WavLM (``save_pretrained``), built offline on first use.

    WavLM-Large's configuration (:func:`dfpipe.models.wavlm.wavlm_large_config`) with the
    widths of ``config``: the same code paths (layer norm feature extractor, stable layer
    norm, 24 transformer layers) at a size that trains in seconds on a CPU.
    """
    import torch
    from transformers import WavLMConfig, WavLMModel
    from transformers.utils import logging as transformers_logging

    from dfpipe.models.wavlm import wavlm_large_config

    widths = {"hidden_size": config.wavlm_hidden_size, "num_attention_heads": config.wavlm_heads,
              "intermediate_size": config.wavlm_intermediate_size, "conv_dim": (config.wavlm_conv_dim,) * 7,
              # the positional conv and the relative position buckets, scaled to the width
              "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "num_buckets": 32,
              "max_bucket_distance": 64}
    wavlm_config = WavLMConfig(**{**wavlm_large_config().to_dict(), **widths})
    key = stable_id(json.dumps(wavlm_config.to_dict(), sort_keys=True, default=str), str(config.seed), length=12)
    folder = cache_dir() / f"rehearsal-wavlm-{key}"
    if not (folder / "config.json").is_file():
        torch.manual_seed(config.seed)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        transformers_logging.disable_progress_bar()  # a bar for one small file, amid dfpipe's output
        WavLMModel(wavlm_config).save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)  # a folder without config.json is a killed build
        os.rename(tmp, folder)  # whole, or not there
    return folder


def _small_batch(training: TrainingOverrides, batch_size: int | None) -> TrainingOverrides:
    return training.model_copy(update={"batch_size": batch_size})


def _epochs_text(epochs: int | dict[str, int] | None) -> str:
    if epochs is None:
        return f"the recipe's {TrainConfig.MEL_EPOCHS} mel / {TrainConfig.WAVLM_EPOCHS} WavLM"
    return str(epochs) if isinstance(epochs, int) else ", ".join(f"{a} {n}" for a, n in epochs.items())


def _dump(value: object) -> object:
    """Pydantic models and lists of them as plain data, for revalidation."""
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump() if hasattr(value, "model_dump") else value

