-- asv_metrics(scored): table macro, the threshold-free asvspoof metrics of every group of a
-- relation of scored rows.
-- materialized: macro
-- depends_on: asv_block_metrics
-- input: the name of any relation with columns group_id (any type: the grouping key),
--   is_spoof (boolean) and cm_score (double, higher = bona fide), one row per prediction,
--   e.g. grouped_scores; parameters from metric_params.
-- grain: one row per group_id.
-- conventions: the rows are aggregated into blocks of equal (cm_score, is_spoof) and
--   handed to asv_block_metrics, which holds every metric definition (eer, min_dcf,
--   act_dcf, cllr, reasons).
create or replace macro asv_metrics(scored) as table
    with

    -- read by asv_block_metrics('scored_blocks'), by name
    scored_blocks as (  -- noqa: ST03
        select
            group_id,
            cm_score,
            is_spoof,
            count(*) as n_rows,
        from query_table(scored)
        group by group_id, cm_score, is_spoof
    )

    select
        group_id,
        n_bonafide,
        n_spoof,
        eer,
        eer_threshold,
        min_dcf,
        min_dcf_threshold,
        act_dcf,
        act_dcf_threshold,
        cllr,
        reason,
    from asv_block_metrics('scored_blocks')
