-- bootstrap_resamples: seeded bootstrap replicates of each dataset at each run's reported
-- epochs (of every epoch policy), as score blocks (the input of bootstrap_intervals).
-- materialized: intermediate
-- depends_on: best_epochs, metric_params, stg_predictions
-- grain: one row per run per dataset per replicate per distinct drawn (cm_score, is_spoof);
--   n_rows = draws that fell in the block (n draws per replicate, n = rows of the dataset).
-- conventions: replicate r (1..metric_params.bootstrap_samples) draws n rows with
--   replacement; draw j picks row hash(hash(bootstrap_seed, run_id, epoch, dataset), r, j)
--   mod n of the rows numbered in clip_id order: deterministic for a seed and a duckdb
--   version.
--   the draws are counted per (replicate, score, label) block, the form asv_block_metrics
--   reads (a replicate is the multiset of its draws, so nothing is lost), and the blocks
--   are computed once for every metric of the replicate.
--   cost grows as bootstrap_samples x rows, so only the reported epochs (best_epochs) and
--   grouping 'overall' are resampled; an epoch reported by several policies is resampled
--   once (the draws do not depend on the policy).
with

params as (
    select
        bootstrap_samples,
        bootstrap_seed,
    from metric_params
),

reported as (
    select distinct
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
        distinct_datasets.run_id,
        distinct_datasets.epoch,
        distinct_datasets.dataset,
        distinct_datasets.n_rows,
        row_number() over (
            order by distinct_datasets.run_id, distinct_datasets.epoch, distinct_datasets.dataset
        ) as dataset_index,
        hash(
            params.bootstrap_seed,
            distinct_datasets.run_id,
            distinct_datasets.epoch,
            distinct_datasets.dataset
        ) as dataset_seed,
    from (
        select distinct
            run_id,
            epoch,
            dataset,
            n_rows,
        from numbered_rows
    ) as distinct_datasets
    cross join params
),

replicates as (
    select unnest(range(1, bootstrap_samples + 1)) as replicate,
    from params
),

draws as (
    select
        dataset_sizes.dataset_index,
        dataset_sizes.dataset_seed,
        replicates.replicate,
        unnest(range(dataset_sizes.n_rows)) as draw,
        dataset_sizes.n_rows,
    from dataset_sizes
    cross join replicates
),

-- the dataset's part of the hash is computed once per dataset, not once per draw
drawn_rows as (
    select
        dataset_index,
        replicate,
        (hash(dataset_seed, replicate, draw) % n_rows::ubigint)::bigint as row_index,
    from draws
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

drawn_blocks as (
    select
        drawn_rows.dataset_index,
        drawn_rows.replicate,
        indexed_rows.cm_score,
        indexed_rows.is_spoof,
        any_value(indexed_rows.p_spoof) as p_spoof,
        count(*) as n_rows,
    from drawn_rows
    inner join indexed_rows
        on
            drawn_rows.dataset_index = indexed_rows.dataset_index
            and drawn_rows.row_index = indexed_rows.row_index
    group by
        drawn_rows.dataset_index,
        drawn_rows.replicate,
        indexed_rows.cm_score,
        indexed_rows.is_spoof
),

resampled_blocks as (
    select
        drawn_blocks.dataset_index * (params.bootstrap_samples + 1) + drawn_blocks.replicate
            as group_id,
        dataset_sizes.run_id,
        dataset_sizes.epoch,
        dataset_sizes.dataset,
        drawn_blocks.replicate,
        drawn_blocks.cm_score,
        drawn_blocks.is_spoof,
        drawn_blocks.p_spoof,
        drawn_blocks.n_rows,
    from drawn_blocks
    inner join dataset_sizes on drawn_blocks.dataset_index = dataset_sizes.dataset_index
    cross join params
)

select
    group_id,
    run_id,
    epoch,
    dataset,
    replicate,
    cm_score,
    is_spoof,
    p_spoof,
    n_rows,
from resampled_blocks
