//! Writing SQL text: identifiers, literals, feature expressions, and small
//! result sets inlined as `VALUES`.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::array_value_to_string;

use crate::lake::quote_ident;
use crate::ml::MlError;

/// An SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

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
        DataType::Dictionary(_, v) if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
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
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => format!("CAST(to_unixtime({col}) AS DOUBLE)"),
        t if feature_kind(t) == Some(FeatureKind::Categorical) => format!("CAST({col} AS VARCHAR)"),
        _ => format!("CAST({col} AS DOUBLE)"),
    }
}

/// `q."name"`.
pub fn qcol(alias: &str, name: &str) -> String {
    format!("{alias}.{}", quote_ident(name))
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

/// Rows of SQL expressions as a table expression, `alias(columns…)`, for
/// `FROM` or `CROSS JOIN`: one `make_array` per column, unnested together
/// (columns with the same values share one array: DataFusion names an
/// unnested column after its expression, and names must be unique).
///
/// Not `VALUES`: DataFusion 55 plans every `VALUES` anywhere inside an
/// `INSERT … SELECT` against the target table's columns (by position), so a
/// `VALUES` that an ML function inlines would break `INSERT INTO opdb.t
/// SELECT … FROM ML.…(…)`. `rows` must not be empty; each has one
/// expression per column.
///
/// ```
/// use sentio_sql::ml::sqltext::rows_table;
/// let rows = [vec!["0".to_string(), "'a'".into(), "0".into()], vec!["1".into(), "'b'".into(), "1".into()]];
/// assert_eq!(
///     rows_table("k", &["i", "name", "j"], &rows),
///     "(SELECT __u0 AS i, __u1 AS name, __u0 AS j \
///      FROM unnest(make_array(0, 1), make_array('a', 'b')) AS __u(__u0, __u1)) AS k"
/// );
/// ```
pub fn rows_table(alias: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut arrays: Vec<String> = Vec::new();
    let mut picks = Vec::with_capacity(columns.len());
    for (j, name) in columns.iter().enumerate() {
        let items: Vec<&str> = rows.iter().map(|r| r[j].as_str()).collect();
        let array = format!("make_array({})", items.join(", "));
        let k = arrays.iter().position(|a| *a == array).unwrap_or_else(|| {
            arrays.push(array);
            arrays.len() - 1
        });
        picks.push(format!("__u{k} AS {name}"));
    }
    let names: Vec<String> = (0..arrays.len()).map(|k| format!("__u{k}")).collect();
    format!(
        "(SELECT {} FROM unnest({}) AS __u({})) AS {alias}",
        picks.join(", "),
        arrays.join(", "),
        names.join(", ")
    )
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
