-- bayes_threshold_metrics: confusion counts and threshold metrics at the bayes threshold on
-- the calibrated llr, per group and calibration (policy 'bayes_llr').
-- materialized: table
-- depends_on: calibrated_blocks, confusion_metrics, group_keyed, metric_params, score_groups
-- grain: one row per run per epoch per dataset per grouping per group value per calibration
--   dev set (fitted_on), for every run and epoch with a calibrations row.
-- columns: as threshold_metrics plus fitted_on and is_held_out after the group keys, so the
--   three policies union by name: 'p_spoof_<t>' and 'val_eer' there, 'bayes_llr' here. the
--   counts and metrics are those of confusion_metrics.
-- conventions: policy 'bayes_llr': predicted spoof when the calibrated spoof llr > ln(beta),
--   beta = c_miss * (1 - p_spoof) / (c_fa * p_spoof) from metric_params (ln 1.9 at the
--   asvspoof 5 costs); threshold_scale 'spoof_llr', threshold = ln(beta). it is the asvspoof
--   act_dcf decision (bona fide kept when cm_llr >= -ln(beta)), so a tie goes to bona fide,
--   and the cost of these counts is calibration_metrics.act_dcf.
with

params as (
    select ln(c_miss * (1.0 - p_spoof) / (c_fa * p_spoof)) as threshold from metric_params
),

blocks as (
    select * from calibrated_blocks
),

-- read by confusion_metrics('decisions'), by name
decisions as (  -- noqa: ST03
    select
        blocks.group_id.score_group_id as group_id,
        struct_extract(blocks.group_id, 'fitted_on') as fitted_on,
        struct_extract(blocks.group_id, 'is_held_out') as is_held_out,
        'bayes_llr' as policy,
        'spoof_llr' as threshold_scale,
        params.threshold,
        blocks.is_spoof,
        -blocks.cm_score > params.threshold as is_predicted_spoof,
        blocks.n_rows,
    from blocks
    cross join params
),

-- read by group_keyed('group_metrics', 'score_groups'), by name
group_metrics as (  -- noqa: ST03
    select * from confusion_metrics('decisions')
)

select * from group_keyed('group_metrics', 'score_groups')  -- noqa: AM04
