-- training_dynamics: per-epoch training curves: train loss/accuracy and validation loss
-- beside the validation, test and out-of-distribution metrics of the same epoch.
-- materialized: table
-- depends_on: headline_policy, score_metrics, stg_epochs, threshold_metrics
-- grain: one row per run per epoch (epochs from the `epochs` table or scored in
--   predictions).
-- conventions: dataset roles 'val' (validation split), 'test' (held-out, same
--   distribution), 'ood' (out-of-distribution benchmark); grouping 'overall'; threshold
--   metrics at the headline policy 'p_spoof_<threshold>' (headline_policy, 0.5 by default).
--   val_loss = mean bce-with-logits over 'val' (stg_epochs; null for epochs written before
--   it was recorded). missing roles give nulls.
with

epochs as (
    select * from stg_epochs
),

headline as (
    select * from headline_policy
),

overall_threshold_metrics as (
    select threshold_metrics.*
    from threshold_metrics
    semi join headline on threshold_metrics.policy = headline.policy
    where threshold_metrics.grouping = 'overall'
),

overall_score_metrics as (
    select * from score_metrics
    where grouping = 'overall'
),

run_epochs as (
    select
        run_id,
        epoch
    from epochs
    union
    select
        run_id,
        epoch
    from overall_score_metrics
),

role_metrics as (
    select
        overall_score_metrics.run_id,
        overall_score_metrics.epoch,
        overall_score_metrics.dataset,
        overall_threshold_metrics.accuracy,
        overall_threshold_metrics.precision,
        overall_threshold_metrics.recall,
        overall_threshold_metrics.f1,
        overall_threshold_metrics.mcc,
        overall_threshold_metrics.specificity,
        overall_score_metrics.eer,
    from overall_score_metrics
    inner join overall_threshold_metrics
        on
            overall_score_metrics.run_id = overall_threshold_metrics.run_id
            and overall_score_metrics.epoch = overall_threshold_metrics.epoch
            and overall_score_metrics.dataset = overall_threshold_metrics.dataset
    where overall_score_metrics.dataset in ('val', 'test', 'ood')
),

curves as (
    select
        run_epochs.run_id,
        run_epochs.epoch,
        epochs.train_loss,
        epochs.train_accuracy,
        epochs.val_loss,
        val.accuracy as val_accuracy,
        val.eer as val_eer,
        test.accuracy as test_accuracy,
        test.precision as test_precision,
        test.recall as test_recall,
        test.f1 as test_f1,
        test.mcc as test_mcc,
        test.eer as test_eer,
        ood.accuracy as ood_accuracy,
        ood.precision as ood_precision,
        ood.recall as ood_recall,
        ood.f1 as ood_f1,
        ood.mcc as ood_mcc,
        ood.specificity as ood_specificity,
        ood.eer as ood_eer,
    from run_epochs
    left join epochs on run_epochs.run_id = epochs.run_id and run_epochs.epoch = epochs.epoch
    left join role_metrics as val
        on run_epochs.run_id = val.run_id and run_epochs.epoch = val.epoch and val.dataset = 'val'
    left join role_metrics as test
        on
            run_epochs.run_id = test.run_id
            and run_epochs.epoch = test.epoch
            and test.dataset = 'test'
    left join role_metrics as ood
        on run_epochs.run_id = ood.run_id and run_epochs.epoch = ood.epoch and ood.dataset = 'ood'
)

select
    run_id,
    epoch,
    train_loss,
    train_accuracy,
    val_loss,
    val_accuracy,
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
from curves
order by run_id, epoch
