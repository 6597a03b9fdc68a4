-- asv_det_curve(blocks): table macro, the asvspoof det curve of every group, one row per
-- block of tied points.
-- materialized: macro
-- depends_on:
-- input: the name of any relation with columns group_id (any type: the grouping key),
--   cm_score (double, higher = bona fide), is_spoof (boolean) and n_rows (bigint > 0: the
--   rows with that score and label), one row per (group_id, cm_score, is_spoof), e.g.
--   score_blocks.
-- grain: one row per group per block; is_first_block marks the block with the lowest score.
-- conventions (asvspoof 5 evaluation package, calculate_modules.compute_det_curve):
--   scores sorted ascending with ties broken bona fide first, which is what numpy's stable
--   mergesort gives on the concatenation [bona fide scores, spoof scores]; rows tied in
--   score and label are interchangeable, so a block of n_rows such rows holds the
--   package's det points p = n_before + 1 .. n_before + n_rows (n_before = bonafide_before
--   + spoof_before), all at threshold cm_score. point p = n_before + i of a block has
--   frr = (bonafide_before + i [bona fide block]) / n_bonafide and
--   far = (n_spoof - spoof_before - i [spoof block]) / n_spoof; point 0, the prepended
--   (frr 0, far 1) point at threshold lowest score - 0.001, is i = 0 of the first block.
--   no interpolation. a group without both classes has n_bonafide or n_spoof 0.
--   one sort of the blocks: before-counts are two running sums over one window.
create or replace macro asv_det_curve(blocks) as table
    with

    running_counts as (
        select
            group_id,
            cm_score,
            is_spoof,
            n_rows,
            -- running sums in double are exact up to 2^53 rows and about twice as fast as
            -- the hugeint sums of bigint
            sum(n_rows::double) over det_order as rows_through,
            sum(case when is_spoof then 0.0 else n_rows::double end) over det_order
                as bonafide_through,
        from query_table(blocks)
        window det_order as (
            partition by group_id
            order by cm_score asc, is_spoof asc
            rows between unbounded preceding and current row
        )
    ),

    -- class totals by aggregation and a join: cheaper than a second window over the blocks
    class_totals as (
        select
            group_id,
            coalesce(sum(n_rows) filter (where not is_spoof), 0)::bigint as n_bonafide,
            coalesce(sum(n_rows) filter (where is_spoof), 0)::bigint as n_spoof,
        from query_table(blocks)
        group by group_id
    ),

    block_counts as (
        select
            running_counts.group_id,
            running_counts.cm_score,
            running_counts.is_spoof,
            running_counts.n_rows,
            (running_counts.rows_through - running_counts.n_rows)::bigint as n_before,
            (
                running_counts.bonafide_through
                - case when running_counts.is_spoof then 0 else running_counts.n_rows end
            )::bigint as bonafide_before,
            class_totals.n_bonafide,
            class_totals.n_spoof,
        from running_counts
        inner join class_totals on running_counts.group_id = class_totals.group_id
    )

    select
        group_id,
        n_before = 0 as is_first_block,
        cm_score,
        is_spoof,
        n_rows,
        bonafide_before,
        n_before - bonafide_before as spoof_before,
        n_bonafide,
        n_spoof,
    from block_counts
