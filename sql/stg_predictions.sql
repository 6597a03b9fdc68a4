-- stg_predictions: the lake's `predictions` table, renamed and cast for the metric sql.
-- materialized: view
-- depends_on: predictions
-- grain: one row per run per epoch per dataset per clip (as `predictions`).
-- conventions:
--   positive class = spoof: is_spoof is true for label 'spoof', false for 'bonafide',
--   null for any other label (such rows are left out of every metric).
--   p_spoof = sigmoid(spoof_logit) = 1 / (1 + exp(-spoof_logit)).
--   cm_score = -spoof_logit: the asvspoof score direction (higher = bona fide).
with

source as (
    select * from predictions
),

renamed as (
    select
        run_id,
        epoch,
        dataset,
        clip_id,
        corpus,
        condition,
        split,
        generator,
        family,
        speaker,
        language,
        source_codec,
        label,
        case label when 'spoof' then true when 'bonafide' then false end as is_spoof,
        spoof_logit,
        1.0 / (1.0 + exp(-spoof_logit)) as p_spoof,
        -spoof_logit as cm_score,
    from source
)

select * from renamed
