-- threshold_metrics: confusion counts and threshold metrics per group and threshold policy.
-- materialized: table
-- depends_on: headline_policy, score_cell_blocks, score_cells, score_group_cells, score_groups
-- depends_on: score_metrics
-- grain: one row per run per epoch per dataset per grouping per group value per policy.
-- conventions:
--   positive class = spoof; sensitivity = recall = tp / (tp + fn); specificity =
--   tn / (tn + fp).
--   policy 'p_spoof_<t>' (headline_policy; t = metric_params.threshold, 0.5 by default):
--   predicted spoof when p_spoof >= t.
--   policy 'val_eer': predicted spoof when cm_score <= the eer threshold of the dataset
--   'val' (grouping 'overall') of the same run and epoch; the det curve counts scores at or
--   below its threshold as rejected, so '<=' keeps that reading.
--   a metric whose denominator is zero is 0 and `reason` says why (the first such cause):
--   sklearn's zero_division=0 convention, the one the study and the asvspoof reference
--   report (e.g. mcc 0, specificity 0 % for a run that predicts one class). without a
--   threshold (policy 'val_eer' on a run with no val eer) nothing was decided: every
--   metric is null.
--   the counts add up over cells: each cell's blocks (score_cell_blocks) are counted once
--   per policy, then the few cell counts are summed into every group holding the cell, so
--   the per-group blocks are never read.
with

headline as (
    select * from headline_policy
),

blocks as (
    select * from score_cell_blocks
),

cells as (
    select * from score_cells
),

memberships as (
    select * from score_group_cells
),

group_keys as (
    select * from score_groups
),

val_eer_thresholds as (
    select
        run_id,
        epoch,
        eer_threshold,
    from score_metrics
    where dataset = 'val' and grouping = 'overall' and eer_threshold is not null
),

-- counted on score blocks (one row per cell, score and label), then per cell: the long
-- per-row form is never built
cell_decisions as (
    select
        blocks.cell_id,
        blocks.is_spoof,
        blocks.n_rows,
        headline.policy,
        headline.threshold_scale,
        headline.threshold,
        blocks.p_spoof >= headline.threshold as is_predicted_spoof,
    from blocks
    cross join headline
    union all
    select
        blocks.cell_id,
        blocks.is_spoof,
        blocks.n_rows,
        'val_eer' as policy,
        'cm_score' as threshold_scale,
        val_eer_thresholds.eer_threshold as threshold,
        blocks.cm_score <= val_eer_thresholds.eer_threshold as is_predicted_spoof,
    from blocks
    inner join cells on blocks.cell_id = cells.cell_id
    left join val_eer_thresholds
        on
            cells.run_id = val_eer_thresholds.run_id
            and cells.epoch = val_eer_thresholds.epoch
),

cell_confusion as (
    select
        cell_id,
        policy,
        threshold_scale,
        any_value(threshold) as threshold,
        sum(n_rows) as n_rows,
        coalesce(sum(n_rows) filter (where not is_spoof), 0) as n_bonafide,
        coalesce(sum(n_rows) filter (where is_spoof), 0) as n_spoof,
        coalesce(sum(n_rows) filter (where is_spoof and is_predicted_spoof), 0) as tp,
        coalesce(sum(n_rows) filter (where not is_spoof and is_predicted_spoof), 0) as fp,
        coalesce(sum(n_rows) filter (where not is_spoof and not is_predicted_spoof), 0) as tn,
        coalesce(sum(n_rows) filter (where is_spoof and not is_predicted_spoof), 0) as fn,
    from cell_decisions
    group by cell_id, policy, threshold_scale
),

group_confusion as (
    select
        memberships.group_id,
        cell_confusion.policy,
        cell_confusion.threshold_scale,
        any_value(cell_confusion.threshold) as threshold,
        sum(cell_confusion.n_rows) as n_rows,
        sum(cell_confusion.n_bonafide) as n_bonafide,
        sum(cell_confusion.n_spoof) as n_spoof,
        sum(cell_confusion.tp) as tp,
        sum(cell_confusion.fp) as fp,
        sum(cell_confusion.tn) as tn,
        sum(cell_confusion.fn) as fn,
    from cell_confusion
    inner join memberships on cell_confusion.cell_id = memberships.cell_id
    group by memberships.group_id, cell_confusion.policy, cell_confusion.threshold_scale
),

confusion as (
    select
        group_keys.run_id,
        group_keys.epoch,
        group_keys.dataset,
        group_keys.grouping,
        group_keys.group_value,
        group_confusion.policy,
        group_confusion.threshold_scale,
        group_confusion.threshold,
        group_confusion.n_rows::bigint as n_rows,
        group_confusion.n_bonafide::bigint as n_bonafide,
        group_confusion.n_spoof::bigint as n_spoof,
        group_confusion.tp::bigint as tp,
        group_confusion.fp::bigint as fp,
        group_confusion.tn::bigint as tn,
        group_confusion.fn::bigint as fn,
    from group_confusion
    inner join group_keys on group_confusion.group_id = group_keys.group_id
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

ratios as (
    select
        *,
        (tp + tn) / n_rows as accuracy,
        tp / nullif(n_predicted_spoof, 0) as precision_defined,
        tp / nullif(n_spoof, 0) as recall_defined,
        tn / nullif(n_bonafide, 0) as specificity_defined,
        2 * tp / nullif(2 * tp + fp + fn, 0) as f1_defined,
        (tp::double * tn - fp::double * fn) / nullif(
            sqrt(
                n_predicted_spoof::double * n_spoof * n_bonafide * n_predicted_bonafide
            ),
            0
        ) as mcc_defined,
    from rates
),

-- zero_division = 0: a decided cell's zero-denominator metric is 0; an undecided one is null
metrics as (
    select
        *,
        case when threshold is not null then coalesce(precision_defined, 0) end as precision,
        case when threshold is not null then coalesce(recall_defined, 0) end as recall,
        case when threshold is not null then coalesce(recall_defined, 0) end as sensitivity,
        case when threshold is not null then coalesce(specificity_defined, 0) end as specificity,
        case when threshold is not null then coalesce(f1_defined, 0) end as f1,
        case when threshold is not null then coalesce(mcc_defined, 0) end as mcc,
        case
            when threshold is null then 'no val eer threshold for this run and epoch'
            when n_spoof = 0 then 'no spoof rows'
            when n_bonafide = 0 then 'no bona fide rows'
            when n_predicted_spoof = 0 then 'nothing predicted spoof'
            when n_predicted_bonafide = 0 then 'nothing predicted bona fide'
        end as reason,
    from ratios
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
