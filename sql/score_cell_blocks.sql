-- score_cell_blocks: the labelled predictions of every cell, aggregated into blocks of
-- equal score and label (what score_blocks spreads over the groups, and what the threshold
-- counts of threshold_metrics add up).
-- materialized: intermediate
-- depends_on: labelled_predictions
-- grain: one row per cell per distinct (cm_score, is_spoof).
-- conventions: cells as in labelled_predictions. n_rows = predictions in the block; p_spoof
--   is a function of cm_score, so one value per block. each prediction is read once, here:
--   every later step works on blocks (as many as the rows for continuous scores, far fewer
--   with ties), and a hash aggregate, which duckdb spills to its temp_directory when the
--   blocks outgrow memory_limit.
with

scores as (
    select * from labelled_predictions
),

blocks as (
    select
        cell_id,
        cm_score,
        is_spoof,
        any_value(p_spoof) as p_spoof,
        count(*) as n_rows,
    from scores
    group by cell_id, cm_score, is_spoof
)

select
    cell_id,
    cm_score,
    is_spoof,
    p_spoof,
    n_rows,
from blocks
