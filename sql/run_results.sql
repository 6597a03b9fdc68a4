-- run_results: each run's reported epoch under each epoch policy with its run configuration
-- and its test and out-of-distribution metrics: the common input of the study tables.
-- materialized: table
-- depends_on: best_epochs, stg_runs, training_dynamics
-- grain: one row per run per epoch_policy ('best_val_eer', 'last': epoch_policies).
-- conventions: reported epoch as in best_epochs; metrics as in training_dynamics (grouping
--   'overall', policy 'p_spoof_<threshold>', dataset roles 'val', 'test', 'ood').
with

best as (
    select * from best_epochs
),

curves as (
    select * from training_dynamics
),

runs as (
    select * from stg_runs
),

joined as (
    select
        best.run_id,
        best.epoch_policy,
        runs.arch,
        runs.train_corpus,
        runs.train_condition,
        runs.seed,
        runs.params,
        runs.trainable_params,
        runs.checkpoint_mb,
        best.reported_epoch,
        best.best_epoch,
        curves.val_loss,
        curves.val_eer,
        curves.test_accuracy,
        curves.test_precision,
        curves.test_recall,
        curves.test_f1,
        curves.test_mcc,
        curves.test_eer,
        curves.ood_accuracy,
        curves.ood_precision,
        curves.ood_recall,
        curves.ood_f1,
        curves.ood_mcc,
        curves.ood_specificity,
        curves.ood_eer,
        best.reason,
    from best
    left join runs on best.run_id = runs.run_id
    left join curves on best.run_id = curves.run_id and best.reported_epoch = curves.epoch
)

select
    run_id,
    epoch_policy,
    arch,
    train_corpus,
    train_condition,
    seed,
    params,
    trainable_params,
    checkpoint_mb,
    reported_epoch,
    best_epoch,
    val_loss,
    val_eer,
    test_accuracy,
    test_precision,
    test_recall,
    test_f1,
    test_mcc,
    test_eer,
    ood_accuracy,
    ood_precision,
    ood_recall,
    ood_f1,
    ood_mcc,
    ood_specificity,
    ood_eer,
    reason,
from joined
