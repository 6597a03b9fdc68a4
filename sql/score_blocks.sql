-- score_blocks: the score blocks of every group (the input of the per-group det curve,
-- asv_block_metrics in score_metrics).
-- materialized: intermediate
-- depends_on: score_cell_blocks, score_group_cells
-- grain: one row per group per distinct (cm_score, is_spoof).
-- conventions: groups as in score_group_cells (generator/family groups pool the bona fide
--   rows). n_rows = predictions in the block. rows of one block are interchangeable for
--   every metric (ties in the det curve are broken by label only, see asv_det_curve), so
--   nothing is lost; with tied scores the blocks are far fewer than the rows. the cell
--   blocks are spread over their groups here, so this is the largest relation of the
--   metric sql (about the blocks times the groups a cell is in): it holds only what the det
--   curve sorts, and threshold_metrics counts on the cell blocks instead.
with

cell_blocks as (
    select * from score_cell_blocks
),

memberships as (
    select * from score_group_cells
),

group_cell_blocks as (
    select
        memberships.group_id,
        cell_blocks.cm_score,
        cell_blocks.is_spoof,
        cell_blocks.n_rows,
    from cell_blocks
    inner join memberships on cell_blocks.cell_id = memberships.cell_id
),

blocks as (
    select
        group_id,
        cm_score,
        is_spoof,
        sum(n_rows)::bigint as n_rows,
    from group_cell_blocks
    group by group_id, cm_score, is_spoof
)

select
    group_id,
    cm_score,
    is_spoof,
    n_rows,
from blocks
