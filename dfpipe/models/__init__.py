"""The five detectors, by architecture name.

>>> model = build_model("mel-cnn")                       # doctest: +SKIP
>>> model(Batch(mel=torch.zeros(8, 2, 128, 301))).shape  # doctest: +SKIP
torch.Size([8])

``mel-cnn``, ``mel-multiscale`` and ``mel-vit`` read ``features.mel``; ``wavlm-cnn`` reads the waveform,
``wavlm-aasist`` the waveform, mel and LFCC (each class's ``needs``). WavLM models import
``transformers`` only when built.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import TYPE_CHECKING, Any

from dfpipe.config import (
    MelCNNConfig,
    MelMultiScaleConfig,
    MelViTConfig,
    WavLMAASISTConfig,
    WavLMCNNConfig,
)
from dfpipe.errors import ConfigError

if TYPE_CHECKING:
    from dfpipe.models.base import INPUTS, Batch, Detector

_BASE_NAMES = ("INPUTS", "Batch", "Detector")


def __getattr__(name: str) -> Any:
    # torch loads on first use of a model name, not on import: the command line lists the
    # architectures (``dfpipe --help``, option choices) without paying for torch.
    if name in _BASE_NAMES:
        from dfpipe.models import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

ARCHITECTURES: dict[str, tuple[str, type]] = {
    "mel-cnn": ("dfpipe.models.mel_cnn:MelCNN", MelCNNConfig),
    "mel-multiscale": ("dfpipe.models.mel_multiscale:MelMultiScale", MelMultiScaleConfig),
    "mel-vit": ("dfpipe.models.mel_vit:MelViT", MelViTConfig),
    "wavlm-cnn": ("dfpipe.models.wavlm_cnn:WavLMCNN", WavLMCNNConfig),
    "wavlm-aasist": ("dfpipe.models.wavlm_aasist:WavLMAASIST", WavLMAASISTConfig),
}
"""Architecture name -> (``module:Class``, config dataclass)."""

__all__ = ["ARCHITECTURES", "INPUTS", "Batch", "Detector", "build_model", "config_from_dict",
           "config_to_dict", "dataclass_from_dict", "default_config", "model_class"]


def _entry(arch: str) -> tuple[str, type]:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}") from None


def model_class(arch: str) -> type[Detector]:
    """The detector class of ``arch`` (imports its module)."""
    module_name, class_name = _entry(arch)[0].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def default_config(arch: str) -> Any:
    """The default config dataclass of ``arch``."""
    return _entry(arch)[1]()


def build_model(arch: str, config: Any = None, *, pretrained: bool = True,
                backbone_config: dict[str, Any] | None = None) -> Detector:
    """Build a detector from its config (``None``: the defaults).

    ``pretrained=False`` builds WavLM models with random WavLM weights of the right shape
    (loading a dfpipe checkpoint, counting parameters); mel models have no pretrained part.
    ``backbone_config`` (:meth:`Detector.backbone_config` of a saved model) gives that shape
    exactly, without the pretrained model's files.

    Raises:
        ConfigError: unknown ``arch`` or a config of another architecture.
        DfpipeError: WavLM weights missing (WavLM architectures).
    """
    config_class = _entry(arch)[1]
    config = config_class() if config is None else config
    if not isinstance(config, config_class):
        raise ConfigError(f"{arch} takes a {config_class.__name__}, got {type(config).__name__}")
    cls = model_class(arch)
    if cls.has_pretrained:
        return cls(config, pretrained=pretrained, backbone_config=backbone_config)
    return cls(config)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a config (nested configs as dicts): storable with ``weights_only``."""
    return dataclasses.asdict(config)


def config_from_dict(arch: str, values: dict[str, Any]) -> Any:
    """Rebuild ``arch``'s config from :func:`config_to_dict` output (lists become tuples).

    Raises:
        ConfigError: unknown fields or invalid values.
    """
    return dataclass_from_dict(_entry(arch)[1], values)


def dataclass_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild the frozen dataclass ``cls`` from :func:`config_to_dict` output (nested
    dataclasses from dicts, lists as tuples).

    Raises:
        ConfigError: unknown fields or invalid values.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if isinstance(value, dict) and dataclasses.is_dataclass(hint):
            value = dataclass_from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
