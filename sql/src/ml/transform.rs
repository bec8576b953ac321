//! `CREATE MODEL … TRANSFORM (…)`: preprocessing learned at training and
//! applied by the model to the rows it is given later.
//!
//! At `CREATE MODEL` the clause's columns (`expr AS name`, `*`, `* EXCEPT
//! (…)`) are resolved against the training query, their preprocessing
//! statistics computed over its rows and written in as constants
//! ([`crate::ml::preprocess::resolve`]); the model trains on the
//! transformed rows and keeps the resolved expressions
//! ([`TransformColumn`]). `ML.PREDICT` and the other functions add them to
//! the rows they are given under hidden names ([`bind`]), so a model reads
//! raw columns and standardises them with its training statistics;
//! `ML.TRANSFORM` returns them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
use sentio_udfs::ml::spec::TrainSpec;
use serde::{Deserialize, Serialize};

use crate::ml::functions::rewrite;
use crate::ml::options::{SplitMethod, TrainOptions};
use crate::ml::parse::TransformItem;
use crate::ml::preprocess;
use crate::ml::store::ModelMeta;
use crate::ml::{MlContext, MlError};
use crate::sqltext::{lit, quote_ident};

/// One column of a model's `TRANSFORM`: its name and its expression over
/// the raw columns, preprocessing statistics written in as constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformColumn {
    /// The column's name (a feature, or the label passed through).
    pub name: String,
    /// Its expression over the raw columns.
    pub sql: String,
    /// The expression as the clause wrote it (preprocessing statistics not
    /// yet computed), to learn again on other rows (a cross-validation
    /// fold's).
    #[serde(default)]
    pub written: String,
}

/// Prefix of the columns [`bind`] adds to a model's input rows.
pub const HIDDEN: &str = "__sentio_tf_";

fn planning(what: &str, e: MlError) -> MlError {
    MlError::Data(format!("{what} TRANSFORM: {e}"))
}

/// Resolves `items` against `query` (the training query) for a model with
/// `opts`: returns the transformed training query and the columns to keep.
/// The label and `data_split_col` pass through when the clause does not
/// name them. `what` names the statement in messages.
pub async fn prepare(
    ml: &MlContext,
    items: &[TransformItem],
    query: &str,
    opts: &TrainOptions,
    what: &str,
) -> Result<(String, Vec<TransformColumn>), MlError> {
    let raw = rewrite(ml, query).await?;
    let schema = ml.ctx.sql(&raw).await?.schema().as_arrow().clone();
    let mut columns: Vec<(String, String)> = Vec::new();
    for item in items {
        match item {
            TransformItem::All { except } => {
                for name in except {
                    if schema.field_with_name(name).is_err() {
                        return Err(MlError::Data(format!(
                            "{what} TRANSFORM: * EXCEPT names {name:?}, which the training query does not have"
                        )));
                    }
                }
                for f in schema.fields().iter().filter(|f| !except.contains(f.name())) {
                    columns.push((f.name().clone(), quote_ident(f.name())));
                }
            }
            TransformItem::Column { expr, name } => columns.push((name.clone(), expr.clone())),
        }
    }
    let split_col = match &opts.split {
        SplitMethod::Custom(c) => Some(c.clone()),
        _ => None,
    };
    for pass in std::iter::once(opts.label.clone()).chain(split_col) {
        if !columns.iter().any(|(n, _)| *n == pass) && schema.field_with_name(&pass).is_ok() {
            columns.push((pass.clone(), quote_ident(&pass)));
        }
    }
    for (i, (name, _)) in columns.iter().enumerate() {
        if columns[..i].iter().any(|(n, _)| n == name) {
            return Err(MlError::Data(format!("{what} TRANSFORM: the column {name:?} is named twice")));
        }
    }
    let exprs: Vec<String> = columns.iter().map(|(_, e)| e.clone()).collect();
    let resolved = preprocess::resolve(ml, &exprs, &raw).await.map_err(|e| planning(what, e))?;
    let columns: Vec<TransformColumn> = columns
        .into_iter()
        .zip(resolved)
        .map(|((name, written), sql)| TransformColumn { name, sql, written })
        .collect();
    let columns = flatten(ml, &raw, columns, what).await?;
    let transformed = transformed_query(&raw, &columns);
    Ok((transformed, columns))
}

/// `columns` as features a model takes (numbers and text): each `STRUCT`
/// column (`ML.POLYNOMIAL_EXPAND`, `ML.FEATURE_CROSS`) as one column per
/// field, `<name>_<field>`; an `ML.ONE_HOT_ENCODER` column as its index in
/// text, which the model one-hot encodes — NULL (all zeros) for the
/// category `drop` dropped, as BigQuery ML's dummy encoding; an
/// `ML.MULTI_HOT_ENCODER` column as one number per index of its training
/// vocabulary, `<name>_<index>` (index 0: a value not in it); an array of
/// numbers (`ML.NORMALIZER`) as one number per element, `<name>_<offset>`
/// from 0, its length the one every training row has (see [`expand`]); any
/// other `ARRAY` column refused. Planning them also makes a column the
/// clause names and the query lacks an error before anything trains.
async fn flatten(
    ml: &MlContext,
    raw: &str,
    columns: Vec<TransformColumn>,
    what: &str,
) -> Result<Vec<TransformColumn>, MlError> {
    let planned = ml.ctx.sql(&transformed_query(raw, &columns)).await.map_err(|e| planning(what, e.into()))?;
    let schema = planned.schema().as_arrow().clone();
    let mut out: Vec<TransformColumn> = Vec::with_capacity(columns.len());
    for (c, f) in columns.into_iter().zip(schema.fields()) {
        match f.data_type() {
            DataType::Struct(fields) => {
                for g in fields {
                    let field = |e: &str| format!("get_field(({e}), {})", lit(g.name()));
                    out.push(TransformColumn {
                        name: format!("{}_{}", c.name, g.name()),
                        sql: field(&c.sql),
                        written: field(&c.written),
                    });
                }
            }
            DataType::List(_) if is_one_hot(&c.written)? => {
                let category = |e: &str| {
                    let item = format!("array_element(({e}), 1)");
                    format!(
                        "(CASE WHEN get_field({item}, 'value') = 0.0 THEN NULL \
                         ELSE CAST(get_field({item}, 'index') AS VARCHAR) END)"
                    )
                };
                out.push(TransformColumn { name: c.name, sql: category(&c.sql), written: category(&c.written) });
            }
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
                let kind = if is_call(&c.written, "MULTI_HOT_ENCODER")? {
                    Expansion::Sparse
                } else if item.data_type().is_numeric() {
                    Expansion::Dense
                } else {
                    return Err(MlError::Data(format!(
                        "{what} TRANSFORM: the column {:?} is an ARRAY ({}), which a Sentio model cannot take as a \
                         feature (it takes arrays of numbers, such as ML.NORMALIZER's, and ML.MULTI_HOT_ENCODER's \
                         output); for a category give the text column itself (Sentio one-hot encodes text), \
                         ML.ONE_HOT_ENCODER(…) OVER () or ML.LABEL_ENCODER(…) OVER ()",
                        c.name,
                        f.data_type()
                    )));
                };
                out.extend(expand(ml, raw, c, kind, what).await?);
            }
            _ => out.push(c),
        }
    }
    for (i, c) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.name == c.name) {
            return Err(MlError::Data(format!("{what} TRANSFORM: the column {:?} is named twice", c.name)));
        }
    }
    Ok(out)
}

/// Whether `written` is one `ML.ONE_HOT_ENCODER(…) OVER (…)` call and
/// nothing else.
fn is_one_hot(written: &str) -> Result<bool, MlError> {
    is_call(written, "ONE_HOT_ENCODER")
}

/// Whether `written` is one call of `ML.<function>` and nothing else.
fn is_call(written: &str, function: &str) -> Result<bool, MlError> {
    let written = written.trim();
    let calls = preprocess::find_calls(written)?;
    Ok(matches!(calls.as_slice(), [c] if c.function == function && c.span == (0..written.len())))
}

/// How an array column becomes numeric features.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expansion {
    /// An array of numbers: one feature per element.
    Dense,
    /// `ML.MULTI_HOT_ENCODER`'s `STRUCT<index, value>` entries: one feature
    /// per vocabulary index.
    Sparse,
}

/// Array column `c` as numeric features, their number read off the
/// training rows of `raw`: a dense array's length (every row's must be the
/// same), or the largest index a multi-hot column has.
async fn expand(
    ml: &MlContext,
    raw: &str,
    c: TransformColumn,
    kind: Expansion,
    what: &str,
) -> Result<Vec<TransformColumn>, MlError> {
    let name = &c.name;
    let sizes = match kind {
        Expansion::Dense => format!(
            "SELECT CAST(MIN(cardinality(__v)) AS BIGINT) AS lo, CAST(MAX(cardinality(__v)) AS BIGINT) AS hi \
             FROM (SELECT {} AS __v FROM ({raw}) __raw)",
            c.sql
        ),
        Expansion::Sparse => format!(
            "SELECT CAST(0 AS BIGINT) AS lo, CAST(MAX(get_field(__e, 'index')) AS BIGINT) AS hi \
             FROM (SELECT unnest({}) AS __e FROM ({raw}) __raw)",
            c.sql
        ),
    };
    let batches = ml.ctx.sql(&sizes).await?.collect().await?;
    let read = |column: usize| {
        batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
            let v = b.column(column).as_primitive_opt::<Int64Type>()?;
            v.is_valid(0).then(|| v.value(0))
        })
    };
    let (lo, hi) = (read(0), read(1));
    let (first, last) = match (kind, lo, hi) {
        (Expansion::Dense, Some(lo), Some(hi)) if lo == hi && hi > 0 => (0, hi - 1),
        (Expansion::Dense, Some(lo), Some(hi)) if lo != hi => {
            return Err(MlError::Data(format!(
                "{what} TRANSFORM: the array column {name:?} has from {lo} to {hi} elements in the training rows; \
                 a model takes an array of one length (one feature per element)"
            )));
        }
        (Expansion::Sparse, _, Some(hi)) => (0, hi),
        _ => {
            return Err(MlError::Data(format!(
                "{what} TRANSFORM: the array column {name:?} is empty or NULL in every training row"
            )));
        }
    };
    let element = |e: &str, i: i64| match kind {
        Expansion::Dense => format!("CAST(array_element(({e}), {}) AS DOUBLE)", i + 1),
        Expansion::Sparse => format!("sentio_sparse_value(({e}), {i})"),
    };
    Ok((first..=last)
        .map(|i| TransformColumn {
            name: format!("{name}_{i}"),
            sql: element(&c.sql, i),
            written: element(&c.written, i),
        })
        .collect())
}

/// `meta`'s `TRANSFORM` learnt again over the rows of `rows` (a query of
/// the raw columns, with the label); apply it with [`transformed_query`].
/// The split column is left out (the rows are split already).
pub async fn relearnt(ml: &MlContext, meta: &ModelMeta, rows: &str) -> Result<Vec<TransformColumn>, MlError> {
    let split_col = match &meta.train_options.split {
        SplitMethod::Custom(c) => Some(c.as_str()),
        _ => None,
    };
    let kept: Vec<&TransformColumn> = meta.transform.iter().filter(|c| Some(c.name.as_str()) != split_col).collect();
    if kept.iter().any(|c| c.written.is_empty()) {
        return Err(MlError::Data(format!(
            "{}@{} was stored without its TRANSFORM as written; create it again to learn its TRANSFORM on other rows",
            meta.name, meta.version
        )));
    }
    let exprs: Vec<String> = kept.iter().map(|c| c.written.clone()).collect();
    let resolved = preprocess::resolve(ml, &exprs, rows).await?;
    Ok(kept
        .iter()
        .zip(resolved)
        .map(|(c, sql)| TransformColumn { name: c.name.clone(), sql, written: c.written.clone() })
        .collect())
}

/// `columns` computed over the rows of `raw`.
pub fn transformed_query(raw: &str, columns: &[TransformColumn]) -> String {
    let select: Vec<String> = columns.iter().map(|c| format!("{} AS {}", c.sql, quote_ident(&c.name))).collect();
    format!("SELECT {} FROM ({raw}) __raw", select.join(", "))
}

/// The rows `meta` was trained on, as a query: its training query, through
/// its `TRANSFORM` if it has one.
pub async fn training_rows(ml: &MlContext, meta: &ModelMeta) -> Result<String, MlError> {
    let raw = rewrite(ml, &meta.training_query).await?;
    Ok(if meta.transform.is_empty() { raw } else { transformed_query(&raw, &meta.transform) })
}

/// The columns of `meta`'s `TRANSFORM` that feed its features (not the
/// label or the split column), with their indexes.
fn inputs(meta: &ModelMeta) -> Vec<(usize, &TransformColumn)> {
    let split_col = match &meta.train_options.split {
        SplitMethod::Custom(c) => Some(c.as_str()),
        _ => None,
    };
    meta.transform
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name != meta.label && Some(c.name.as_str()) != split_col)
        .collect()
}

/// Rows bound to a model: the query to read them through, its schema, and
/// the spec whose feature names are that query's columns.
pub struct Bound {
    /// The rows' query (with the transformed columns, under hidden names).
    pub query: String,
    /// Its schema.
    pub schema: Arc<Schema>,
    /// `meta.spec` with each feature named after the column that feeds it.
    pub spec: TrainSpec,
}

/// Binds rows `q` (`schema`) to `meta`: unchanged without a `TRANSFORM`;
/// with one, `q` plus the transformed columns under hidden names (rows
/// that are `transformed` already — a model's own evaluation rows — only
/// get the hidden names).
pub async fn bind(
    ml: &MlContext,
    meta: &ModelMeta,
    q: &str,
    schema: Arc<Schema>,
    transformed: bool,
) -> Result<Bound, MlError> {
    if meta.transform.is_empty() {
        return Ok(Bound { query: q.to_string(), schema, spec: meta.spec.clone() });
    }
    let inputs = inputs(meta);
    let hidden: Vec<String> = inputs
        .iter()
        .map(|(i, c)| {
            let value = if transformed { quote_ident(&c.name) } else { c.sql.clone() };
            format!("{value} AS {}", quote_ident(&format!("{HIDDEN}{i}")))
        })
        .collect();
    let query = format!("SELECT __q.*, {} FROM ({q}) __q", hidden.join(", "));
    let model = format!("{}@{}", meta.name, meta.version);
    let schema = Arc::new(
        ml.ctx
            .sql(&query)
            .await
            .map_err(|e| planning(&format!("model {model}:"), e.into()))?
            .schema()
            .as_arrow()
            .clone(),
    );
    let mut spec = meta.spec.clone();
    for f in &mut spec.features {
        let (i, _) = inputs.iter().find(|(_, c)| c.name == f.name).ok_or_else(|| {
            MlError::Corrupt(format!("{model}: feature {:?} is not a column of its TRANSFORM", f.name))
        })?;
        f.name = format!("{HIDDEN}{i}");
    }
    Ok(Bound { query, schema, spec })
}

/// SQL of `ML.TRANSFORM(MODEL meta, (q))`: `meta`'s `TRANSFORM` columns
/// over `q`'s rows (the label's and the split column's where `q` has
/// those).
pub fn transform_sql(meta: &ModelMeta, q: &str, schema: &Schema) -> Result<String, MlError> {
    if meta.transform.is_empty() {
        return Err(MlError::Data(format!(
            "ML.TRANSFORM: {}@{} was created without a TRANSFORM clause",
            meta.name, meta.version
        )));
    }
    let fed: Vec<usize> = inputs(meta).iter().map(|(i, _)| *i).collect();
    let select: Vec<String> = meta
        .transform
        .iter()
        .enumerate()
        .filter(|(i, c)| fed.contains(i) || schema.field_with_name(&c.name).is_ok())
        .map(|(_, c)| format!("{} AS {}", c.sql, quote_ident(&c.name)))
        .collect();
    Ok(format!("SELECT {} FROM ({q}) __raw", select.join(", ")))
}
