-- group_blocks(cell_blocks, memberships): table macro, cell score blocks spread over the
-- metric groups that hold each cell and summed into group blocks.
-- materialized: macro
-- depends_on:
-- input: the name of any relation with columns cell_id, cm_score, is_spoof and n_rows (one
--   row per cell per distinct block), plus key columns: every other column is a key (e.g.
--   the calibration's fitted_on); memberships: the name of the relation of (group_id,
--   cell_id) pairs, score_group_cells (a parameter, so the macro binds without it, as
--   group_keyed).
-- grain: one row per group per key per distinct (cm_score, is_spoof).
-- columns: group_id (the score_group_cells group_id), the keys in input order, cm_score,
--   is_spoof, n_rows (bigint).
-- conventions: groups as in score_group_cells (generator/family groups pool the bona fide
--   rows). blocks are aggregated per cell before they are spread, so rows are never
--   expanded per group: the one join of blocks to groups, for score_blocks and
--   calibrated_blocks.
create or replace macro group_blocks(cell_blocks, memberships) as table
    with

    spread as (
        select
            memberships.group_id,
            cell_blocks.* exclude (cell_id, cm_score, is_spoof, n_rows),  -- noqa: AM04, RF02
            cell_blocks.cm_score,
            cell_blocks.is_spoof,
            cell_blocks.n_rows,
        from query_table(cell_blocks) as cell_blocks  -- noqa: RF02
        inner join query_table(memberships) as memberships  -- noqa: RF02
            on cell_blocks.cell_id = memberships.cell_id
    )

    select
        * exclude (n_rows),  -- noqa: AM04
        sum(n_rows)::bigint as n_rows,
    from spread
    group by all
