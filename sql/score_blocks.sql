-- score_blocks: the labelled predictions of every group, aggregated into blocks of equal
-- score and label (the input of the per-group metrics: asv_block_metrics, threshold counts).
-- materialized: intermediate
-- grain: one row per group per distinct (cm_score, is_spoof).
-- conventions: groups as in score_groups (generator/family groups pool the bona fide rows).
--   n_rows = predictions in the block; p_spoof is a function of cm_score, so one value per
--   block. rows of one block are interchangeable for every metric (ties in the det curve
--   are broken by label only, see asv_det_curve), so nothing is lost; with tied scores the
--   blocks are far fewer than the rows. rows are aggregated per cell before they are
--   spread over their groups, so each prediction is read once.
with

scores as (
    select * from stg_predictions
    where is_spoof is not null
),

groups as (
    select * from score_groups
),

cell_blocks as (
    select
        run_id,
        epoch,
        dataset,
        is_spoof,
        condition,
        corpus,
        source_codec,
        language,
        speaker,
        generator,
        family,
        cm_score,
        any_value(p_spoof) as p_spoof,
        count(*) as n_rows,
    from scores
    group by all
),

group_cell_blocks as (
    select
        groups.group_id,
        cell_blocks.cm_score,
        cell_blocks.is_spoof,
        cell_blocks.p_spoof,
        cell_blocks.n_rows,
    from cell_blocks
    inner join groups
        on
            cell_blocks.run_id = groups.run_id
            and cell_blocks.epoch = groups.epoch
            and cell_blocks.dataset = groups.dataset
            and cell_blocks.is_spoof = groups.is_spoof
            and cell_blocks.condition is not distinct from groups.condition
            and cell_blocks.corpus is not distinct from groups.corpus
            and cell_blocks.source_codec is not distinct from groups.source_codec
            and cell_blocks.language is not distinct from groups.language
            and cell_blocks.speaker is not distinct from groups.speaker
            and cell_blocks.generator is not distinct from groups.generator
            and cell_blocks.family is not distinct from groups.family
),

blocks as (
    select
        group_id,
        cm_score,
        is_spoof,
        any_value(p_spoof) as p_spoof,
        sum(n_rows)::bigint as n_rows,
    from group_cell_blocks
    group by group_id, cm_score, is_spoof
)

select
    group_id,
    cm_score,
    is_spoof,
    p_spoof,
    n_rows,
from blocks
