-- best_epochs: the epoch each run reports under each epoch policy (epoch_policies).
-- materialized: table
-- depends_on: epoch_policies, score_metrics, stg_epochs
-- grain: one row per run (every run_id present in predictions) per epoch_policy.
-- conventions: dataset role 'val' = the 5 % validation split of the training data.
--   best_epoch / best_val_eer: the epoch of lowest 'val' eer (ties go to the earliest
--   epoch), the same in every policy's row.
--   Only complete epochs compete: those where every dataset the run is scored on anywhere
--   was scored (an eval set declared `every: N` is missing from the epochs between), so
--   the reported epoch has numbers for every set.
--   'best_val_eer' reports best_epoch; a run with no usable 'val' eer reports its last
--   scored epoch, best_epoch is null and reason says why.
--   'last' reports the last committed epoch (the last epoch with an `epochs` row, the
--   commit mark of an epoch, that has predictions); a run without one (scored by
--   `dfpipe score` only) reports its last scored epoch and reason says so.
with

policies as (
    select * from epoch_policies
),

overall_metrics as (
    select * from score_metrics
    where grouping = 'overall'
),

committed_epochs as (
    select distinct
        run_id,
        epoch,
    from stg_epochs
),

scored_epochs as (
    select distinct
        run_id,
        epoch,
    from overall_metrics
),

last_epochs as (
    select
        scored_epochs.run_id,
        max(scored_epochs.epoch) as last_scored_epoch,
        max(committed_epochs.epoch) as last_committed_epoch,
    from scored_epochs
    left join committed_epochs
        on
            scored_epochs.run_id = committed_epochs.run_id
            and scored_epochs.epoch = committed_epochs.epoch
    group by scored_epochs.run_id
),

run_datasets as (
    select
        run_id,
        count(distinct dataset) as datasets,
    from overall_metrics
    group by run_id
),

complete_epochs as (
    select
        overall_metrics.run_id,
        overall_metrics.epoch,
    from overall_metrics
    inner join run_datasets on overall_metrics.run_id = run_datasets.run_id
    group by overall_metrics.run_id, overall_metrics.epoch, run_datasets.datasets
    having count(distinct overall_metrics.dataset) = run_datasets.datasets
),

val_eers as (
    select
        overall_metrics.run_id,
        overall_metrics.epoch,
        overall_metrics.eer,
    from overall_metrics
    inner join complete_epochs
        on
            overall_metrics.run_id = complete_epochs.run_id
            and overall_metrics.epoch = complete_epochs.epoch
    where overall_metrics.dataset = 'val' and overall_metrics.eer is not null
),

lowest_val_eer as (
    select
        run_id,
        arg_min(epoch, { 'eer': eer, 'epoch': epoch }) as best_epoch,
        min(eer) as best_val_eer,
    from val_eers
    group by run_id
),

run_epochs as (
    select
        last_epochs.run_id,
        last_epochs.last_scored_epoch,
        last_epochs.last_committed_epoch,
        lowest_val_eer.best_epoch,
        lowest_val_eer.best_val_eer,
    from last_epochs
    left join lowest_val_eer on last_epochs.run_id = lowest_val_eer.run_id
),

chosen as (
    select
        run_epochs.run_id,
        policies.epoch_policy,
        run_epochs.best_epoch,
        run_epochs.best_val_eer,
        case policies.epoch_policy
            when 'best_val_eer' then coalesce(run_epochs.best_epoch, run_epochs.last_scored_epoch)
            when 'last' then coalesce(run_epochs.last_committed_epoch, run_epochs.last_scored_epoch)
            else error('best_epochs: no rule for the epoch policy ' || policies.epoch_policy)
        end as reported_epoch,
        case
            when policies.epoch_policy = 'best_val_eer' and run_epochs.best_epoch is null
                then 'no val eer (no dataset val with both classes): last epoch reported'
            when policies.epoch_policy = 'last' and run_epochs.last_committed_epoch is null
                then 'no committed epoch (no epochs row): last scored epoch reported'
        end as reason,
    from run_epochs
    cross join policies
)

select
    run_id,
    epoch_policy,
    best_epoch,
    best_val_eer,
    reported_epoch,
    reason,
from chosen
