-- bootstrap_intervals: 95 % percentile bootstrap intervals of accuracy and eer.
-- materialized: table
-- depends_on: asv_block_metrics, best_epochs, bootstrap_resamples, headline_policy, score_metrics
-- depends_on: threshold_metrics
-- grain: one row per run per epoch_policy per dataset (at the run's reported epoch under
--   that policy, see best_epochs; grouping 'overall'). two policies reporting one epoch
--   share its replicates, so their rows are equal but for epoch_policy.
-- conventions: replicates from bootstrap_resamples; accuracy at the headline policy
--   'p_spoof_<threshold>' (headline_policy: p_spoof >= threshold is spoof); eer per
--   replicate by the same asvspoof logic (asv_block_metrics). interval = [2.5 %, 97.5 %]
--   quantiles (quantile_cont) of the replicates with a defined value; a replicate drawing
--   one class only has no eer and is counted in n_replicates_without_eer.
with

headline as (
    select * from headline_policy
),

replicate_eers as (
    select
        group_id,
        eer,
    from asv_block_metrics('bootstrap_resamples')
),

replicate_accuracies as (
    select
        resamples.run_id,
        resamples.epoch,
        resamples.dataset,
        resamples.replicate,
        resamples.group_id,
        sum(
            resamples.n_rows * ((resamples.p_spoof >= headline.threshold) = resamples.is_spoof)::int
        )
        / sum(resamples.n_rows) as accuracy,
    from bootstrap_resamples as resamples
    cross join headline
    group by all
),

replicate_metrics as (
    select
        replicate_accuracies.run_id,
        replicate_accuracies.epoch,
        replicate_accuracies.dataset,
        replicate_accuracies.replicate,
        replicate_accuracies.accuracy,
        replicate_eers.eer,
    from replicate_accuracies
    inner join replicate_eers on replicate_accuracies.group_id = replicate_eers.group_id
),

intervals as (
    select
        run_id,
        epoch,
        dataset,
        count(*) as n_replicates,
        count(*) filter (where eer is null) as n_replicates_without_eer,
        quantile_cont(accuracy, 0.025) as accuracy_ci_low,
        quantile_cont(accuracy, 0.975) as accuracy_ci_high,
        quantile_cont(eer, 0.025) as eer_ci_low,
        quantile_cont(eer, 0.975) as eer_ci_high,
    from replicate_metrics
    group by all
),

point_estimates as (
    select
        score_metrics.run_id,
        score_metrics.epoch,
        score_metrics.dataset,
        score_metrics.n_bonafide + score_metrics.n_spoof as n_rows,
        threshold_metrics.accuracy,
        score_metrics.eer,
    from score_metrics
    inner join threshold_metrics
        on
            score_metrics.run_id = threshold_metrics.run_id
            and score_metrics.epoch = threshold_metrics.epoch
            and score_metrics.dataset = threshold_metrics.dataset
            and score_metrics.grouping = threshold_metrics.grouping
            and score_metrics.group_value = threshold_metrics.group_value
    semi join headline on threshold_metrics.policy = headline.policy
    where score_metrics.grouping = 'overall'
)

select
    intervals.run_id,
    reported.epoch_policy,
    intervals.epoch,
    intervals.dataset,
    point_estimates.n_rows,
    intervals.n_replicates,
    intervals.n_replicates_without_eer,
    point_estimates.accuracy,
    intervals.accuracy_ci_low,
    intervals.accuracy_ci_high,
    point_estimates.eer,
    intervals.eer_ci_low,
    intervals.eer_ci_high,
    case
        when point_estimates.eer is null then 'eer undefined (one class only)'
        when intervals.n_replicates_without_eer > 0
            then 'some replicates drew one class only: eer interval over the rest'
    end as reason,
from intervals
inner join point_estimates
    on
        intervals.run_id = point_estimates.run_id
        and intervals.epoch = point_estimates.epoch
        and intervals.dataset = point_estimates.dataset
inner join best_epochs as reported
    on intervals.run_id = reported.run_id and intervals.epoch = reported.reported_epoch
order by intervals.run_id, reported.epoch_policy, intervals.dataset
