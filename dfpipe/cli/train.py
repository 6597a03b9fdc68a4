"""``dfpipe train``: train one detector, evaluating every epoch (runs in a Prefect flow)."""

from __future__ import annotations

import click

from dfpipe.cli._common import dask_options, friendly_errors, lake_option
from dfpipe.config import VAL_DATASET, DaskConfig, TrainConfig
from dfpipe.models import ARCHITECTURES


@click.command()
@lake_option
@click.option("--arch", required=True, type=click.Choice(sorted(ARCHITECTURES)), help="Detector to train.")
@click.option("--train", "train_data", required=True, metavar="CORPUS[:COND][@SPLIT]",
              help=f"Training data (condition default {TrainConfig.default_condition!r}, split default "
                   f"{TrainConfig.default_train_split!r}); {TrainConfig.val_fraction:.0%} (stratified) is "
                   f"{VAL_DATASET!r}.")
@click.option("--eval", "eval_data", multiple=True, metavar="NAME=CORPUS[:COND][@SPLIT]",
              help="An eval set scored every epoch (repeatable; split default: every clip).")
@click.option("--epochs", type=int, default=None,
              help=f"Default: {TrainConfig.MEL_EPOCHS} for mel models, {TrainConfig.WAVLM_EPOCHS} for WavLM models.")
@click.option("--batch-size", type=int, default=None,
              help=f"Default: {TrainConfig.MEL_BATCH} mel, {TrainConfig.WAVLM_BATCH} WavLM.")
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--device", default=TrainConfig.device, show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--wavlm", default=None, help="WavLM weights: a local folder or an HF-cache name (WavLM archs).")
@click.option("--unfreeze", default=None, metavar="none|FIRST,LAST|all-but-first",
              help="WavLM transformer layers to train (0-based, inclusive); default: the architecture's.")
@click.option("--balance", type=click.Choice(TrainConfig.BALANCE_MODES), default=TrainConfig.balance,
              help="Class balancing: undersample the majority class (seeded) or weight the loss.")
@click.option("--init-from", default=TrainConfig.init_from, metavar="CHECKPOINT",
              help="Start from this epoch-NNN.pt's model weights (warm start; the optimiser starts fresh).")
@click.option("--no-flow", is_flag=True, help="Train in this process, without Prefect and Dask.")
@dask_options
@friendly_errors
def train(lake: str, arch: str, train_data: str, eval_data: tuple[str, ...], epochs: int | None,
          batch_size: int | None, lr: float, seed: int, device: str, wavlm: str | None, unfreeze: str | None,
          balance: str | None, init_from: str | None, no_flow: bool, dask_config: DaskConfig) -> None:
    """Train ARCH on --train, scoring val and every --eval set each epoch into predictions.

    A run's id is a hash of its configuration: running the same command again resumes a
    killed run after its last committed epoch (or extends a finished one with more --epochs).

    \b
    Example:
      dfpipe train --lake lake --arch mel-cnn --train demo --eval test=demo@test --eval ood=demo@ood
    """
    import dataclasses

    from dfpipe.clipsets import DataSpec
    from dfpipe.config import parse_unfreeze_layers
    from dfpipe.errors import ConfigError
    from dfpipe.models import default_config

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device, balance=balance,
                      init_from=init_from)
    train_spec = DataSpec.parse(train_data, default_condition=cfg.default_condition,
                                default_split=cfg.default_train_split)
    evals = {}
    for item in eval_data:
        name, sep, text = item.partition("=")
        if not sep or not name or not text:
            raise ConfigError(f"--eval {item!r}: expected NAME=CORPUS[:COND][@SPLIT]")
        evals[name] = DataSpec.parse(text, default_condition=cfg.default_condition, default_split=None)
    model_config = default_config(arch)
    if wavlm:
        if not arch.startswith("wavlm"):
            raise ConfigError(f"--wavlm applies to WavLM architectures, not {arch}")
        model_config = dataclasses.replace(model_config, wavlm=wavlm)
    if unfreeze is not None:
        if not arch.startswith("wavlm"):
            raise ConfigError(f"--unfreeze applies to WavLM architectures, not {arch}")
        model_config = dataclasses.replace(model_config, unfreeze_layers=parse_unfreeze_layers(unfreeze))
    if no_flow:
        from dfpipe.train import train as run_training

        summary = run_training(cfg, lake, arch=arch, train_data=train_spec, eval_data=evals,
                               model_config=model_config)
    else:
        from dfpipe.flows.train import train_flow

        summary = train_flow(lake_uri=lake, arch=arch, train_data=train_spec, eval_data=evals, cfg=cfg,
                             model_config=model_config, dask_config=dask_config)
    click.echo(f"run {summary.run_id}: {summary.epochs_done} epoch(s) committed ({summary.epochs_trained} now), "
               f"{summary.n_train} train / {summary.n_val} val clips, {summary.params:,} params on {summary.device}")
    click.echo(f"wrote runs, epochs, predictions in {lake}; last checkpoint {summary.checkpoint_uri}")
