//! `CREATE MODEL`: statistics of the training rows, the encoding spec, the
//! training aggregate in the cluster, evaluation on the held-out rows, and a
//! new immutable version in the model store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use prost::Message;
use sentio_proto::{ModelPayload, model_payload::Algorithm as Payload};
use sentio_udfs::ml::cuts::{Summary, encoded_cuts};
use sentio_udfs::ml::linear::MAX_WIDTH;
use sentio_udfs::ml::metrics_udaf::METRICS;
use sentio_udfs::ml::model::{Predictor, merge_parts};
use sentio_udfs::ml::predict_udf::{ModelRef, fingerprint, prime_cache};
use sentio_udfs::ml::spec::{Algorithm, Encoding, FeatureSpec, Target, TrainSpec};

use crate::ids::unique_name;
use crate::ml::explain;
use crate::ml::functions::{feature_args, metrics_of};
use crate::ml::options::{ClassWeights, FactorOptions, SplitMethod, TrainOptions};
use crate::ml::parse::{OptValue, TransformItem};
use crate::ml::snapshot::Snapshot;
use crate::ml::sqltext::{FeatureKind, feature_expr, feature_kind};
use crate::ml::store::{
    FeatureStat, GlobalAttribution, Importance, Iteration, META_FORMAT, ModelMeta, ModelStore, ORPHAN_GRACE,
    TrainingPartInfo, TrialMeta,
};
use crate::ml::transform::{self, TransformColumn};
use crate::ml::trials::{Optimal, run_trials};
use crate::ml::tuning::{Options, Tuning, split_tuning};
use crate::ml::{
    MlContext, MlError, metric_columns, metric_fields, metric_names, models_schema, stored_metric_columns,
};
use crate::sqltext::quote_ident;
use crate::sqltext::{const_arg, qcol};

/// Most categories kept per text feature (the most frequent ones).
pub const MAX_CATEGORIES: usize = 1000;
/// Most distinct labels.
pub const MAX_LABELS: usize = 1000;

/// Random-forest training runs in up to this many buckets (groups of trees,
/// grown in parallel across the cluster's task slots).
pub const FOREST_BUCKETS: u32 = 16;

/// A model trained but not stored.
#[derive(Debug)]
pub struct Trained {
    /// Features, encodings, labels, hyperparameters.
    pub spec: TrainSpec,
    /// The encoded parameters.
    pub payload: Vec<u8>,
    /// Label column and its SQL type.
    pub label: String,
    /// SQL type of the label.
    pub label_type: String,
    /// Rows trained on and held out.
    pub training_rows: u64,
    /// Rows held out for evaluation.
    pub eval_rows: u64,
    /// Query over the held-out rows (None without a split).
    pub eval_query: Option<String>,
    /// Query over the training rows.
    pub train_query: String,
    /// Schema of the training query.
    pub schema: SchemaRef,
    /// Order-independent fingerprint of the training rows.
    pub data_fingerprint: String,
    /// Per-feature statistics.
    pub feature_info: Vec<FeatureStat>,
    /// Milliseconds per step.
    pub timings_ms: BTreeMap<String, u64>,
    /// Where each part was trained.
    pub training_parts: Vec<TrainingPartInfo>,
    /// Each optimiser iteration's step length and time (logistic
    /// regression), taken out of the payload.
    pub iterations: Vec<(f64, u32)>,
    /// The model's metrics over the training rows, measured by its training
    /// task (see [`TrainSpec::evaluate_training_rows`]).
    pub training_metrics: Option<BTreeMap<String, Option<f64>>>,
}

fn label_sql_type(t: &DataType, algorithm: Algorithm) -> Result<&'static str, MlError> {
    if algorithm.is_regressor() {
        return match t {
            t if t.is_numeric() => Ok("DOUBLE"),
            other => Err(MlError::Data(format!(
                "a {} predicts a number; its label must be numeric, not {other} (for classes use a classifier \
                 such as logistic_reg)",
                algorithm.model_type()
            ))),
        };
    }
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR",
        DataType::Dictionary(_, _) => "VARCHAR",
        t if t.is_integer() => "BIGINT",
        DataType::Boolean => "BOOLEAN",
        other => {
            return Err(MlError::Data(format!(
                "a label of type {other} cannot be classified; use text, integer or boolean labels"
            )));
        }
    })
}

fn f64_at(b: &RecordBatch, col: usize) -> Option<f64> {
    let c = b.column(col);
    if c.is_null(0) {
        return None;
    }
    let c = datafusion::arrow::compute::cast(c, &DataType::Float64).ok()?;
    let v = c.as_primitive::<Float64Type>().value(0);
    v.is_finite().then_some(v)
}

fn i64_at(b: &RecordBatch, col: usize) -> i64 {
    datafusion::arrow::compute::cast(b.column(col), &DataType::Int64)
        .ok()
        .filter(|c| !c.is_null(0))
        .map_or(0, |c| c.as_primitive::<Int64Type>().value(0))
}

fn elapsed_ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// A feature column of the training query: its name, type and how it is fed.
type FeatureColumn = (String, DataType, FeatureKind);

/// Trains a model on `query` with `opts` (`what` names it in messages): the
/// columns are bound by name, the rows split, their statistics and classes
/// counted, then the model is fitted in the cluster.
pub async fn train(ml: &MlContext, opts: &TrainOptions, query: &str, what: &str) -> Result<Trained, MlError> {
    let started = Instant::now();
    let mut timings = BTreeMap::new();
    let query = crate::ml::functions::rewrite(ml, query).await?;
    let df = ml.ctx.sql(&query).await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let (label_type, features) = bind_columns(opts, &schema, what)?;
    let split = split_rows(ml, opts, &query, &schema).await?;
    let empty = || {
        MlError::Data(format!(
            "{what}: the training set is empty (no rows with a non-NULL label {:?}{})",
            opts.label,
            if split.eval.is_some() { " outside the evaluation split" } else { "" }
        ))
    };
    // Statistics of the training rows (counted first: an empty set is a
    // clear error, not an aggregate over nothing — over a query DataFusion
    // folds to an empty relation, `WHERE false`, the statistics' plan does
    // not even cross to the scheduler: "No field named __s.__h").
    let t = Instant::now();
    if folds_to_nothing(ml, &split.train).await? {
        return Err(empty());
    }
    // The statistics, each feature's categories and the label's classes (or
    // a regressor's mean and deviation) are independent passes: they run at
    // once, and their answers are read in this order, so that the same data
    // always fails with the same error.
    let categorical = features.iter().filter(|(_, _, kind)| *kind == FeatureKind::Categorical);
    let (stats, categories, label) = futures::join!(
        training_statistics(ml, &schema, &features, &split.train),
        futures::future::join_all(categorical.map(|(name, _, _)| categories_of(ml, name, &split.train))),
        label_summary(ml, opts, &split.train, what),
    );
    let stats = stats?;
    let stats = stats.first().ok_or_else(|| MlError::Internal("no statistics row".into()))?;
    let rows = i64_at(stats, 0);
    if rows == 0 {
        return Err(empty());
    }
    let data_fingerprint = format!("{rows}:{:016x}", i64_at(stats, 1) as u64);
    let categories = categories.into_iter().collect::<Result<Vec<_>, _>>()?;
    let summaries = sample_summaries(stats, &features)?;
    let (specs, feature_info) = feature_specs(&features, stats, rows, categories, &summaries, what)?;
    let (labels, class_weights, target) = match label? {
        LabelSummary::Target(target) => {
            if opts.algorithm == Algorithm::LinearReg {
                check_width(&specs, what)?;
            }
            (Vec::new(), Vec::new(), Some(target))
        }
        LabelSummary::Classes(label_counts) => {
            let labels = label_counts.iter().map(|(l, _)| l.clone()).collect();
            (labels, class_weights(opts, &label_counts, rows)?, None)
        }
    };
    timings.insert("statistics".to_string(), elapsed_ms(t));
    // A fixed number of buckets, whatever the session's partitions: the model
    // file records it, and a model must not depend on where it was trained
    // (standalone plans fewer partitions than a cluster).
    let buckets = match opts.algorithm {
        a if a.is_forest() => opts.params.num_trees.clamp(1, FOREST_BUCKETS),
        _ => 1,
    };
    let spec = TrainSpec {
        algorithm: opts.algorithm,
        features: specs,
        labels,
        class_weights,
        seed: opts.seed,
        buckets,
        groups: 0,
        params: opts.params.clone(),
        target,
        // Boosting that stops early watches the evaluation rows, fed to it
        // flagged.
        eval_flag: opts.algorithm.is_boosted() && opts.params.early_stop && split.eval.is_some(),
        cuts: None,
        evaluate_training_rows: false,
    };
    let t = Instant::now();
    // Without evaluation rows the model is measured on the rows it was
    // trained on; a task that holds all of them and the whole model measures
    // it there instead of a pass over them afterwards.
    let evaluate = split.eval.is_none()
        && spec.algorithm.evaluates_in_training()
        && spec.row_cap().is_none_or(|cap| rows as u64 <= cap as u64);
    let fit_on = Rows { train: &split.train, eval: split.eval.as_deref().filter(|_| spec.eval_flag), evaluate };
    // A tree model's rows are binned where they are read, with cuts from
    // the statistics' sample.
    let cuts = match spec.algorithm.grows_trees() {
        true => Some(
            encoded_cuts(&spec.features, &summaries)
                .ok_or_else(|| MlError::Internal("the sample's summaries do not match the features".into()))?,
        ),
        false => None,
    };
    let Fitted { payload, parts: training_parts, iterations, training_metrics } =
        fit(ml, &spec, cuts, &features, &opts.label, fit_on).await?;
    timings.insert("training".to_string(), elapsed_ms(t));
    let eval_rows = match &split.eval {
        Some(q) => count_rows(ml, q).await? as u64,
        None => 0,
    };
    timings.insert("total".to_string(), elapsed_ms(started));
    Ok(Trained {
        spec,
        payload,
        label: opts.label.clone(),
        label_type,
        training_rows: rows as u64,
        eval_rows,
        eval_query: split.eval.filter(|_| eval_rows > 0),
        train_query: split.train,
        schema,
        data_fingerprint,
        feature_info,
        timings_ms: timings,
        training_parts,
        iterations,
        training_metrics,
    })
}

/// The label's SQL type and the feature columns of the training query:
/// every column but the label and the split column, each of a type a model
/// can take.
fn bind_columns(opts: &TrainOptions, schema: &Schema, what: &str) -> Result<(String, Vec<FeatureColumn>), MlError> {
    let label_field = schema.field_with_name(&opts.label).map_err(|_| {
        MlError::Data(format!(
            "{what}: the training query has no label column {:?} (input_label_cols); its columns are {}",
            opts.label,
            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let label_type = label_sql_type(label_field.data_type(), opts.algorithm)?.to_string();
    let split_col = match &opts.split {
        SplitMethod::Custom(c) => {
            let f = schema
                .field_with_name(c)
                .map_err(|_| MlError::Data(format!("{what}: data_split_col {c:?} is not a column of the query")))?;
            if f.data_type() != &DataType::Boolean {
                return Err(MlError::Data(format!(
                    "{what}: data_split_col {c:?} must be BOOLEAN, not {}",
                    f.data_type()
                )));
            }
            Some(c.clone())
        }
        _ => None,
    };
    let mut features = Vec::new();
    for f in schema.fields() {
        if f.name() == &opts.label || Some(f.name()) == split_col.as_ref() {
            continue;
        }
        let kind = feature_kind(f.data_type()).ok_or_else(|| {
            MlError::Data(format!(
                "{what}: column {:?} has type {}, which cannot be a feature (numbers, booleans, dates, \
                 timestamps and text can); cast it or leave it out with SELECT * EXCEPT ({})",
                f.name(),
                f.data_type(),
                f.name()
            ))
        })?;
        features.push((f.name().clone(), f.data_type().clone(), kind));
    }
    if features.is_empty() {
        return Err(MlError::Data(format!("{what}: the training query has no feature columns besides the label")));
    }
    Ok((label_type, features))
}

/// The training rows and, when the options split off evaluation rows, those.
pub(crate) struct Split {
    /// The query of the training rows.
    pub(crate) train: String,
    /// The query of the evaluation rows, if any.
    pub(crate) eval: Option<String>,
}

/// Splits the rows of `query` with a non-NULL label as `opts.split` says
/// (BigQuery ML's `data_split_method`; `AUTO_SPLIT` counts the rows first).
pub(crate) async fn split_rows(
    ml: &MlContext,
    opts: &TrainOptions,
    query: &str,
    schema: &Schema,
) -> Result<Split, MlError> {
    let all_cols: Vec<String> = schema.fields().iter().map(|f| qcol("__b", f.name())).collect();
    let base = format!("SELECT * FROM ({query}) __q WHERE {} IS NOT NULL", qcol("__q", &opts.label));
    let is_eval = |fraction: f64| format!("row_fraction({}, {}) < {fraction}", opts.seed, all_cols.join(", "));
    let eval_pred: Option<String> = match &opts.split {
        SplitMethod::NoSplit => None,
        SplitMethod::Random(f) => (*f > 0.0).then(|| is_eval(*f)),
        SplitMethod::Custom(c) => Some(format!("COALESCE({}, false)", qcol("__b", c))),
        SplitMethod::Auto => {
            let n = count_rows(ml, &base).await?;
            if n < 500 {
                None
            } else if n <= 50_000 {
                Some(is_eval(0.2))
            } else {
                Some(is_eval(10_000.0 / n as f64))
            }
        }
    };
    Ok(match &eval_pred {
        None => Split { train: base, eval: None },
        Some(p) => Split {
            train: format!("SELECT * FROM ({base}) __b WHERE NOT ({p})"),
            eval: Some(format!("SELECT * FROM ({base}) __b WHERE {p}")),
        },
    })
}

/// The number of rows of `sql`.
pub(crate) async fn count_rows(ml: &MlContext, sql: &str) -> Result<i64, MlError> {
    let b = ml.collect(&format!("SELECT COUNT(*) FROM ({sql}) __c")).await?;
    Ok(b.first().map_or(0, |b| i64_at(b, 0)))
}

/// A row's 53-bit hash over every column of `schema` (aliased `alias`): the
/// rows' fingerprint is their count and the XOR of their hashes.
fn row_hash(schema: &Schema, alias: &str) -> String {
    let cols: Vec<String> = schema.fields().iter().map(|f| qcol(alias, f.name())).collect();
    format!("CAST(row_fraction(0, {}) * 9007199254740992.0 AS BIGINT)", cols.join(", "))
}

/// The fingerprint of the rows of `query` (whose result has `schema`), as
/// `CREATE MODEL` records its training rows' in `data_fingerprint`.
pub(crate) async fn rows_fingerprint(ml: &MlContext, schema: &Schema, query: &str) -> Result<String, MlError> {
    let sql = format!("SELECT COUNT(*), bit_xor({}) FROM ({query}) __t", row_hash(schema, "__t"));
    let b = ml.collect(&sql).await?;
    let b = b.first().ok_or_else(|| MlError::Internal("no fingerprint row".into()))?;
    Ok(format!("{}:{:016x}", i64_at(b, 0), i64_at(b, 1) as u64))
}

/// One row: the count and a fingerprint of the training rows, then for each
/// numeric feature its mean, standard deviation, minimum, maximum and count
/// of values, for each categorical feature its count of values, and last,
/// when there are numeric features, their sample's summaries
/// (`sentio_feature_sample`: medians and the values bins are cut at).
async fn training_statistics(
    ml: &MlContext,
    schema: &Schema,
    features: &[FeatureColumn],
    train_query: &str,
) -> Result<Vec<RecordBatch>, MlError> {
    // Values are computed once in an inner projection, so the aggregates
    // only name columns (plans with common subexpressions do not survive
    // Ballista's serialization in every shape).
    let mut inner_cols = vec![format!("{} AS __h", row_hash(schema, "__t"))];
    let mut stats_cols = vec!["COUNT(*)".to_string(), "bit_xor(__h)".to_string()];
    let mut sampled = Vec::new();
    for (i, (name, t, kind)) in features.iter().enumerate() {
        let col = qcol("__t", name);
        match kind {
            FeatureKind::Numeric => {
                let e = feature_expr(&col, t);
                inner_cols.push(format!("CASE WHEN isnan({e}) THEN NULL ELSE {e} END AS __v{i}"));
                stats_cols.extend([
                    format!("AVG(__v{i})"),
                    format!("STDDEV_POP(__v{i})"),
                    format!("MIN(__v{i})"),
                    format!("MAX(__v{i})"),
                    format!("COUNT(__v{i})"),
                ]);
                sampled.push(format!("__v{i}"));
            }
            FeatureKind::Categorical => {
                inner_cols.push(format!("{col} AS __v{i}"));
                stats_cols.push(format!("COUNT(__v{i})"));
            }
        }
    }
    // The numeric features' sample (medians, cut points) comes last.
    if !sampled.is_empty() {
        stats_cols.push(format!("sentio_feature_sample(__h, {})", sampled.join(", ")));
    }
    ml.collect(&format!(
        "SELECT {} FROM (SELECT {} FROM ({train_query}) __t) __s",
        stats_cols.join(", "),
        inner_cols.join(", ")
    ))
    .await
}

/// Whether DataFusion plans `query` as no rows at all (`WHERE false`, a
/// join with such a query): such a training set is empty, and an aggregate
/// over it must not be sent — folded to an empty relation, its plan does not
/// cross to the scheduler ("No field named __s.__h"). Planning only.
async fn folds_to_nothing(ml: &MlContext, query: &str) -> Result<bool, MlError> {
    let plan = ml.ctx.sql(query).await?.into_optimized_plan()?;
    Ok(is_empty_relation(&plan))
}

fn is_empty_relation(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::EmptyRelation(e) => !e.produce_one_row,
        LogicalPlan::Projection(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_) => plan.inputs().first().is_some_and(|p| is_empty_relation(p)),
        _ => false,
    }
}

/// What training needs of the label: a classifier's classes with their
/// counts, a regressor's mean and deviation.
enum LabelSummary {
    Classes(Vec<(String, i64)>),
    Target(Target),
}

async fn label_summary(
    ml: &MlContext,
    opts: &TrainOptions,
    train_query: &str,
    what: &str,
) -> Result<LabelSummary, MlError> {
    Ok(if opts.algorithm.is_regressor() {
        LabelSummary::Target(label_statistics(ml, opts, train_query, what).await?)
    } else {
        LabelSummary::Classes(count_labels(ml, opts, train_query, what).await?)
    })
}

/// The classes of the label in the training rows with their counts, sorted
/// by class; an error unless there are 2 to [`MAX_LABELS`].
async fn count_labels(
    ml: &MlContext,
    opts: &TrainOptions,
    train_query: &str,
    what: &str,
) -> Result<Vec<(String, i64)>, MlError> {
    let labels_batches = ml
        .collect(&format!(
            "SELECT CAST({} AS VARCHAR) AS l, COUNT(*) AS n FROM ({train_query}) __t GROUP BY 1",
            qcol("__t", &opts.label)
        ))
        .await?;
    let mut label_counts: Vec<(String, i64)> = Vec::new();
    for b in &labels_batches {
        let l = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let l = l.as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            label_counts.push((l.value(i).to_string(), n.value(i)));
        }
    }
    label_counts.sort();
    if label_counts.len() < 2 {
        return Err(MlError::Data(format!(
            "{what}: the label {:?} has only one class ({}) in the training rows; a classifier needs at least two",
            opts.label,
            label_counts.first().map_or(String::new(), |(l, _)| format!("{l:?}"))
        )));
    }
    if label_counts.len() > MAX_LABELS {
        return Err(MlError::Data(format!(
            "{what}: the label {:?} has {} classes; Sentio classifies into at most {MAX_LABELS}",
            opts.label,
            label_counts.len()
        )));
    }
    Ok(label_counts)
}

/// A regressor's label over the training rows: its mean and standard
/// deviation (the spec's [`Target`]); an error when a label is NaN or
/// infinite.
async fn label_statistics(
    ml: &MlContext,
    opts: &TrainOptions,
    train_query: &str,
    what: &str,
) -> Result<Target, MlError> {
    let label = qcol("__t", &opts.label);
    let b = ml
        .collect(&format!(
            "SELECT AVG(__y), STDDEV_POP(__y), SUM(CASE WHEN abs(__y) < 1e308 OR __y IS NULL THEN 0 ELSE 1 END) \
             FROM (SELECT CAST({label} AS DOUBLE) AS __y FROM ({train_query}) __t) __s"
        ))
        .await?;
    let b = b.first().ok_or_else(|| MlError::Internal("no label statistics row".into()))?;
    let bad = i64_at(b, 2);
    if bad > 0 {
        return Err(MlError::Data(format!(
            "{what}: the label {:?} is NaN or infinite in {bad} training rows; a regressor needs finite labels \
             (filter them out, or NULL them to leave the rows out)",
            opts.label
        )));
    }
    let mean = f64_at(b, 0).ok_or_else(|| MlError::Internal("no label mean".into()))?;
    let std = f64_at(b, 1).filter(|s| *s > 1e-12).unwrap_or(1.0);
    Ok(Target { mean: significant(mean), std: significant(std) })
}

/// Refuses a linear regression over more encoded features than its Gram
/// matrix is kept for.
fn check_width(specs: &[FeatureSpec], what: &str) -> Result<(), MlError> {
    let width: usize = specs.iter().map(FeatureSpec::width).sum();
    if width > MAX_WIDTH {
        return Err(MlError::Data(format!(
            "{what}: the features encode to {width} values (text columns one per category); linear_reg fits at most \
             {MAX_WIDTH}: leave out or bucket text columns with many categories"
        )));
    }
    Ok(())
}

/// The numeric features' sample summaries, the statistics row's last column
/// (none without numeric features).
fn sample_summaries(stats: &RecordBatch, features: &[FeatureColumn]) -> Result<Vec<Summary>, MlError> {
    if !features.iter().any(|(_, _, kind)| *kind == FeatureKind::Numeric) {
        return Ok(Vec::new());
    }
    let last = datafusion::arrow::compute::cast(stats.column(stats.num_columns() - 1), &DataType::Utf8)?;
    let last = last.as_string::<i32>();
    if last.is_empty() || last.is_null(0) {
        return Ok(Vec::new());
    }
    serde_json::from_str(last.value(0)).map_err(|e| MlError::Internal(format!("the features' sample: {e}")))
}

/// How each feature is encoded (numeric: standardised with the training
/// rows' mean and deviation; categorical: its most frequent categories) and
/// what `ML.FEATURE_INFO` says of it, from the [`training_statistics`] row,
/// the categories of each categorical feature ([`categories_of`], in
/// feature order) and the numeric features' sample summaries (their medians).
fn feature_specs(
    features: &[FeatureColumn],
    stats: &RecordBatch,
    rows: i64,
    categories: Vec<Vec<String>>,
    summaries: &[Summary],
    what: &str,
) -> Result<(Vec<FeatureSpec>, Vec<FeatureStat>), MlError> {
    let mut summaries = summaries.iter();
    let mut specs = Vec::new();
    let mut feature_info = Vec::new();
    let mut categories = categories.into_iter();
    let mut col = 2;
    for (name, t, kind) in features {
        match kind {
            FeatureKind::Numeric => {
                let (mean, std, min, max) =
                    (f64_at(stats, col), f64_at(stats, col + 1), f64_at(stats, col + 2), f64_at(stats, col + 3));
                let present = i64_at(stats, col + 4);
                let median = summaries.next().and_then(|s| s.median);
                col += 5;
                if present == 0 {
                    return Err(MlError::Data(format!(
                        "{what}: feature {name:?} is NULL (or NaN) in every training row; leave it out"
                    )));
                }
                let std_used = std.filter(|s| *s > 1e-12).unwrap_or(1.0);
                specs.push(FeatureSpec {
                    name: name.clone(),
                    sql_type: t.to_string(),
                    encoding: Encoding::Numeric { mean: significant(mean.unwrap_or(0.0)), std: significant(std_used) },
                });
                feature_info.push(FeatureStat {
                    input: name.clone(),
                    min,
                    max,
                    mean,
                    median,
                    stddev: std,
                    category_count: None,
                    null_count: rows - present,
                });
            }
            FeatureKind::Categorical => {
                let present = i64_at(stats, col);
                col += 1;
                if present == 0 {
                    return Err(MlError::Data(format!(
                        "{what}: feature {name:?} is NULL in every training row; leave it out"
                    )));
                }
                let categories = categories.next().ok_or_else(|| MlError::Internal("no categories".into()))?;
                feature_info.push(FeatureStat {
                    input: name.clone(),
                    min: None,
                    max: None,
                    mean: None,
                    median: None,
                    stddev: None,
                    category_count: Some(categories.len() as i64),
                    null_count: rows - present,
                });
                specs.push(FeatureSpec {
                    name: name.clone(),
                    sql_type: t.to_string(),
                    encoding: Encoding::Categorical { categories },
                });
            }
        }
    }
    Ok((specs, feature_info))
}

/// The [`MAX_CATEGORIES`] most frequent values of column `name` in the
/// training rows, sorted.
async fn categories_of(ml: &MlContext, name: &str, train_query: &str) -> Result<Vec<String>, MlError> {
    let c = qcol("__t", name);
    let cats = ml
        .collect(&format!(
            "SELECT CAST({c} AS VARCHAR) AS v, COUNT(*) AS n FROM ({train_query}) __t WHERE {c} IS NOT NULL \
             GROUP BY 1 ORDER BY n DESC, v LIMIT {MAX_CATEGORIES}"
        ))
        .await?;
    let mut categories: Vec<String> = Vec::new();
    for b in &cats {
        let v = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        categories.extend(v.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    categories.sort();
    Ok(categories)
}

/// The weight of each class (in `label_counts`' order), as `class_weights`
/// says: none, balanced (`auto_class_weights`), or given per label.
fn class_weights(opts: &TrainOptions, label_counts: &[(String, i64)], rows: i64) -> Result<Vec<f64>, MlError> {
    let classes = label_counts.len();
    Ok(match &opts.class_weights {
        ClassWeights::None => vec![1.0; classes],
        ClassWeights::Auto => label_counts.iter().map(|(_, n)| rows as f64 / (classes as f64 * *n as f64)).collect(),
        ClassWeights::Given(given) => {
            for (l, _) in given {
                if !label_counts.iter().any(|(c, _)| c == l) {
                    return Err(MlError::Option(format!(
                        "class_weights names label {l:?}, which the training rows do not have"
                    )));
                }
            }
            label_counts
                .iter()
                .map(|(l, _)| {
                    given
                        .iter()
                        .find(|(g, _)| g == l)
                        .map(|(_, w)| *w)
                        .ok_or_else(|| MlError::Option(format!("class_weights gives no weight for label {l:?}")))
                })
                .collect::<Result<_, _>>()?
        }
    })
}

/// The rows a model is fit on: the training rows and, for boosting that
/// stops early, the evaluation rows it watches.
struct Rows<'a> {
    train: &'a str,
    eval: Option<&'a str>,
    /// Whether the training task measures the model on the training rows
    /// itself ([`TrainSpec::evaluate_training_rows`]).
    evaluate: bool,
}

/// A model fitted in the cluster.
struct Fitted {
    /// The encoded payload.
    payload: Vec<u8>,
    /// Where its parts were trained.
    parts: Vec<TrainingPartInfo>,
    /// Each optimiser iteration's step length and time.
    iterations: Vec<(f64, u32)>,
    /// Its metrics over the training rows, when the training task measured
    /// them.
    training_metrics: Option<BTreeMap<String, Option<f64>>>,
}

/// Fits the model of `spec` in the cluster — one `sentio_train` aggregate
/// per group of buckets ([`training_groups`]) — and merges the parts, in
/// bucket order: the encoded payload, and where its parts were trained.
async fn fit(
    ml: &MlContext,
    spec: &TrainSpec,
    cuts: Option<Vec<Vec<f32>>>,
    features: &[FeatureColumn],
    label: &str,
    rows: Rows<'_>,
) -> Result<Fitted, MlError> {
    let mut args: Vec<String> = features.iter().map(|(n, t, _)| feature_expr(&qcol("__t", n), t)).collect();
    let train_query = match rows.eval {
        None => rows.train.to_string(),
        Some(eval) => {
            args.push("__t.__sentio_eval".into());
            format!(
                "SELECT *, FALSE AS __sentio_eval FROM ({}) __a UNION ALL SELECT *, TRUE AS __sentio_eval FROM ({eval}) __b",
                rows.train
            )
        }
    };
    let label_type = if spec.algorithm.is_regressor() { "DOUBLE" } else { "VARCHAR" };
    let label_arg = format!("CAST({} AS {label_type})", qcol("__t", label));
    let groups = training_groups(ml, spec);
    let grouped = TrainSpec { groups, cuts, evaluate_training_rows: rows.evaluate, ..spec.clone() };
    let train_sql = if groups > 1 {
        let values: Vec<String> = (0..groups).map(|g| format!("({g})")).collect();
        format!(
            "SELECT sentio_train({}, __k.grp, {label_arg}, {}) AS parts \
             FROM ({train_query}) __t CROSS JOIN (VALUES {}) __k(grp) GROUP BY __k.grp",
            const_arg(&grouped.to_json()),
            args.join(", "),
            values.join(", ")
        )
    } else {
        format!(
            "SELECT sentio_train({}, CAST(0 AS BIGINT), {label_arg}, {}) AS parts FROM ({train_query}) __t",
            const_arg(&grouped.to_json()),
            args.join(", ")
        )
    };
    let mut numbered: Vec<(u32, ModelPayload)> = Vec::new();
    for b in &ml.collect(&train_sql).await? {
        let lists = b.column(0).as_list::<i32>();
        for i in (0..b.num_rows()).filter(|&i| lists.is_valid(i)) {
            let parts = lists.value(i);
            let parts = parts.as_binary::<i64>();
            for j in 0..parts.len() {
                let p =
                    ModelPayload::decode(parts.value(j)).map_err(|e| MlError::Internal(format!("model part: {e}")))?;
                let bucket = p.parts.first().map_or(0, |t| t.bucket);
                numbered.push((bucket, p));
            }
        }
    }
    numbered.sort_by_key(|(b, _)| *b);
    let training_metrics = numbered
        .first()
        .and_then(|(_, p)| p.parts.first())
        .filter(|part| part.training_metrics.len() == METRICS.len())
        .map(|part| {
            METRICS
                .iter()
                .zip(&part.training_metrics)
                .map(|(m, v)| (m.to_string(), (!v.is_nan()).then_some(*v)))
                .collect()
        });
    let mut payload = merge_parts(numbered.into_iter().map(|(_, p)| p).collect()).map_err(MlError::Internal)?;
    // Where the parts were trained is metadata, not model: the stored bytes
    // depend only on the data, options and seed.
    let training_parts = std::mem::take(&mut payload.parts)
        .into_iter()
        .map(|p| TrainingPartInfo { bucket: p.bucket, worker: p.worker, rows: p.rows, millis: p.millis })
        .collect();
    // So are the optimiser's step lengths and times (ML.TRAINING_INFO's).
    let iterations = match &mut payload.algorithm {
        Some(Payload::Logistic(l)) => {
            let steps = std::mem::take(&mut l.step_history);
            steps.into_iter().zip(std::mem::take(&mut l.iteration_millis)).collect()
        }
        // Boosting's rate is the same every round.
        Some(Payload::Boosted(b)) => {
            std::mem::take(&mut b.iteration_millis).into_iter().map(|m| (spec.params.learn_rate, m)).collect()
        }
        _ => Vec::new(),
    };
    Ok(Fitted { payload: payload.encode_to_vec(), parts: training_parts, iterations, training_metrics })
}

/// How many training tasks share `spec`'s buckets: as many as the session
/// runs partitions at once (standalone: two per core), at most one per
/// bucket. Each task gets its own copy of the rows, so fewer tasks move and
/// bin fewer copies; the model is the same however many there are (each
/// bucket trains the same part wherever it runs).
fn training_groups(ml: &MlContext, spec: &TrainSpec) -> u32 {
    let partitions = ml.ctx.state().config().target_partitions();
    spec.buckets.max(1).min(u32::try_from(partitions).unwrap_or(u32::MAX).max(1))
}

/// The global explanation of a trained model (`enable_global_explain`):
/// over a seeded sample of at most [`explain::GLOBAL_EXPLAIN_ROWS`] training
/// rows, explained on the cluster.
async fn explain_training_rows(
    ml: &MlContext,
    reference: &str,
    trained: &Trained,
    seed: u64,
) -> Result<Vec<GlobalAttribution>, MlError> {
    let fraction = (explain::GLOBAL_EXPLAIN_ROWS as f64 / trained.training_rows.max(1) as f64).min(1.0);
    let cols: Vec<String> = trained.schema.fields().iter().map(|f| qcol("__s", f.name())).collect();
    // Another seed than the split's: with the same one, the training rows
    // (those the split's hash put at 0.2 and above) hold no row below 0.05.
    let sample_seed = (seed + 7_919) % (1 << 32);
    let sample = format!(
        "SELECT * FROM ({}) __s WHERE row_fraction({sample_seed}, {}) < {fraction:?}",
        trained.train_query,
        cols.join(", ")
    );
    let args = feature_args(&trained.spec, &trained.schema, "__t", "")?;
    explain::global_explanation(ml, reference, &trained.spec.labels, &args, &sample).await
}

/// A training that exceeded an executor's memory pool, said as such: what it
/// asked for (DataFusion's message names the sizes) and what to change.
fn out_of_memory(e: MlError, name: &str) -> MlError {
    let text = e.to_string();
    if !text.contains("Resources exhausted") {
        return e;
    }
    MlError::Data(format!(
        "CREATE MODEL {name}: training needs more memory than an executor's tasks may hold ({text}); raise the \
         executors' memory_limit (SENTIO_MEMORY_LIMIT, sentio-executor --memory-limit) or lower max_training_rows"
    ))
}

/// The stored reference to a model's parameters, as `sentio_predict` takes it.
pub fn model_ref(model: &str, url: String, spec: &TrainSpec, payload_fingerprint: &str) -> String {
    serde_json::to_string(&ModelRef {
        model: model.to_string(),
        url,
        fingerprint: payload_fingerprint.to_string(),
        spec: spec.clone(),
    })
    .expect("a model reference serialises")
}

fn importance(spec: &TrainSpec, payload: &ModelPayload) -> Vec<Importance> {
    let (weight, gain, cover) = match &payload.algorithm {
        Some(Payload::Forest(f)) => (&f.importance_weight, &f.importance_gain, &f.importance_cover),
        Some(Payload::Boosted(b)) => (&b.importance_weight, &b.importance_gain, &b.importance_cover),
        _ => return Vec::new(),
    };
    let owner = spec.encoded_owner();
    let mut out: Vec<Importance> = spec
        .features
        .iter()
        .map(|f| Importance {
            feature: f.name.clone(),
            importance_weight: 0.0,
            importance_gain: 0.0,
            importance_cover: 0.0,
        })
        .collect();
    for (j, o) in owner.iter().enumerate() {
        out[*o].importance_weight += weight.get(j).copied().unwrap_or(0.0);
        out[*o].importance_gain += gain.get(j).copied().unwrap_or(0.0);
        out[*o].importance_cover += cover.get(j).copied().unwrap_or(0.0);
    }
    out
}

pub(crate) fn options_text(options: &[(String, OptValue)]) -> BTreeMap<String, String> {
    options.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
}

/// Carries out `CREATE MODEL`: trains, stores the parameters in a file of
/// its own (so that writers racing for one version never overwrite each
/// other's), evaluates, then claims the next version with a create-only
/// write of its metadata — a writer that loses the claim takes the next.
pub async fn create_model(ml: &MlContext, name: &str, statement: Statement<'_>) -> Result<Vec<RecordBatch>, MlError> {
    if let Some(factorization) = FactorOptions::from_options(statement.options)? {
        return crate::ml::factorize::create_model(ml, name, statement, factorization).await;
    }
    let Statement { or_replace, if_not_exists, options, transform, query } = statement;
    let store = ml.store()?.clone();
    let (tuning, base) = split_tuning(options)?;
    let opts = TrainOptions::from_options(&base)?;
    let existing = match existing_versions(&store, name, or_replace, if_not_exists).await? {
        Existing::Versions(v) => v,
        Existing::Done(batches) => return Ok(batches),
    };
    // A query over the operational DB runs once; every pass reads its rows.
    let snapshot = opdb_snapshot(ml, &store, name, query).await?;
    let source = snapshot.as_ref().map_or_else(|| query.to_string(), |s| format!("SELECT * FROM {}", s.table()));
    let version = existing.last().copied().unwrap_or(0) + 1;
    let job = Job { name, options, query, transform, source: &source, opts, tuning, base, version };
    let created = train_and_claim(ml, &store, job).await;
    if let Some(s) = &snapshot {
        s.discard().await;
    }
    created
}

/// A `CREATE MODEL` whose name is free (or to be replaced) and whose input
/// is settled: what [`train_and_claim`] needs.
struct Job<'a> {
    name: &'a str,
    options: &'a [(String, OptValue)],
    query: &'a str,
    transform: Option<&'a [TransformItem]>,
    /// What the passes read: the query, or the copy of its operational-DB rows.
    source: &'a str,
    opts: TrainOptions,
    tuning: Option<Tuning>,
    /// The options without the tuned ones.
    base: Options,
    /// The version to claim first (the one after the newest there is).
    version: u32,
}

/// Trains `job`'s model (tuning it when asked), evaluates it and claims the
/// next version; its `ml.models` row. Parameter files no version names are
/// removed when the claim fails, kept when its outcome is unknown.
async fn train_and_claim(ml: &MlContext, store: &ModelStore, job: Job<'_>) -> Result<Vec<RecordBatch>, MlError> {
    let Job { name, options, query, transform, source, opts, tuning, base, version } = job;
    let what = format!("CREATE MODEL {name}");
    let (training_query, transform) = match transform {
        Some(items) => transform::prepare(ml, items, source, &opts, &what).await?,
        None => (source.to_string(), Vec::new()),
    };
    let objective = tuning.as_ref().map(|t| t.objective.clone());
    let (optimal, trials) = match &tuning {
        None => {
            let trained = train(ml, &opts, &training_query, &what).await.map_err(|e| out_of_memory(e, name))?;
            let payload_fingerprint = fingerprint(&trained.payload);
            let payload_file = store.put_payload(name, &payload_fingerprint, trained.payload.clone()).await?;
            (Optimal { opts, trained, payload_file, payload_fingerprint }, Vec::new())
        }
        Some(tuning) => {
            let tuned = run_trials(ml, store, name, tuning, &base, opts.seed, &training_query)
                .await
                .map_err(|e| out_of_memory(e, name))?;
            (tuned.optimal, tuned.trials)
        }
    };
    // No version names these files yet: they are this writer's to remove
    // if it commits none.
    let mut files: Vec<String> = trials.iter().filter_map(|t| t.payload_file.clone()).collect();
    if files.is_empty() {
        files.push(optimal.payload_file.clone());
    }
    let draft = Draft { name, version, options, query, transform, opts: &optimal.opts, trained: &optimal.trained };
    let claimed =
        evaluate_and_claim(ml, store, draft, optimal.payload_fingerprint, &optimal.payload_file, trials, objective)
            .await;
    let meta = match claimed {
        Ok(meta) => meta,
        // A version that may exist names these files: keep them.
        Err(e @ MlError::Unsettled(_)) => return Err(e),
        Err(e) => {
            for file in &files {
                let _ = store.discard_payload(file).await;
            }
            return Err(e);
        }
    };
    list_version(store, &meta).await?;
    Ok(vec![summary_batch(&meta, "created")?])
}

/// The training query's rows stored once ([`Snapshot`]) when it reads the
/// operational DB: each pass of `CREATE MODEL` (statistics, categories,
/// labels, training, evaluation, every trial) would query the database
/// again, slower than reading the copy and free to see other rows each
/// time. A query over the lake alone is read in place.
async fn opdb_snapshot<'a>(
    ml: &'a MlContext,
    store: &'a ModelStore,
    name: &str,
    query: &str,
) -> Result<Option<Snapshot<'a>>, MlError> {
    // A query with ML.* table functions is read in place: rewriting it here
    // would run what they run (an ML.EVALUATE stores its row) a second time.
    if !crate::ml::parse::find_ml_calls(query)?.is_empty() {
        return Ok(None);
    }
    let query = crate::ml::functions::rewrite(ml, query).await?;
    let plan = ml.ctx.sql(&query).await?.into_unoptimized_plan();
    let mut reads_opdb = false;
    plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p
            && scan.table_name.schema() == Some(sentio_opdb::catalog::SCHEMA)
        {
            reads_opdb = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if !reads_opdb {
        return Ok(None);
    }
    Ok(Some(Snapshot::take(ml, store, name, &format!("input-{}", unique_name()), &query).await?))
}

/// The versions a `CREATE MODEL` of `name` finds, or what it answers
/// without training.
pub(crate) enum Existing {
    /// Train: the versions there are (none, or with `OR REPLACE` some).
    Versions(Vec<u32>),
    /// `IF NOT EXISTS` of a model that exists: its summary.
    Done(Vec<RecordBatch>),
}

/// The versions of `name`, unless it exists and the statement may not
/// replace it: then `IF NOT EXISTS`'s answer, or the error that it exists.
/// Also removes day-old parameter files of killed statements (best effort).
pub(crate) async fn existing_versions(
    store: &ModelStore,
    name: &str,
    or_replace: bool,
    if_not_exists: bool,
) -> Result<Existing, MlError> {
    let existing = store.versions(name).await?;
    // Rows of ml.models that committed versions lack (their statements
    // failed between the commit and the row): best effort, a failure here
    // must not fail this statement.
    if let Err(e) = list_unlisted(store, name, &existing).await {
        log::warn!("CREATE MODEL {name}: versions missing from ml.models were not listed: {e}");
    }
    if !existing.is_empty() && !or_replace {
        if if_not_exists {
            let meta = store.meta(name, None).await?;
            return Ok(Existing::Done(vec![summary_batch(&meta, "exists")?]));
        }
        return Err(MlError::Exists(name.to_string()));
    }
    // Parameters of earlier statements that were killed before committing:
    // best effort, a failure here must not fail this statement.
    if let Err(e) = store.sweep_orphan_payloads(name, ORPHAN_GRACE).await {
        log::warn!("CREATE MODEL {name}: leftover parameter files were not removed: {e}");
    }
    Ok(Existing::Versions(existing))
}

/// Writes a committed version's row of `ml.models`. A version exists once
/// its `model.json` is written; when its row cannot be written after that,
/// the error says so, and the next `CREATE MODEL` of the name writes it
/// ([`list_unlisted`]).
pub(crate) async fn list_version(store: &ModelStore, meta: &ModelMeta) -> Result<(), MlError> {
    let file = ModelStore::registry_file(&meta.name, meta.version);
    store.put_parquet(&file, &registry_row(meta)?).await.map_err(|e| {
        MlError::Store(format!(
            "version {} of {} is committed, but its row of ml.models was not written ({e}); the next CREATE MODEL \
             of {} writes it",
            meta.version, meta.name, meta.name
        ))
    })
}

/// Writes the `ml.models` rows that committed `versions` of `name` lack
/// (their statements failed between the commit and the row).
async fn list_unlisted(store: &ModelStore, name: &str, versions: &[u32]) -> Result<(), MlError> {
    let listed = store.listed_versions(name).await?;
    for v in versions.iter().filter(|v| !listed.contains(v)) {
        let meta = store.meta(name, Some(*v)).await?;
        list_version(store, &meta).await?;
        // A DROP MODEL running meanwhile removes the rows before the
        // versions: a row written for a version it has since removed goes.
        if store.versions(name).await?.contains(v) {
            log::info!("CREATE MODEL {name}: version {v} was missing from ml.models; listed it");
        } else {
            store.delete_file(&ModelStore::registry_file(name, *v)).await?;
        }
    }
    Ok(())
}

/// A `CREATE MODEL` statement as written.
pub struct Statement<'a> {
    /// `OR REPLACE`.
    pub or_replace: bool,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// `OPTIONS (…)`.
    pub options: &'a [(String, OptValue)],
    /// `TRANSFORM (…)`.
    pub transform: Option<&'a [TransformItem]>,
    /// The training query.
    pub query: &'a str,
}

/// A `CREATE MODEL` whose model is trained and not yet stored.
struct Draft<'a> {
    name: &'a str,
    /// The version to claim first.
    version: u32,
    options: &'a [(String, OptValue)],
    query: &'a str,
    transform: Vec<TransformColumn>,
    opts: &'a TrainOptions,
    trained: &'a Trained,
}

/// Evaluates the trained model (its parameters already in `payload_file`)
/// and claims a version for it: the draft's, or — when another writer
/// claimed that one meanwhile — the next free one. Returns the committed
/// metadata.
async fn evaluate_and_claim(
    ml: &MlContext,
    store: &ModelStore,
    draft: Draft<'_>,
    payload_fingerprint: String,
    payload_file: &str,
    trials: Vec<TrialMeta>,
    tuning_objective: Option<String>,
) -> Result<ModelMeta, MlError> {
    let Draft { name, version, options, query, transform, opts, trained } = draft;
    let reference =
        model_ref(&format!("{name}@{version}"), store.url(payload_file), &trained.spec, &payload_fingerprint);
    let predictor = Predictor::decode(trained.spec.clone(), &trained.payload).map_err(MlError::Internal)?;
    prime_cache(&reference, predictor);
    let evaluated = evaluate_trained(ml, &reference, trained, opts).await?;
    let payload = ModelPayload::decode(trained.payload.as_slice()).map_err(|e| MlError::Internal(e.to_string()))?;
    let mut meta = ModelMeta {
        format: META_FORMAT,
        name: name.to_string(),
        version,
        model_type: opts.algorithm.model_type().to_string(),
        created: chrono::Utc::now().to_rfc3339(),
        library: format!("sentio {}", env!("CARGO_PKG_VERSION")),
        label: trained.label.clone(),
        label_type: trained.label_type.clone(),
        spec: trained.spec.clone(),
        options: options_text(options),
        train_options: opts.clone(),
        training_query: query.to_string(),
        training_rows: trained.training_rows,
        eval_rows: trained.eval_rows,
        // Every part fits the same rows (forest groups each get them all).
        fit_rows: trained.training_parts.iter().map(|p| p.rows).max(),
        data_fingerprint: trained.data_fingerprint.clone(),
        training_info: training_info(
            &payload,
            trained,
            *evaluated.timings_ms.get("training").unwrap_or(&0),
            &evaluated.metrics,
            evaluated.metrics_on == "evaluation split",
        ),
        metrics: evaluated.metrics,
        metrics_on: evaluated.metrics_on.to_string(),
        feature_info: trained.feature_info.clone(),
        feature_importance: importance(&trained.spec, &payload),
        timings_ms: evaluated.timings_ms,
        training_parts: trained.training_parts.clone(),
        payload_fingerprint,
        payload_bytes: trained.payload.len() as u64,
        payload_file: Some(payload_file.to_string()),
        global_explain: evaluated.global_explain,
        trials,
        tuning_objective,
        transform,
        factorization: None,
    };
    while !store.commit(&meta).await? {
        // Someone else claimed this version meanwhile: take the next free one.
        meta.version = store.versions(name).await?.last().copied().unwrap_or(meta.version).max(meta.version) + 1;
    }
    Ok(meta)
}

/// What `CREATE MODEL` learns of a trained model before storing it.
struct Evaluated {
    metrics: BTreeMap<String, Option<f64>>,
    /// `evaluation split` or `training rows`.
    metrics_on: &'static str,
    timings_ms: BTreeMap<String, u64>,
    global_explain: Vec<GlobalAttribution>,
}

/// Evaluates the model `reference` names on the held-out rows (the training
/// rows without a split) and, with `enable_global_explain`, explains it.
async fn evaluate_trained(
    ml: &MlContext,
    reference: &str,
    trained: &Trained,
    opts: &TrainOptions,
) -> Result<Evaluated, MlError> {
    let t = Instant::now();
    let (metrics_query, metrics_on) = match &trained.eval_query {
        Some(q) => (q.clone(), "evaluation split"),
        None => (trained.train_query.clone(), "training rows"),
    };
    let metrics = match (&trained.eval_query, &trained.training_metrics) {
        (None, Some(measured)) => measured.clone(),
        _ => metrics_of(ml, reference, &trained.spec, &trained.label, &trained.schema, &metrics_query, None).await?.1,
    };
    let mut timings_ms = trained.timings_ms.clone();
    timings_ms.insert("evaluation".into(), elapsed_ms(t));
    let mut global_explain = Vec::new();
    if opts.global_explain {
        let t = Instant::now();
        global_explain = explain_training_rows(ml, reference, trained, opts.seed).await?;
        timings_ms.insert("global_explain".into(), elapsed_ms(t));
    }
    Ok(Evaluated { metrics, metrics_on, timings_ms, global_explain })
}

/// `ML.TRAINING_INFO`'s rows: one per L-BFGS iteration (logistic
/// regression), else one that took `training_ms`; the log loss of
/// `metrics` on the last (the evaluation loss when `on_evaluation_rows`).
pub(crate) fn training_info(
    payload: &ModelPayload,
    trained: &Trained,
    training_ms: u64,
    metrics: &BTreeMap<String, Option<f64>>,
    on_evaluation_rows: bool,
) -> Vec<Iteration> {
    let mut info = Vec::new();
    let (losses, eval_losses): (&[f64], &[f64]) = match &payload.algorithm {
        Some(Payload::Logistic(l)) => (&l.loss_history, &[]),
        Some(Payload::Boosted(b)) => (&b.loss_history, &b.eval_loss_history),
        _ => (&[], &[]),
    };
    for (i, loss) in losses.iter().enumerate() {
        let (step, millis) = trained.iterations.get(i).copied().unzip();
        info.push(Iteration {
            iteration: i as i64,
            loss: Some(*loss),
            eval_loss: eval_losses.get(i).copied(),
            learning_rate: step,
            duration_ms: i64::from(millis.unwrap_or(0)),
        });
    }
    if info.is_empty() {
        // One fit, no iterations: the row's time is the training's.
        let duration_ms = training_ms as i64;
        info.push(Iteration { iteration: 0, loss: None, eval_loss: None, learning_rate: None, duration_ms });
    }
    if let Some(last) = info.last_mut() {
        // A classifier's loss is its log loss, a regressor's the mean
        // squared error.
        let loss_metric = if trained.spec.algorithm.is_regressor() { "mean_squared_error" } else { "log_loss" };
        let log_loss = metrics.get(loss_metric).copied().flatten();
        if on_evaluation_rows {
            last.eval_loss = log_loss;
        } else if last.loss.is_none() {
            last.loss = log_loss;
        }
    }
    info
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp_micros())
}

/// The `ml.models` row of a version.
pub fn registry_row(meta: &ModelMeta) -> Result<RecordBatch, MlError> {
    let s = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as ArrayRef;
    let mut cols: Vec<ArrayRef> = vec![
        s(&meta.name),
        Arc::new(Int64Array::from(vec![i64::from(meta.version)])),
        s(&meta.model_type),
        Arc::new(TimestampMicrosecondArray::from(vec![micros(&meta.created)]).with_timezone("UTC")),
        Arc::new(Int64Array::from(vec![meta.training_rows as i64])),
        Arc::new(Int64Array::from(vec![meta.eval_rows as i64])),
        s(&meta.label),
        s(&meta.spec.labels.join(",")),
        s(&meta.spec.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(",")),
    ];
    cols.extend(stored_metric_columns(&meta.metrics));
    cols.push(s(&serde_json::to_string(&meta.metrics).unwrap_or_default()));
    cols.push(s(&meta.data_fingerprint));
    cols.push(s(&meta.training_query));
    RecordBatch::try_new(models_schema(), cols).map_err(|e| MlError::Internal(e.to_string()))
}

/// What CREATE MODEL prints.
fn summary_batch(meta: &ModelMeta, status: &str) -> Result<RecordBatch, MlError> {
    let mut fields = vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("model_type", DataType::Utf8, false),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("eval_rows", DataType::Int64, false),
        Field::new("fit_rows", DataType::Int64, true),
    ];
    let metrics = metric_names(meta.spec.algorithm.is_regressor());
    fields.extend(metric_fields(metrics));
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![meta.name.clone()])),
        Arc::new(Int64Array::from(vec![i64::from(meta.version)])),
        Arc::new(StringArray::from(vec![status.to_string()])),
        Arc::new(StringArray::from(vec![meta.model_type.clone()])),
        Arc::new(Int64Array::from(vec![meta.training_rows as i64])),
        Arc::new(Int64Array::from(vec![meta.eval_rows as i64])),
        Arc::new(Int64Array::from(vec![meta.fit_rows.map(|n| n as i64)])),
    ];
    cols.extend(metric_columns(metrics, &meta.metrics));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| MlError::Internal(e.to_string()))
}

/// Quoted column list, for messages.
pub fn column_list(schema: &Schema) -> String {
    schema.fields().iter().map(|f| quote_ident(f.name())).collect::<Vec<_>>().join(", ")
}

/// Arguments that feed `schema`'s columns to a model (re-exported for CV).
pub fn args_for(spec: &TrainSpec, schema: &Schema, alias: &str, model: &str) -> Result<Vec<String>, MlError> {
    feature_args(spec, schema, alias, model)
}

/// `v` at seven significant digits. The mean and standard deviation that
/// scale a feature come from distributed aggregates, whose last bits depend
/// on the order in which partitions arrive; scaled by them, a row could land
/// on the other side of a split threshold from run to run. Rounded, the same
/// rows give the same model (`row_fraction` hashes doubles the same way).
fn significant(v: f64) -> f64 {
    sentio_udfs::ml::significant::round_significant(v)
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::is_empty_relation;

    #[tokio::test]
    async fn plans_of_no_rows_are_recognised() {
        let ctx = SessionContext::new();
        for (q, empty) in [
            ("SELECT 1 AS a WHERE false", true),
            ("SELECT a FROM (SELECT 1 AS a) t WHERE 1 = 0 ORDER BY a LIMIT 3", true),
            ("SELECT 1 AS a", false),
            ("SELECT a FROM (VALUES (1), (2)) v(a) WHERE a > 5", false),
            ("SELECT a FROM (SELECT 1 AS a WHERE false) x UNION ALL SELECT 2", false),
        ] {
            let plan = ctx.sql(q).await.unwrap().into_optimized_plan().unwrap();
            assert_eq!(is_empty_relation(&plan), empty, "{q}:\n{plan}");
        }
    }
}
