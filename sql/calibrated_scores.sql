-- calibrated_scores: the labelled predictions of every calibrated run and epoch, with their
-- calibrated log-likelihood ratios.
-- materialized: view
-- depends_on: calibrations, labelled_predictions
-- grain: one row per calibration (run, epoch, dev set fitted_on) per labelled prediction of
--   that run and epoch (every dataset, the dev set included).
-- conventions: spoof_llr = slope * spoof_logit + intercept, the affine map `dfpipe calibrate`
--   fitted on dataset fitted_on (prior-weighted logistic regression, see dfpipe/llr.py): a
--   natural-log likelihood ratio of spoof. cm_llr = -spoof_llr = slope * cm_score - intercept,
--   the asvspoof direction (higher = bona fide). is_held_out: the row is not from the dev set
--   the map was fitted on (figures on the dev set itself are optimistic).
--   applied here at query time, so predictions stay the model's raw output and a refit
--   replaces one calibrations row instead of rewriting predictions.
with

scores as (
    select * from labelled_predictions
),

maps as (
    select * from calibrations
),

calibrated as (
    select
        scores.cell_id,
        scores.run_id,
        scores.epoch,
        scores.dataset,
        scores.clip_id,
        scores.is_spoof,
        maps.fitted_on,
        maps.slope,
        maps.intercept,
        maps.prior,
        scores.dataset != maps.fitted_on as is_held_out,
        scores.cm_score,
        maps.slope * scores.cm_score - maps.intercept as cm_llr,
        maps.intercept - maps.slope * scores.cm_score as spoof_llr,
    from scores
    inner join maps
        on
            scores.run_id = maps.run_id
            and scores.epoch = maps.epoch
)

select * from calibrated
