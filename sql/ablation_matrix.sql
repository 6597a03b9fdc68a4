-- ablation_matrix: architecture x training data x codec x clean/corrupt, on the ood set.
-- materialized: table
-- depends_on: run_results, stg_runs
-- grain: one row per run per epoch_policy (at its reported epoch, see best_epochs).
-- conventions: codec and corruption are the run's recorded training condition
--   (stg_runs.train_codec, train_corruption; see dfpipe.conditions.grammar), never parsed
--   from its name: 'corrupt+mp3_128k' -> (mp3_128k, corrupt), 'noise_snr10+flac' ->
--   (flac, noise_snr10), 'flac' -> (flac, null). training_audio = 'clean' without a
--   corruption, 'corrupt' with one, null when the run has no recorded codec (a runs row
--   from before the columns existed). metrics on dataset 'ood', the headline threshold
--   policy (see run_results).
with

results as (
    select * from run_results
),

runs as (
    select * from stg_runs
),

axes as (
    select
        results.*,
        runs.train_codec as codec,
        runs.train_corruption as corruption,
        case
            when runs.train_codec is null then null
            when runs.train_corruption is null then 'clean'
            else 'corrupt'
        end as training_audio,
    from results
    left join runs on results.run_id = runs.run_id
)

select
    epoch_policy,
    arch,
    train_corpus,
    codec,
    training_audio,
    corruption,
    run_id,
    train_condition,
    reported_epoch,
    ood_accuracy,
    ood_precision,
    ood_recall,
    ood_f1,
    ood_mcc,
    ood_specificity,
    ood_eer,
    reason,
from axes
order by epoch_policy, arch, train_corpus, codec, training_audio, corruption, run_id
