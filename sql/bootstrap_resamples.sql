-- bootstrap_resamples: seeded bootstrap replicates of each dataset at each run's reported
-- epoch (the input of bootstrap_intervals).
-- materialized: view
-- grain: one row per run per dataset per replicate per draw (n draws per replicate, n =
--   rows of the dataset).
-- conventions: replicate r (1..metric_params.bootstrap_samples) draws n rows with
--   replacement; draw j picks row hash(bootstrap_seed, run_id, epoch, dataset, r, j) mod n
--   of the rows numbered in clip_id order: deterministic for a seed and a duckdb version.
--   cost grows as bootstrap_samples x rows, so only the reported epoch (best_epochs) and
--   grouping 'overall' are resampled.
with

params as (
    select
        bootstrap_samples,
        bootstrap_seed,
    from metric_params
),

reported as (
    select
        run_id,
        reported_epoch as epoch,
    from best_epochs
),

numbered_rows as (
    select
        predictions.run_id,
        predictions.epoch,
        predictions.dataset,
        predictions.is_spoof,
        predictions.cm_score,
        predictions.p_spoof,
        row_number() over dataset_rows - 1 as row_index,
        count(*) over (partition by predictions.run_id, predictions.epoch, predictions.dataset)
            as n_rows,
    from stg_predictions as predictions
    semi join reported
        on predictions.run_id = reported.run_id and predictions.epoch = reported.epoch
    where predictions.is_spoof is not null
    window dataset_rows as (
        partition by predictions.run_id, predictions.epoch, predictions.dataset
        order by predictions.clip_id, predictions.cm_score
    )
),

-- integer keys: the draws join and asv_det_curve's sort are several times faster on them
dataset_sizes as (
    select
        run_id,
        epoch,
        dataset,
        n_rows,
        row_number() over (order by run_id, epoch, dataset) as dataset_index,
    from (
        select distinct
            run_id,
            epoch,
            dataset,
            n_rows,
        from numbered_rows
    ) as distinct_datasets
),

replicates as (
    select unnest(range(1, bootstrap_samples + 1)) as replicate,
    from params
),

draws as (
    select
        dataset_sizes.run_id,
        dataset_sizes.epoch,
        dataset_sizes.dataset,
        dataset_sizes.dataset_index,
        replicates.replicate,
        unnest(range(dataset_sizes.n_rows)) as draw,
        dataset_sizes.n_rows,
    from dataset_sizes
    cross join replicates
),

drawn_rows as (
    select
        draws.run_id,
        draws.epoch,
        draws.dataset,
        draws.replicate,
        draws.dataset_index,
        draws.dataset_index * (params.bootstrap_samples + 1) + draws.replicate as group_id,
        hash(
            params.bootstrap_seed,
            draws.run_id,
            draws.epoch,
            draws.dataset,
            draws.replicate,
            draws.draw
        ) % draws.n_rows as row_index,
    from draws
    cross join params
),

indexed_rows as (
    select
        numbered_rows.row_index,
        numbered_rows.is_spoof,
        numbered_rows.cm_score,
        numbered_rows.p_spoof,
        dataset_sizes.dataset_index,
    from numbered_rows
    inner join dataset_sizes
        on
            numbered_rows.run_id = dataset_sizes.run_id
            and numbered_rows.epoch = dataset_sizes.epoch
            and numbered_rows.dataset = dataset_sizes.dataset
),

resampled as (
    select
        drawn_rows.group_id,
        drawn_rows.run_id,
        drawn_rows.epoch,
        drawn_rows.dataset,
        drawn_rows.replicate,
        indexed_rows.is_spoof,
        indexed_rows.cm_score,
        indexed_rows.p_spoof,
    from drawn_rows
    inner join indexed_rows
        on
            drawn_rows.dataset_index = indexed_rows.dataset_index
            and drawn_rows.row_index = indexed_rows.row_index
)

select
    group_id,
    run_id,
    epoch,
    dataset,
    replicate,
    is_spoof,
    cm_score,
    p_spoof,
from resampled
