-- grouped_scores: every labelled prediction once per group it belongs to (the long form of
-- the per-group metrics' input, for ad-hoc queries: asv_metrics('grouped_scores')).
-- materialized: view
-- grain: one row per run per epoch per dataset per grouping per group value per clip.
-- conventions: groupings, pooled bona fide and group_id as in score_groups. the metric
--   tables do not read this view: they aggregate rows into score_blocks first.
with

scores as (
    select * from stg_predictions
    where is_spoof is not null
),

groups as (
    select * from score_groups
),

expanded as (
    select
        groups.group_id,
        groups.run_id,
        groups.epoch,
        groups.dataset,
        groups.grouping,
        groups.group_value,
        scores.clip_id,
        scores.is_spoof,
        scores.cm_score,
        scores.p_spoof,
    from scores
    inner join groups
        on
            scores.run_id = groups.run_id
            and scores.epoch = groups.epoch
            and scores.dataset = groups.dataset
            and scores.is_spoof = groups.is_spoof
            and scores.condition is not distinct from groups.condition
            and scores.corpus is not distinct from groups.corpus
            and scores.source_codec is not distinct from groups.source_codec
            and scores.language is not distinct from groups.language
            and scores.speaker is not distinct from groups.speaker
            and scores.generator is not distinct from groups.generator
            and scores.family is not distinct from groups.family
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
