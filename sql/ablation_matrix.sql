-- ablation_matrix: architecture x training data x codec x clean/corrupt, on the ood set.
-- materialized: table
-- grain: one row per run (at its reported epoch, see best_epochs).
-- conventions: runs.train_condition is a '+'-joined list of condition names: a part
--   starting with 'corrupt' ('corrupt', 'corrupt:noise_snr10') marks corrupted training
--   data, the other part names the codec ('flac', 'mp3_128k'); no codec part (or 'raw')
--   means the source audio as ingested -> codec 'raw'. e.g. 'corrupt+mp3_128k' ->
--   (mp3_128k, corrupt); 'flac' -> (flac, clean). metrics on dataset 'ood', threshold
--   policy 'p_spoof_<threshold>'.
with

results as (
    select * from run_results
),

condition_parts as (
    select
        *,
        string_split(train_condition, '+') as parts,
    from results
),

parsed as (
    select
        *,
        coalesce(
            list_filter(parts, lambda part: not starts_with(part, 'corrupt'))[1], 'raw'
        ) as codec,
        case
            when len(list_filter(parts, lambda part: starts_with(part, 'corrupt'))) > 0
                then 'corrupt'
            else 'clean'
        end as training_audio,
    from condition_parts
)

select
    arch,
    train_corpus,
    codec,
    training_audio,
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
from parsed
order by arch, train_corpus, codec, training_audio, run_id
