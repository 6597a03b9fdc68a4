-- leaderboard: every run ranked by out-of-distribution accuracy, test accuracy beside it.
-- materialized: table
-- depends_on: run_results
-- grain: one row per run per epoch_policy (at its reported epoch, see best_epochs).
-- conventions: runs are ranked within each epoch_policy: ood_rank 1 = best ood accuracy
--   (ties share a rank; runs without ood accuracy come last); test_rank likewise, so the
--   two rankings can be compared.
with

results as (
    select * from run_results
),

ranked as (
    select
        *,
        rank() over (partition by epoch_policy order by ood_accuracy desc nulls last) as ood_rank,
        rank() over (partition by epoch_policy order by test_accuracy desc nulls last) as test_rank,
        ood_accuracy - test_accuracy as ood_minus_test_accuracy,
    from results
)

select
    epoch_policy,
    ood_rank,
    run_id,
    arch,
    train_corpus,
    train_condition,
    reported_epoch,
    ood_accuracy,
    test_accuracy,
    test_rank,
    ood_minus_test_accuracy,
    ood_eer,
    test_eer,
    reason,
from ranked
order by epoch_policy, ood_rank, run_id
