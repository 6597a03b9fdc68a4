-- headline_policy: the threshold policy every headline number is reported at.
-- materialized: view
-- depends_on: metric_params
-- grain: one row.
-- conventions: policy 'p_spoof_<t>', t = metric_params.threshold (0.5 by default):
--   predicted spoof when p_spoof >= t, the one decision rule (dfpipe.config.predicts_spoof).
--   threshold_metrics names its policy from here; the study tables (training_dynamics,
--   polished_gap, bootstrap_intervals) keep this policy's rows by joining on it.
with

params as (
    select threshold from metric_params
),

named as (
    select
        'p_spoof_' || threshold::varchar as policy,
        'p_spoof' as threshold_scale,
        threshold,
    from params
)

select
    policy,
    threshold_scale,
    threshold,
from named
