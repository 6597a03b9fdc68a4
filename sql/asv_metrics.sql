-- asv_metrics(scored): table macro, the threshold-free asvspoof metrics of every group.
-- materialized: macro
-- input: the name of any relation with columns group_id, is_spoof, cm_score (see
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
--   one scan of the input: everything is aggregated from asv_det_curve's single sort.
create or replace macro asv_metrics(scored) as table
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

    det_costs as (
        select
            det_points.group_id,
            det_points.point_index,
            det_points.threshold,
            det_points.frr,
            det_points.far,
            det_points.n_bonafide,
            det_points.n_spoof,
            det_points.is_spoof,
            det_points.cm_score,
            params.act_dcf_threshold,
            abs(det_points.frr - det_points.far) as rate_gap,
            params.c_miss * det_points.frr * params.p_target
            + params.c_fa * det_points.far * (1.0 - params.p_target) as c_det,
        from asv_det_curve(scored) as det_points  -- noqa: RF02
        cross join params
    ),

    group_summary as (
        select
            group_id,
            any_value(n_bonafide) as n_bonafide,
            any_value(n_spoof) as n_spoof,
            any_value(act_dcf_threshold) as act_dcf_threshold,
            count(*) filter (where not is_spoof and cm_score < act_dcf_threshold)
                as n_bonafide_missed,
            count(*) filter (where is_spoof and cm_score >= act_dcf_threshold)
                as n_spoof_accepted,
            avg(greatest(-cm_score, 0.0) + ln(1.0 + exp(-abs(cm_score))))
            filter (where not is_spoof) as bonafide_log_loss,
            avg(greatest(cm_score, 0.0) + ln(1.0 + exp(-abs(cm_score))))
            filter (where is_spoof) as spoof_log_loss,
            arg_min(
                struct_pack(frr, far, threshold),
                struct_pack(rate_gap, point_index)
            ) filter (where rate_gap is not null) as eer_point,
            arg_min(
                struct_pack(c_det, threshold),
                struct_pack(c_det, point_index)
            ) filter (where c_det is not null) as min_dcf_point,
        from det_costs
        group by group_id
    ),

    metrics as (
        select
            group_summary.group_id,
            group_summary.n_bonafide,
            group_summary.n_spoof,
            (group_summary.eer_point.frr + group_summary.eer_point.far) / 2.0 as eer,
            group_summary.eer_point.threshold as eer_threshold,
            group_summary.min_dcf_point.c_det
            / least(params.c_miss * params.p_target, params.c_fa * (1.0 - params.p_target))
                as min_dcf,
            group_summary.min_dcf_point.threshold as min_dcf_threshold,
            group_summary.act_dcf_threshold,
            case
                when group_summary.eer_point is not null
                    then
                        (
                            params.c_miss * (1.0 - params.p_spoof)
                            * (group_summary.n_bonafide_missed / group_summary.n_bonafide)
                            + params.c_fa * params.p_spoof
                            * (group_summary.n_spoof_accepted / group_summary.n_spoof)
                        )
                        / least(
                            params.c_miss * (1.0 - params.p_spoof), params.c_fa * params.p_spoof
                        )
            end as act_dcf,
            case
                when group_summary.eer_point is not null
                    then
                        (group_summary.bonafide_log_loss + group_summary.spoof_log_loss)
                        / 2.0
                        / ln(2.0)
            end as cllr,
            case
                when group_summary.n_bonafide = 0 then 'no bona fide rows'
                when group_summary.n_spoof = 0 then 'no spoof rows'
            end as reason,
        from group_summary
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
