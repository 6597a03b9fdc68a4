-- calibration_metrics: act_dcf and cllr before and after calibration, per group and dev set.
-- materialized: table
-- depends_on: asv_block_metrics, calibrated_blocks, calibrations, group_keyed, score_groups
-- depends_on: score_metrics
-- grain: one row per run per epoch per dataset per grouping per group value per calibration
--   dev set (fitted_on), for every run and epoch with a calibrations row.
-- conventions: the asvspoof 5 definitions of asv_block_metrics, on two scores of the same
--   rows: *_raw on the model's logit read as an llr (cm_score = -spoof_logit, the columns of
--   score_metrics), the others on the calibrated llr of calibrated_scores. act_dcf decides at
--   the bayes threshold -ln(beta) of metric_params' costs (act_dcf_threshold, on cm_llr), so
--   with a calibrated llr it is the cost of the bayes decision; eer and min_dcf depend on the
--   ranking only and are unchanged by the (increasing) map. is_held_out: dataset is not the
--   dev set; read held-out rows to judge a calibration. a map with slope <= 0 (scores that
--   rank spoofs below bona fide on the dev set) reverses the ranking: eer and min_dcf
--   are then those of the reversed scores.
with

-- read by group_keyed('calibrated', 'score_groups'), by name
calibrated as (  -- noqa: ST03
    select
        group_id.score_group_id as group_id,
        struct_extract(group_id, 'fitted_on') as fitted_on,
        struct_extract(group_id, 'is_held_out') as is_held_out,
        * exclude (group_id),
    from asv_block_metrics('calibrated_blocks')
),

keyed as (
    select * from group_keyed('calibrated', 'score_groups')
),

raw_metrics as (
    select * from score_metrics
),

maps as (
    select * from calibrations
),

compared as (
    select
        keyed.run_id,
        keyed.epoch,
        keyed.dataset,
        keyed.grouping,
        keyed.group_value,
        keyed.fitted_on,
        keyed.is_held_out,
        maps.slope,
        maps.intercept,
        maps.prior,
        keyed.n_bonafide,
        keyed.n_spoof,
        keyed.eer,
        keyed.min_dcf,
        raw_metrics.act_dcf as act_dcf_raw,
        keyed.act_dcf,
        raw_metrics.cllr as cllr_raw,
        keyed.cllr,
        keyed.act_dcf_threshold,
        keyed.reason,
    from keyed
    inner join maps
        on
            keyed.run_id = maps.run_id
            and keyed.epoch = maps.epoch
            and keyed.fitted_on = maps.fitted_on
    inner join raw_metrics
        on
            keyed.run_id = raw_metrics.run_id
            and keyed.epoch = raw_metrics.epoch
            and keyed.dataset = raw_metrics.dataset
            and keyed.grouping = raw_metrics.grouping
            and keyed.group_value = raw_metrics.group_value
)

select
    run_id,
    epoch,
    dataset,
    grouping,
    group_value,
    fitted_on,
    is_held_out,
    slope,
    intercept,
    prior,
    n_bonafide,
    n_spoof,
    eer,
    min_dcf,
    act_dcf_raw,
    act_dcf,
    cllr_raw,
    cllr,
    act_dcf_threshold,
    reason,
from compared
