-- polished_gap: accuracy and eer on raw vs polished audio of the same clips, same run
-- and epoch.
-- materialized: table
-- depends_on: headline_policy, score_metrics, stg_predictions, threshold_metrics
-- grain: one row per run per epoch per raw dataset that has a polished twin.
-- conventions: a dataset named '<x>_polished' is the polished twin of dataset '<x>'
--   (e.g. 'test' / 'test_polished', 'val' / 'val_polished'); pairs are made by that name
--   only. n_shared_clips counts clip_ids present in both, so a pairing over different clips
--   shows. grouping 'overall', the headline policy 'p_spoof_<threshold>' (headline_policy).
--   accuracy_gap = raw - polished (points lost to polish); eer_gap = polished - raw;
--   ratios are polished / raw (null with a reason when raw is 0 or a metric is missing).
with

overall_scores as (
    select * from score_metrics
    where grouping = 'overall'
),

headline as (
    select * from headline_policy
),

overall_thresholds as (
    select threshold_metrics.*
    from threshold_metrics
    semi join headline on threshold_metrics.policy = headline.policy
    where threshold_metrics.grouping = 'overall'
),

predictions as (
    select * from stg_predictions
),

dataset_metrics as (
    select
        overall_scores.run_id,
        overall_scores.epoch,
        overall_scores.dataset,
        overall_thresholds.accuracy,
        overall_scores.eer,
    from overall_scores
    inner join overall_thresholds
        on
            overall_scores.run_id = overall_thresholds.run_id
            and overall_scores.epoch = overall_thresholds.epoch
            and overall_scores.dataset = overall_thresholds.dataset
),

pairs as (
    select
        raw.run_id,
        raw.epoch,
        raw.dataset,
        polished.dataset as polished_dataset,
        raw.accuracy as raw_accuracy,
        polished.accuracy as polished_accuracy,
        raw.eer as raw_eer,
        polished.eer as polished_eer,
    from dataset_metrics as raw
    inner join dataset_metrics as polished
        on
            raw.run_id = polished.run_id
            and raw.epoch = polished.epoch
            and polished.dataset = raw.dataset || '_polished'
),

shared_clips as (
    select
        pairs.run_id,
        pairs.epoch,
        pairs.dataset,
        count(distinct raw_rows.clip_id) as n_shared_clips,
    from pairs
    inner join predictions as raw_rows
        on
            pairs.run_id = raw_rows.run_id
            and pairs.epoch = raw_rows.epoch
            and pairs.dataset = raw_rows.dataset
    semi join predictions as polished_rows
        on
            raw_rows.run_id = polished_rows.run_id
            and raw_rows.epoch = polished_rows.epoch
            and raw_rows.clip_id = polished_rows.clip_id
            and pairs.polished_dataset = polished_rows.dataset
    group by all
),

gaps as (
    select
        pairs.*,
        coalesce(shared_clips.n_shared_clips, 0) as n_shared_clips,
        pairs.raw_accuracy - pairs.polished_accuracy as accuracy_gap,
        pairs.polished_accuracy / nullif(pairs.raw_accuracy, 0) as accuracy_ratio,
        pairs.polished_eer - pairs.raw_eer as eer_gap,
        pairs.polished_eer / nullif(pairs.raw_eer, 0) as eer_ratio,
    from pairs
    left join shared_clips
        on
            pairs.run_id = shared_clips.run_id
            and pairs.epoch = shared_clips.epoch
            and pairs.dataset = shared_clips.dataset
)

select
    run_id,
    epoch,
    dataset,
    polished_dataset,
    n_shared_clips,
    raw_accuracy,
    polished_accuracy,
    accuracy_gap,
    accuracy_ratio,
    raw_eer,
    polished_eer,
    eer_gap,
    eer_ratio,
    case
        when n_shared_clips = 0 then 'no clip in both datasets'
        when raw_eer is null or polished_eer is null then 'eer undefined (one class only)'
        when raw_eer = 0 then 'raw eer is 0: eer_ratio undefined'
    end as reason,
from gaps
order by run_id, epoch, dataset
