-- score_blocks: the labelled predictions of every group, aggregated into blocks of equal
-- score and label (the input of the per-group metrics: asv_block_metrics, threshold counts).
-- materialized: intermediate
-- depends_on: labelled_predictions, score_group_cells
-- grain: one row per group per distinct (cm_score, is_spoof).
-- conventions: groups as in score_group_cells (generator/family groups pool the bona fide
--   rows). n_rows = predictions in the block; p_spoof is a function of cm_score, so one value
--   per block. rows of one block are interchangeable for every metric (ties in the det curve
--   are broken by label only, see asv_det_curve), so nothing is lost; with tied scores the
--   blocks are far fewer than the rows. rows are aggregated per cell (by cell_id) before
--   they are spread over their groups, so each prediction is read once.
with

scores as (
    select * from labelled_predictions
),

memberships as (
    select * from score_group_cells
),

cell_blocks as (
    select
        cell_id,
        cm_score,
        is_spoof,
        any_value(p_spoof) as p_spoof,
        count(*) as n_rows,
    from scores
    group by cell_id, cm_score, is_spoof
),

group_cell_blocks as (
    select
        memberships.group_id,
        cell_blocks.cm_score,
        cell_blocks.is_spoof,
        cell_blocks.p_spoof,
        cell_blocks.n_rows,
    from cell_blocks
    inner join memberships on cell_blocks.cell_id = memberships.cell_id
),

blocks as (
    select
        group_id,
        cm_score,
        is_spoof,
        any_value(p_spoof) as p_spoof,
        sum(n_rows)::bigint as n_rows,
    from group_cell_blocks
    group by group_id, cm_score, is_spoof
)

select
    group_id,
    cm_score,
    is_spoof,
    p_spoof,
    n_rows,
from blocks
