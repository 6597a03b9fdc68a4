"""Streaming training and scoring: memory bounded by the stream's configuration, not the corpus;
the same tables whatever the reader threads; predictions committed shard by shard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from dfpipe.clipsets import DataSpec, load_balanced_clip_set, read_clip_index, stream_batches
from dfpipe.config import (
    FeaturesConfig,
    FrontendConfig,
    IngestConfig,
    MelCNNConfig,
    ScoreConfig,
    StreamConfig,
    TrainConfig,
)
from dfpipe.features import run_features
from dfpipe.frontend import load_clip
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake
from dfpipe.score import score
from dfpipe.stage_kit import read_source
from dfpipe.train import train

TINY_CNN = MelCNNConfig(channels=(4, 8), embed_dim=8)  # the data path is under test, not the model
STREAM = StreamConfig(shuffle_buffer=16, unit_clips=4, workers=1, prefetch=1)
BATCH = 8
EVALS = {"test": "demo@test", "ood": "demo@ood"}
MEL_BYTES = int(np.prod(FrontendConfig().mel_shape)) * 2  # one clip's mel as the lake stores it (float16)


@pytest.fixture(scope="module")
def lake(demo_corpus_small, tmp_path_factory):
    """The small demo corpus with raw features in 4-row groups: many read units."""
    root = str(tmp_path_factory.mktemp("lake"))
    ingest(root, "demo", corpus_entries("csv", demo_corpus_small, IngestConfig()), IngestConfig())
    run_features(root, "demo", "raw", FeaturesConfig(row_group_size=4, clips_per_shard=32))
    return root


def _cfg(epochs: int = 2, **stream) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=BATCH, eval_batch_size=BATCH, lr=1e-3, device="cpu",
                       stream=replace(STREAM, **stream))


def _tables(lake: str) -> tuple[list, list]:
    con = Lake(lake).connect()
    predictions = con.execute("select * exclude (run_id) from predictions order by all").fetchall()
    epochs = con.execute("select epoch, train_loss, train_acc, val_loss, n_train, checkpoint_bytes from epochs "
                         "order by all").fetchall()
    return predictions, epochs


def test_training_holds_the_stream_budget_not_the_corpus(lake, tmp_path):
    """A child process trains and scores every epoch under tracemalloc (NumPy's arrays, where
    the inputs live) and Arrow's pool peak (what Parquet reads hold): each stays within the
    stream's budget, a third of the features the run reads, which loading them whole exceeds."""
    con = Lake(lake).connect()
    n_read = con.execute("select count(*) from clips where split in ('train', 'test', 'ood')").fetchone()[0]
    batch = 4
    # In clips, as float16: the shuffle buffer, its leftover, the units read ahead, the batch
    # being gathered, and two float32 batches (the one in the model, the next one).
    clips = STREAM.shuffle_buffer + batch + (STREAM.prefetch + STREAM.workers + 1) * STREAM.unit_clips + 5 * batch
    budget = clips * MEL_BYTES + 2 * 2**20  # + 2 MiB for the rest (clip indexes, prediction rows)
    assert n_read * MEL_BYTES > 2.5 * budget, "the corpus must not fit the budget, or the test proves nothing"
    lake = shutil.copytree(lake, str(tmp_path / "lake"))  # the module's lake stays untrained in
    script = f"""
import json, tracemalloc
import pyarrow as pa
import torch
from dfpipe import checkpoints
from dfpipe.config import MelCNNConfig, StreamConfig, TrainConfig
from dfpipe.devices import select_device
from dfpipe.models import Batch, build_model
from dfpipe.train import train, train_step
tiny = MelCNNConfig(channels=(4, 8), embed_dim=8)
# Warm-up: the first optimiser step imports torch._dynamo (~80 MB of Python objects that
# tracemalloc would count); it is not data.
model, ctx = build_model("mel-cnn", tiny), select_device("cpu")
train_step(model, Batch(mel=torch.zeros(2, 2, 128, 301)), torch.zeros(2), optimizer=torch.optim.AdamW(
    model.parameters()), scaler=ctx.grad_scaler(), loss_fn=torch.nn.BCEWithLogitsLoss(), ctx=ctx, grad_clip=1.0)
checkpoints.to_bytes(checkpoints.model_payload(model, frontend_config={{}}, run_id="warm-up", epoch=0))
cfg = TrainConfig(epochs=1, batch_size={batch}, eval_batch_size={batch}, lr=1e-3, device="cpu",
                  stream=StreamConfig(**{json.dumps(STREAM.__dict__)}))
tracemalloc.start()
summary = train(cfg, {lake!r}, arch="mel-cnn", train_data="demo", eval_data={EVALS!r}, model_config=tiny,
                log=lambda line: None)
print(json.dumps({{"numpy_peak": tracemalloc.get_traced_memory()[1],
                  "arrow_peak": pa.default_memory_pool().max_memory(),
                  "clips": summary.n_train + summary.n_val + sum(summary.eval_sizes.values())}}))
"""
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    peaks = json.loads(child.stdout.strip().splitlines()[-1])
    assert peaks["clips"] == n_read
    assert peaks["numpy_peak"] < budget and peaks["arrow_peak"] < budget, peaks


def test_same_seed_same_tables_whatever_the_reader_threads_and_shard_size(lake, tmp_path):
    one, other = (shutil.copytree(lake, str(tmp_path / name)) for name in ("one", "other"))
    a = train(_cfg(workers=0), one, arch="mel-cnn", train_data="demo", eval_data=EVALS, model_config=TINY_CNN,
              log=lambda line: None)
    b = train(_cfg(workers=3, prefetch=5, predictions_per_shard=16), other, arch="mel-cnn", train_data="demo",
              eval_data=EVALS, model_config=TINY_CNN, log=lambda line: None)
    assert a.run_id == b.run_id  # reader threads and shard size are not part of the run
    assert _tables(one) == _tables(other)
    predictions, epochs = _tables(one)
    assert len(predictions) == 2 * (a.n_val + sum(a.eval_sizes.values())) and len(epochs) == 2
    n_test = a.eval_sizes["test"]
    shards = Lake(other).files("predictions", {"run_id": b.run_id})
    assert sum("-test-" in path and "e001" in path for path in shards) == -(-n_test // 16)
    # the batch order is the seed's: another seed trains to other weights
    c = train(replace(_cfg(epochs=1), seed=1), one, arch="mel-cnn", train_data="demo", model_config=TINY_CNN,
              log=lambda line: None)
    assert c.n_train + c.n_val == a.n_train + a.n_val
    con = Lake(one).connect()
    losses = con.execute("select run_id, train_loss from epochs where epoch = 1").fetchall()
    assert len({loss for _, loss in losses}) == 2


def test_every_clip_once_per_epoch_in_a_seeded_order(lake):
    index = read_clip_index(Lake(lake), DataSpec("demo", "raw", "train"), {"mel"}, FrontendConfig())

    def epoch(seed: int, workers: int) -> list[np.ndarray]:
        return [b.positions for b in stream_batches(Lake(lake), index, BATCH, FrontendConfig(),
                                                    replace(STREAM, workers=workers), np.random.default_rng(seed))]
    first = epoch(0, 0)
    assert all(len(p) == BATCH for p in first[:-1]) and 0 < len(first[-1]) <= BATCH
    assert sorted(np.concatenate(first)) == list(range(len(index)))
    assert all(np.array_equal(x, y) for x, y in zip(first, epoch(0, 2), strict=True))
    assert not np.array_equal(np.concatenate(first), np.concatenate(epoch(1, 0)))


def test_score_writes_the_rows_training_wrote_for_that_epoch(lake, tmp_path):
    root = shutil.copytree(lake, str(tmp_path / "lake"))
    summary = train(_cfg(epochs=1), root, arch="mel-cnn", train_data="demo", eval_data={"test": "demo@test"},
                    model_config=TINY_CNN, log=lambda line: None)
    config = ScoreConfig(batch_size=BATCH, device="cpu", stream=StreamConfig(workers=2, predictions_per_shard=7))
    result = score(root, summary.run_id, "demo@test", dataset="again", config=config)
    assert result.rows == summary.eval_sizes["test"]
    con = Lake(root).connect()
    query = ("select * exclude (dataset) from predictions where dataset = ? and epoch = 1 order by clip_id")
    assert con.execute(query, ["again"]).fetchall() == con.execute(query, ["test"]).fetchall()


def test_waveforms_stream_from_the_source_files(lake):
    spec = DataSpec("demo", "raw", "test")
    clips = load_balanced_clip_set(Lake(lake), spec, {"waveform"}, FrontendConfig(), per_class=3, seed=0)
    assert len(clips) == 6 and clips.mel is None
    sources = dict(Lake(lake).connect().execute("select clip_id, source_uri from clips").fetchall())
    for clip_id, wave in zip(clips.meta.column("clip_id").to_pylist(), clips.waveform, strict=True):
        np.testing.assert_array_equal(wave, load_clip(read_source(sources[clip_id])))
