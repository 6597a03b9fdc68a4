-- stg_epochs: the lake's `epochs` table (per-epoch training statistics).
-- materialized: view
-- depends_on: epochs
-- grain: one row per run per epoch (epoch is 1-based).
with

source as (
    select * from epochs
),

renamed as (
    select
        run_id,
        epoch,
        train_loss,
        train_acc as train_accuracy,
        n_train,
        checkpoint_bytes as epoch_checkpoint_bytes,
        wall_s as train_wall_s,
    from source
)

select * from renamed
