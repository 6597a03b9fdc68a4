"""The detector shipped inside the package: where it is, and a clear error when it is not.

``dfpipe/pretrained/`` is package data (pyproject ``package-data``), found with
:mod:`importlib.resources`, so an installed wheel and a source checkout find it the same way.
It holds the checkpoint (``DefaultDetectorConfig.checkpoint_name``, an ordinary
``epoch-NNN.pt`` payload, read with ``weights_only=True``), its calibration beside it
(:func:`dfpipe.llr.calibration_uri`) and the model card's figures
(``DefaultDetectorConfig.metrics_name``). ``dfpipe train-default`` writes them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from dfpipe.config import DefaultDetectorConfig
from dfpipe.errors import DfpipeError


def package_folder(config: DefaultDetectorConfig | None = None) -> Path:
    """The package's ``pretrained`` folder (it exists in every install, with or without a detector)."""
    config = config or DefaultDetectorConfig()
    return Path(str(files("dfpipe") / config.package_folder))


def default_checkpoint(config: DefaultDetectorConfig | None = None) -> str:
    """The shipped checkpoint's path.

    Raises:
        DfpipeError: one line, when this install ships none.
    """
    config = config or DefaultDetectorConfig()
    path = package_folder(config) / config.checkpoint_name
    if not path.is_file():
        raise DfpipeError(f"this dfpipe ships no default detector ({path} is missing): pass --checkpoint "
                          "LAKE/checkpoints/RUN/epoch-NNN.pt, or train one with `dfpipe train-default`")
    return str(path)
