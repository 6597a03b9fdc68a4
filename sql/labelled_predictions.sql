-- labelled_predictions: the predictions labelled bona fide or spoof, each with its cell key.
-- materialized: view
-- depends_on: stg_predictions
-- grain: one row per run per epoch per dataset per clip labelled 'bonafide' or 'spoof'.
-- conventions: a cell = the labelled predictions of one run, epoch and dataset that share
--   the label and every grouping column (condition, corpus, source_codec, language,
--   speaker, generator, family; null counts as a value). cell_id = hash() of those eleven
--   columns, computed here only: every other model joins cells by cell_id (score_cells
--   checks that no two cells share one). like bootstrap draws, cell_id depends on the
--   duckdb version: join on it within one evaluation, never store it.
with

scores as (
    select * from stg_predictions
    where is_spoof is not null
),

keyed as (
    select
        hash(
            run_id,
            epoch,
            dataset,
            is_spoof,
            condition,
            corpus,
            source_codec,
            language,
            speaker,
            generator,
            family
        ) as cell_id,
        run_id,
        epoch,
        dataset,
        clip_id,
        is_spoof,
        condition,
        corpus,
        source_codec,
        language,
        speaker,
        generator,
        family,
        cm_score,
        p_spoof,
    from scores
)

select * from keyed
