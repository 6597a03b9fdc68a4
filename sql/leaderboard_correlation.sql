-- leaderboard_correlation: how well test accuracy predicts ood accuracy across runs.
-- materialized: table
-- depends_on: epoch_policies, run_results
-- grain: one row per epoch_policy (all runs with both accuracies, at their reported epochs
--   under that policy; a policy without such runs still has its row).
-- conventions: pearson = corr(test_accuracy, ood_accuracy); spearman = pearson of the
--   average ranks (ties share the mean of their positions). fewer than 2 runs or a
--   constant accuracy give nulls and a reason. correlations are aggregated in run_id
--   order, so they are bit-for-bit reproducible.
with

policies as (
    select * from epoch_policies
),

results as (
    select * from run_results
    where ood_accuracy is not null and test_accuracy is not null
),

average_ranks as (
    select
        epoch_policy,
        run_id,
        test_accuracy,
        ood_accuracy,
        rank() over (partition by epoch_policy order by test_accuracy)
        + (count(*) over (partition by epoch_policy, test_accuracy) - 1) / 2.0 as test_rank,
        rank() over (partition by epoch_policy order by ood_accuracy)
        + (count(*) over (partition by epoch_policy, ood_accuracy) - 1) / 2.0 as ood_rank,
    from results
),

moments as (
    select
        policies.epoch_policy,
        count(average_ranks.run_id) as n_runs,
        -- ordered: a floating-point aggregate then gives the same bits whatever order the
        -- runs arrive in (1 - 1e-16 vs 1.0 otherwise)
        corr(average_ranks.ood_accuracy, average_ranks.test_accuracy order by average_ranks.run_id)
            as pearson_raw,
        corr(average_ranks.ood_rank, average_ranks.test_rank order by average_ranks.run_id)
            as spearman_raw,
        coalesce(
            var_pop(average_ranks.test_accuracy) = 0 or var_pop(average_ranks.ood_accuracy) = 0,
            false
        ) as is_constant,
    from policies
    left join average_ranks on policies.epoch_policy = average_ranks.epoch_policy
    group by policies.epoch_policy
),

correlations as (
    select
        epoch_policy,
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
    epoch_policy,
    n_runs,
    pearson,
    spearman,
    reason,
from correlations
order by epoch_policy
