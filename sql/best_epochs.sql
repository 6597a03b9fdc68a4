-- best_epochs: the epoch each run reports: lowest eer on the validation dataset 'val'.
-- materialized: table
-- depends_on: score_metrics
-- grain: one row per run (every run_id present in predictions).
-- conventions: dataset role 'val' = the 5 % validation split of the training data;
--   ties in val eer go to the earliest epoch. a run with no usable 'val' eer reports its
--   last scored epoch, best_epoch is null and reason says why.
with

overall_metrics as (
    select * from score_metrics
    where grouping = 'overall'
),

scored_epochs as (
    select
        run_id,
        max(epoch) as last_epoch,
    from overall_metrics
    group by run_id
),

val_eers as (
    select
        run_id,
        epoch,
        eer,
    from overall_metrics
    where dataset = 'val' and eer is not null
),

lowest_val_eer as (
    select
        run_id,
        arg_min(epoch, { 'eer': eer, 'epoch': epoch }) as best_epoch,
        min(eer) as best_val_eer,
    from val_eers
    group by run_id
),

chosen as (
    select
        scored_epochs.run_id,
        lowest_val_eer.best_epoch,
        lowest_val_eer.best_val_eer,
        coalesce(lowest_val_eer.best_epoch, scored_epochs.last_epoch) as reported_epoch,
        case
            when lowest_val_eer.best_epoch is null
                then 'no val eer (no dataset val with both classes): last epoch reported'
        end as reason,
    from scored_epochs
    left join lowest_val_eer on scored_epochs.run_id = lowest_val_eer.run_id
)

select
    run_id,
    best_epoch,
    best_val_eer,
    reported_epoch,
    reason,
from chosen
