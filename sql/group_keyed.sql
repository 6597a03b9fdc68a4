-- group_keyed(per_group, groups): table macro, a per-group relation with its group's key
-- columns.
-- materialized: macro
-- depends_on:
-- input: the name of any relation with a column group_id (the score_groups group_id), e.g.
--   the output of asv_block_metrics or confusion_metrics; groups: the name of the relation
--   of group keys, score_groups (a parameter, so the macro binds without it: metrics.duckdb
--   of a remote lake and attach_metrics hold the macros but not the intermediates).
-- grain: one row per input row (a group_id without a score_groups row is dropped).
-- conventions: the key columns (run_id, epoch, dataset, grouping, group_value) come first,
--   then every input column but group_id, in input order: the per-group tables compute by
--   group_id and take their keys here, the one place they are joined.
create or replace macro group_keyed(per_group, groups) as table
    select
        group_keys.run_id,
        group_keys.epoch,
        group_keys.dataset,
        group_keys.grouping,
        group_keys.group_value,
        per_group.* exclude (group_id),  -- noqa: AM04, RF02
    from query_table(per_group) as per_group  -- noqa: RF02
    inner join query_table(groups) as group_keys  -- noqa: RF02
        on per_group.group_id = group_keys.group_id
