//! `ML.DESCRIBE_DATA((query) | TABLE t, STRUCT(n AS num_quantiles, k AS top_k))`:
//! descriptive statistics of every column of a query, one row per column,
//! with BigQuery ML's output columns for scalar columns.
//!
//! The call is rewritten into one ordinary query, so it runs in the cluster
//! over any catalog and only one row per column travels to the client. It
//! reads its input twice: once for one aggregate of every statistic of every
//! column (a single wide row, then turned into one row per column by a cross
//! join with the column names), and once
//! for the most frequent values (each row fanned out over the columns that
//! have top values, grouped by column and value, ranked per column).
//!
//! Medians and quantiles are approximate (`approx_percentile_cont`, a
//! t-digest, exact for small inputs), as BigQuery ML's are; the first and
//! last quantile are the exact minimum and maximum.

use datafusion::arrow::datatypes::{DataType, Schema};

use crate::ml::MlError;
use crate::ml::parse::{MlCall, OptValue};
use crate::sqltext::{lit, qcol, rows_table};

/// The most quantiles Sentio computes (`num_quantiles`).
pub const MAX_QUANTILES: u64 = 1_000;
/// The most top values per column (`top_k`).
pub const MAX_TOP_K: u64 = 10_000;

/// What a column gets described with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Numbers: zeros, min, max, mean, stddev, median, quantiles.
    Number,
    /// Text: average length, top values.
    Text,
    /// Booleans, dates, times, timestamps: top values.
    Other,
}

fn kind(name: &str, t: &DataType) -> Result<Kind, MlError> {
    Ok(match t {
        t if t.is_numeric() => Kind::Number,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
        DataType::Dictionary(_, v)
            if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) =>
        {
            Kind::Text
        }
        DataType::Boolean
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Timestamp(_, _)
        | DataType::Null => Kind::Other,
        other => {
            return Err(MlError::Data(format!(
                "ML.DESCRIBE_DATA: column {name:?} has type {other}, which Sentio does not describe \
                 (numbers, text, booleans, dates, times and timestamps); leave it out of the query"
            )));
        }
    })
}

/// The settings of a call: `num_quantiles` (default 2) and `top_k` (default 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescribeSettings {
    /// Quantiles: `num_quantiles + 1` boundaries, from minimum to maximum.
    pub num_quantiles: u64,
    /// Most frequent values listed per column.
    pub top_k: u64,
}

impl Default for DescribeSettings {
    fn default() -> Self {
        Self { num_quantiles: 2, top_k: 1 }
    }
}

impl DescribeSettings {
    /// Reads a call's `STRUCT(…)`.
    pub fn of(call: &MlCall) -> Result<Self, MlError> {
        let mut s = Self::default();
        let whole = |name: &str, v: &OptValue, max: u64| match v {
            OptValue::Num(n) if *n >= 1.0 && *n <= max as f64 && n.fract() == 0.0 => Ok(*n as u64),
            other => Err(MlError::Syntax(format!(
                "ML.DESCRIBE_DATA: {name} must be a whole number from 1 to {max}, not {other}"
            ))),
        };
        for (k, v) in &call.settings {
            match k.as_str() {
                "num_quantiles" => s.num_quantiles = whole(k, v, MAX_QUANTILES)?,
                "top_k" => s.top_k = whole(k, v, MAX_TOP_K)?,
                // Sentio refuses array columns, so this has nothing to act on.
                "num_array_length_quantiles" => {
                    whole(k, v, MAX_QUANTILES)?;
                }
                other => {
                    return Err(MlError::Syntax(format!(
                        "ML.DESCRIBE_DATA has no setting {other} (num_quantiles, top_k, num_array_length_quantiles)"
                    )));
                }
            }
        }
        Ok(s)
    }
}

/// The query that describes every column of `query` (whose result has
/// `schema`).
///
/// ```
/// use datafusion::arrow::datatypes::{DataType, Field, Schema};
/// use sentio_sql::ml::describe::{DescribeSettings, describe_sql};
/// let schema = Schema::new(vec![Field::new("x", DataType::Float64, true)]);
/// let sql = describe_sql("SELECT x FROM t", &schema, DescribeSettings::default()).unwrap();
/// assert!(sql.contains("approx_percentile_cont"));
/// ```
pub fn describe_sql(query: &str, schema: &Schema, settings: DescribeSettings) -> Result<String, MlError> {
    if schema.fields().is_empty() {
        return Err(MlError::Data("ML.DESCRIBE_DATA: the query has no columns".into()));
    }
    let cols: Vec<(usize, String, Kind)> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Ok((i, qcol("__d", f.name()), kind(f.name(), f.data_type())?)))
        .collect::<Result<_, MlError>>()?;
    let n = settings.num_quantiles;

    // One aggregate row: every statistic of every column.
    let mut aggs = vec!["COUNT(*) AS __rows".to_string()];
    for (i, c, k) in &cols {
        aggs.push(format!("COUNT({c}) AS __nn_{i}"));
        aggs.push(format!("COUNT(DISTINCT {c}) AS __u_{i}"));
        match k {
            Kind::Number => {
                let x = format!("CAST({c} AS DOUBLE)");
                aggs.push(format!("CAST(COALESCE(SUM(CASE WHEN {x} = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS __z_{i}"));
                aggs.push(format!("MIN({x}) AS __min_{i}"));
                aggs.push(format!("MAX({x}) AS __max_{i}"));
                aggs.push(format!("AVG({x}) AS __mean_{i}"));
                aggs.push(format!("STDDEV({x}) AS __sd_{i}"));
                aggs.push(format!("approx_percentile_cont({x}, 0.5) AS __med_{i}"));
                for q in 1..n {
                    aggs.push(format!("approx_percentile_cont({x}, {}) AS __q_{i}_{q}", q as f64 / n as f64));
                }
            }
            Kind::Text => aggs.push(format!("AVG(CAST(character_length({c}) AS DOUBLE)) AS __len_{i}")),
            Kind::Other => {}
        }
    }

    // One column of the output: a CASE over the described column's index.
    let per = |which: &dyn Fn(usize, Kind) -> Option<String>, none: &str| {
        let arms: Vec<String> =
            cols.iter().filter_map(|(i, _, k)| which(*i, *k).map(|e| format!("WHEN {i} THEN {e}"))).collect();
        if arms.is_empty() {
            format!("CASE WHEN false THEN {none} END")
        } else {
            format!("CASE __n.i {} END", arms.join(" "))
        }
    };
    let number = |f: &'static str| move |i: usize, k: Kind| (k == Kind::Number).then(|| format!("__a.{f}_{i}"));
    let quantiles = per(
        &|i, k| {
            (k == Kind::Number).then(|| {
                let mut q = vec![format!("__a.__min_{i}")];
                q.extend((1..n).map(|j| format!("__a.__q_{i}_{j}")));
                q.push(format!("__a.__max_{i}"));
                format!("make_array({})", q.join(", "))
            })
        },
        "make_array(CAST(NULL AS DOUBLE))",
    );
    let names: Vec<Vec<String>> =
        schema.fields().iter().enumerate().map(|(i, f)| vec![i.to_string(), lit(f.name())]).collect();

    // The most frequent values of every column but floating-point ones.
    let ranked: Vec<&(usize, String, Kind)> =
        cols.iter().filter(|(i, _, k)| !(*k == Kind::Number && schema.field(*i).data_type().is_floating())).collect();
    let no_top = "make_array(named_struct('value', CAST(NULL AS VARCHAR), 'count', CAST(NULL AS BIGINT)))";
    let (top_join, top_col) = if ranked.is_empty() {
        (String::new(), format!("CASE WHEN false THEN {no_top} END"))
    } else {
        let value =
            ranked.iter().map(|(i, c, _)| format!("WHEN {i} THEN CAST({c} AS VARCHAR)")).collect::<Vec<_>>().join(" ");
        let keys: Vec<Vec<String>> = ranked.iter().map(|(i, _, _)| vec![i.to_string()]).collect();
        let keys = rows_table("__k", &["i"], &keys);
        (
            format!(
                " LEFT JOIN (SELECT i, array_agg(named_struct('value', v, 'count', c) ORDER BY c DESC, v) AS top_values \
                 FROM (SELECT i, v, c, ROW_NUMBER() OVER (PARTITION BY i ORDER BY c DESC, v) AS r \
                 FROM (SELECT i, v, COUNT(*) AS c FROM (SELECT __k.i AS i, CASE __k.i {value} END AS v \
                 FROM ({query}) __d CROSS JOIN {keys}) __f WHERE v IS NOT NULL GROUP BY i, v) __g) __r \
                 WHERE r <= {} GROUP BY i) __t ON __t.i = __n.i",
                settings.top_k
            ),
            "__t.top_values".to_string(),
        )
    };

    Ok(format!(
        "SELECT __n.name AS name, __a.__rows AS num_rows, __a.__rows - {} AS num_nulls, {} AS num_zeros, \
         {} AS min, {} AS max, {} AS mean, {} AS stddev, {} AS median, {quantiles} AS quantiles, \
         {} AS \"unique\", {} AS avg_string_length, {} AS num_values, {top_col} AS top_values \
         FROM (SELECT {} FROM ({query}) __d) __a CROSS JOIN {}{top_join} ORDER BY __n.i",
        per(&|i, _| Some(format!("__a.__nn_{i}")), "CAST(NULL AS BIGINT)"),
        per(&number("__z"), "CAST(NULL AS BIGINT)"),
        per(&number("__min"), "CAST(NULL AS DOUBLE)"),
        per(&number("__max"), "CAST(NULL AS DOUBLE)"),
        per(&number("__mean"), "CAST(NULL AS DOUBLE)"),
        per(&number("__sd"), "CAST(NULL AS DOUBLE)"),
        per(&number("__med"), "CAST(NULL AS DOUBLE)"),
        per(&|i, _| Some(format!("__a.__u_{i}")), "CAST(NULL AS BIGINT)"),
        per(&|i, k| (k == Kind::Text).then(|| format!("__a.__len_{i}")), "CAST(NULL AS DOUBLE)"),
        per(&|i, _| Some(format!("__a.__nn_{i}")), "CAST(NULL AS BIGINT)"),
        aggs.join(", "),
        rows_table("__n", &["i", "name"], &names),
    ))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;

    use super::*;

    #[test]
    fn lists_and_maps_are_refused_by_name() {
        let schema = Schema::new(vec![Field::new(
            "tags",
            DataType::List(std::sync::Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )]);
        let e = describe_sql("SELECT tags FROM t", &schema, DescribeSettings::default()).unwrap_err();
        assert!(e.to_string().contains("\"tags\""), "{e}");
    }

    #[test]
    fn quantiles_run_from_min_to_max() {
        let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let s = DescribeSettings { num_quantiles: 4, top_k: 3 };
        let sql = describe_sql("SELECT x FROM t", &schema, s).unwrap();
        assert!(sql.contains("make_array(__a.__min_0, __a.__q_0_1, __a.__q_0_2, __a.__q_0_3, __a.__max_0)"), "{sql}");
        assert!(sql.contains("WHERE r <= 3"), "{sql}");
    }
}
