-- stg_runs: the lake's `runs` table with the checkpoint size in megabytes.
-- materialized: view
-- grain: one row per training run.
-- conventions: checkpoint_mb = checkpoint_bytes / 1e6 (si megabytes, as in the study's
--   "435 kb" and "2.2 mb").
with

source as (
    select * from runs
),

renamed as (
    select
        run_id,
        arch,
        train_corpus,
        train_condition,
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
