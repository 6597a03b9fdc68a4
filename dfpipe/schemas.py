"""The lake's tables: one explicit Arrow schema each, with its grain.

Every Parquet file dfpipe writes is cast to one of these schemas first
(:func:`dfpipe.lake.Lake.write_shard`), so a reader can rely on the column types whatever
stage or version wrote the file. Units are in the names (``duration_s``, ``size_bytes``).

Score direction, stated once: ``predictions.spoof_logit`` is a natural-log odds of
**spoof** (higher = more likely spoof; P(spoof) = sigmoid). ASVspoof score files use the
opposite direction (higher = bona fide); :mod:`dfpipe.metrics` converts at that edge.
"""

from __future__ import annotations

import pyarrow as pa

_str = pa.string()
_attributes = pa.map_(pa.string(), pa.string())

CLIPS = pa.schema(
    [
        pa.field("clip_id", _str, nullable=False),  # sha256(corpus, content)[:32]
        pa.field("corpus", _str, nullable=False),
        pa.field("split", _str),  # train/dev/test/ood/eval or NULL when the corpus is silent
        pa.field("label", _str, nullable=False),  # bonafide | spoof
        pa.field("generator", _str),  # TTS/VC system or ASVspoof attack id (A01...); NULL for bona fide
        pa.field("family", _str),  # generator family (formant, diphone, neural, ...)
        pa.field("speaker", _str),
        pa.field("language", _str),
        # absolute path or URL of the raw file, or parquet:///f.parquet?column=audio.bytes&row=N
        # for audio embedded in a Parquet row (dfpipe.parquet_source)
        pa.field("source_uri", _str, nullable=False),
        pa.field("source_relpath", _str, nullable=False),  # relative to the corpus root (f.parquet:N: a row)
        pa.field("source_codec", _str, nullable=False),  # as probed: mp3, flac, pcm_s16le, aac...
        pa.field("source_format", _str, nullable=False),  # container as probed: mp3, wav, mov,mp4,...
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("channels", pa.int16(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("content_sha256", _str, nullable=False),
        pa.field("attributes", _attributes),  # every other original column of the corpus
        # What probed the clip: "pyav" and "av 18.1.0; FFmpeg 8.1.2 (libavcodec 62.28.102)".
        # NULL in rows written before these columns existed.
        pa.field("decoder", _str),
        pa.field("decoder_version", _str),
        # Decoding failed midway, or the header declares much more audio than decodes
        # (dfpipe.audio_io.probe); truncation says what showed it. NULL in older rows.
        pa.field("truncated", pa.bool_()),
        pa.field("truncation", _str),
    ],
    metadata={"grain": "one row per distinct audio file of a corpus"},
)

REJECTS = pa.schema(
    [
        pa.field("stage", _str, nullable=False),  # ingest | condition | features | score ...
        pa.field("corpus", _str),
        pa.field("source_uri", _str, nullable=False),  # the input that failed (path, clip_id...)
        pa.field("clip_id", _str),
        pa.field("condition", _str),
        pa.field("reason", _str, nullable=False),  # short cause: undecodable, empty, ...
        pa.field("detail", _str, nullable=False),  # what was wrong and what to do
    ],
    metadata={"grain": "one row per input a stage could not use"},
)

AUDIO = pa.schema(
    [
        pa.field("clip_id", _str, nullable=False),
        pa.field("corpus", _str, nullable=False),
        pa.field("condition", _str, nullable=False),  # flac, mp3_128k, corrupt, corrupt+mp3_64k...
        pa.field("condition_params", _str, nullable=False),  # JSON: every parameter drawn
        pa.field("seed", pa.int64(), nullable=False),  # per-clip seed of the random draws
        pa.field("codec", _str, nullable=False),  # codec of audio_bytes
        pa.field("format", _str, nullable=False),  # container of audio_bytes
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("audio_bytes", pa.large_binary(), nullable=False),  # the encoded file
    ],
    metadata={"grain": "one row per clip per condition"},
)

FEATURES = pa.schema(
    [
        pa.field("clip_id", _str, nullable=False),
        pa.field("corpus", _str, nullable=False),
        pa.field("condition", _str, nullable=False),
        pa.field("frontend_version", _str, nullable=False),  # hash of the front-end config
        pa.field("mel", pa.large_binary(), nullable=False),  # float16 LE, shape mel_shape
        pa.field("mel_shape", pa.list_(pa.int32()), nullable=False),  # [2, 128, 301]: mel, delta
        pa.field("lfcc", pa.large_binary(), nullable=False),  # float16 LE, shape lfcc_shape
        pa.field("lfcc_shape", pa.list_(pa.int32()), nullable=False),
    ],
    metadata={"grain": "one row per clip per condition per front-end version"},
)

RUNS = pa.schema(
    [
        pa.field("run_id", _str, nullable=False),  # hash of the run's config
        pa.field("arch", _str, nullable=False),
        pa.field("train_corpus", _str, nullable=False),
        pa.field("train_condition", _str, nullable=False),
        # train_condition as (codec, corruption), from the condition grammar when the run is
        # made: noise_snr10+flac -> (flac, noise_snr10), flac -> (flac, NULL). NULL in rows
        # written before these columns existed.
        pa.field("codec", _str),
        pa.field("corruption", _str),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("epochs_planned", pa.int32(), nullable=False),
        pa.field("params", pa.int64(), nullable=False),  # trainable + frozen
        pa.field("trainable_params", pa.int64(), nullable=False),
        pa.field("checkpoint_bytes", pa.int64(), nullable=False),
        pa.field("device", _str, nullable=False),
        pa.field("config_json", _str, nullable=False),
    ],
    metadata={"grain": "one row per training run"},
)

EPOCHS = pa.schema(
    [
        pa.field("run_id", _str, nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),  # 1-based
        pa.field("train_loss", pa.float64(), nullable=False),
        pa.field("train_acc", pa.float64(), nullable=False),
        # mean BCE-with-logits over the run's val split; null when val is empty (and in
        # rows written before it was recorded)
        pa.field("val_loss", pa.float64()),
        pa.field("n_train", pa.int64(), nullable=False),
        pa.field("checkpoint_uri", _str, nullable=False),
        pa.field("checkpoint_bytes", pa.int64(), nullable=False),
        pa.field("wall_s", pa.float64(), nullable=False),  # training time of this epoch
    ],
    metadata={"grain": "one row per run per epoch"},
)

PREDICTIONS = pa.schema(
    [
        pa.field("run_id", _str, nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("dataset", _str, nullable=False),  # eval-set name: val, test, ood, polished...
        pa.field("clip_id", _str, nullable=False),
        pa.field("corpus", _str, nullable=False),
        pa.field("condition", _str, nullable=False),
        pa.field("label", _str, nullable=False),
        pa.field("spoof_logit", pa.float64(), nullable=False),  # higher = more spoof
        # Grouping columns copied from clips so ad-hoc queries need no join.
        pa.field("split", _str),
        pa.field("generator", _str),
        pa.field("family", _str),
        pa.field("speaker", _str),
        pa.field("language", _str),
        pa.field("source_codec", _str),
    ],
    metadata={
        "grain": "one row per run per epoch per dataset per clip",
        "score_direction": "spoof_logit: higher = more spoof; P(spoof) = sigmoid(spoof_logit)",
    },
)

TABLES: dict[str, pa.Schema] = {
    "clips": CLIPS,
    "rejects": REJECTS,
    "audio": AUDIO,
    "features": FEATURES,
    "runs": RUNS,
    "epochs": EPOCHS,
    "predictions": PREDICTIONS,
}
"""Every table of the lake by name; stages may register more (diagnostics) here."""

ARCHIVE_SCORES = pa.schema(
    [
        pa.field("path", _str, nullable=False),  # absolute path of the scored file
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("n_windows", pa.int32(), nullable=False),  # clip-length windows over the whole file
        pa.field("spoof_logit_center", pa.float64(), nullable=False),  # the study's centre crop
        pa.field("spoof_logit_window_mean", pa.float64(), nullable=False),
        pa.field("spoof_logit_window_max", pa.float64(), nullable=False),
        pa.field("arch", _str, nullable=False),
        pa.field("run_id", _str, nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),
    ],
    metadata={
        "grain": "one row per audio file scored by `dfpipe score-archive` (OUT/scores/*.parquet; "
                 "files that could not be read are in OUT/rejects/*.parquet, schema REJECTS)",
        "score_direction": "spoof_logit_*: higher = more spoof; P(spoof) = sigmoid",
    },
)
"""Output of :func:`dfpipe.archive_scoring.score_archive`: a folder, not a lake table."""

# -- loss-landscape diagnostics (dfpipe.diagnostics) ----------------------------------------
# Every row carries the id of the `dfpipe diagnose` result it belongs to (a hash of run, epoch,
# holdout and settings), the run, the epoch, the holdout spec and the seed it was drawn with.
_diagnostics_key = [
    pa.field("diagnostics_id", _str, nullable=False),
    pa.field("run_id", _str, nullable=False),
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("holdout", _str, nullable=False),  # data spec CORPUS:CONDITION@SPLIT of the holdout
    pa.field("seed", pa.int64(), nullable=False),  # seed of the holdout draw and random vectors
]

DIAGNOSTICS_HESSIAN = pa.schema(
    [
        *_diagnostics_key,
        pa.field("clip_id", _str, nullable=False),
        pa.field("corpus", _str, nullable=False),
        pa.field("condition", _str, nullable=False),
        pa.field("label", _str, nullable=False),
        pa.field("loss", pa.float64(), nullable=False),  # BCE of this clip alone
        pa.field("trace", pa.float64(), nullable=False),  # Hutchinson estimate of tr(H), trainable params
        pa.field("trace_std_error", pa.float64()),  # std of the draws / sqrt(draws); NULL for 1 draw
        pa.field("draws", pa.int32(), nullable=False),
    ],
    metadata={"grain": "one row per diagnostics_id per clip"},
)

DIAGNOSTICS_SUMMARY = pa.schema(
    [
        *_diagnostics_key,
        pa.field("metric", _str, nullable=False),  # hessian_trace_mean, grad_snr, ece, weight_rms...
        pa.field("layer", _str),  # parameter name for per-layer weight rows; NULL = whole model
        pa.field("value", pa.float64(), nullable=False),
        pa.field("detail", _str),  # e.g. the curvature band of trace_per_param
    ],
    metadata={"grain": "one row per diagnostics_id per metric per layer"},
)

DIAGNOSTICS_LINEARITY = pa.schema(
    [
        *_diagnostics_key,
        pa.field("scale", pa.float64(), nullable=False),  # step length / total weight norm
        pa.field("step_norm", pa.float64(), nullable=False),  # step length (L2, weight units)
        pa.field("directions", pa.int32(), nullable=False),
        pa.field("actual_change_mean", pa.float64(), nullable=False),  # L(w + step) - L(w)
        pa.field("predicted_change_mean", pa.float64(), nullable=False),  # gradient . step
        pa.field("abs_error_mean", pa.float64(), nullable=False),
        pa.field("rel_error_mean", pa.float64(), nullable=False),  # |actual - predicted| / max(|.|)
        pa.field("rel_error_median", pa.float64(), nullable=False),
    ],
    metadata={"grain": "one row per diagnostics_id per perturbation scale"},
)

TABLES.update({
    "diagnostics_hessian": DIAGNOSTICS_HESSIAN,
    "diagnostics_summary": DIAGNOSTICS_SUMMARY,
    "diagnostics_linearity": DIAGNOSTICS_LINEARITY,
})

# -- calibration (dfpipe.calibration) -------------------------------------------------------
CALIBRATIONS = pa.schema(
    [
        pa.field("run_id", _str, nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("fitted_on", _str, nullable=False),  # the predictions.dataset it was fitted on (dev set)
        # spoof LLR = slope * spoof_logit + intercept (natural log, higher = more spoof)
        pa.field("slope", pa.float64(), nullable=False),
        pa.field("intercept", pa.float64(), nullable=False),
        pa.field("prior", pa.float64(), nullable=False),  # spoof prior of the prior-weighted fit
        pa.field("n_bonafide", pa.int64(), nullable=False),
        pa.field("n_spoof", pa.int64(), nullable=False),
        pa.field("calibration_uri", _str),  # the JSON beside the checkpoint; NULL for a run without one
    ],
    metadata={
        "grain": "one row per run per epoch per dev set (`dfpipe calibrate`; a refit replaces its row)",
        "score_direction": "slope * spoof_logit + intercept: a spoof LLR, higher = more spoof",
    },
)

TABLES.update({"calibrations": CALIBRATIONS})
