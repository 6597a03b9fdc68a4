-- score_metrics: eer, min_dcf, act_dcf and cllr (the asvspoof 5 metrics) per group.
-- materialized: table
-- depends_on: asv_block_metrics, group_keyed, score_blocks, score_groups
-- grain: one row per run per epoch per dataset per grouping per group value.
-- columns: the group keys, then those of asv_block_metrics (n_bonafide, n_spoof, eer,
--   eer_threshold, min_dcf, min_dcf_threshold, act_dcf, act_dcf_threshold, cllr, reason).
-- conventions: see asv_det_curve and asv_block_metrics (asvspoof 5 evaluation package);
--   groupings as in score_group_cells (generator/family groups pool the bona fide rows).
--   thresholds are on cm_score (higher = bona fide). degenerate groups (one class) have
--   null metrics and a reason.
with

-- read by group_keyed('group_metrics', 'score_groups'), by name
group_metrics as (  -- noqa: ST03
    select * from asv_block_metrics('score_blocks')
)

select * from group_keyed('group_metrics', 'score_groups')  -- noqa: AM04
