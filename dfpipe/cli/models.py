"""``dfpipe models``: the four detectors, their size and checkpoint size."""

from __future__ import annotations

import click

from dfpipe.cli._common import TableData, format_option, friendly_errors, note, print_tables


@click.command()
@format_option()
@friendly_errors
def models(output_format: str) -> None:
    """List the detectors with parameter counts and float32 checkpoint sizes.

    Mel models are built and measured. WavLM models need the WavLM-Large weights, which
    dfpipe never downloads: their counts come from the WavLM-Large architecture built on
    PyTorch's meta device (no weights), and say so.

    \b
    Examples:
      dfpipe models
      dfpipe models --format csv
    """
    from dfpipe import checkpoints
    from dfpipe.config import FrontendConfig
    from dfpipe.errors import DfpipeError
    from dfpipe.models import (
        ARCHITECTURES,
        build_model,
        config_to_dict,
        default_config,
        model_class,
    )

    rows = []
    for arch in ARCHITECTURES:
        config = default_config(arch)
        inputs = ", ".join(sorted(model_class(arch).needs))
        try:
            model = build_model(arch, config)
            size = len(checkpoints.to_bytes(checkpoints.model_payload(
                model, frontend_config=config_to_dict(FrontendConfig()), run_id="", epoch=0)))
            remark = "" if not arch.startswith("wavlm") else f"WavLM from {config.wavlm}"
        except DfpipeError:
            model = _architecture_only(arch, config)
            size = 4 * model.num_params()  # float32 state dict, framing not counted
            remark = "needs WavLM-Large weights*"
        rows.append((arch, inputs, model.num_params(), model.num_params(trainable_only=True), size, remark))
    print_tables([TableData(
        ["arch", "inputs", "params", "trainable", "checkpoint_bytes", "note"], rows,
        display={"params": "{:,}".format, "trainable": "{:,}".format, "checkpoint_bytes": _size},
    )], output_format)
    if any(row[5].endswith("*") for row in rows):
        note("* not installed here: counted from the WavLM-Large architecture without weights; "
             "provide them in the Hugging Face cache or a local folder (docs/models.md).", output_format)


def _architecture_only(arch: str, config: object):
    """The detector with a random WavLM of the right shape on the meta device (no memory)."""
    import torch

    from dfpipe.models import build_model

    with torch.device("meta"):
        return build_model(arch, config, pretrained=False)


def _size(n_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return ""
