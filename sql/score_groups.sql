-- score_groups: the metric groups and their keys (the group key, defined once).
-- materialized: intermediate
-- depends_on: score_group_cells
-- grain: one row per run per epoch per dataset per grouping per group value.
-- conventions: groupings, pooled bona fide and group_id as in score_group_cells. the
--   per-group tables compute by group_id and take their key columns from here (through the
--   group_keyed macro).
with

memberships as (
    select * from score_group_cells
),

group_keys as (
    select distinct
        group_id,
        run_id,
        epoch,
        dataset,
        grouping,
        group_value,
    from memberships
)

select * from group_keys
