"""Checkpoint files: written atomically to the lake's filesystem, read with
``torch.load(weights_only=True)`` (so everything inside is tensors and plain containers).

Two kinds, both under ``LAKE/checkpoints/<run_id>/``:

- ``epoch-NNN.pt`` (one per epoch, kept): ``{"arch", "model_config", "frontend_config",
  "run_id", "epoch", "model"}``, plus ``"backbone_config"`` for WavLM models (the Hugging
  Face ``WavLMConfig`` dict, so the model is rebuilt with its exact architecture flags where
  its source folder is absent). What scoring needs; its size is ``runs.checkpoint_bytes``
  (the study's "checkpoint size": the model only).
- ``state-NNN.pt`` (latest only): ``{"epoch", "optimizer", "scaler"}``, what a killed run
  needs on top of the model to resume exactly (``scaler`` is ``{}`` where AMP was off).
"""

from __future__ import annotations

import io
from typing import Any

import fsspec
import torch

from dfpipe.errors import DfpipeError
from dfpipe.lake import write_bytes_atomic
from dfpipe.models import Detector, build_model, config_from_dict, config_to_dict


def to_bytes(payload: dict[str, Any]) -> bytes:
    """``torch.save`` into memory (the size of a checkpoint before it is written)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save(payload: dict[str, Any], uri: str) -> int:
    """Write ``payload`` to ``uri`` (path or fsspec URL) atomically; returns its size in bytes.

    The bytes go to a temporary name in the same folder, then are renamed into place
    (:func:`dfpipe.lake.atomic_write`), so a killed writer never leaves a truncated
    checkpoint under the final name.
    """
    data = to_bytes(payload)
    write_bytes_atomic(uri, data)
    return len(data)


def load(uri: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        DfpipeError: the file is missing or not a dfpipe checkpoint.
    """
    try:
        with fsspec.open(uri, "rb") as source:
            return torch.load(io.BytesIO(source.read()), map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise DfpipeError(f"checkpoint {uri} does not exist") from exc
    except (RuntimeError, EOFError, ValueError) as exc:
        raise DfpipeError(f"{uri} is not a readable dfpipe checkpoint: {exc}") from exc


def model_payload(model: Detector, *, frontend_config: dict[str, Any], run_id: str, epoch: int) -> dict[str, Any]:
    """What an ``epoch-NNN.pt`` holds: the model and everything needed to rebuild and feed it."""
    backbone = model.backbone_config()
    return {
        "arch": model.arch,
        "model_config": config_to_dict(model.config),
        "frontend_config": frontend_config,
        "run_id": run_id,
        "epoch": epoch,
        "model": model.state_dict(),
        **({} if backbone is None else {"backbone_config": backbone}),
    }


def run_dir(lake_uri: str, run_id: str) -> str:
    """Where a run's checkpoints go: ``LAKE/checkpoints/<run_id>``."""
    return f"{lake_uri.rstrip('/')}/checkpoints/{run_id}"


def epoch_uri(ckpt_dir: str, epoch: int) -> str:
    """The model checkpoint of ``epoch`` in a run's folder (:func:`run_dir`)."""
    return f"{ckpt_dir}/epoch-{epoch:03d}.pt"


def load_model(uri: str, map_location: str | torch.device = "cpu") -> tuple[Detector, dict[str, Any]]:
    """Rebuild the detector saved in an ``epoch-NNN.pt`` (eval mode).

    Returns:
        ``(model, checkpoint)``; ``checkpoint`` keeps the metadata (frontend_config, epoch...).

    Raises:
        DfpipeError: unreadable file, or one without the model keys.
    """
    checkpoint = load(uri, map_location)
    missing = {"arch", "model_config", "model", "frontend_config"} - set(checkpoint)
    if missing:
        raise DfpipeError(f"{uri} is not a model checkpoint (missing {sorted(missing)})")
    # The checkpoint holds every weight, WavLM's too: build the shape only, load them here.
    model = build_model(checkpoint["arch"], config_from_dict(checkpoint["arch"], checkpoint["model_config"]),
                        pretrained=False, backbone_config=checkpoint.get("backbone_config"))
    model.load_state_dict(checkpoint["model"])
    return model.to(map_location).eval(), checkpoint
