-- stg_epochs: the lake's `epochs` table (per-epoch training statistics).
-- materialized: view
-- depends_on: epochs
-- grain: one row per run per epoch (epoch is 1-based).
-- conventions: val_loss = mean bce-with-logits over the run's validation split 'val'
--   (unweighted, from the logits its predictions were written from). epochs rows written
--   before the column existed have null (the union below only supplies the column when no
--   file of the lake has it).
with

source as (
    select * from epochs
    union all by name
    select null::double as val_loss,
    where false
),

renamed as (
    select
        run_id,
        epoch,
        train_loss,
        train_acc as train_accuracy,
        val_loss,
        n_train,
        checkpoint_bytes as epoch_checkpoint_bytes,
        wall_s as train_wall_s,
    from source
)

select * from renamed
