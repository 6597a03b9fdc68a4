-- asv_det_curve(scored): table macro, the asvspoof det curve of every group of a relation.
-- materialized: macro
-- input: the name of any relation with columns group_id (any type: the grouping key),
--   is_spoof (boolean) and cm_score (double, higher = bona fide).
-- grain: one row per group per det point: point_index 0 is the prepended (frr 0, far 1)
--   point, point_index k >= 1 the k-th score in sorted order (that row's is_spoof and
--   cm_score are kept, so callers need no second scan of the input). a group without both
--   classes keeps its rows with null frr/far and no point 0.
-- conventions (asvspoof 5 evaluation package, calculate_modules.compute_det_curve):
--   scores sorted ascending with ties broken bona fide first, which is what numpy's stable
--   mergesort gives on the concatenation [bona fide scores, spoof scores];
--   frr_k = bona fide among the first k / n_bonafide;
--   far_k = (n_spoof - spoof among the first k) / n_spoof;
--   threshold_k = the k-th sorted score, threshold_0 = lowest score - 0.001; no
--   interpolation. rows tied in both score and label are interchangeable, so ordering by
--   (cm_score, is_spoof) reproduces the package's point sequence exactly.
--   one scan of the input: class totals are window aggregates, not a second pass.
create or replace macro asv_det_curve(scored) as table
    with

    ranked_rows as (
        select
            group_id,
            is_spoof,
            cm_score,
            row_number() over sorted_order as row_position,
            rank() over sorted_order as block_rank,
            rank() over (partition by group_id, is_spoof order by cm_score asc) as class_block_rank,
            count(*) over (partition by group_id, is_spoof) as n_same_class,
            count(*) over (partition by group_id) as n_rows,
        from query_table(scored)
        window sorted_order as (partition by group_id order by cm_score asc, is_spoof asc)
    ),

    -- rows strictly before a row's (score, label) block that have the other label:
    -- block_rank - class_block_rank. a framed running sum would give the same counts, but
    -- ranks are tie-order independent and need no segment tree (several times faster).
    sorted_rows as (
        select
            group_id,
            is_spoof,
            cm_score,
            row_position,
            case
                when is_spoof then block_rank - class_block_rank
                else row_position - (block_rank - class_block_rank)
            end as bonafide_at_or_below,
            case when is_spoof then n_rows - n_same_class else n_same_class end as n_bonafide,
            case when is_spoof then n_same_class else n_rows - n_same_class end as n_spoof,
        from ranked_rows
    ),

    -- the first row of a group with both classes also yields the prepended point 0
    with_prepended as (
        select
            *,
            unnest(
                case
                    when row_position = 1 and n_bonafide > 0 and n_spoof > 0 then [0, 1]
                    else [row_position]
                end
            ) as point_index,
        from sorted_rows
    )

    select
        group_id,
        point_index,
        case when point_index = 0 then cm_score - 0.001 else cm_score end as threshold,
        case
            when point_index = 0 then 0.0
            else bonafide_at_or_below::double / nullif(n_bonafide, 0)
        end as frr,
        case
            when point_index = 0 then 1.0
            else (n_spoof - (row_position - bonafide_at_or_below))::double / nullif(n_spoof, 0)
        end as far,
        n_bonafide,
        n_spoof,
        case when point_index > 0 then is_spoof end as is_spoof,
        case when point_index > 0 then cm_score end as cm_score,
    from with_prepended
