-- grouped_scores: every labelled prediction once per grouping it belongs to (the long
-- input of every per-group metric).
-- materialized: view
-- grain: one row per run per epoch per dataset per grouping per group value per clip.
-- conventions:
--   grouping 'overall' (group_value 'all') is the whole dataset; 'condition', 'corpus',
--   'source_codec', 'language' and 'speaker' split rows by that column (rows where it is
--   null are in no group of that grouping).
--   grouping 'generator' and 'family' follow the asvspoof per-attack convention: a group
--   holds the spoofs of that generator (family) plus all bona fide rows of the same run,
--   epoch and dataset (pooled bona fide), since bona fide audio has no generator.
--   group_id is an integer naming (run_id, epoch, dataset, grouping, group_value) within
--   one evaluation of this view (not stable across runs): the key the asv_* macros
--   partition by. join on the key columns, never store group_id.
with

scores as (
    select * from stg_predictions
    where is_spoof is not null
),

own_value_groupings as (
    unpivot (
        select
            run_id,
            epoch,
            dataset,
            clip_id,
            is_spoof,
            cm_score,
            p_spoof,
            'all' as overall,
            condition,
            corpus,
            source_codec,
            language,
            speaker,
        from scores
    )
    on overall, condition, corpus, source_codec, language, speaker
    into name grouping value group_value
),

spoof_attack_groupings as (
    unpivot (
        select
            run_id,
            epoch,
            dataset,
            clip_id,
            is_spoof,
            cm_score,
            p_spoof,
            generator,
            family,
        from scores
        where is_spoof
    )
    on generator, family
    into name grouping value group_value
),

attack_groups as (
    select distinct
        run_id,
        epoch,
        dataset,
        grouping,
        group_value,
    from spoof_attack_groupings
),

pooled_bonafide as (
    select
        attack_groups.run_id,
        attack_groups.epoch,
        attack_groups.dataset,
        scores.clip_id,
        scores.is_spoof,
        scores.cm_score,
        scores.p_spoof,
        attack_groups.grouping,
        attack_groups.group_value,
    from attack_groups
    inner join scores
        on
            attack_groups.run_id = scores.run_id
            and attack_groups.epoch = scores.epoch
            and attack_groups.dataset = scores.dataset
            and not scores.is_spoof
),

all_groupings as (
    select * from own_value_groupings
    union all by name
    select * from spoof_attack_groupings
    union all by name
    select * from pooled_bonafide
),

-- an integer key sorts several times faster than the five key columns in asv_det_curve
group_keys as (
    select
        run_id,
        epoch,
        dataset,
        grouping,
        group_value,
        row_number() over (order by run_id, epoch, dataset, grouping, group_value) as group_id,
    from (
        select distinct
            run_id,
            epoch,
            dataset,
            grouping,
            group_value,
        from all_groupings
    ) as distinct_groups
),

keyed as (
    select
        group_keys.group_id,
        all_groupings.run_id,
        all_groupings.epoch,
        all_groupings.dataset,
        all_groupings.grouping,
        all_groupings.group_value,
        all_groupings.clip_id,
        all_groupings.is_spoof,
        all_groupings.cm_score,
        all_groupings.p_spoof,
    from all_groupings
    inner join group_keys
        on
            all_groupings.run_id = group_keys.run_id
            and all_groupings.epoch = group_keys.epoch
            and all_groupings.dataset = group_keys.dataset
            and all_groupings.grouping = group_keys.grouping
            and all_groupings.group_value = group_keys.group_value
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
from keyed
