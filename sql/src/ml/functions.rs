//! The `ML.*` table functions, rewritten into ordinary SQL.
//!
//! * `ML.PREDICT(MODEL m, (q))` → `q`'s columns plus `predicted_<label>` and
//!   `predicted_<label>_probs`, computed by `sentio_predict` where the rows are
//!   (a regressor's `predicted_<label>` alone, by `sentio_predict_value`);
//! * `ML.CONFUSION_MATRIX` and `ML.ROC_CURVE` → aggregates over `ML.PREDICT`;
//! * `ML.EVALUATE` → `sentio_metrics` over `ML.PREDICT` (a regressor's
//!   metrics: aggregates of its errors), run at once, stored in
//!   `ml.evaluations` and inlined; without a query, the metrics stored with
//!   the model;
//! * `ML.FEATURE_INFO`, `ML.TRAINING_INFO`, `ML.FEATURE_IMPORTANCE` → the
//!   model's metadata, inlined;
//! * `ML.CROSS_VALIDATE(MODEL m, (q), STRUCT(k AS num_folds))` → m's options
//!   retrained on k stratified folds of `q`, each evaluated on its held-out
//!   fold; stored in `ml.cross_validations` and inlined;
//! * `ML.DESCRIBE_DATA((q) | TABLE t, STRUCT(…))` → statistics of every
//!   column of `q` ([`crate::ml::describe`]);
//! * `ML.EXPLAIN_PREDICT` → `sentio_explain` where the rows are;
//!   `ML.GLOBAL_EXPLAIN` → the explanation stored at training
//!   ([`crate::ml::explain`]);
//! * `ML.WEIGHTS` → `sentio_weights`, reading the model's parameters
//!   ([`crate::ml::weights`]);
//! * `ML.TRIAL_INFO` → the trials of a tuned model, inlined
//!   ([`crate::ml::trials::trials_sql`]);
//! * `ML.TRANSFORM` → a model's `TRANSFORM` columns over rows, and every
//!   function's rows through them ([`crate::ml::transform`]);
//! * the preprocessing functions (`ML.STANDARD_SCALER(x) OVER ()`, …) →
//!   window aggregates ([`crate::ml::preprocess`]);
//! * `ML.VALIDATE_DATA_DRIFT`, `ML.VALIDATE_DATA_SKEW` → distances of the
//!   columns' distributions, counted in the cluster ([`crate::ml::drift`]);
//! * `ML.RECOMMEND`, and `ML.PREDICT` / `ML.EVALUATE` of a
//!   `matrix_factorization` model → the `sentio_mf_*` functions
//!   ([`crate::ml::recommend`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use sentio_udfs::ml::predict_udf::fingerprint;
use sentio_udfs::ml::spec::{Algorithm, Encoding, TrainSpec};

use crate::ids::{now_micros, unique_name};
use crate::ml::create::{Split, model_ref, rows_fingerprint, split_rows, train};
use crate::ml::describe::{DescribeSettings, describe_sql};
use crate::ml::drift::{self, DriftSettings};
use crate::ml::options::{SplitMethod, TrainOptions};
use crate::ml::parse::{MlCall, OptValue, find_ml_calls};
use crate::ml::snapshot::Snapshot;
use crate::ml::sqltext::{FeatureKind, feature_expr, feature_kind, values_query};
use crate::ml::store::{Importance, Iteration, ModelMeta, parse_model_ref};
use crate::ml::transform::{self, Bound, bind, training_rows};
use crate::ml::trials::trials_sql;
use crate::ml::{MlContext, MlError, cross_validations_schema, evaluations_schema};
use crate::ml::{explain, preprocess, recommend, weights};
use crate::ml::{metric_columns, metric_fields, metric_names, stored_metric_columns};
use crate::sqltext::quote_ident;
use crate::sqltext::{lit, qcol, rows_table};

/// Rewrites every `ML.*` call of `sql` (nested ones too): preprocessing
/// functions into window aggregates, table functions into queries.
pub fn rewrite<'a>(ml: &'a MlContext, sql: &'a str) -> BoxFuture<'a, Result<String, MlError>> {
    Box::pin(async move {
        let windowed = preprocess::rewrite_windows(sql)?;
        let sql = windowed.as_str();
        let calls = find_ml_calls(sql)?;
        if calls.is_empty() {
            return Ok(sql.to_string());
        }
        let mut out = String::with_capacity(sql.len());
        let mut last = 0;
        for call in calls {
            out.push_str(&sql[last..call.span.start]);
            out.push('(');
            out.push_str(&expand(ml, &call).await?);
            out.push(')');
            last = call.span.end;
        }
        out.push_str(&sql[last..]);
        Ok(out)
    })
}

async fn model_of(ml: &MlContext, call: &MlCall) -> Result<ModelMeta, MlError> {
    let text = call
        .model
        .as_deref()
        .ok_or_else(|| MlError::Syntax(format!("ML.{} needs MODEL name as its first argument", call.function)))?;
    let (name, version) = parse_model_ref(text)?;
    let meta = ml.store()?.meta(&ml.store_name(&name)?, version).await?;
    recommend::check_applies(&call.function, &meta)?;
    match call.settings.iter().find(|(k, _)| k == "trial_id").map(|(_, v)| v) {
        None => Ok(meta),
        Some(OptValue::Num(n)) if *n >= 1.0 && n.fract() == 0.0 && *n <= f64::from(u32::MAX) => {
            meta.with_trial(*n as u32)
        }
        Some(other) => Err(MlError::Syntax(format!(
            "ML.{}: trial_id must be a whole number of at least 1, not {other}",
            call.function
        ))),
    }
}

fn query_of(call: &MlCall) -> Result<&str, MlError> {
    call.query.as_deref().ok_or_else(|| {
        MlError::Syntax(format!("ML.{} needs a query: ML.{}(MODEL m, (SELECT …))", call.function, call.function))
    })
}

/// Refuses a `STRUCT(…)` setting that the function of `call` does not take
/// (`takes`): none is accepted and ignored. BigQuery ML's settings that
/// Sentio does not have say why.
fn check_settings(call: &MlCall, takes: &[&str]) -> Result<(), MlError> {
    let function = &call.function;
    for (name, _) in &call.settings {
        if takes.contains(&name.as_str()) {
            continue;
        }
        let why = match name.as_str() {
            "trial_id" => {
                "it picks a trial of a tuned model, which ML.PREDICT, ML.EVALUATE, ML.CONFUSION_MATRIX, ML.ROC_CURVE, \
                 ML.EXPLAIN_PREDICT and ML.WEIGHTS take"
            }
            "keep_original_columns" => "Sentio does not implement it (ML.PREDICT returns every input column)",
            "perform_aggregation" | "horizon" | "confidence_level" => {
                "it is for time-series models, which Sentio does not have"
            }
            "top_k_features" => "it is ML.EXPLAIN_PREDICT's",
            "approx_feature_contrib" => {
                "Sentio's attributions are exact (Tree SHAP, linear terms): nothing to approximate"
            }
            _ => "no such setting",
        };
        let takes = if takes.is_empty() { "no settings".to_string() } else { takes.join(", ") };
        return Err(MlError::Syntax(format!("ML.{function}: {name}: {why} (ML.{function} takes {takes})")));
    }
    Ok(())
}

/// The `threshold` setting of `call` on the model `meta`: a number from 0 to
/// 1, for binary models only.
fn threshold_of(call: &MlCall, meta: &ModelMeta) -> Result<Option<f64>, MlError> {
    let Some((_, value)) = call.settings.iter().find(|(k, _)| k == "threshold") else { return Ok(None) };
    let function = &call.function;
    let t = match value {
        OptValue::Num(t) if (0.0..=1.0).contains(t) => *t,
        other => {
            return Err(MlError::Syntax(format!("ML.{function}: threshold must be a number from 0 to 1, not {other}")));
        }
    };
    if meta.spec.labels.len() != 2 {
        return Err(MlError::Data(format!(
            "ML.{function}: threshold is for binary models; {} has {} labels ({})",
            meta.name,
            meta.spec.labels.len(),
            meta.spec.labels.join(", ")
        )));
    }
    Ok(Some(t))
}

/// SQL of the predicted label given the prediction struct `p` of `meta`: the
/// most probable label, or with a `threshold` (binary models) the positive
/// label — the second in sorted order — when its probability is at least the
/// threshold.
fn predicted_label(meta: &ModelMeta, p: &str, threshold: Option<f64>) -> String {
    let label = match threshold {
        None => format!("get_field({p}, 'label')"),
        Some(t) => format!(
            "CASE WHEN get_field(array_element(get_field({p}, 'probs'), 2), 'prob') >= {t:?} THEN {} ELSE {} END",
            lit(&meta.spec.labels[1]),
            lit(&meta.spec.labels[0])
        ),
    };
    if meta.label_type == "VARCHAR" { label } else { format!("CAST({label} AS {})", meta.label_type) }
}

fn reference(ml: &MlContext, meta: &ModelMeta) -> Result<String, MlError> {
    Ok(model_ref(
        &format!("{}@{}", meta.name, meta.version),
        ml.store()?.payload_url(meta),
        &meta.spec,
        &meta.payload_fingerprint,
    ))
}

/// The `sentio_predict` feature arguments binding `schema`'s columns (by
/// name) to the model's features; a missing feature or one of another kind
/// is an error naming it.
pub fn feature_args(spec: &TrainSpec, schema: &Schema, alias: &str, model: &str) -> Result<Vec<String>, MlError> {
    spec.features
        .iter()
        .map(|f| {
            let field = schema.field_with_name(&f.name).map_err(|_| {
                MlError::Data(format!(
                    "model {model} needs the feature column {:?}, which the query does not have",
                    f.name
                ))
            })?;
            let want = match f.encoding {
                Encoding::Numeric { .. } => FeatureKind::Numeric,
                Encoding::Categorical { .. } => FeatureKind::Categorical,
            };
            let got = feature_kind(field.data_type());
            if got != Some(want) && field.data_type() != &DataType::Null {
                return Err(MlError::Data(format!(
                    "model {model}: feature {:?} was {} at training, the query gives {}",
                    f.name,
                    f.sql_type,
                    field.data_type()
                )));
            }
            let col = qcol(alias, &f.name);
            Ok(if field.data_type() == &DataType::Null {
                match want {
                    FeatureKind::Numeric => "CAST(NULL AS DOUBLE)".to_string(),
                    FeatureKind::Categorical => "CAST(NULL AS VARCHAR)".to_string(),
                }
            } else {
                feature_expr(&col, field.data_type())
            })
        })
        .collect()
}

/// The metrics of the model `reference` names over `query` (which has the
/// label column): the row count and the metrics — a classifier's by
/// `sentio_metrics`, a regressor's by aggregates of its errors.
pub async fn metrics_of(
    ml: &MlContext,
    reference: &str,
    spec: &TrainSpec,
    label: &str,
    schema: &Schema,
    query: &str,
    threshold: Option<f64>,
) -> Result<(i64, BTreeMap<String, Option<f64>>), MlError> {
    let args = feature_args(spec, schema, "__e", "")?;
    if spec.algorithm.is_regressor() {
        return regression_metrics(ml, reference, &args, label, query).await;
    }
    let labels = serde_json::to_string(&spec.labels).map_err(|e| MlError::Internal(e.to_string()))?;
    let threshold = threshold.map(|t| format!(", {}", lit(&format!("{t:?}")))).unwrap_or_default();
    let sql = format!(
        "SELECT COUNT(*) AS n, sentio_metrics({}, CAST({} AS VARCHAR), sentio_predict({}, {}){threshold}) AS m \
         FROM ({query}) __e WHERE {} IS NOT NULL",
        lit(&labels),
        qcol("__e", label),
        lit(reference),
        args.join(", "),
        qcol("__e", label),
    );
    let batches = ml.collect(&sql).await?;
    let b = batches.first().ok_or_else(|| MlError::Internal("no metrics row".into()))?;
    let n = b.column(0).as_primitive::<Int64Type>().value(0);
    let m = b.column(1).as_struct();
    let mut out = BTreeMap::new();
    for name in metric_names(false) {
        let c = m.column_by_name(name).ok_or_else(|| MlError::Internal(format!("no metric {name}")))?;
        let c = c.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        out.insert(name.to_string(), (!c.is_null(0)).then(|| c.value(0)));
    }
    Ok((n, out))
}

/// A regressor's metrics over `query`: its predictions (`sentio_predict_value`
/// of the feature arguments `args`) against the label.
async fn regression_metrics(
    ml: &MlContext,
    reference: &str,
    args: &[String],
    label: &str,
    query: &str,
) -> Result<(i64, BTreeMap<String, Option<f64>>), MlError> {
    let known = format!(
        "SELECT CAST({label} AS DOUBLE) AS __r, sentio_predict_value({}, {}) AS __p FROM ({query}) __e \
         WHERE {label} IS NOT NULL",
        lit(reference),
        args.join(", "),
        label = qcol("__e", label),
    );
    recommend::metrics_row(&ml.collect(&recommend::explicit_sql(&known)).await?, metric_names(true))
}

/// Refuses `function` for a regressor: it is about classes.
fn classifiers_only(function: &str, meta: &ModelMeta) -> Result<(), MlError> {
    if meta.spec.algorithm.is_regressor() {
        return Err(MlError::Data(format!(
            "{function} is for classifiers; {}@{} is a {} (a regressor: see ML.EVALUATE's regression metrics)",
            meta.name, meta.version, meta.model_type
        )));
    }
    Ok(())
}

async fn expand(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    if call.study.is_some() && call.function != "VALIDATE_DATA_DRIFT" {
        return Err(MlError::Syntax(format!("ML.{} takes one query or table, not two", call.function)));
    }
    match call.function.as_str() {
        "PREDICT" => predict(ml, call).await,
        "EVALUATE" => evaluate(ml, call).await,
        "CONFUSION_MATRIX" => confusion_matrix(ml, call).await,
        "ROC_CURVE" => roc_curve(ml, call).await,
        "FEATURE_INFO" => feature_info(ml, call).await,
        "TRAINING_INFO" => training_info(ml, call).await,
        "FEATURE_IMPORTANCE" => feature_importance(ml, call).await,
        "CROSS_VALIDATE" => cross_validate(ml, call).await,
        "DESCRIBE_DATA" => describe_data(ml, call).await,
        "EXPLAIN_PREDICT" => explain_predict(ml, call).await,
        "GLOBAL_EXPLAIN" => global_explain(ml, call).await,
        "WEIGHTS" => weights(ml, call).await,
        "TRIAL_INFO" => trial_info(ml, call).await,
        "TRANSFORM" => transform_rows(ml, call).await,
        "VALIDATE_DATA_DRIFT" => validate_data_drift(ml, call).await,
        "VALIDATE_DATA_SKEW" => validate_data_skew(ml, call).await,
        "RECOMMEND" => recommend_rows(ml, call).await,
        other => Err(MlError::Syntax(format!(
            "unknown function ML.{other}; Sentio has ML.PREDICT, ML.EVALUATE, ML.CONFUSION_MATRIX, ML.ROC_CURVE, \
             ML.FEATURE_INFO, ML.TRAINING_INFO, ML.FEATURE_IMPORTANCE, ML.EXPLAIN_PREDICT, ML.GLOBAL_EXPLAIN, \
             ML.WEIGHTS, ML.TRIAL_INFO, ML.TRANSFORM, ML.RECOMMEND, ML.VALIDATE_DATA_DRIFT, ML.VALIDATE_DATA_SKEW, \
             ML.CROSS_VALIDATE and ML.DESCRIBE_DATA, and the preprocessing functions ML.{}",
            crate::ml::preprocess::PREPROCESSORS.join(", ML.")
        ))),
    }
}

/// The rewritten inner query and its schema.
async fn inner(ml: &MlContext, call: &MlCall) -> Result<(String, Arc<Schema>), MlError> {
    let q = rewrite(ml, query_of(call)?).await?;
    let df = ml.ctx.sql(&q).await?;
    Ok((q, Arc::new(df.schema().as_arrow().clone())))
}

/// `meta`'s training rows split as it was trained, rebuilt from its
/// training query (through its `TRANSFORM`) — only while they are still the
/// rows it was trained on (the same `data_fingerprint`); else an error that
/// says what `reads` them and what to do `instead`.
async fn training_split(
    ml: &MlContext,
    meta: &ModelMeta,
    reads: &str,
    instead: &str,
) -> Result<(Split, Arc<Schema>), MlError> {
    let q = training_rows(ml, meta).await?;
    let schema = Arc::new(ml.ctx.sql(&q).await?.schema().as_arrow().clone());
    let split = split_rows(ml, &meta.train_options, &q, &schema).await?;
    let now = rows_fingerprint(ml, &schema, &split.train).await?;
    if now != meta.data_fingerprint {
        return Err(MlError::Data(format!(
            "{reads}, rebuilt from its training query; the training rows have changed since it was trained \
             (fingerprint {} then, {now} now), so they cannot be: {instead}",
            meta.data_fingerprint
        )));
    }
    Ok((split, schema))
}

/// The rows a function of `meta` reads, bound to it: the call's query, or
/// without one the model's own evaluation rows, as BigQuery ML does —
/// rebuilt from the training query and the split the model was trained
/// with, and only while the training rows are still those it was trained on
/// (the same `data_fingerprint`).
async fn rows_or_evaluation(ml: &MlContext, call: &MlCall, meta: &ModelMeta) -> Result<Bound, MlError> {
    if call.query.is_some() {
        let (q, schema) = inner(ml, call).await?;
        return bind(ml, meta, &q, schema, false).await;
    }
    let function = &call.function;
    let model = format!("{}@{}", meta.name, meta.version);
    let reads = format!("ML.{function}(MODEL {model}) without rows reads the model's evaluation rows");
    let instead = format!("give the rows, ML.{function}(MODEL {model}, (SELECT …))");
    let (split, schema) = training_split(ml, meta, &reads, &instead).await?;
    let Some(eval) = split.eval else {
        return Err(MlError::Data(format!(
            "{reads}, and {model} has none (data_split_method = 'NO_SPLIT', or under 500 training rows): {instead}"
        )));
    };
    bind(ml, meta, &eval, schema, true).await
}

/// SQL of `ML.PREDICT(MODEL meta, (q))` for a planned query (with a
/// binary model's `threshold`, [`predicted_label`]).
fn predict_sql(ml: &MlContext, meta: &ModelMeta, rows: &Bound, threshold: Option<f64>) -> Result<String, MlError> {
    let model = format!("{}@{}", meta.name, meta.version);
    let (q, schema) = (&rows.query, &rows.schema);
    let args = feature_args(&rows.spec, schema, "__i", &model)?;
    let pred = quote_ident(&format!("predicted_{}", meta.label));
    let probs = quote_ident(&format!("predicted_{}_probs", meta.label));
    let regressor = meta.spec.algorithm.is_regressor();
    let added = if regressor { 1 } else { 2 };
    for taken in [format!("predicted_{}", meta.label), format!("predicted_{}_probs", meta.label)].iter().take(added) {
        if schema.field_with_name(taken).is_ok() {
            return Err(MlError::Data(format!("ML.PREDICT: the query already has a column {taken:?}")));
        }
    }
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| !f.name().starts_with(transform::HIDDEN))
        .map(|f| qcol("__o", f.name()))
        .collect();
    if regressor {
        return Ok(format!(
            "SELECT {}{}__o.__p AS {pred} FROM (SELECT __i.*, sentio_predict_value({}, {}) AS __p FROM ({q}) __i) __o",
            cols.join(", "),
            if cols.is_empty() { "" } else { ", " },
            lit(&reference(ml, meta)?),
            args.join(", ")
        ));
    }
    let label_value = predicted_label(meta, "__o.__p", threshold);
    Ok(format!(
        "SELECT {}{}{label_value} AS {pred}, get_field(__o.__p, 'probs') AS {probs} \
         FROM (SELECT __i.*, sentio_predict({}, {}) AS __p FROM ({q}) __i) __o",
        cols.join(", "),
        if cols.is_empty() { "" } else { ", " },
        lit(&reference(ml, meta)?),
        args.join(", ")
    ))
}

async fn predict(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["threshold", "trial_id"])?;
    let meta = model_of(ml, call).await?;
    if meta.factorization.is_some() {
        check_settings(call, &["trial_id"])?;
        let (q, schema) = inner(ml, call).await?;
        return recommend::predict(ml, &meta, &q, &schema);
    }
    let threshold = threshold_of(call, &meta)?;
    let (q, schema) = inner(ml, call).await?;
    predict_sql(ml, &meta, &bind(ml, &meta, &q, schema, false).await?, threshold)
}

/// `ML.RECOMMEND` ([`recommend::recommend`]).
async fn recommend_rows(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    let meta = model_of(ml, call).await?;
    let rows = match call.query {
        Some(_) => Some(inner(ml, call).await?),
        None => None,
    };
    recommend::recommend(ml, call, &meta, rows.as_ref().map(|(q, s)| (q.as_str(), s.as_ref())))
}

fn ts_array(v: i64, n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![v; n]).with_timezone("UTC"))
}

fn str_array(v: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from(vec![v.to_string(); n]))
}

fn batch(schema: Arc<Schema>, cols: Vec<ArrayRef>) -> Result<RecordBatch, MlError> {
    RecordBatch::try_new(schema, cols).map_err(|e| MlError::Internal(e.to_string()))
}

/// The columns of `ML.EVALUATE` of `meta`: a regressor's or a classifier's
/// metrics.
fn metrics_schema(meta: &ModelMeta) -> Arc<Schema> {
    Arc::new(Schema::new(metric_fields(metric_names(meta.spec.algorithm.is_regressor()))))
}

/// One row of `ML.EVALUATE` of `meta` holding `metrics`.
fn metrics_row(meta: &ModelMeta, metrics: &BTreeMap<String, Option<f64>>) -> Result<String, MlError> {
    let schema = metrics_schema(meta);
    let names = metric_names(meta.spec.algorithm.is_regressor());
    values_query(&schema, &[batch(Arc::clone(&schema), metric_columns(names, metrics))?])
}

async fn evaluate(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["threshold", "trial_id"])?;
    let meta = model_of(ml, call).await?;
    if meta.factorization.is_some() {
        check_settings(call, &["trial_id"])?;
        let rows = match call.query {
            Some(_) => Some(inner(ml, call).await?),
            None => None,
        };
        return recommend::evaluate(ml, &meta, rows.as_ref().map(|(q, s)| (q.as_str(), s.as_ref()))).await;
    }
    let threshold = threshold_of(call, &meta)?;
    if call.query.is_none() && threshold.is_none() {
        return metrics_row(&meta, &meta.metrics);
    }
    // With a threshold and no rows: the model's evaluation rows.
    let bound = rows_or_evaluation(ml, call, &meta).await?;
    let (q, schema) = (&bound.query, &bound.schema);
    require_label("ML.EVALUATE", schema, &meta)?;
    let (rows, metrics) =
        metrics_of(ml, &reference(ml, &meta)?, &bound.spec, &meta.label, schema, q, threshold).await?;
    let store = ml.store()?;
    let eval_schema = evaluations_schema();
    let mut cols: Vec<ArrayRef> = vec![
        str_array(&meta.name, 1),
        Arc::new(Int64Array::from(vec![i64::from(meta.version)])),
        ts_array(now_micros(), 1),
        str_array(&fingerprint(q.as_bytes()), 1),
        Arc::new(Int64Array::from(vec![rows])),
    ];
    cols.extend(stored_metric_columns(&metrics));
    let row = batch(Arc::clone(&eval_schema), cols)?;
    let file = format!("ml/evaluations/{}.v{}.{}.parquet", meta.name, meta.version, unique_name());
    store.put_parquet(&file, &row).await?;
    metrics_row(&meta, &metrics)
}

/// An error unless the query of `function` (its `schema`) has the label
/// column that `meta`'s predictions are compared with.
fn require_label(function: &str, schema: &Schema, meta: &ModelMeta) -> Result<(), MlError> {
    match schema.field_with_name(&meta.label) {
        Ok(_) => Ok(()),
        Err(_) => Err(MlError::Data(format!(
            "{function}: the query has no label column {:?} to compare model {}'s predictions with",
            meta.label, meta.name
        ))),
    }
}

fn column_name(label: &str) -> String {
    // BigQuery ML names confusion-matrix columns after the labels, with
    // characters that cannot be in a name replaced by `_`.
    let s: String = label.chars().map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() { "_".into() } else { s }
}

async fn confusion_matrix(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["threshold", "trial_id"])?;
    let meta = model_of(ml, call).await?;
    classifiers_only("ML.CONFUSION_MATRIX", &meta)?;
    let threshold = threshold_of(call, &meta)?;
    let rows = rows_or_evaluation(ml, call, &meta).await?;
    require_label("ML.CONFUSION_MATRIX", &rows.schema, &meta)?;
    let pred = predict_sql(ml, &meta, &rows, threshold)?;
    let predicted = quote_ident(&format!("predicted_{}", meta.label));
    let cols: Vec<String> = meta
        .spec
        .labels
        .iter()
        .map(|l| {
            format!(
                "SUM(CASE WHEN CAST({predicted} AS VARCHAR) = {} THEN 1 ELSE 0 END) AS {}",
                lit(l),
                quote_ident(&column_name(l))
            )
        })
        .collect();
    Ok(format!(
        "SELECT CAST({} AS VARCHAR) AS expected_label, {} FROM ({pred}) __c WHERE {} IS NOT NULL GROUP BY 1 ORDER BY 1",
        quote_ident(&meta.label),
        cols.join(", "),
        quote_ident(&meta.label)
    ))
}

async fn roc_curve(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["trial_id"])?;
    let meta = model_of(ml, call).await?;
    classifiers_only("ML.ROC_CURVE", &meta)?;
    if meta.spec.labels.len() != 2 {
        return Err(MlError::Data(format!(
            "ML.ROC_CURVE is for binary models; {} has {} labels",
            meta.name,
            meta.spec.labels.len()
        )));
    }
    let rows = rows_or_evaluation(ml, call, &meta).await?;
    require_label("ML.ROC_CURVE", &rows.schema, &meta)?;
    let pred = predict_sql(ml, &meta, &rows, None)?;
    let positive = lit(&meta.spec.labels[1]);
    let probs = quote_ident(&format!("predicted_{}_probs", meta.label));
    // The thresholds given (GENERATE_ARRAY(…) or [a, …]), else 0, 0.01, …, 1.
    let thresholds: Vec<Vec<String>> = match &call.array {
        Some(given) => given.iter().map(|t| vec![format!("CAST({t:?} AS DOUBLE)")]).collect(),
        None => (0..=100).map(|i| vec![format!("{:.2}", f64::from(i) / 100.0)]).collect(),
    };
    Ok(format!(
        "SELECT __t.threshold, \
           CAST(SUM(CASE WHEN __y AND __p >= __t.threshold THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(SUM(CASE WHEN __y THEN 1 ELSE 0 END), 0) AS recall, \
           CAST(SUM(CASE WHEN NOT __y AND __p >= __t.threshold THEN 1 ELSE 0 END) AS DOUBLE) / NULLIF(SUM(CASE WHEN NOT __y THEN 1 ELSE 0 END), 0) AS false_positive_rate, \
           SUM(CASE WHEN __y AND __p >= __t.threshold THEN 1 ELSE 0 END) AS true_positives, \
           SUM(CASE WHEN NOT __y AND __p >= __t.threshold THEN 1 ELSE 0 END) AS false_positives, \
           SUM(CASE WHEN NOT __y AND __p < __t.threshold THEN 1 ELSE 0 END) AS true_negatives, \
           SUM(CASE WHEN __y AND __p < __t.threshold THEN 1 ELSE 0 END) AS false_negatives \
         FROM (SELECT CAST({label} AS VARCHAR) = {positive} AS __y, get_field(array_element({probs}, 2), 'prob') AS __p \
               FROM ({pred}) __r WHERE {label} IS NOT NULL) __s \
         CROSS JOIN {} GROUP BY __t.threshold ORDER BY __t.threshold",
        rows_table("__t", &["threshold"], &thresholds),
        label = quote_ident(&meta.label),
    ))
}

async fn describe_data(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    if call.model.is_some() {
        return Err(MlError::Syntax(
            "ML.DESCRIBE_DATA describes data, not a model: ML.DESCRIBE_DATA((SELECT …) | TABLE t, STRUCT(…))".into(),
        ));
    }
    if call.query.is_none() {
        return Err(MlError::Syntax(
            "ML.DESCRIBE_DATA needs the data to describe: ML.DESCRIBE_DATA((SELECT …)) or ML.DESCRIBE_DATA(TABLE t)"
                .into(),
        ));
    }
    let settings = DescribeSettings::of(call)?;
    let (q, schema) = inner(ml, call).await?;
    describe_sql(&q, &schema, settings)
}

async fn feature_info(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &[])?;
    let meta = model_of(ml, call).await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("input", DataType::Utf8, false),
        Field::new("min", DataType::Float64, true),
        Field::new("max", DataType::Float64, true),
        Field::new("mean", DataType::Float64, true),
        Field::new("median", DataType::Float64, true),
        Field::new("stddev", DataType::Float64, true),
        Field::new("category_count", DataType::Int64, true),
        Field::new("null_count", DataType::Int64, false),
        Field::new("dimension", DataType::Int64, false),
    ]));
    let fi = &meta.feature_info;
    let b = batch(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(fi.iter().map(|f| f.input.clone()).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| f.min).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| f.max).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| f.mean).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| f.median).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| f.stddev).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(fi.iter().map(|f| f.category_count).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(fi.iter().map(|f| f.null_count).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(meta.spec.features.iter().map(|f| f.width() as i64).collect::<Vec<_>>())),
        ],
    )?;
    values_query(&schema, &[b])
}

/// `ML.TRAINING_INFO`: the model's iterations; for a tuned model every
/// trial's, each row with its `trial_id` first (as BigQuery ML).
async fn training_info(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &[])?;
    let meta = model_of(ml, call).await?;
    let tuned = !meta.trials.is_empty();
    let rows: Vec<(u32, &Iteration)> = if tuned {
        meta.trials
            .iter()
            .flat_map(|t| {
                // A version stored before trials kept their rows has the optimal one's.
                let info =
                    if t.training_info.is_empty() && t.is_optimal { &meta.training_info } else { &t.training_info };
                info.iter().map(move |i| (t.trial_id, i))
            })
            .collect()
    } else {
        meta.training_info.iter().map(|i| (0, i)).collect()
    };
    let n = rows.len();
    let mut fields = vec![
        Field::new("training_run", DataType::Int64, false),
        Field::new("iteration", DataType::Int64, false),
        Field::new("loss", DataType::Float64, true),
        Field::new("eval_loss", DataType::Float64, true),
        Field::new("learning_rate", DataType::Float64, true),
        Field::new("duration_ms", DataType::Int64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![0; n])),
        Arc::new(Int64Array::from(rows.iter().map(|(_, i)| i.iteration).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|(_, i)| i.loss).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|(_, i)| i.eval_loss).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(rows.iter().map(|(_, i)| i.learning_rate).collect::<Vec<_>>())),
        Arc::new(Int64Array::from(rows.iter().map(|(_, i)| i.duration_ms).collect::<Vec<_>>())),
    ];
    if tuned {
        fields.insert(0, Field::new("trial_id", DataType::Int64, false));
        columns.insert(0, Arc::new(Int64Array::from(rows.iter().map(|(t, _)| i64::from(*t)).collect::<Vec<_>>())));
    }
    let schema = Arc::new(Schema::new(fields));
    let b = batch(Arc::clone(&schema), columns)?;
    values_query(&schema, &[b])
}

async fn feature_importance(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &[])?;
    let meta = model_of(ml, call).await?;
    if meta.feature_importance.is_empty() {
        return Err(MlError::Data(format!(
            "ML.FEATURE_IMPORTANCE is for tree models; {} is a {}",
            meta.name, meta.model_type
        )));
    }
    let fi = &meta.feature_importance;
    let schema = Arc::new(Schema::new(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("importance_weight", DataType::Float64, false),
        Field::new("importance_gain", DataType::Float64, false),
        Field::new("importance_cover", DataType::Float64, false),
    ]));
    let b = batch(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(fi.iter().map(|f| f.feature.clone()).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| f.importance_weight).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| per_split(f.importance_gain, f)).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(fi.iter().map(|f| per_split(f.importance_cover, f)).collect::<Vec<_>>())),
        ],
    )?;
    values_query(&schema, &[b])
}

/// A total over the splits on a feature, as BigQuery ML reports it: the
/// average per split (0 for a feature no tree splits on).
fn per_split(total: f64, feature: &Importance) -> f64 {
    if feature.importance_weight > 0.0 { total / feature.importance_weight } else { 0.0 }
}

/// Refuses to explain a model whose type has no attributions.
fn explainable(function: &str, meta: &ModelMeta) -> Result<(), MlError> {
    match meta.spec.algorithm {
        Algorithm::RandomForest
        | Algorithm::RandomForestRegressor
        | Algorithm::BoostedTreeClassifier
        | Algorithm::BoostedTreeRegressor
        | Algorithm::DecisionTree
        | Algorithm::LogisticReg
        | Algorithm::LinearReg => Ok(()),
        _ => Err(MlError::Data(format!(
            "{function}: {} is a {}; Sentio explains random_forest_*, boosted_tree_*, decision_tree_classifier, \
             logistic_reg and linear_reg models",
            meta.name, meta.model_type
        ))),
    }
}

async fn explain_predict(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["top_k_features", "trial_id"])?;
    let meta = model_of(ml, call).await?;
    explainable("ML.EXPLAIN_PREDICT", &meta)?;
    let features = meta.spec.features.len() as f64;
    let top_k = match call.settings.iter().find(|(k, _)| k == "top_k_features").map(|(_, v)| v) {
        None => explain::DEFAULT_TOP_K,
        Some(OptValue::Num(n)) if *n >= 1.0 && n.fract() == 0.0 => n.min(features) as u64,
        Some(other) => {
            return Err(MlError::Syntax(format!(
                "ML.EXPLAIN_PREDICT: top_k_features must be a whole number of at least 1, not {other}"
            )));
        }
    };
    let (q, schema) = inner(ml, call).await?;
    let predicted = format!("predicted_{}", meta.label);
    if schema.field_with_name(&predicted).is_ok() {
        return Err(MlError::Data(format!("ML.EXPLAIN_PREDICT: the query already has a column {predicted:?}")));
    }
    let model = format!("{}@{}", meta.name, meta.version);
    let rows = bind(ml, &meta, &q, Arc::clone(&schema), false).await?;
    let args = feature_args(&rows.spec, &rows.schema, "__i", &model)?;
    Ok(explain::explain_sql(&meta, &reference(ml, &meta)?, &args, &rows.query, &schema, top_k))
}

async fn global_explain(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["class_level_explain"])?;
    if call.query.is_some() {
        return Err(MlError::Syntax(
            "ML.GLOBAL_EXPLAIN takes a model, not rows: ML.GLOBAL_EXPLAIN(MODEL m [, STRUCT(TRUE AS \
             class_level_explain)])"
                .into(),
        ));
    }
    let class_level = match call.settings.iter().find(|(k, _)| k == "class_level_explain").map(|(_, v)| v) {
        None => false,
        Some(OptValue::Bool(b)) => *b,
        Some(other) => {
            return Err(MlError::Syntax(format!(
                "ML.GLOBAL_EXPLAIN: class_level_explain must be TRUE or FALSE, not {other}"
            )));
        }
    };
    let meta = model_of(ml, call).await?;
    if class_level && meta.spec.algorithm.is_regressor() {
        return Err(MlError::Syntax(format!(
            "ML.GLOBAL_EXPLAIN: class_level_explain is for classifiers; {} is a {}",
            meta.name, meta.model_type
        )));
    }
    explain::global_explain_sql(&meta, class_level)
}

async fn weights(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &["standardize", "trial_id"])?;
    if call.query.is_some() {
        return Err(MlError::Syntax(
            "ML.WEIGHTS takes a model, not rows: ML.WEIGHTS(MODEL m [, STRUCT(TRUE AS standardize)])".into(),
        ));
    }
    let standardize = match call.settings.iter().find(|(k, _)| k == "standardize").map(|(_, v)| v) {
        None => false,
        Some(OptValue::Bool(b)) => *b,
        Some(other) => {
            return Err(MlError::Syntax(format!("ML.WEIGHTS: standardize must be TRUE or FALSE, not {other}")));
        }
    };
    let meta = model_of(ml, call).await?;
    if meta.factorization.is_some() {
        if standardize {
            return Err(MlError::Syntax(
                "ML.WEIGHTS: standardize is for linear models; a matrix_factorization model's factors are as trained"
                    .into(),
            ));
        }
        return recommend::weights(ml, &meta);
    }
    weights::weights_sql(&meta, &reference(ml, &meta)?, standardize)
}

async fn transform_rows(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &[])?;
    let meta = model_of(ml, call).await?;
    let (q, schema) = inner(ml, call).await?;
    transform::transform_sql(&meta, &q, &schema)
}

async fn validate_data_drift(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    let settings = DriftSettings::from_settings(&call.function, &call.settings)?;
    let (Some(base), Some(study), None) = (&call.query, &call.study, &call.model) else {
        return Err(MlError::Syntax(
            "write ML.VALIDATE_DATA_DRIFT((base rows) | TABLE t, (rows to compare) | TABLE u [, STRUCT(…)])".into(),
        ));
    };
    let base = rewrite(ml, base).await?;
    let base_schema = ml.ctx.sql(&base).await?.schema().as_arrow().clone();
    let study = rewrite(ml, study).await?;
    let study_schema = ml.ctx.sql(&study).await?.schema().as_arrow().clone();
    drift::drift_sql(ml, "VALIDATE_DATA_DRIFT", (&base, &base_schema), (&study, &study_schema), None, &settings).await
}

/// `ML.VALIDATE_DATA_SKEW(MODEL m, (serving rows))`: the drift of the
/// model's features from its training rows (rebuilt from its training
/// query and split, while they are still the rows it was trained on; a
/// `TRANSFORM` model's features through its `TRANSFORM`).
async fn validate_data_skew(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    let settings = DriftSettings::from_settings(&call.function, &call.settings)?;
    let meta = model_of(ml, call).await?;
    let model = format!("{}@{}", meta.name, meta.version);
    let (mut serving, mut serving_schema) = inner(ml, call).await?;
    if !meta.transform.is_empty() {
        // The model's features are its TRANSFORM's columns: compare those,
        // the serving rows' through the training statistics.
        serving = transform::transform_sql(&meta, &serving, &serving_schema)?;
        serving_schema = Arc::new(ml.ctx.sql(&serving).await?.schema().as_arrow().clone());
    }
    let reads = format!("ML.VALIDATE_DATA_SKEW compares with {model}'s training rows");
    let instead = "compare with the rows you want, ML.VALIDATE_DATA_DRIFT((SELECT …), (SELECT …))";
    let (split, schema) = training_split(ml, &meta, &reads, instead).await?;
    let features: Vec<String> = meta.spec.features.iter().map(|f| f.name.clone()).collect();
    drift::drift_sql(
        ml,
        "VALIDATE_DATA_SKEW",
        (&split.train, &schema),
        (&serving, &serving_schema),
        Some(&features),
        &settings,
    )
    .await
}

async fn trial_info(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    check_settings(call, &[])?;
    if call.query.is_some() {
        return Err(MlError::Syntax("ML.TRIAL_INFO takes a model, not rows: ML.TRIAL_INFO(MODEL m)".into()));
    }
    let meta = model_of(ml, call).await?;
    trials_sql(&meta)
}

/// Folds of `ML.CROSS_VALIDATE` that run at once.
const PARALLEL_FOLDS: usize = 4;

/// One `ML.CROSS_VALIDATE`'s folds: the model, its options, the input's
/// schema, the input's rows with each row's fold (`__fold`), stored once,
/// and its columns.
struct Folds<'a> {
    meta: &'a ModelMeta,
    opts: &'a TrainOptions,
    schema: &'a Arc<Schema>,
    folded: &'a Snapshot<'a>,
    cols: &'a [String],
}

impl Folds<'_> {
    /// Trains on every fold but `i` and returns the metrics on fold `i`.
    async fn fold(&self, ml: &MlContext, i: u64) -> Result<BTreeMap<String, Option<f64>>, MlError> {
        let (meta, folded, cols) = (self.meta, self.folded.table(), self.cols.join(", "));
        let mut train_q = format!("SELECT {cols} FROM {folded} __f WHERE __fold <> {i}");
        let mut test_q = format!("SELECT {cols} FROM {folded} __f WHERE __fold = {i}");
        let mut test_schema = Arc::clone(self.schema);
        if !meta.transform.is_empty() {
            // The fold's own preprocessing statistics, from its training
            // rows only, applied to both parts.
            let columns = transform::relearnt(ml, meta, &train_q).await?;
            train_q = transform::transformed_query(&train_q, &columns);
            test_q = transform::transformed_query(&test_q, &columns);
            test_schema = Arc::new(ml.ctx.sql(&test_q).await?.schema().as_arrow().clone());
        }
        let what = format!("ML.CROSS_VALIDATE({}) fold {}", meta.name, i + 1);
        let trained = train(ml, self.opts, &train_q, &what).await?;
        let store = ml.store()?;
        let rel = self.folded.scratch_file(&format!("fold-{i}.pb"));
        store.put_bytes(&rel, trained.payload.clone()).await?;
        let reference = model_ref(&what, store.url(&rel), &trained.spec, &fingerprint(&trained.payload));
        let result = metrics_of(ml, &reference, &trained.spec, &meta.label, &test_schema, &test_q, None).await;
        let _ = store.delete_file(&rel).await;
        Ok(result?.1)
    }
}

async fn cross_validate(ml: &MlContext, call: &MlCall) -> Result<String, MlError> {
    let meta = model_of(ml, call).await?;
    let mut folds = 5u64;
    for (k, v) in &call.settings {
        match (k.as_str(), v) {
            ("num_folds", OptValue::Num(n)) if *n >= 2.0 && *n <= 100.0 && n.fract() == 0.0 => folds = *n as u64,
            ("num_folds", other) => {
                return Err(MlError::Syntax(format!("num_folds must be a whole number from 2 to 100, not {other}")));
            }
            (other, _) => return Err(MlError::Syntax(format!("ML.CROSS_VALIDATE has no setting {other} (num_folds)"))),
        }
    }
    let (q, schema) = inner(ml, call).await?;
    require_label("ML.CROSS_VALIDATE", &schema, &meta)?;
    let regressor = meta.spec.algorithm.is_regressor();
    let store = ml.store()?;
    let mut opts = meta.train_options.clone();
    opts.split = SplitMethod::NoSplit;
    let cols: Vec<String> = schema.fields().iter().map(|f| qcol("__f", f.name())).collect();
    let hash_cols: Vec<String> = schema.fields().iter().map(|f| qcol("__v", f.name())).collect();
    let label = qcol("__v", &meta.label);
    // Folds are dealt in hash order within each class (a regressor's: over
    // all rows); the values break ties, so that the same rows always get the
    // same folds.
    let tie_breaks: String = schema
        .fields()
        .iter()
        .filter(|f| {
            let t = f.data_type();
            t.is_numeric()
                || t.is_temporal()
                || matches!(t, DataType::Boolean | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        })
        .map(|f| format!(", {}", qcol("__v", f.name())))
        .collect();
    let strata = if regressor { String::new() } else { format!("PARTITION BY {label} ") };
    let folded = format!(
        "SELECT __v.*, (ROW_NUMBER() OVER ({strata}ORDER BY row_fraction({}, {}){tie_breaks}) - 1) % {folds} \
         AS __fold FROM ({q}) __v WHERE {label} IS NOT NULL",
        opts.seed,
        hash_cols.join(", ")
    );
    let run_id = unique_name();
    // The input runs once: its rows, each with its fold, are stored and
    // every fold reads them.
    let folded = Snapshot::take(ml, store, &meta.name, &format!("cv-{run_id}"), &folded).await?;
    let plan = Folds { meta: &meta, opts: &opts, schema: &schema, folded: &folded, cols: &cols };
    // The folds train and evaluate at once, each its own jobs: a fold's
    // statements are mostly waits on the cluster on small inputs, and on
    // large ones the cluster shares its cores among them. Each fold's
    // answer is its own, in fold order.
    let per_fold: Result<Vec<BTreeMap<String, Option<f64>>>, MlError> =
        futures::stream::iter((0..folds).map(|i| plan.fold(ml, i))).buffered(PARALLEL_FOLDS).try_collect().await;
    folded.discard().await;
    let per_fold = per_fold?;
    // One row per fold and metric, then mean and standard deviation.
    let mut fold_col = Vec::new();
    let mut metric_col = Vec::new();
    let mut value_col = Vec::new();
    let metrics = metric_names(regressor);
    for (i, m) in per_fold.iter().enumerate() {
        for name in metrics {
            fold_col.push((i + 1).to_string());
            metric_col.push(name.to_string());
            value_col.push(m.get(*name).copied().flatten());
        }
    }
    for name in metrics {
        let vals: Vec<f64> = per_fold.iter().filter_map(|m| m.get(*name).copied().flatten()).collect();
        let (mean, std) = if vals.is_empty() {
            (None, None)
        } else {
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            (Some(mean), Some(var.sqrt()))
        };
        for (label, v) in [("mean", mean), ("stddev", std)] {
            fold_col.push(label.to_string());
            metric_col.push(name.to_string());
            value_col.push(v);
        }
    }
    let n = fold_col.len();
    let schema = cross_validations_schema();
    let b = batch(
        Arc::clone(&schema),
        vec![
            str_array(&meta.name, n),
            Arc::new(Int64Array::from(vec![i64::from(meta.version); n])),
            str_array(&run_id, n),
            ts_array(now_micros(), n),
            Arc::new(Int64Array::from(vec![folds as i64; n])),
            Arc::new(StringArray::from(fold_col)),
            Arc::new(StringArray::from(metric_col)),
            Arc::new(Float64Array::from(value_col)),
        ],
    )?;
    store.put_parquet(&format!("ml/cross_validations/{}.v{}.{run_id}.parquet", meta.name, meta.version), &b).await?;
    values_query(&schema, &[b])
}
