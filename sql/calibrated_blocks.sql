-- calibrated_blocks: the calibrated llrs of every metric group, aggregated into blocks of
-- equal score and label (the input of asv_block_metrics for calibration_metrics).
-- materialized: intermediate
-- depends_on: calibrated_scores, group_blocks, score_group_cells
-- grain: one row per group per calibration (dev set) per distinct (cm_llr, is_spoof).
-- conventions: groups as in score_group_cells (generator/family groups pool the bona fide
--   rows). group_id = {score_group_id: the score_groups group_id, fitted_on: the dev set,
--   is_held_out: the group's dataset is not the dev set}, so one group calibrated on two dev
--   sets is two groups here. cm_score = cm_llr (higher = bona fide), the column the asv_*
--   macros read. rows are aggregated per cell before group_blocks spreads them over their
--   groups, as in score_blocks.
with

scores as (
    select * from calibrated_scores
),

-- read by group_blocks('cell_blocks', 'score_group_cells'), by name
cell_blocks as (  -- noqa: ST03
    select
        cell_id,
        fitted_on,
        is_held_out,
        cm_llr as cm_score,
        is_spoof,
        count(*) as n_rows,
    from scores
    group by cell_id, fitted_on, is_held_out, cm_llr, is_spoof
),

group_cell_blocks as (
    select * from group_blocks('cell_blocks', 'score_group_cells')
),

blocks as (
    select
        {
            'score_group_id': group_id,
            'fitted_on': fitted_on,
            'is_held_out': is_held_out
        } as group_id,
        cm_score,
        is_spoof,
        n_rows,
    from group_cell_blocks
)

select * from blocks
