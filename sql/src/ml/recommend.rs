//! The functions of a `matrix_factorization` model, rewritten into SQL over
//! the `sentio_mf_*` functions ([`sentio_udfs::ml::factors`]), which score
//! where the rows are:
//!
//! * `ML.RECOMMEND(MODEL m [, (q) | TABLE t] [, STRUCT(n AS top_n)])` — for
//!   every user the model knows (or each user of `q`), each item with its
//!   predicted rating (`predicted_<rating_col>`, or
//!   `predicted_<rating_col>_confidence` for implicit feedback); with
//!   `top_n`, only the `n` best per user, chosen in the cluster. Rows of `q`
//!   with only the item column get users for each item instead, and rows
//!   with both get their pair's prediction.
//! * `ML.PREDICT(MODEL m, (q))` — the prediction of each (user, item) row.
//! * `ML.EVALUATE(MODEL m [, (q)])` — [`metrics`] of `q`'s ratings, or those
//!   stored at training;
//! * `ML.WEIGHTS(MODEL m)` — every user's and item's factors and bias.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use sentio_udfs::ml::factors::FactorRef;

use crate::ml::parse::{MlCall, OptValue};
use crate::ml::sqltext::values_query;
use crate::ml::store::{FactorizationMeta, ModelMeta};
use crate::ml::{MlContext, MlError};
use crate::sqltext::{lit, qcol, quote_ident};

/// The metrics of explicit feedback: a regressor's.
pub const EXPLICIT_METRICS: [&str; 6] = crate::ml::REGRESSION_METRICS;

/// The metrics of implicit feedback, as BigQuery ML names them.
pub const IMPLICIT_METRICS: [&str; 4] =
    ["mean_average_precision", "mean_squared_error", "normalized_discounted_cumulative_gain", "average_rank"];

/// The metric names of a model of `implicit` feedback (or explicit).
pub fn metric_names(implicit: bool) -> &'static [&'static str] {
    if implicit { &IMPLICIT_METRICS } else { &EXPLICIT_METRICS }
}

/// The reference `sentio_mf_*` take to the factors at `url`.
pub fn factor_ref(model: &str, url: String, fingerprint: &str) -> String {
    serde_json::to_string(&FactorRef { model: model.to_string(), url, fingerprint: fingerprint.to_string() })
        .expect("a factor reference serialises")
}

fn reference(ml: &MlContext, meta: &ModelMeta) -> Result<String, MlError> {
    Ok(factor_ref(&format!("{}@{}", meta.name, meta.version), ml.store()?.payload_url(meta), &meta.payload_fingerprint))
}

/// The factorization of `meta`, or the error that `function` needs one.
pub fn factorization<'a>(function: &str, meta: &'a ModelMeta) -> Result<&'a FactorizationMeta, MlError> {
    meta.factorization.as_ref().ok_or_else(|| {
        MlError::Data(format!(
            "ML.{function} is for matrix_factorization models; {}@{} is a {}",
            meta.name, meta.version, meta.model_type
        ))
    })
}

/// Refuses a function that does not apply to factorization models.
pub fn check_applies(function: &str, meta: &ModelMeta) -> Result<(), MlError> {
    const APPLY: [&str; 7] =
        ["PREDICT", "EVALUATE", "RECOMMEND", "WEIGHTS", "FEATURE_INFO", "TRAINING_INFO", "TRIAL_INFO"];
    if meta.factorization.is_some() && !APPLY.contains(&function) {
        return Err(MlError::Data(format!(
            "ML.{function} does not apply to matrix_factorization models ({}@{}); they take ML.RECOMMEND, \
             ML.PREDICT, ML.EVALUATE, ML.WEIGHTS, ML.FEATURE_INFO and ML.TRAINING_INFO",
            meta.name, meta.version
        )));
    }
    Ok(())
}

/// Sums of one evaluation in [`metrics`]: `(rows, metrics)`.
type Metrics = (i64, BTreeMap<String, Option<f64>>);

/// The metrics of the factors `reference` names (a model of `items` items)
/// on `ratings` (`__u`, `__i` text, `__r` DOUBLE), over the pairs whose user
/// and item the model knows.
///
/// Explicit feedback: BigQuery ML's regression metrics. Implicit feedback:
/// each evaluated item is placed among every item the model knows, ranked
/// by the user's predicted confidence; an item is relevant when its rating
/// is above 0. `mean_average_precision` is the mean over users of their
/// average precision (precision at each relevant evaluated item's place),
/// `normalized_discounted_cumulative_gain` takes ratings as gains,
/// `mean_squared_error` compares the confidence with the preference (1 or
/// 0), and `average_rank` is the rating-weighted mean percentile rank (0 =
/// ranked first) of Hu, Koren and Volinsky.
pub async fn metrics(
    ml: &MlContext,
    reference: &str,
    implicit: bool,
    items: u64,
    ratings: &str,
) -> Result<Metrics, MlError> {
    let r = lit(reference);
    let known = if implicit {
        // Each user's rows gathered, so that the user's score of every item
        // is computed once for all of them (not once per row).
        let ranked = format!(
            "SELECT __u, unnest(__is) AS __i, unnest(__rs) AS __r, unnest(sentio_mf_ranks({r}, __u, __is)) AS __rank \
             FROM (SELECT __u, array_agg(__i) AS __is, array_agg(__r) AS __rs FROM ({ratings}) __e \
             WHERE __r IS NOT NULL GROUP BY __u) __g"
        );
        format!(
            "SELECT * FROM (SELECT __u, __i, __r, sentio_mf_predict({r}, __u, __i) AS __p, \
             CAST(__rank AS DOUBLE) + 1 AS __pos FROM ({ranked}) __h) __k WHERE __p IS NOT NULL"
        )
    } else {
        format!(
            "SELECT * FROM (SELECT __u, __i, __r, sentio_mf_predict({r}, __u, __i) AS __p FROM ({ratings}) __e \
             WHERE __r IS NOT NULL) __k WHERE __p IS NOT NULL"
        )
    };
    let sql = if implicit { implicit_sql(&known, items) } else { explicit_sql(&known) };
    metrics_row(&ml.collect(&sql).await?, metric_names(implicit))
}

/// The row count and the metrics `names` of a one-row result whose columns
/// are the count, then each metric (a metric that is not finite, or of no
/// rows, is None).
pub(crate) fn metrics_row(batches: &[RecordBatch], names: &[&str]) -> Result<Metrics, MlError> {
    let b = batches.first().ok_or_else(|| MlError::Internal("no metrics row".into()))?;
    let n = b.column(0).as_primitive::<Int64Type>().value(0);
    let mut out = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let c = datafusion::arrow::compute::cast(b.column(i + 1), &DataType::Float64)?;
        let c = c.as_primitive::<Float64Type>();
        let v = (!c.is_null(0)).then(|| c.value(0)).filter(|v| v.is_finite());
        out.insert(name.to_string(), if n == 0 { None } else { v });
    }
    Ok((n, out))
}

/// SQL of one row: the count of `known`'s rows and [`EXPLICIT_METRICS`] of
/// its predictions `__p` against the values `__r` (both DOUBLE).
pub(crate) fn explicit_sql(known: &str) -> String {
    format!(
        "SELECT COUNT(*), AVG(ABS(__d)), AVG(__d * __d), \
         AVG(POWER(LN(1 + GREATEST(__p, 0)) - LN(1 + GREATEST(__r, 0)), 2)), median(ABS(__d)), \
         1 - AVG(__d * __d) / NULLIF(VAR_POP(__r), 0), 1 - VAR_POP(__d) / NULLIF(VAR_POP(__r), 0) \
         FROM (SELECT __r, __p, __p - __r AS __d FROM ({known}) __k) __m"
    )
}

fn implicit_sql(known: &str, items: u64) -> String {
    let ranked = format!(
        "SELECT __u, __r, __p, __pos, CASE WHEN __r > 0 THEN 1.0 ELSE 0.0 END AS __rel, \
         SUM(CASE WHEN __r > 0 THEN 1.0 ELSE 0.0 END) OVER (PARTITION BY __u ORDER BY __pos, __i \
         ROWS UNBOUNDED PRECEDING) AS __hits, \
         ROW_NUMBER() OVER (PARTITION BY __u ORDER BY __r DESC, __i) AS __ideal FROM ({known}) __a"
    );
    let places = items.saturating_sub(1).max(1);
    let users = format!(
        "SELECT __u, SUM(CASE WHEN __rel > 0 THEN __hits / __pos END) / NULLIF(SUM(__rel), 0) AS __ap, \
         SUM(__r / log2(__pos + 1)) / NULLIF(SUM(__r / log2(__ideal + 1)), 0) AS __ndcg, \
         SUM((__p - __rel) * (__p - __rel)) AS __se, COUNT(*) AS __n, \
         SUM(__r * (__pos - 1) / {places}.0) AS __rpr, SUM(__r) AS __rs FROM ({ranked}) __c GROUP BY __u"
    );
    format!(
        "SELECT CAST(SUM(__n) AS BIGINT), AVG(__ap), SUM(__se) / SUM(__n), AVG(__ndcg), \
         SUM(__rpr) / NULLIF(SUM(__rs), 0) FROM ({users}) __d"
    )
}

/// The columns a query of `ML.RECOMMEND` or `ML.PREDICT` carries.
struct Columns {
    has_user: bool,
    has_item: bool,
    names: Vec<String>,
}

fn columns(schema: &Schema, f: &FactorizationMeta) -> Columns {
    Columns {
        has_user: schema.field_with_name(&f.user_col).is_ok(),
        has_item: schema.field_with_name(&f.item_col).is_ok(),
        names: schema.fields().iter().map(|x| x.name().clone()).collect(),
    }
}

/// `name` unless the query has such a column already.
fn fresh(c: &Columns, function: &str, name: &str) -> Result<String, MlError> {
    if c.names.iter().any(|n| n == name) {
        return Err(MlError::Data(format!("ML.{function}: the query already has a column {name:?}")));
    }
    Ok(quote_ident(name))
}

/// SQL of a pair's prediction over the rows of `q` (alias `__q`).
fn pairs_sql(reference: &str, f: &FactorizationMeta, c: &Columns, q: &str, function: &str) -> Result<String, MlError> {
    let predicted = fresh(c, function, &f.predicted_column())?;
    Ok(format!(
        "SELECT __q.*, sentio_mf_predict({}, CAST({} AS VARCHAR), CAST({} AS VARCHAR)) AS {predicted} FROM ({q}) __q",
        lit(reference),
        qcol("__q", &f.user_col),
        qcol("__q", &f.item_col)
    ))
}

/// `ML.PREDICT` of a factorization: the query's rows and their pair's
/// prediction.
pub fn predict(ml: &MlContext, meta: &ModelMeta, q: &str, schema: &Schema) -> Result<String, MlError> {
    let f = factorization("PREDICT", meta)?;
    let c = columns(schema, f);
    if !c.has_user || !c.has_item {
        return Err(MlError::Data(format!(
            "ML.PREDICT of matrix_factorization model {} needs the columns {:?} and {:?} (for the best items of \
             each user, ML.RECOMMEND)",
            meta.name, f.user_col, f.item_col
        )));
    }
    pairs_sql(&reference(ml, meta)?, f, &c, q, "PREDICT")
}

/// The `top_n` setting of `ML.RECOMMEND` (None: every item).
fn top_n(call: &MlCall) -> Result<Option<u64>, MlError> {
    for (name, value) in &call.settings {
        match (name.as_str(), value) {
            ("top_n", OptValue::Num(n)) if *n >= 1.0 && n.fract() == 0.0 && *n <= 1e9 => return Ok(Some(*n as u64)),
            ("top_n", other) => {
                return Err(MlError::Syntax(format!(
                    "ML.RECOMMEND: top_n must be a whole number of at least 1, not {other}"
                )));
            }
            ("trial_id", _) => {}
            (other, _) => {
                return Err(MlError::Syntax(format!(
                    "ML.RECOMMEND: {other}: no such setting (it takes top_n, trial_id)"
                )));
            }
        }
    }
    Ok(None)
}

/// `ML.RECOMMEND`: see the module doc. `rows` is the call's query and its
/// schema, if it has one.
pub fn recommend(
    ml: &MlContext,
    call: &MlCall,
    meta: &ModelMeta,
    rows: Option<(&str, &Schema)>,
) -> Result<String, MlError> {
    let f = factorization("RECOMMEND", meta)?;
    let wanted = top_n(call)?;
    let n = wanted.map_or("CAST(NULL AS BIGINT)".to_string(), |n| n.to_string());
    let reference = reference(ml, meta)?;
    let r = lit(&reference);
    let (user, item) = (quote_ident(&f.user_col), quote_ident(&f.item_col));
    let predicted = quote_ident(&f.predicted_column());
    let Some((q, schema)) = rows else {
        // Every user the model knows, one per row, spread over the cluster
        // by the GROUP BY's shuffle before they are scored.
        let users = format!("SELECT __id FROM (SELECT unnest(sentio_mf_ids({r}, 'users')) AS __id) __a GROUP BY __id");
        return Ok(format!(
            "SELECT CAST(__s.__id AS {}) AS {user}, CAST(get_field(__s.__x, 'id') AS {}) AS {item}, \
             get_field(__s.__x, 'score') AS {predicted} \
             FROM (SELECT __b.__id, unnest(sentio_mf_recommend({r}, 'users', __b.__id, {n})) AS __x FROM ({users}) __b) __s",
            f.user_type, f.item_type
        ));
    };
    let c = columns(schema, f);
    match (c.has_user, c.has_item) {
        (true, true) => {
            if wanted.is_some() {
                return Err(MlError::Syntax(
                    "ML.RECOMMEND: top_n ranks the items of each user; the query gives (user, item) pairs, which \
                     are scored as they are"
                        .into(),
                ));
            }
            pairs_sql(&reference, f, &c, q, "RECOMMEND")
        }
        (has_user, has_item) if has_user || has_item => {
            let (side, own, other, other_type) = if has_user {
                ("users", &f.user_col, &f.item_col, &f.item_type)
            } else {
                ("items", &f.item_col, &f.user_col, &f.user_type)
            };
            let other_name = fresh(&c, "RECOMMEND", other)?;
            let predicted = fresh(&c, "RECOMMEND", &f.predicted_column())?;
            let cols: Vec<String> = c.names.iter().map(|name| qcol("__s", name)).collect();
            Ok(format!(
                "SELECT {}, CAST(get_field(__s.__x, 'id') AS {other_type}) AS {other_name}, \
                 get_field(__s.__x, 'score') AS {predicted} \
                 FROM (SELECT __q.*, unnest(sentio_mf_recommend({r}, '{side}', CAST({} AS VARCHAR), {n})) AS __x \
                 FROM ({q}) __q) __s",
                cols.join(", "),
                qcol("__q", own)
            ))
        }
        _ => Err(MlError::Data(format!(
            "ML.RECOMMEND: the query has neither the user column {:?} nor the item column {:?} of model {}",
            f.user_col, f.item_col, meta.name
        ))),
    }
}

/// `ML.WEIGHTS` of a factorization, as BigQuery ML's: a row per user and
/// per item (`processed_input` the id column, `feature` the id as text,
/// `factor_weights` its factors, `intercept` its bias — NULL for implicit
/// feedback), and for explicit feedback an `__INTERCEPT__` row holding the
/// mean rating.
pub fn weights(ml: &MlContext, meta: &ModelMeta) -> Result<String, MlError> {
    let f = factorization("WEIGHTS", meta)?;
    Ok(format!(
        "SELECT get_field(__w, 'processed_input') AS processed_input, get_field(__w, 'feature') AS feature, \
         get_field(__w, 'factor_weights') AS factor_weights, get_field(__w, 'intercept') AS intercept \
         FROM (SELECT unnest(sentio_mf_weights({}, {}, {})) AS __w) __a",
        lit(&reference(ml, meta)?),
        lit(&f.user_col),
        lit(&f.item_col)
    ))
}

/// `ML.EVALUATE` of a factorization: the metrics of the query's ratings, or
/// without one the metrics stored at training.
pub async fn evaluate(ml: &MlContext, meta: &ModelMeta, rows: Option<(&str, &Schema)>) -> Result<String, MlError> {
    let f = factorization("EVALUATE", meta)?;
    let names = metric_names(f.implicit());
    let schema =
        Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Float64, true)).collect::<Vec<_>>()));
    let values = match rows {
        None => meta.metrics.clone(),
        Some((q, s)) => {
            for col in [&f.user_col, &f.item_col, &f.rating_col] {
                if s.field_with_name(col).is_err() {
                    return Err(MlError::Data(format!(
                        "ML.EVALUATE of matrix_factorization model {} needs the columns {:?}, {:?} and {:?}; \
                         the query has no {col:?}",
                        meta.name, f.user_col, f.item_col, f.rating_col
                    )));
                }
            }
            let ratings = format!(
                "SELECT CAST({} AS VARCHAR) AS __u, CAST({} AS VARCHAR) AS __i, CAST({} AS DOUBLE) AS __r FROM ({q}) __q",
                qcol("__q", &f.user_col),
                qcol("__q", &f.item_col),
                qcol("__q", &f.rating_col)
            );
            metrics(ml, &reference(ml, meta)?, f.implicit(), f.items, &ratings).await?.1
        }
    };
    let cols = names
        .iter()
        .map(|n| Arc::new(Float64Array::from(vec![values.get(*n).copied().flatten()])) as Arc<dyn Array>)
        .collect();
    let batch = datafusion::arrow::array::RecordBatch::try_new(Arc::clone(&schema), cols)
        .map_err(|e| MlError::Internal(e.to_string()))?;
    values_query(&schema, &[batch])
}
