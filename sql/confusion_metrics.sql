-- confusion_metrics(confusion): table macro, the threshold metrics of confusion counts.
-- materialized: macro
-- depends_on:
-- input: the name of any relation with columns threshold (null: nothing was decided), n_rows,
--   n_bonafide, n_spoof, tp, fp, tn, fn (positive class = spoof), plus any key columns,
--   which are kept.
-- grain: one row per input row.
-- conventions: the conventions of threshold_metrics: sensitivity = recall = tp / (tp + fn),
--   specificity = tn / (tn + fp); a metric whose denominator is zero is 0 and `reason` says
--   why (the first such cause), sklearn's zero_division=0; without a threshold every count
--   and metric is null. bayes_threshold_metrics reads it (threshold_metrics computes the
--   same inline).
create or replace macro confusion_metrics(confusion) as table
    with

    decided_cells as (
        select
            * exclude (tp, fp, tn, fn),
            case when threshold is not null then tp end as tp,
            case when threshold is not null then fp end as fp,
            case when threshold is not null then tn end as tn,
            case when threshold is not null then fn end as fn,
        from query_table(confusion)
    ),

    rates as (
        select
            *,
            tp + fp as n_predicted_spoof,
            tn + fn as n_predicted_bonafide,
        from decided_cells
    ),

    ratios as (
        select
            *,
            (tp + tn) / n_rows as accuracy,
            tp / nullif(n_predicted_spoof, 0) as precision_defined,
            tp / nullif(n_spoof, 0) as recall_defined,
            tn / nullif(n_bonafide, 0) as specificity_defined,
            2 * tp / nullif(2 * tp + fp + fn, 0) as f1_defined,
            (tp::double * tn - fp::double * fn) / nullif(
                sqrt(
                    n_predicted_spoof::double * n_spoof * n_bonafide * n_predicted_bonafide
                ),
                0
            ) as mcc_defined,
        from rates
    )

    select
        * exclude (  -- noqa: AM04
            n_predicted_spoof,
            n_predicted_bonafide,
            precision_defined,
            recall_defined,
            specificity_defined,
            f1_defined,
            mcc_defined
        ),
        case when threshold is not null then coalesce(precision_defined, 0) end as precision,
        case when threshold is not null then coalesce(recall_defined, 0) end as recall,
        case when threshold is not null then coalesce(recall_defined, 0) end as sensitivity,
        case when threshold is not null then coalesce(specificity_defined, 0) end as specificity,
        case when threshold is not null then coalesce(f1_defined, 0) end as f1,
        case when threshold is not null then coalesce(mcc_defined, 0) end as mcc,
        case
            when threshold is null then 'no threshold'
            when n_spoof = 0 then 'no spoof rows'
            when n_bonafide = 0 then 'no bona fide rows'
            when n_predicted_spoof = 0 then 'nothing predicted spoof'
            when n_predicted_bonafide = 0 then 'nothing predicted bona fide'
        end as reason,
    from ratios
