-- model_size: model size against out-of-distribution performance.
-- materialized: table
-- depends_on: run_results
-- grain: one row per run per epoch_policy (at its reported epoch, see best_epochs).
-- conventions: checkpoint_mb = checkpoint_bytes / 1e6; ood_accuracy_per_mb =
--   ood_accuracy / checkpoint_mb (null, with a reason, without a checkpoint size).
with

results as (
    select * from run_results
),

per_mb as (
    select
        *,
        ood_accuracy / nullif(checkpoint_mb, 0) as ood_accuracy_per_mb,
    from results
)

select
    epoch_policy,
    run_id,
    arch,
    train_corpus,
    train_condition,
    params,
    trainable_params,
    checkpoint_mb,
    reported_epoch,
    ood_accuracy,
    ood_eer,
    ood_accuracy_per_mb,
    coalesce(
        reason,
        case when checkpoint_mb is null or checkpoint_mb = 0 then 'no checkpoint size' end
    ) as reason,
from per_mb
order by epoch_policy, params, run_id
