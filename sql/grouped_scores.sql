-- grouped_scores: every labelled prediction once per group it belongs to (the long form of
-- the per-group metrics' input, for ad-hoc queries: asv_metrics('grouped_scores')).
-- materialized: view
-- depends_on: labelled_predictions, score_group_cells
-- grain: one row per run per epoch per dataset per grouping per group value per clip.
-- conventions: groupings, pooled bona fide and group_id as in score_group_cells. the metric
--   tables do not read this view: they aggregate rows into score_blocks first.
with

scores as (
    select * from labelled_predictions
),

memberships as (
    select * from score_group_cells
),

expanded as (
    select
        memberships.group_id,
        memberships.run_id,
        memberships.epoch,
        memberships.dataset,
        memberships.grouping,
        memberships.group_value,
        scores.clip_id,
        scores.is_spoof,
        scores.cm_score,
        scores.p_spoof,
    from scores
    inner join memberships on scores.cell_id = memberships.cell_id
)

select
    group_id,
    run_id,
    epoch,
    dataset,
    grouping,
    group_value,
    clip_id,
    is_spoof,
    cm_score,
    p_spoof,
from expanded
