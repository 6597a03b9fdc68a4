-- asv_block_metrics(blocks): table macro, the threshold-free asvspoof metrics of every group
-- from score blocks (rows aggregated by score and label).
-- materialized: macro
-- depends_on: asv_det_curve, metric_params
-- input: the name of any relation with columns group_id, cm_score, is_spoof, n_rows (see
--   asv_det_curve); parameters come from the one-row relation metric_params (p_spoof,
--   c_miss, c_fa), which `dfpipe metrics` creates with bound values.
-- grain: one row per group_id.
-- conventions (asvspoof 5 evaluation package, calculate_modules.py):
--   eer: the first det point (lowest point_index) minimising |frr - far|;
--     eer = (frr + far) / 2 there, eer_threshold = that point's threshold.
--   min_dcf: c_det = c_miss * frr * p_target + c_fa * far * (1 - p_target), with
--     p_target = 1 - p_spoof, minimised over the det points (first minimum), normalised
--     by min(c_miss * p_target, c_fa * (1 - p_target)).
--   act_dcf: bayes threshold tau = -ln(c_miss * (1 - p_spoof) / (c_fa * p_spoof)) on the
--     score as a natural-log llr (-ln 1.9 at the asvspoof 5 costs); miss = bona fide with
--     cm_score < tau, false alarm = spoof with cm_score >= tau; same normalisation.
--   cllr = (mean softplus(-s) over bona fide + mean softplus(s) over spoof) / (2 ln 2),
--     softplus written in its overflow-free form.
--   degenerate groups (one class only) get null metrics and a reason.
--   blocks, not points: within a block one rate is fixed and the other moves one step per
--   point, so both minima can only be at a few candidate points per block (see
--   block_candidates); the candidates are evaluated with the package's own formulas, so
--   eer, min_dcf and their thresholds are the package's values exactly, however large the
--   tied blocks.
-- memory: one pass each way, so nothing large is held. the det curve (a window, which
--   duckdb sorts and spills partition by partition) streams into the candidate points and
--   then into one small aggregate per group; the threshold-free sums (act_dcf, cllr) are a
--   second aggregate straight over the blocks. no cte is read twice, so none is
--   materialised.
create or replace macro asv_block_metrics(blocks) as table
    with

    params as (
        select
            p_spoof,
            c_miss,
            c_fa,
            1.0 - p_spoof as p_target,
            -ln(c_miss * (1.0 - p_spoof) / (c_fa * p_spoof)) as act_dcf_threshold,
        from metric_params
    ),

    det_blocks as (
        select
            det_blocks.group_id,
            det_blocks.is_first_block,
            det_blocks.cm_score,
            det_blocks.is_spoof,
            det_blocks.n_rows,
            det_blocks.bonafide_before,
            det_blocks.spoof_before,
            det_blocks.n_bonafide,
            det_blocks.n_spoof,
            params.p_target,
            params.c_miss,
            params.c_fa,
        from asv_det_curve(blocks) as det_blocks  -- noqa: RF02
        cross join params
    ),

    -- the blocks as given, for the sums that need no order
    given_blocks as (
        select
            given_blocks.group_id,
            given_blocks.cm_score,
            given_blocks.is_spoof,
            given_blocks.n_rows,
            params.act_dcf_threshold,
        from query_table(blocks) as given_blocks  -- noqa: RF02
        cross join params
    ),

    -- the rates at the first and the last point of every block
    block_ends as (
        select
            *,
            (bonafide_before + case when is_spoof then 0 else 1 end)::double
            / nullif(n_bonafide, 0) as frr_first,
            (n_spoof - spoof_before - case when is_spoof then 1 else 0 end)::double
            / nullif(n_spoof, 0) as far_first,
            (bonafide_before + case when is_spoof then 0 else n_rows end)::double
            / nullif(n_bonafide, 0) as frr_last,
            (n_spoof - spoof_before - case when is_spoof then n_rows else 0 end)::double
            / nullif(n_spoof, 0) as far_last,
        from det_blocks
    ),

    -- frr - far grows at every det point (strictly: consecutive rates differ by far more
    -- than an ulp below 2^52 rows), so |frr - far| falls until the rates cross and rises
    -- after: a block wholly after the crossing has its smallest gap at its first point,
    -- one wholly before at its last point, and the block the crossing falls in
    -- (eer_candidate null) is searched point by point around it. c_det grows along a bona
    -- fide block (first minimum: its first point) and falls along a spoof block (its last
    -- point; two costs of a spoof block could only round to equal when a step
    -- c_fa * (1 - p_target) / n_spoof is below an ulp of a cost lower than point 0's
    -- c_fa * (1 - p_target), which needs over 4e15 spoof rows).
    block_candidates as (
        select
            *,
            case
                when frr_first - far_first >= 0 then 1
                when frr_last - far_last < 0 then n_rows
            end as eer_candidate,
            case when is_spoof then n_rows else 1 end as dcf_candidate,
            -- points into the block where frr = far in exact arithmetic
            case
                when is_spoof
                    then
                        n_spoof - spoof_before
                        - bonafide_before::double * n_spoof / nullif(n_bonafide, 0)
                else
                    (n_spoof - spoof_before)::double * n_bonafide / nullif(n_spoof, 0)
                    - bonafide_before
            end as crossing,
        from block_ends
    ),

    -- the points each block may hold a minimum at: its dcf candidate, its eer candidate or
    -- the points around the crossing, and point 0 in the first block (a point listed twice
    -- is evaluated twice, with equal results)
    candidate_points as (
        select
            *,
            unnest(
                [dcf_candidate]
                || case when eer_candidate != dcf_candidate then [eer_candidate] else [] end
                || case
                    when eer_candidate is null and frr_first is not null and far_first is not null
                        then
                            range(
                                greatest(floor(crossing)::bigint - 2, 1),
                                least(floor(crossing)::bigint + 2, n_rows) + 1
                            )
                    else []
                end
                || case when is_first_block then [0] else [] end
            ) as point_in_block,
        from block_candidates
    ),

    point_rates as (
        select
            group_id,
            bonafide_before + spoof_before + point_in_block as point_index,
            case when point_in_block = 0 then cm_score - 0.001 else cm_score end as threshold,
            (bonafide_before + case when is_spoof then 0 else point_in_block end)::double
            / nullif(n_bonafide, 0) as frr,
            (n_spoof - spoof_before - case when is_spoof then point_in_block else 0 end)::double
            / nullif(n_spoof, 0) as far,
            p_target,
            c_miss,
            c_fa,
        from candidate_points
    ),

    point_costs as (
        select
            group_id,
            point_index,
            threshold,
            frr,
            far,
            abs(frr - far) as rate_gap,
            c_miss * frr * p_target + c_fa * far * (1.0 - p_target) as c_det,
        from point_rates
    ),

    curve_summary as (
        select
            group_id,
            arg_min(
                struct_pack(frr, far, threshold),
                struct_pack(rate_gap, point_index)
            ) filter (where rate_gap is not null) as eer_point,
            arg_min(
                struct_pack(c_det, threshold),
                struct_pack(c_det, point_index)
            ) filter (where c_det is not null) as min_dcf_point,
        from point_costs
        group by group_id
    ),

    block_summary as (
        select
            group_id,
            coalesce(sum(n_rows) filter (where not is_spoof), 0)::bigint as n_bonafide,
            coalesce(sum(n_rows) filter (where is_spoof), 0)::bigint as n_spoof,
            any_value(act_dcf_threshold) as act_dcf_threshold,
            coalesce(
                sum(n_rows) filter (where not is_spoof and cm_score < act_dcf_threshold), 0
            ) as n_bonafide_missed,
            coalesce(
                sum(n_rows) filter (where is_spoof and cm_score >= act_dcf_threshold), 0
            ) as n_spoof_accepted,
            sum(n_rows * (greatest(-cm_score, 0.0) + ln(1.0 + exp(-abs(cm_score)))))
            filter (where not is_spoof) / nullif(sum(n_rows) filter (where not is_spoof), 0)
                as bonafide_log_loss,
            sum(n_rows * (greatest(cm_score, 0.0) + ln(1.0 + exp(-abs(cm_score)))))
            filter (where is_spoof) / nullif(sum(n_rows) filter (where is_spoof), 0)
                as spoof_log_loss,
        from given_blocks
        group by group_id
    ),

    metrics as (
        select
            block_summary.group_id,
            block_summary.n_bonafide,
            block_summary.n_spoof,
            (curve_summary.eer_point.frr + curve_summary.eer_point.far) / 2.0 as eer,
            curve_summary.eer_point.threshold as eer_threshold,
            curve_summary.min_dcf_point.c_det
            / least(params.c_miss * params.p_target, params.c_fa * (1.0 - params.p_target))
                as min_dcf,
            curve_summary.min_dcf_point.threshold as min_dcf_threshold,
            block_summary.act_dcf_threshold,
            case
                when curve_summary.eer_point is not null
                    then
                        (
                            params.c_miss * (1.0 - params.p_spoof)
                            * (block_summary.n_bonafide_missed / block_summary.n_bonafide)
                            + params.c_fa * params.p_spoof
                            * (block_summary.n_spoof_accepted / block_summary.n_spoof)
                        )
                        / least(
                            params.c_miss * (1.0 - params.p_spoof), params.c_fa * params.p_spoof
                        )
            end as act_dcf,
            case
                when curve_summary.eer_point is not null
                    then
                        (block_summary.bonafide_log_loss + block_summary.spoof_log_loss)
                        / 2.0
                        / ln(2.0)
            end as cllr,
            case
                when block_summary.n_bonafide = 0 then 'no bona fide rows'
                when block_summary.n_spoof = 0 then 'no spoof rows'
            end as reason,
        from block_summary
        inner join curve_summary on block_summary.group_id = curve_summary.group_id
        cross join params
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
    from metrics
