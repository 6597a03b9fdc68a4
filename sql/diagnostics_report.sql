-- diagnostics_report: the study's loss-landscape table and its complementary diagnostics.
-- materialized: table
-- depends_on: diagnostics_hessian, diagnostics_linearity, diagnostics_summary, stg_runs
-- grain: one row per diagnostics_id: one `dfpipe diagnose` result (run, epoch, holdout spec,
--   settings); seed is the diagnostics' draw seed, not the training seed.
-- conventions (dfpipe/diagnostics/): traces are per-clip hutchinson estimates of tr(h) over
--   the trainable parameters; trace_per_param = hessian_trace_mean / trainable_params, its
--   band flat < 0.001 <= moderate <= 0.01 < sharp (the band was stored by the stage, so its
--   cut points are the run's); hessian_trace_std is the sample std across clips;
--   generalization_gap = holdout_loss - train_loss (mean bce); grad_snr = ||mean g||^2 /
--   mean ||g - mean g||^2 over per-clip gradients (noise floor ~ 1 / clips); weight_rms =
--   total l2 / sqrt(trainable params); ece over equal-width bins of the predicted-class
--   confidence (guo et al. 2017); linearity errors are the median relative first-order
--   taylor error at the smallest and the largest perturbation scale.
with

summary_rows as (
    select * from diagnostics_summary
    where layer is null
),

hessian_rows as (
    select * from diagnostics_hessian
),

linearity_rows as (
    select * from diagnostics_linearity
),

run_info as (
    select
        run_id,
        arch,
        train_corpus,
        train_condition,
    from stg_runs
),

pivoted_metrics as (
    select
        diagnostics_id,
        run_id,
        epoch,
        holdout,
        seed,
        max(value) filter (where metric = 'hessian_trace_mean') as hessian_trace_mean,
        max(value) filter (where metric = 'hessian_trace_std') as hessian_trace_std,
        max(value) filter (where metric = 'hessian_trace_min') as hessian_trace_min,
        max(value) filter (where metric = 'hessian_trace_max') as hessian_trace_max,
        max(value) filter (where metric = 'hessian_trace_median') as hessian_trace_median,
        max(value) filter (where metric = 'trace_per_param') as trace_per_param,
        max(detail) filter (where metric = 'trace_per_param') as curvature_band,
        max(value) filter (where metric = 'holdout_loss') as holdout_loss,
        max(value) filter (where metric = 'train_loss') as train_loss,
        max(value) filter (where metric = 'generalization_gap') as generalization_gap,
        max(value) filter (where metric = 'grad_snr') as grad_snr,
        max(value) filter (where metric = 'weight_rms') as weight_rms,
        max(value) filter (where metric = 'davies_bouldin') as davies_bouldin,
        max(value) filter (where metric = 'ece') as ece,
        max(value) filter (where metric = 'holdout_accuracy') as holdout_accuracy,
        max(value) filter (where metric = 'trainable_params')::bigint as trainable_params,
        max(value) filter (where metric = 'hessian_draws')::integer as draws_per_clip,
        max(value) filter (where metric = 'wall_s') as wall_s,
    from summary_rows
    group by diagnostics_id, run_id, epoch, holdout, seed
),

traces_by_label as (
    select
        diagnostics_id,
        count(*) filter (where label = 'spoof') as count_spoof_clips,
        count(*) filter (where label = 'bonafide') as count_bonafide_clips,
        avg(trace) filter (where label = 'spoof') as spoof_trace_mean,
        avg(trace) filter (where label = 'bonafide') as bonafide_trace_mean,
        count(*) filter (where trace < 0) as count_negative_traces,
    from hessian_rows
    group by diagnostics_id
),

linearity_extremes as (
    select
        diagnostics_id,
        min(scale) as smallest_scale,
        arg_min(rel_error_median, scale) as linearity_error_smallest_scale,
        max(scale) as largest_scale,
        arg_max(rel_error_median, scale) as linearity_error_largest_scale,
    from linearity_rows
    group by diagnostics_id
),

joined as (
    select
        pivoted_metrics.*,
        run_info.arch,
        run_info.train_corpus,
        run_info.train_condition,
        traces_by_label.count_spoof_clips,
        traces_by_label.count_bonafide_clips,
        traces_by_label.spoof_trace_mean,
        traces_by_label.bonafide_trace_mean,
        traces_by_label.count_negative_traces,
        linearity_extremes.smallest_scale,
        linearity_extremes.linearity_error_smallest_scale,
        linearity_extremes.largest_scale,
        linearity_extremes.linearity_error_largest_scale,
    from pivoted_metrics
    left join run_info
        on pivoted_metrics.run_id = run_info.run_id
    left join traces_by_label
        on pivoted_metrics.diagnostics_id = traces_by_label.diagnostics_id
    left join linearity_extremes
        on pivoted_metrics.diagnostics_id = linearity_extremes.diagnostics_id
)

select
    diagnostics_id,
    run_id,
    epoch,
    holdout,
    seed,
    arch,
    train_corpus,
    train_condition,
    trainable_params,
    count_spoof_clips,
    count_bonafide_clips,
    draws_per_clip,
    hessian_trace_mean,
    hessian_trace_std,
    hessian_trace_min,
    hessian_trace_max,
    hessian_trace_median,
    trace_per_param,
    curvature_band,
    spoof_trace_mean,
    bonafide_trace_mean,
    count_negative_traces,
    holdout_loss,
    train_loss,
    generalization_gap,
    grad_snr,
    weight_rms,
    davies_bouldin,
    ece,
    holdout_accuracy,
    smallest_scale,
    linearity_error_smallest_scale,
    largest_scale,
    linearity_error_largest_scale,
    wall_s,
from joined
order by run_id, epoch, holdout, diagnostics_id
