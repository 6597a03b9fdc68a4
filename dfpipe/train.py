"""Training a detector: one function, :func:`train`, that reads top to bottom.

    config -> run id -> device -> model (warm start) -> clip indexes (class balancing,
    train/val split, eval sets) -> optimiser -> resume point -> for each epoch: stream the
    shuffled train clips -> forward/backward -> clip -> step -> log -> checkpoint ->
    predictions on val and every eval set, batch by batch -> commit the epoch

Data are streamed, never loaded whole (:mod:`dfpipe.clipsets`): the split and the balancing
work on a clip index (ids, labels, where each clip's inputs lie), and each epoch reads the
inputs unit by unit through reader threads and a bounded shuffle buffer
(:class:`~dfpipe.config.StreamConfig`), so memory does not grow with the corpus.

What a run writes (``run_id`` = hash of everything that changes its results, except the
number of epochs, so a finished run can be extended):

- ``runs``: one row (config, parameter counts, checkpoint size, device);
- ``epochs``: one row per epoch (train loss/acc, val loss, checkpoint URI and size, time); this row
  is written last and is the epoch's commit mark;
- ``predictions``: every epoch, one row per clip of ``val`` and of each eval set;
- ``LAKE/checkpoints/<run_id>/epoch-NNN.pt`` (model) and ``state-NNN.pt`` (optimiser and
  scaler of the last epoch), see :mod:`dfpipe.checkpoints`.

Determinism and resume: model initialisation is seeded with ``seed``, and every epoch
re-seeds torch, NumPy's global generator (Hugging Face's WavLM masking draws from it) and
the shuffle (unit order and buffer permutations) from ``(seed, epoch)``; the reader
threads only read, in that order, so their number changes nothing. A killed run therefore
restarts at the epoch after its last committed one, from that epoch's weights and optimiser
state, and ends with the same tables as a run never interrupted (on the same device; CUDA
kernels may differ in the last bits between runs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from dfpipe import checkpoints
from dfpipe.clipsets import DataSpec, read_clip_index, stream_batches
from dfpipe.conditions.grammar import describe_condition
from dfpipe.config import VAL_DATASET, FrontendConfig, TrainConfig, predicts_spoof
from dfpipe.devices import DeviceContext, restore_grad_scaler, select_device
from dfpipe.errors import ConfigError, DfpipeError
from dfpipe.lake import Lake, check_name, stable_id
from dfpipe.models import Batch, Detector, build_model, config_to_dict, default_config
from dfpipe.predictions import completed_epochs, predict, write_predictions


@dataclass(frozen=True)
class TrainSummary:
    """What :func:`train` did."""

    run_id: str
    arch: str
    epochs_done: int  # epochs committed in the lake (including earlier sessions)
    epochs_trained: int  # epochs trained by this call
    n_train: int
    n_val: int
    eval_sizes: dict[str, int] = field(default_factory=dict)
    params: int = 0
    checkpoint_bytes: int = 0
    checkpoint_uri: str = ""
    device: str = ""


def train(
    cfg: TrainConfig,
    lake_uri: str,
    *,
    arch: str,
    train_data: DataSpec | str,
    eval_data: Mapping[str, DataSpec | str] | None = None,
    model_config: object | None = None,
    frontend: FrontendConfig | None = None,
    log: Callable[[str], None] = print,
) -> TrainSummary:
    """Train ``arch`` on ``train_data``, evaluating every epoch; resume a killed run.

    Args:
        cfg: optimiser, batch size, epochs, seed, device (:class:`~dfpipe.config.TrainConfig`).
        lake_uri: the lake (folder or fsspec URL).
        arch: ``mel-cnn``, ``mel-multiscale``, ``mel-vit``, ``wavlm-cnn`` or ``wavlm-aasist``.
        train_data: a :class:`~dfpipe.clipsets.DataSpec`; a stratified ``cfg.val_fraction`` of
            it becomes the ``val`` dataset. Text ``CORPUS[:CONDITION][@SPLIT]`` is parsed with
            ``cfg.default_condition`` and ``cfg.default_train_split``.
        eval_data: ``{dataset name: DataSpec}`` scored every epoch (text: split default all).
        model_config: the architecture's config dataclass (default: its defaults).
        frontend: front end whose ``features`` rows are read (default ``FrontendConfig()``).
        log: where one line per epoch goes.

    Returns:
        A :class:`TrainSummary`.

    Raises:
        ConfigError: bad specs or names, ``val`` used as an eval name.
        DfpipeError: missing data, features or WavLM weights.
    """
    lake = Lake(lake_uri)
    frontend = frontend or FrontendConfig()
    model_config = model_config or default_config(arch)
    epochs, batch_size = cfg.epochs_for(arch), cfg.batch_size_for(arch)

    # -- what is trained on what: the run's identity ---------------------------------------
    train_spec = DataSpec.coerce(train_data, default_condition=cfg.default_condition,
                                 default_split=cfg.default_train_split)
    eval_specs = {check_name("dataset", name): DataSpec.coerce(data, default_condition=cfg.default_condition,
                                                              default_split=None)
                  for name, data in (eval_data or {}).items()}
    if VAL_DATASET in eval_specs:
        raise ConfigError(f"the eval name {VAL_DATASET!r} is reserved for the held-out part of the train data")
    identity = {
        "arch": arch, "model": config_to_dict(model_config), "frontend": frontend.version,
        "train": str(train_spec), "eval": {k: str(v) for k, v in sorted(eval_specs.items())},
        "lr": cfg.lr, "weight_decay": cfg.weight_decay, "batch_size": batch_size,
        "val_fraction": cfg.val_fraction, "grad_clip": cfg.grad_clip, "seed": cfg.seed, "amp": cfg.amp,
        # the batch order: streaming reads units of clips in a seeded order through this buffer
        "shuffle": {"buffer": cfg.stream.shuffle_buffer, "unit_clips": cfg.stream.unit_clips},
    }
    # Keys only when set, so runs without balancing or warm start keep their earlier ids.
    if cfg.balance is not None:
        identity["balance"] = cfg.balance
    init_from = _warm_start(cfg.init_from, arch)
    if init_from is not None:
        identity["init_from"] = f"{init_from['run_id']}@{init_from['epoch']}"
    run_id = stable_id(json.dumps(identity, sort_keys=True), length=16)
    ckpt_dir = checkpoints.run_dir(lake.uri, run_id)
    ctx = select_device(cfg.device, amp=cfg.amp, amp_dtypes=cfg.amp_dtypes, cpu_threads=cfg.cpu_threads)

    # -- model (seeded initialisation) and data --------------------------------------------
    torch.manual_seed(cfg.seed)
    model = build_model(arch, model_config).to(ctx.device)
    if init_from is not None:
        model.load_state_dict(init_from["model"])
    del init_from
    # Clip indexes (ids, labels, where the inputs lie), not inputs: balancing and the split
    # are drawn on them, and each epoch streams the inputs.
    train_all = read_clip_index(lake, train_spec, model.needs, frontend)
    if cfg.balance == "undersample":
        train_all = train_all.balanced(per_class=None, seed=cfg.seed)
    train_idx, val_idx = stratified_split(train_all.labels, cfg.val_fraction, cfg.seed)
    train_set = train_all.subset(train_idx)
    eval_sets = {VAL_DATASET: train_all.subset(val_idx)}
    eval_sets.update({name: read_clip_index(lake, spec, model.needs, frontend) for name, spec in eval_specs.items()})
    del train_all

    # -- optimiser, loss, resume point -----------------------------------------------------
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = ctx.grad_scaler()
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=_spoof_weight(train_set.labels, ctx.device)
                                   if cfg.balance == "weight" else None)
    done = completed_epochs(lake, run_id)
    if done:
        model.load_state_dict(checkpoints.load(checkpoints.epoch_uri(ckpt_dir, done), ctx.device)["model"])
        state = checkpoints.load(_state_uri(ckpt_dir, done), ctx.device)
        optimizer.load_state_dict(state["optimizer"])
        restore_grad_scaler(scaler, state["scaler"])
        # A kill between an epoch's commit and the removal of the state before it left that one.
        _remove(_state_uri(ckpt_dir, done - 1))
        log(f"run {run_id}: resuming after epoch {done}")
    frontend_dict = config_to_dict(frontend)
    checkpoint_bytes = len(checkpoints.to_bytes(
        checkpoints.model_payload(model, frontend_config=frontend_dict, run_id=run_id, epoch=0)))
    codec, corruption = describe_condition(train_spec.condition)  # columns, so SQL never parses names
    lake.write_shard("runs", pa.table({
        "run_id": [run_id], "arch": [arch], "train_corpus": [train_spec.corpus],
        "train_condition": [train_spec.condition], "codec": [codec], "corruption": [corruption],
        "seed": [cfg.seed], "epochs_planned": [epochs],
        "params": [model.num_params()], "trainable_params": [model.num_params(trainable_only=True)],
        "checkpoint_bytes": [checkpoint_bytes], "device": [ctx.name],
        "config_json": [json.dumps({**identity, "epochs": epochs, "train_config": asdict(cfg)}, sort_keys=True)],
    }), shard=run_id, mode="overwrite")

    # -- the epochs ------------------------------------------------------------------------
    for epoch in range(done + 1, epochs + 1):
        started = time.perf_counter()
        shuffle = seed_epoch(cfg.seed, epoch)
        model.train()
        loss_sum = torch.zeros((), device=ctx.device)
        correct = torch.zeros((), device=ctx.device)
        n_train = 0  # clips trained on: a clip whose audio does not decode is skipped
        for clips in stream_batches(lake, train_set, batch_size, frontend, cfg.stream, shuffle):
            loss, hits = train_step(model, clips.inputs, clips.labels, optimizer=optimizer, scaler=scaler,
                                    loss_fn=loss_fn, ctx=ctx, grad_clip=cfg.grad_clip)
            loss_sum += loss * len(clips)
            correct += hits
            n_train += len(clips)
        wall_s = time.perf_counter() - started
        uri = checkpoints.epoch_uri(ckpt_dir, epoch)
        size = checkpoints.save(checkpoints.model_payload(
            model, frontend_config=frontend_dict, run_id=run_id, epoch=epoch), uri)
        checkpoints.save({"epoch": epoch, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()},
                         _state_uri(ckpt_dir, epoch))
        for name, index in eval_sets.items():
            if epoch % cfg.eval_every.get(name, 1) and epoch != epochs:  # a sparse set: its epochs and the last
                continue
            batches = stream_batches(lake, index, cfg.eval_batch_size, frontend, cfg.stream)
            logits = write_predictions(lake, index, predict(model, batches, ctx), run_id=run_id, epoch=epoch,
                                       dataset=name, rows_per_shard=cfg.stream.predictions_per_shard)
            if name == VAL_DATASET:  # from the stored logits: no second forward pass
                scored = ~np.isnan(logits)
                val_loss = mean_bce(logits[scored], index.labels[scored])
        if not n_train:
            raise DfpipeError(f"{train_spec}: no train clip's audio decodes (see the rejects table)")
        train_loss, train_acc = loss_sum.item() / n_train, correct.item() / n_train
        lake.write_shard("epochs", pa.table({
            "run_id": [run_id], "epoch": [epoch], "train_loss": [train_loss], "train_acc": [train_acc],
            "val_loss": pa.array([val_loss], pa.float64()), "n_train": [n_train], "checkpoint_uri": [uri],
            "checkpoint_bytes": [size], "wall_s": [wall_s],
        }), shard=f"e{epoch:03d}", partition={"run_id": run_id}, mode="overwrite")
        if epoch > 1:  # the committed epoch's state replaces the previous one
            _remove(_state_uri(ckpt_dir, epoch - 1))
        log(f"run {run_id} epoch {epoch}/{epochs}: train loss {train_loss:.4f} acc {train_acc:.4f} "
            f"({n_train / wall_s:.1f} clips/s on {ctx.name})")

    return TrainSummary(
        run_id=run_id, arch=arch, epochs_done=max(done, epochs), epochs_trained=max(epochs - done, 0),
        n_train=len(train_set), n_val=len(eval_sets[VAL_DATASET]),
        eval_sizes={name: len(s) for name, s in eval_sets.items() if name != VAL_DATASET},
        params=model.num_params(), checkpoint_bytes=checkpoint_bytes,
        checkpoint_uri=checkpoints.epoch_uri(ckpt_dir, max(done, epochs)), device=ctx.name,
    )


def train_step(model: Detector, batch: Batch, labels: torch.Tensor, *, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, loss_fn: nn.Module, ctx: DeviceContext,
               grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step: forward (autocast) -> backward (scaled) -> clip -> step.

    Returns:
        ``(mean loss, correct predictions)`` as 0-d tensors on the device (no host sync).
    """
    batch, labels = batch.to(ctx.device), labels.to(ctx.device, non_blocking=True)
    optimizer.zero_grad(set_to_none=True)
    with ctx.autocast():
        logits = model(batch)
        loss = loss_fn(logits.float(), labels)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), (predicts_spoof(logits.detach()) == (labels > 0.5)).sum()


def mean_bce(logits: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean BCE-with-logits of ``logits`` against 0/1 ``labels`` (unweighted, float64: the
    ``epochs.val_loss`` of the logits stored as predictions); ``None`` for no clips."""
    if len(logits) == 0:
        return None
    return float(nn.functional.binary_cross_entropy_with_logits(
        torch.from_numpy(np.asarray(logits, np.float64)), torch.from_numpy(np.asarray(labels, np.float64))))


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-label split: ``round(val_fraction * n_label)`` clips of each label (at least
    one when the label has two or more) go to validation. Returns sorted positions."""
    rng = np.random.default_rng(seed)
    val = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        n_val = min(max(round(val_fraction * len(members)), 1 if len(members) > 1 else 0), len(members) - 1)
        val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def seed_epoch(seed: int, epoch: int) -> np.random.Generator:
    """Seed torch and NumPy's global generator for ``epoch``; return the shuffle generator."""
    epoch_seed = int(stable_id(str(seed), str(epoch), length=8), 16)
    torch.manual_seed(epoch_seed)
    np.random.seed(epoch_seed)
    return np.random.default_rng([seed, epoch])


def _warm_start(uri: str | None, arch: str) -> dict | None:
    """The checkpoint ``uri`` a warm-started run begins from (``None``: none).

    Raises:
        DfpipeError: missing or unreadable, or a model of another architecture.
    """
    if uri is None:
        return None
    try:
        checkpoint = checkpoints.load(uri)
    except DfpipeError as exc:
        raise DfpipeError(f"init_from: {exc} (train the source run first)") from exc
    if checkpoint.get("arch") != arch or "model" not in checkpoint:
        raise DfpipeError(f"init_from {uri} holds a {checkpoint.get('arch')!r} model, not {arch!r}")
    return checkpoint


def _spoof_weight(labels: np.ndarray, device: torch.device) -> torch.Tensor:
    """BCE ``pos_weight`` that balances the classes: n_bonafide / n_spoof (1 = spoof).

    Raises:
        DfpipeError: the train data lacks one of the classes.
    """
    n_spoof = int(labels.sum())
    if n_spoof in (0, len(labels)):
        raise DfpipeError("balance 'weight' needs both bona fide and spoof clips in the train data")
    return torch.tensor((len(labels) - n_spoof) / n_spoof, device=device)


def _state_uri(ckpt_dir: str, epoch: int) -> str:
    return f"{ckpt_dir}/state-{epoch:03d}.pt"


def _remove(uri: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path)

