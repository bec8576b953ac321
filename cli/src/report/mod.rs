//! `sentio report MODEL…`: one HTML page per run, with SVG charts, that a
//! person opens in a browser — for each model its registry entry, class
//! balance, confusion matrix, per-fold cross-validation metrics and feature
//! importance.
//!
//! Every figure comes from SQL run like any other statement (in the cluster;
//! only the small results reach the client): `ml.models`,
//! `ML.CONFUSION_MATRIX` over the model's own training query,
//! `ml.cross_validations` and `ML.FEATURE_IMPORTANCE`.

pub mod svg;

use std::fmt::Write;

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;

use crate::error::{CliError, Result};
use crate::runner::Runner;
use sentio_sql::ml::store::parse_model_ref;
use sentio_sql::sqltext::lit;
use svg::esc;

/// The metrics charted from a cross-validation, in this order.
const CV_METRICS: [&str; 4] = ["accuracy", "f1_score", "roc_auc", "precision"];

/// A model named on the command line: `name` (latest) or `name@version`,
/// as SQL names it ([`parse_model_ref`]).
fn parse_model(arg: &str) -> Result<(String, Option<u32>)> {
    parse_model_ref(arg)
        .map_err(|e| CliError::Report(format!("{arg:?} is not a model name (name or name@version): {e}")))
}

/// Column `name` of every batch, cast to `to` (one array per batch).
fn column(batches: &[RecordBatch], name: &str, to: &DataType) -> Result<Vec<ArrayRef>> {
    batches
        .iter()
        .map(|b| {
            let col = b.column_by_name(name).ok_or_else(|| CliError::Report(format!("no column {name}")))?;
            Ok(cast(col, to).map_err(DataFusionError::from)?)
        })
        .collect()
}

/// Column `name` of `batches` as text (NULL as `None`).
fn strings(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<String>>> {
    let cols = column(batches, name, &DataType::Utf8)?;
    Ok(cols.iter().flat_map(|c| c.as_string::<i32>().iter().map(|v| v.map(str::to_string))).collect())
}

/// Column `name` of `batches` as numbers (NULL and non-numbers as `None`).
fn numbers(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<f64>>> {
    let cols = column(batches, name, &DataType::Float64)?;
    Ok(cols.iter().flat_map(|c| c.as_primitive::<Float64Type>().iter()).collect())
}

fn first(batches: &[RecordBatch], name: &str) -> Result<String> {
    Ok(strings(batches, name)?.into_iter().next().flatten().unwrap_or_default())
}

/// One model's section of the report.
async fn model_section(runner: &Runner, arg: &str) -> Result<String> {
    let (name, version) = parse_model(arg)?;
    let pin = version.map(|v| format!(" AND version = {v}")).unwrap_or_default();
    let (reg, _) = runner
        .query(&format!(
            "SELECT version, model_type, CAST(created AS VARCHAR) AS created, training_rows, eval_rows, label, labels, \
             accuracy, precision, recall, f1_score, log_loss, roc_auc, training_query \
             FROM ml.models WHERE name = {}{pin} ORDER BY version DESC LIMIT 1",
            lit(&name)
        ))
        .await?;
    if reg.iter().all(|b| b.num_rows() == 0) {
        return Err(CliError::Report(format!("unknown model {arg} (see SELECT name, version FROM ml.models)")));
    }
    let version = first(&reg, "version")?;
    let model_type = first(&reg, "model_type")?;
    let label = first(&reg, "label")?;
    let training_query = first(&reg, "training_query")?;
    let reference = format!("{name}@{version}");
    let mut html = String::new();
    let _ = write!(
        html,
        "<section id=\"model-{n}\"><h2>{n} <small>version {v} · {t}</small></h2>\
         <table><tr><th>trained</th><td>{c}</td></tr><tr><th>label</th><td>{l} ({ls})</td></tr>\
         <tr><th>training rows</th><td>{tr}</td></tr><tr><th>held-out rows</th><td>{er}</td></tr>",
        n = esc(&name),
        v = esc(&version),
        t = esc(&model_type),
        c = esc(&first(&reg, "created")?),
        l = esc(&label),
        ls = esc(&first(&reg, "labels")?),
        tr = esc(&first(&reg, "training_rows")?),
        er = esc(&first(&reg, "eval_rows")?),
    );
    for m in ["accuracy", "precision", "recall", "f1_score", "log_loss", "roc_auc"] {
        let v = numbers(&reg, m)?.into_iter().next().flatten();
        let _ = write!(html, "<tr><th>{m}</th><td>{}</td></tr>", v.map(|v| format!("{v:.3}")).unwrap_or("—".into()));
    }
    html.push_str("</table>");

    // Class balance and confusion matrix: one pass over the training query.
    let (cm, _) = runner
        .query(&format!(
            "SELECT * FROM ML.CONFUSION_MATRIX(MODEL {reference}, ({training_query})) ORDER BY expected_label"
        ))
        .await?;
    let expected: Vec<String> = strings(&cm, "expected_label")?.into_iter().map(Option::unwrap_or_default).collect();
    let predicted: Vec<String> =
        cm.first().map(|b| b.schema().fields().iter().skip(1).map(|f| f.name().clone()).collect()).unwrap_or_default();
    let mut matrix = vec![Vec::new(); expected.len()];
    for p in &predicted {
        for (row, v) in matrix.iter_mut().zip(numbers(&cm, p)?) {
            row.push(v.unwrap_or(0.0));
        }
    }
    let balance: Vec<(String, f64)> =
        expected.iter().zip(&matrix).map(|(l, row)| (l.clone(), row.iter().sum())).collect();
    let _ = write!(
        html,
        "<figure class=\"chart\" id=\"class-balance-{n}\"><figcaption>Class balance: rows of the training query per \
         {l}</figcaption>{}</figure>\
         <figure class=\"chart\" id=\"confusion-matrix-{n}\"><figcaption>Confusion matrix on the training query's rows \
         (training and held-out rows; use ML.CONFUSION_MATRIX with a test query for unseen data): rows are the true \
         {l}, columns the predicted one</figcaption>{}</figure>",
        svg::bars("class balance", &balance),
        svg::heatmap("confusion matrix", &predicted, &matrix),
        n = esc(&name),
        l = esc(&label),
    );

    // The latest cross-validation of this model, if any.
    let (cv, _) = runner
        .query(&format!(
            "SELECT c.fold, c.metric, c.value, c.version, c.num_folds FROM ml.cross_validations c \
             JOIN (SELECT run_id FROM ml.cross_validations WHERE model = {m} ORDER BY cross_validated_at DESC LIMIT 1) l \
             ON c.run_id = l.run_id ORDER BY c.fold, c.metric",
            m = lit(&name)
        ))
        .await?;
    let _ = write!(html, "<figure class=\"chart\" id=\"cross-validation-{}\">", esc(&name));
    if cv.iter().all(|b| b.num_rows() == 0) {
        let _ = write!(
            html,
            "<figcaption>Cross-validation: none yet — <code>SELECT * FROM ML.CROSS_VALIDATE(MODEL {}, (query))</code> \
             stores one</figcaption>",
            esc(&name)
        );
    } else {
        let (folds, metrics, values) = (strings(&cv, "fold")?, strings(&cv, "metric")?, numbers(&cv, "value")?);
        let mut groups: Vec<String> = Vec::new();
        for f in folds.iter().flatten() {
            if f.parse::<u32>().is_ok() && !groups.contains(f) {
                groups.push(f.clone());
            }
        }
        groups.sort_by_key(|f| f.parse::<u32>().unwrap_or(0));
        groups.push("mean".into());
        let series: Vec<(String, Vec<Option<f64>>)> = CV_METRICS
            .iter()
            .map(|m| {
                let per: Vec<Option<f64>> = groups
                    .iter()
                    .map(|g| {
                        (0..folds.len())
                            .find(|&i| folds[i].as_deref() == Some(g) && metrics[i].as_deref() == Some(m))
                            .and_then(|i| values[i])
                    })
                    .collect();
                (m.to_string(), per)
            })
            .collect();
        let _ = write!(
            html,
            "<figcaption>Cross-validation of version {} ({} folds): metrics per held-out fold and their mean</figcaption>{}",
            esc(&first(&cv, "version")?),
            esc(&first(&cv, "num_folds")?),
            svg::grouped_bars("cross-validation", &groups, &series)
        );
    }
    html.push_str("</figure>");

    // Feature importance (trees and forests).
    let _ = write!(html, "<figure class=\"chart\" id=\"feature-importance-{}\">", esc(&name));
    if model_type.contains("tree") || model_type.contains("forest") {
        let (fi, _) = runner
            .query(&format!(
                "SELECT feature, importance_gain FROM ML.FEATURE_IMPORTANCE(MODEL {reference}) \
                 ORDER BY importance_gain DESC LIMIT 15"
            ))
            .await?;
        let items: Vec<(String, f64)> = strings(&fi, "feature")?
            .into_iter()
            .zip(numbers(&fi, "importance_gain")?)
            .map(|(f, g)| (f.unwrap_or_default(), g.unwrap_or(0.0)))
            .collect();
        let _ = write!(
            html,
            "<figcaption>Feature importance: total Gini decrease of the splits on each feature (top 15)</figcaption>{}",
            svg::bars("feature importance", &items)
        );
    } else {
        let _ = write!(
            html,
            "<figcaption>Feature importance: only for tree models ({} is not one)</figcaption>",
            esc(&model_type)
        );
    }
    html.push_str("</figure></section>");
    Ok(html)
}

/// The report of `models` (`name` or `name@version`), as one HTML page.
pub async fn html(runner: &Runner, models: &[String]) -> Result<String> {
    if models.is_empty() {
        return Err(CliError::Report("name at least one model".into()));
    }
    let mut body = String::new();
    for m in models {
        body.push_str(&model_section(runner, m).await?);
    }
    Ok(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sentio report: {title}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}th,td{{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}}\
         figure{{margin:1.5em 0}}figcaption{{font-weight:600;margin-bottom:.4em}}small{{color:#666;font-weight:normal}}\
         section{{border-top:2px solid #4e79a7;margin-top:2em}}</style></head><body><h1>Sentio report</h1>\
         <p>Models: {title}. Every figure was computed in the cluster from the model store and the lake.</p>{body}</body></html>\n",
        title = esc(&models.join(", "))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_checked() {
        assert_eq!(parse_model("emotion_rf").unwrap(), ("emotion_rf".into(), None));
        assert_eq!(parse_model("emotion_rf@3").unwrap(), ("emotion_rf".into(), Some(3)));
        for bad in ["", "a@", "a@x", "a'; DROP", "a b"] {
            assert!(parse_model(bad).is_err(), "{bad}");
        }
    }
}
