//! The SQL text the ML layer writes: feature expressions, and small result
//! sets inlined as queries.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::array_value_to_string;

use crate::ml::MlError;
use crate::sqltext::{lit, quote_ident, rows_table};

/// How a column is fed to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// Numbers, booleans, dates and timestamps (as seconds since 1970).
    Numeric,
    /// Text, one-hot encoded.
    Categorical,
}

/// The kind a column of `t` can be, or None if it cannot be a feature.
pub fn feature_kind(t: &DataType) -> Option<FeatureKind> {
    match t {
        t if t.is_numeric() => Some(FeatureKind::Numeric),
        DataType::Boolean | DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) | DataType::Null => {
            Some(FeatureKind::Numeric)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(FeatureKind::Categorical),
        DataType::Dictionary(_, v)
            if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) =>
        {
            Some(FeatureKind::Categorical)
        }
        _ => None,
    }
}

/// The expression that feeds column `col` (quoted, qualified) of type `t` to
/// a model: DOUBLE for numeric features, VARCHAR for categorical ones.
pub fn feature_expr(col: &str, t: &DataType) -> String {
    match t {
        DataType::Boolean => format!("CAST(CAST({col} AS INT) AS DOUBLE)"),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            format!("CAST(to_unixtime({col}) AS DOUBLE)")
        }
        t if feature_kind(t) == Some(FeatureKind::Categorical) => format!("CAST({col} AS VARCHAR)"),
        _ => format!("CAST({col} AS DOUBLE)"),
    }
}

fn sql_type(t: &DataType) -> Result<&'static str, MlError> {
    Ok(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "BIGINT",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "BIGINT",
        DataType::Float32 | DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(_, _) => "TIMESTAMP",
        other => return Err(MlError::Internal(format!("cannot inline a {other} column"))),
    })
}

/// A query returning exactly `batches` (small results only).
pub fn values_query(schema: &Schema, batches: &[RecordBatch]) -> Result<String, MlError> {
    let casts: Vec<String> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Ok(format!("CAST(__v.c{i} AS {}) AS {}", sql_type(f.data_type())?, quote_ident(f.name()))))
        .collect::<Result<_, MlError>>()?;
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let mut values = Vec::with_capacity(b.num_columns());
            for c in b.columns() {
                values.push(if c.is_null(r) {
                    "NULL".to_string()
                } else {
                    let v = array_value_to_string(c, r).map_err(|e| MlError::Internal(e.to_string()))?;
                    match c.data_type() {
                        DataType::Float32 | DataType::Float64 if v == "NaN" || v.contains("inf") => "NULL".into(),
                        t if t.is_numeric() => v,
                        DataType::Boolean => v,
                        _ => lit(&v),
                    }
                });
            }
            rows.push(values);
        }
    }
    if rows.is_empty() {
        let nulls: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| Ok(format!("CAST(NULL AS {}) AS {}", sql_type(f.data_type())?, quote_ident(f.name()))))
            .collect::<Result<_, MlError>>()?;
        return Ok(format!("SELECT {} WHERE false", nulls.join(", ")));
    }
    let names: Vec<String> = (0..schema.fields().len()).map(|i| format!("c{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(format!("SELECT {} FROM {}", casts.join(", "), rows_table("__v", &names, &rows)))
}
