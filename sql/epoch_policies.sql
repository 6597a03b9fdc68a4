-- epoch_policies: the rules that pick the one epoch a run reports in the study tables.
-- materialized: view
-- depends_on:
-- grain: one row per epoch policy.
-- conventions: 'best_val_eer' = the epoch of lowest eer on the run's validation split
--   'val' (the seed study's tables); 'last' = the run's last committed epoch (the study
--   quotes its mel models' ood numbers at epoch 50, the last, and its lesson is not to
--   select on validation). best_epochs applies them; every table that picks an epoch per
--   run has one row per run per policy (column epoch_policy). dfpipe.config.MetricsConfig
--   .epoch_policies lists the same names, reported_epoch_policy the default one.
with

policies as (
    select
        named.epoch_policy,
        named.rule,
    from (
        values
        ('best_val_eer', 'lowest eer on the validation split val (ties: earliest epoch)'),
        ('last', 'last committed epoch (the epochs table)')
    ) as named (epoch_policy, rule)
)

select
    epoch_policy,
    rule,
from policies
