-- confusion_metrics(decisions, no_threshold_reason): table macro, confusion counts and the
-- threshold metrics of thresholded score blocks.
-- materialized: macro
-- depends_on:
-- input: the name of any relation with columns threshold (null: nothing was decided),
--   is_spoof, is_predicted_spoof (null when threshold is null) and n_rows (the rows of a
--   block with that label and decision), plus key columns: every other column is a key.
--   no_threshold_reason: the reason given where threshold is null (default 'no threshold').
-- grain: one row per distinct key (e.g. group_id, policy).
-- columns: the keys in input order, then threshold, n_rows, n_bonafide, n_spoof, tp, fp, tn,
--   fn (bigint), accuracy, precision, recall, sensitivity, specificity, f1, mcc, reason.
-- conventions: positive class = spoof; sensitivity = recall = tp / (tp + fn), specificity =
--   tn / (tn + fp). a metric whose denominator is zero is 0 and `reason` says why (the first
--   such cause): sklearn's zero_division=0, the convention the study and the asvspoof
--   reference report (e.g. mcc 0, specificity 0 % for a run that predicts one class).
--   without a threshold nothing was decided: the counts tp, fp, tn, fn and every metric are
--   null. the one definition of these metrics: threshold_metrics and bayes_threshold_metrics
--   read it.
create or replace macro confusion_metrics(
    decisions, no_threshold_reason := 'no threshold'
) as table
    with

    counts as (
        select
            * exclude (threshold, is_spoof, is_predicted_spoof, n_rows),
            any_value(threshold) as threshold,
            sum(n_rows)::bigint as n_rows,
            coalesce(sum(n_rows) filter (where not is_spoof), 0)::bigint as n_bonafide,
            coalesce(sum(n_rows) filter (where is_spoof), 0)::bigint as n_spoof,
            coalesce(
                sum(n_rows) filter (where is_spoof and is_predicted_spoof), 0
            )::bigint as tp,
            coalesce(
                sum(n_rows) filter (where not is_spoof and is_predicted_spoof), 0
            )::bigint as fp,
            coalesce(
                sum(n_rows) filter (where not is_spoof and not is_predicted_spoof), 0
            )::bigint as tn,
            coalesce(
                sum(n_rows) filter (where is_spoof and not is_predicted_spoof), 0
            )::bigint as fn,
        from query_table(decisions)
        group by all
    ),

    -- without a threshold nothing was decided: the cells are unknown, not zero
    decided_cells as (
        select
            * exclude (tp, fp, tn, fn),
            case when threshold is not null then tp end as tp,
            case when threshold is not null then fp end as fp,
            case when threshold is not null then tn end as tn,
            case when threshold is not null then fn end as fn,
        from counts
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

    -- zero_division = 0: a decided cell's zero-denominator metric is 0; an undecided one is null
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
            when threshold is null then no_threshold_reason
            when n_spoof = 0 then 'no spoof rows'
            when n_bonafide = 0 then 'no bona fide rows'
            when n_predicted_spoof = 0 then 'nothing predicted spoof'
            when n_predicted_bonafide = 0 then 'nothing predicted bona fide'
        end as reason,
    from ratios
