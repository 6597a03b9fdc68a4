-- stg_runs: the lake's `runs` table with the checkpoint size in megabytes.
-- materialized: view
-- depends_on: runs
-- grain: one row per training run.
-- conventions: checkpoint_mb = checkpoint_bytes / 1e6 (si megabytes, as in the study's
--   "435 kb" and "2.2 mb").
--   train_codec and train_corruption are runs.codec and runs.corruption: the training
--   condition as (codec, corruption), recorded by `dfpipe train` from the condition grammar
--   ('noise_snr10+flac' -> (flac, noise_snr10), 'corrupt+mp3_64k' -> (mp3_64k, corrupt),
--   'flac' -> (flac, null)). names are never parsed here. runs rows written before the
--   columns existed have nulls (the union below only supplies the columns when no file
--   of the lake has them).
with

source as (
    select * from runs
    union all by name
    select
        null::varchar as codec,
        null::varchar as corruption,
    where false
),

renamed as (
    select
        run_id,
        arch,
        train_corpus,
        train_condition,
        codec as train_codec,
        corruption as train_corruption,
        seed,
        epochs_planned,
        params,
        trainable_params,
        checkpoint_bytes,
        checkpoint_bytes / 1e6 as checkpoint_mb,
        device,
    from source
)

select * from renamed
