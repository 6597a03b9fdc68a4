-- calibrated_blocks: the calibrated llrs of every metric group, aggregated into blocks of
-- equal score and label (the input of asv_block_metrics for calibration_metrics).
-- materialized: intermediate
-- depends_on: calibrated_scores, score_group_cells
-- grain: one row per group per calibration (dev set) per distinct (cm_llr, is_spoof).
-- conventions: groups as in score_group_cells (generator/family groups pool the bona fide
--   rows). group_id = {score_group_id: the score_groups group_id, fitted_on: the dev set}, so
--   one group calibrated on two dev sets is two groups here. cm_score = cm_llr (higher = bona
--   fide), the column the asv_* macros read. rows are aggregated per cell before they are
--   spread over their groups, as in score_blocks.
with

scores as (
    select * from calibrated_scores
),

memberships as (
    select * from score_group_cells
),

cell_blocks as (
    select
        cell_id,
        fitted_on,
        cm_llr,
        is_spoof,
        count(*) as n_rows,
    from scores
    group by cell_id, fitted_on, cm_llr, is_spoof
),

blocks as (
    select
        {
            'score_group_id': memberships.group_id,
            'fitted_on': cell_blocks.fitted_on
        } as group_id,
        cell_blocks.cm_llr as cm_score,
        cell_blocks.is_spoof,
        sum(cell_blocks.n_rows)::bigint as n_rows,
    from cell_blocks
    inner join memberships on cell_blocks.cell_id = memberships.cell_id
    group by all
)

select
    group_id,
    cm_score,
    is_spoof,
    n_rows,
from blocks
