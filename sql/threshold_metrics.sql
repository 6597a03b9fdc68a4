-- threshold_metrics: confusion counts and threshold metrics per group and threshold policy.
-- materialized: table
-- depends_on: confusion_metrics, group_keyed, headline_policy, score_cell_blocks, score_cells
-- depends_on: score_group_cells, score_groups, score_metrics
-- grain: one row per run per epoch per dataset per grouping per group value per policy.
-- columns: the group keys, policy, threshold_scale, then the counts and metrics of
--   confusion_metrics (their definitions and the zero-denominator convention are there).
-- conventions:
--   policy 'p_spoof_<t>' (headline_policy; t = metric_params.threshold, 0.5 by default):
--   predicted spoof when p_spoof >= t.
--   policy 'val_eer': predicted spoof when cm_score <= the eer threshold of the dataset
--   'val' (grouping 'overall') of the same run and epoch; the det curve counts scores at or
--   below its threshold as rejected, so '<=' keeps that reading. without a threshold
--   (policy 'val_eer' on a run with no val eer) nothing was decided: every metric is null.
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

-- one row per cell, policy and decision: a cell holds one class, so at most two
cell_decided as (
    select
        cell_id,
        policy,
        threshold_scale,
        is_spoof,
        is_predicted_spoof,
        any_value(threshold) as threshold,
        sum(n_rows) as n_rows,
    from cell_decisions
    group by cell_id, policy, threshold_scale, is_spoof, is_predicted_spoof
),

-- read by confusion_metrics('group_decisions', ...), by name
group_decisions as (  -- noqa: ST03
    select
        memberships.group_id,
        cell_decided.policy,
        cell_decided.threshold_scale,
        cell_decided.threshold,
        cell_decided.is_spoof,
        cell_decided.is_predicted_spoof,
        cell_decided.n_rows,
    from cell_decided
    inner join memberships on cell_decided.cell_id = memberships.cell_id
),

-- read by group_keyed('group_metrics', 'score_groups'), by name
group_metrics as (  -- noqa: ST03
    select * from confusion_metrics(
        'group_decisions',
        no_threshold_reason := 'no val eer threshold for this run and epoch'
    )
)

select * from group_keyed('group_metrics', 'score_groups')  -- noqa: AM04
