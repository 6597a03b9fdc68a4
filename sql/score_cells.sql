-- score_cells: the cells of labelled predictions, the units every metric group is made of.
-- materialized: intermediate
-- depends_on: labelled_predictions
-- grain: one row per cell (a few hundred per dataset at most, whatever the number of rows).
-- conventions: cell and cell_id as in labelled_predictions. two different cells with one
--   cell_id (a 64-bit hash collision, odds about cells^2 / 2^65) stop the build with an
--   error instead of merging silently.
with

scores as (
    select * from labelled_predictions
),

distinct_cells as (
    select distinct
        cell_id,
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
    from scores
),

counted as (
    select
        *,
        count(*) over (partition by cell_id) as n_cells_with_id,
    from distinct_cells
),

checked as (
    select * from counted
    where
        case
            when n_cells_with_id = 1 then true
            else error('score_cells: two cells share one cell_id (hash collision)')
        end
)

select * exclude (n_cells_with_id) from checked
