-- score_blocks: the score blocks of every group (the input of the per-group det curve,
-- asv_block_metrics in score_metrics).
-- materialized: intermediate
-- depends_on: group_blocks, score_cell_blocks, score_group_cells
-- grain: one row per group per distinct (cm_score, is_spoof).
-- conventions: groups as in score_group_cells (generator/family groups pool the bona fide
--   rows). n_rows = predictions in the block. rows of one block are interchangeable for
--   every metric (ties in the det curve are broken by label only, see asv_det_curve), so
--   nothing is lost; with tied scores the blocks are far fewer than the rows. the cell
--   blocks are spread over their groups here (group_blocks), so this is the largest
--   relation of the metric sql (about the blocks times the groups a cell is in): it holds
--   only what the det curve sorts, and threshold_metrics counts on the cell blocks instead.
with

-- read by group_blocks('cell_blocks', 'score_group_cells'), by name
cell_blocks as (  -- noqa: ST03
    select
        cell_id,
        cm_score,
        is_spoof,
        n_rows,
    from score_cell_blocks
)

select * from group_blocks('cell_blocks', 'score_group_cells')  -- noqa: AM04
