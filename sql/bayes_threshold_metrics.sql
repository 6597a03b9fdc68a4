-- bayes_threshold_metrics: confusion counts and threshold metrics at the bayes threshold on
-- the calibrated llr, per group and calibration (policy 'bayes_llr').
-- materialized: table
-- depends_on: calibrated_blocks, confusion_metrics, metric_params, score_groups
-- grain: one row per run per epoch per dataset per grouping per group value per calibration
--   dev set (fitted_on), for every run and epoch with a calibrations row.
-- conventions: columns as threshold_metrics plus fitted_on and is_held_out, so the three
--   policies union by name: 'p_spoof_<t>' and 'val_eer' there, 'bayes_llr' here.
--   policy 'bayes_llr': predicted spoof when the calibrated spoof llr > ln(beta), beta =
--   c_miss * (1 - p_spoof) / (c_fa * p_spoof) from metric_params (ln 1.9 at the asvspoof 5
--   costs); threshold_scale 'spoof_llr', threshold = ln(beta). it is the asvspoof act_dcf
--   decision (bona fide kept when cm_llr >= -ln(beta)), so a tie goes to bona fide, and
--   the cost of these counts is calibration_metrics.act_dcf.
with

params as (
    select ln(c_miss * (1.0 - p_spoof) / (c_fa * p_spoof)) as threshold from metric_params
),

blocks as (
    select * from calibrated_blocks
),

group_keys as (
    select * from score_groups
),

group_confusion as (
    select
        blocks.group_id,
        any_value(params.threshold) as threshold,
        sum(blocks.n_rows) as n_rows,
        coalesce(sum(blocks.n_rows) filter (where not blocks.is_spoof), 0) as n_bonafide,
        coalesce(sum(blocks.n_rows) filter (where blocks.is_spoof), 0) as n_spoof,
        coalesce(
            sum(blocks.n_rows) filter (
                where blocks.is_spoof and -blocks.cm_score > params.threshold
            ),
            0
        ) as tp,
        coalesce(
            sum(blocks.n_rows) filter (
                where not blocks.is_spoof and -blocks.cm_score > params.threshold
            ),
            0
        ) as fp,
        coalesce(
            sum(blocks.n_rows) filter (
                where not blocks.is_spoof and -blocks.cm_score <= params.threshold
            ),
            0
        ) as tn,
        coalesce(
            sum(blocks.n_rows) filter (
                where blocks.is_spoof and -blocks.cm_score <= params.threshold
            ),
            0
        ) as fn,
    from blocks
    cross join params
    group by blocks.group_id
),

-- read by confusion_metrics('confusion'), by name
confusion as (  -- noqa: ST03
    select
        group_keys.run_id,
        group_keys.epoch,
        group_keys.dataset,
        group_keys.grouping,
        group_keys.group_value,
        struct_extract(group_confusion.group_id, 'fitted_on') as fitted_on,
        group_keys.dataset != group_confusion.group_id.fitted_on as is_held_out,
        'bayes_llr' as policy,
        'spoof_llr' as threshold_scale,
        group_confusion.threshold,
        group_confusion.n_rows::bigint as n_rows,
        group_confusion.n_bonafide::bigint as n_bonafide,
        group_confusion.n_spoof::bigint as n_spoof,
        group_confusion.tp::bigint as tp,
        group_confusion.fp::bigint as fp,
        group_confusion.tn::bigint as tn,
        group_confusion.fn::bigint as fn,
    from group_confusion
    inner join group_keys on group_confusion.group_id.score_group_id = group_keys.group_id
)

select
    run_id,
    epoch,
    dataset,
    grouping,
    group_value,
    fitted_on,
    is_held_out,
    policy,
    threshold_scale,
    threshold,
    n_rows,
    n_bonafide,
    n_spoof,
    tp,
    fp,
    tn,
    fn,
    accuracy,
    precision,
    recall,
    sensitivity,
    specificity,
    f1,
    mcc,
    reason,
from confusion_metrics('confusion')
