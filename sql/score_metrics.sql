-- score_metrics: eer, min_dcf, act_dcf and cllr (the asvspoof 5 metrics) per group.
-- materialized: table
-- depends_on: asv_block_metrics, score_blocks, score_groups
-- grain: one row per run per epoch per dataset per grouping per group value.
-- conventions: see asv_det_curve and asv_block_metrics (asvspoof 5 evaluation package);
--   groupings as in score_group_cells (generator/family groups pool the bona fide rows).
--   thresholds are on cm_score (higher = bona fide). degenerate groups (one class) have
--   null metrics and a reason.
with

group_metrics as (
    select * from asv_block_metrics('score_blocks')
),

group_keys as (
    select * from score_groups
),

unpacked as (
    select
        group_keys.run_id,
        group_keys.epoch,
        group_keys.dataset,
        group_keys.grouping,
        group_keys.group_value,
        group_metrics.n_bonafide,
        group_metrics.n_spoof,
        group_metrics.eer,
        group_metrics.eer_threshold,
        group_metrics.min_dcf,
        group_metrics.min_dcf_threshold,
        group_metrics.act_dcf,
        group_metrics.act_dcf_threshold,
        group_metrics.cllr,
        group_metrics.reason,
    from group_metrics
    inner join group_keys on group_metrics.group_id = group_keys.group_id
)

select
    run_id,
    epoch,
    dataset,
    grouping,
    group_value,
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
from unpacked
