-- threshold_metrics: confusion counts and threshold metrics per group and threshold policy.
-- materialized: table
-- grain: one row per run per epoch per dataset per grouping per group value per policy.
-- conventions:
--   positive class = spoof; sensitivity = recall = tp / (tp + fn); specificity =
--   tn / (tn + fp).
--   policy 'p_spoof_<t>' (t = metric_params.threshold, 0.5 by default): predicted spoof
--   when p_spoof >= t.
--   policy 'val_eer': predicted spoof when cm_score <= the eer threshold of the dataset
--   'val' (grouping 'overall') of the same run and epoch; the det curve counts scores at or
--   below its threshold as rejected, so '<=' keeps that reading.
--   a metric whose denominator is zero is null and `reason` says why (the first such cause).
with

params as (
    select threshold from metric_params
),

scores as (
    select * from grouped_scores
),

val_eer_thresholds as (
    select
        run_id,
        epoch,
        eer_threshold,
    from score_metrics
    where dataset = 'val' and grouping = 'overall' and eer_threshold is not null
),

policy_decisions as (
    select
        scores.run_id,
        scores.epoch,
        scores.dataset,
        scores.grouping,
        scores.group_value,
        scores.is_spoof,
        'p_spoof_' || params.threshold::varchar as policy,
        'p_spoof' as threshold_scale,
        params.threshold,
        scores.p_spoof >= params.threshold as is_predicted_spoof,
    from scores
    cross join params
    union all
    select
        scores.run_id,
        scores.epoch,
        scores.dataset,
        scores.grouping,
        scores.group_value,
        scores.is_spoof,
        'val_eer' as policy,
        'cm_score' as threshold_scale,
        val_eer_thresholds.eer_threshold as threshold,
        scores.cm_score <= val_eer_thresholds.eer_threshold as is_predicted_spoof,
    from scores
    left join val_eer_thresholds
        on scores.run_id = val_eer_thresholds.run_id and scores.epoch = val_eer_thresholds.epoch
),

confusion as (
    select
        run_id,
        epoch,
        dataset,
        grouping,
        group_value,
        policy,
        threshold_scale,
        any_value(threshold) as threshold,
        count(*) as n_rows,
        count(*) filter (where not is_spoof) as n_bonafide,
        count(*) filter (where is_spoof) as n_spoof,
        count(*) filter (where is_spoof and is_predicted_spoof) as tp,
        count(*) filter (where not is_spoof and is_predicted_spoof) as fp,
        count(*) filter (where not is_spoof and not is_predicted_spoof) as tn,
        count(*) filter (where is_spoof and not is_predicted_spoof) as fn,
    from policy_decisions
    group by all
),

-- without a threshold nothing was decided: the cells are unknown, not zero
decided_cells as (
    select
        run_id,
        epoch,
        dataset,
        grouping,
        group_value,
        policy,
        threshold_scale,
        threshold,
        n_rows,
        n_bonafide,
        n_spoof,
        case when threshold is not null then tp end as tp,
        case when threshold is not null then fp end as fp,
        case when threshold is not null then tn end as tn,
        case when threshold is not null then fn end as fn,
    from confusion
),

rates as (
    select
        *,
        tp + fp as n_predicted_spoof,
        tn + fn as n_predicted_bonafide,
    from decided_cells
),

metrics as (
    select
        *,
        (tp + tn) / n_rows as accuracy,
        tp / nullif(n_predicted_spoof, 0) as precision,
        tp / nullif(n_spoof, 0) as recall,
        tp / nullif(n_spoof, 0) as sensitivity,
        tn / nullif(n_bonafide, 0) as specificity,
        2 * tp / nullif(2 * tp + fp + fn, 0) as f1,
        (tp::double * tn - fp::double * fn) / nullif(
            sqrt(
                n_predicted_spoof::double * n_spoof * n_bonafide * n_predicted_bonafide
            ),
            0
        ) as mcc,
        case
            when threshold is null then 'no val eer threshold for this run and epoch'
            when n_spoof = 0 then 'no spoof rows'
            when n_bonafide = 0 then 'no bona fide rows'
            when n_predicted_spoof = 0 then 'nothing predicted spoof'
            when n_predicted_bonafide = 0 then 'nothing predicted bona fide'
        end as reason,
    from rates
)

select
    run_id,
    epoch,
    dataset,
    grouping,
    group_value,
    policy,
    threshold_scale,
    threshold,
    n_rows,
    n_bonafide,
    n_spoof,
    tp,
    fp,
    tn,
    fn,
    accuracy,
    precision,
    recall,
    sensitivity,
    specificity,
    f1,
    mcc,
    reason,
from metrics
