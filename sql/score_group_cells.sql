-- score_group_cells: which cells each metric group (grouping, group value) holds.
-- materialized: intermediate
-- depends_on: score_cells
-- grain: one row per group per cell it holds.
-- conventions:
--   grouping 'overall' (group_value 'all') is the whole dataset; 'condition', 'corpus',
--   'source_codec', 'language' and 'speaker' split rows by that column (rows where it is
--   null are in no group of that grouping).
--   grouping 'generator' and 'family' follow the asvspoof per-attack convention: a group
--   holds the spoofs of that generator (family) plus all bona fide rows of the same run,
--   epoch and dataset (pooled bona fide), since bona fide audio has no generator.
--   group_id is an integer naming (run_id, epoch, dataset, grouping, group_value) within
--   one evaluation (not stable across runs): the key the asv_* macros partition by, and the
--   key of score_groups. join on it within one evaluation, never store it.
--   groups are assigned to cells, not rows, so rows are only expanded once per group by
--   consumers that need it (grouped_scores) or aggregated first (score_blocks).
with

cells as (
    select * from score_cells
),

own_value_groupings as (
    unpivot (
        select
            cell_id,
            'all' as overall,
            condition,
            corpus,
            source_codec,
            language,
            speaker,
        from cells
    )
    on overall, condition, corpus, source_codec, language, speaker
    into name grouping value group_value
),

spoof_attack_groupings as (
    unpivot (
        select
            cell_id,
            generator,
            family,
        from cells
        where is_spoof
    )
    on generator, family
    into name grouping value group_value
),

attack_groups as (
    select distinct
        cells.run_id,
        cells.epoch,
        cells.dataset,
        spoof_attack_groupings.grouping,
        spoof_attack_groupings.group_value,
    from spoof_attack_groupings
    inner join cells on spoof_attack_groupings.cell_id = cells.cell_id
),

pooled_bonafide as (
    select
        cells.cell_id,
        attack_groups.grouping,
        attack_groups.group_value,
    from attack_groups
    inner join cells
        on
            attack_groups.run_id = cells.run_id
            and attack_groups.epoch = cells.epoch
            and attack_groups.dataset = cells.dataset
            and not cells.is_spoof
),

memberships as (
    select * from own_value_groupings
    union all by name
    select * from spoof_attack_groupings
    union all by name
    select * from pooled_bonafide
),

keyed as (
    select
        dense_rank() over (
            order by
                cells.run_id,
                cells.epoch,
                cells.dataset,
                memberships.grouping,
                memberships.group_value
        ) as group_id,
        cells.run_id,
        cells.epoch,
        cells.dataset,
        memberships.grouping,
        memberships.group_value,
        memberships.cell_id,
    from memberships
    inner join cells on memberships.cell_id = cells.cell_id
)

select
    group_id,
    run_id,
    epoch,
    dataset,
    grouping,
    group_value,
    cell_id,
from keyed
