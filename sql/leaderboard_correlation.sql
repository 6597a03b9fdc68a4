-- leaderboard_correlation: how well test accuracy predicts ood accuracy across runs.
-- materialized: table
-- depends_on: run_results
-- grain: one row (all runs with both accuracies, at their reported epochs).
-- conventions: pearson = corr(test_accuracy, ood_accuracy); spearman = pearson of the
--   average ranks (ties share the mean of their positions). fewer than 2 runs or a
--   constant accuracy give nulls and a reason. correlations are aggregated in run_id
--   order, so they are bit-for-bit reproducible.
with

results as (
    select * from run_results
    where ood_accuracy is not null and test_accuracy is not null
),

average_ranks as (
    select
        run_id,
        test_accuracy,
        ood_accuracy,
        rank() over (order by test_accuracy)
        + (count(*) over (partition by test_accuracy) - 1) / 2.0 as test_rank,
        rank() over (order by ood_accuracy)
        + (count(*) over (partition by ood_accuracy) - 1) / 2.0 as ood_rank,
    from results
),

moments as (
    select
        count(*) as n_runs,
        -- ordered: a floating-point aggregate then gives the same bits whatever order the
        -- runs arrive in (1 - 1e-16 vs 1.0 otherwise)
        corr(ood_accuracy, test_accuracy order by run_id) as pearson_raw,
        corr(ood_rank, test_rank order by run_id) as spearman_raw,
        coalesce(var_pop(test_accuracy) = 0 or var_pop(ood_accuracy) = 0, false)
            as is_constant,
    from average_ranks
),

correlations as (
    select
        n_runs,
        case when n_runs >= 2 and not is_constant then pearson_raw end as pearson,
        case when n_runs >= 2 and not is_constant then spearman_raw end as spearman,
        case
            when n_runs < 2 then 'fewer than 2 runs with test and ood accuracy'
            when is_constant then 'test or ood accuracy is constant across runs'
        end as reason,
    from moments
)

select
    n_runs,
    pearson,
    spearman,
    reason,
from correlations
