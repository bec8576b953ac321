//! BigQuery ML's preprocessing functions (`ML.STANDARD_SCALER(x) OVER ()`,
//! `ML.BUCKETIZE(x, [1, 2])`, …), rewritten into ordinary SQL.
//!
//! Each function is a few statistics of its input (aggregates such as
//! `AVG(x)`) and an expression of the input and those statistics. In a
//! query the statistics are window aggregates over the call's `OVER (…)`
//! ([`rewrite_windows`]), so they are computed in the cluster like any
//! other; in a `TRANSFORM` clause they are computed once over the training
//! rows and written into the expression as constants ([`resolve`]), which
//! the model keeps and applies to the rows it is given later.
//!
//! [`scalers`] plans the numeric functions (scalers, imputer, buckets,
//! normalizer), [`encoders`] the categorical ones (label, one-hot and
//! multi-hot encoders, hash buckets, feature crosses, polynomial
//! expansion).

mod encoders;
mod scalers;

use std::ops::Range;

use datafusion::sql::sqlparser::tokenizer::Token;

use crate::ml::parse::{call_args, is_word, located_tokens};
use crate::ml::{MlContext, MlError};
use crate::sqltext::lit;

/// BigQuery ML's preprocessing functions.
pub const PREPROCESSORS: [&str; 14] = [
    "STANDARD_SCALER",
    "MIN_MAX_SCALER",
    "MAX_ABS_SCALER",
    "ROBUST_SCALER",
    "NORMALIZER",
    "BUCKETIZE",
    "QUANTILE_BUCKETIZE",
    "IMPUTER",
    "ONE_HOT_ENCODER",
    "LABEL_ENCODER",
    "MULTI_HOT_ENCODER",
    "POLYNOMIAL_EXPAND",
    "FEATURE_CROSS",
    "HASH_BUCKETIZE",
];

/// Whether `ML.<function>` is a preprocessing function (any case).
pub fn is_preprocessor(function: &str) -> bool {
    PREPROCESSORS.iter().any(|p| p.eq_ignore_ascii_case(function))
}

/// One call of a preprocessing function in SQL text.
#[derive(Debug, Clone, PartialEq)]
pub struct PreCall {
    /// Where the call is, its `OVER (…)` included.
    pub span: Range<usize>,
    /// The function, upper case.
    pub function: String,
    /// Its arguments' text.
    pub args: Vec<String>,
    /// The text inside `OVER (…)`, if the call has one.
    pub over: Option<String>,
}

fn syntax(m: impl Into<String>) -> MlError {
    MlError::Syntax(m.into())
}

/// Finds the preprocessing calls of `sql`, in order.
pub fn find_calls(sql: &str) -> Result<Vec<PreCall>, MlError> {
    let toks = located_tokens(sql)?;
    let mut calls = Vec::new();
    let mut k = 0;
    while k + 3 < toks.len() {
        let is_call = is_word(&toks[k].0, "ml")
            && toks[k + 1].0 == Token::Period
            && matches!(&toks[k + 2].0, Token::Word(w) if is_preprocessor(&w.value))
            && toks[k + 3].0 == Token::LParen;
        if !is_call {
            k += 1;
            continue;
        }
        let Token::Word(w) = &toks[k + 2].0 else { unreachable!() };
        let function = w.value.to_ascii_uppercase();
        let (end, args) =
            call_args(sql, &toks, k + 3).ok_or_else(|| syntax(format!("ML.{function}( is not closed")))?;
        let args: Vec<String> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let mut last = end;
        let mut over = None;
        if end + 2 < toks.len() && is_word(&toks[end + 1].0, "over") {
            if toks[end + 2].0 != Token::LParen {
                return Err(syntax(format!("ML.{function}(…) OVER must be followed by (…), e.g. OVER ()")));
            }
            let (over_end, _) = call_args(sql, &toks, end + 2)
                .ok_or_else(|| syntax(format!("ML.{function}(…) OVER ( is not closed")))?;
            over = Some(sql[toks[end + 2].1 + 1..toks[over_end].1].trim().to_string());
            last = over_end;
        }
        calls.push(PreCall { span: toks[k].1..toks[last].1 + 1, function, args, over });
        k = last + 1;
    }
    Ok(calls)
}

/// A call's value, given its statistics' values (SQL expressions).
type Render = Box<dyn Fn(&[String]) -> String + Send + Sync>;

/// One statistic of a call's input: an aggregate call in SQL, and whether
/// it is a DOUBLE (kept at seven significant digits in a model) or a value
/// of its own type (a mode, a vocabulary), kept exactly.
struct Stat {
    sql: String,
    double: bool,
}

impl Stat {
    fn double(sql: String) -> Self {
        Self { sql, double: true }
    }

    fn value(sql: String) -> Self {
        Self { sql, double: false }
    }
}

/// What a call computes: statistics of its input, and its value given
/// their values.
struct Plan {
    stats: Vec<Stat>,
    render: Render,
}

/// The input as a DOUBLE.
fn double(x: &str) -> String {
    format!("CAST(({x}) AS DOUBLE)")
}

/// `ML.<f>(x, …)` refused: a form or argument Sentio does not take.
fn unsupported(call: &PreCall, why: &str) -> MlError {
    MlError::Syntax(format!("ML.{}: {why}", call.function))
}

/// A number literal of an argument.
fn number_arg(call: &PreCall, i: usize, what: &str) -> Result<f64, MlError> {
    call.args
        .get(i)
        .and_then(|a| a.trim().parse::<f64>().ok())
        .ok_or_else(|| unsupported(call, &format!("{what} must be a number")))
}

/// Argument `i`, a whole number in `range`, or `default` when the call
/// does not have it.
fn whole_arg(call: &PreCall, i: usize, what: &str, default: u64, range: Range<u64>) -> Result<u64, MlError> {
    let Some(arg) = call.args.get(i) else { return Ok(default) };
    match arg.trim().parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(unsupported(
            call,
            &format!("{what} must be a whole number from {} to {}, not {arg}", range.start, range.end - 1),
        )),
    }
}

/// Argument `i`, a string literal (lower case), or `default`.
fn word_arg(call: &PreCall, i: usize, what: &str, default: &str) -> Result<String, MlError> {
    let Some(arg) = call.args.get(i) else { return Ok(default.to_string()) };
    let a = arg.trim();
    let inner = a
        .strip_prefix('\'')
        .and_then(|a| a.strip_suffix('\''))
        .or_else(|| a.strip_prefix('"').and_then(|a| a.strip_suffix('"')))
        .ok_or_else(|| unsupported(call, &format!("{what} must be a string literal, not {arg}")))?;
    Ok(inner.to_ascii_lowercase())
}

/// Argument `i`, `TRUE` or `FALSE`, or `default`.
fn bool_arg(call: &PreCall, i: usize, what: &str, default: bool) -> Result<bool, MlError> {
    match call.args.get(i).map(|a| a.trim().to_ascii_uppercase()) {
        None => Ok(default),
        Some(a) if a == "TRUE" => Ok(true),
        Some(a) if a == "FALSE" => Ok(false),
        Some(a) => Err(unsupported(call, &format!("{what} must be TRUE or FALSE, not {a}"))),
    }
}

/// Fails unless the call has from `min` to `max` arguments; `form` shows
/// how to write it.
fn arity(call: &PreCall, min: usize, max: usize, form: &str) -> Result<(), MlError> {
    if (min..=max).contains(&call.args.len()) { Ok(()) } else { Err(unsupported(call, &format!("write {form}"))) }
}

/// Whether `ML.<function>` computes statistics over rows (and so must be
/// written with `OVER (…)`).
fn needs_over(function: &str) -> bool {
    !matches!(function, "BUCKETIZE" | "NORMALIZER" | "POLYNOMIAL_EXPAND" | "FEATURE_CROSS" | "HASH_BUCKETIZE")
}

/// The statistics and expression of `call`.
fn plan(call: &PreCall) -> Result<Plan, MlError> {
    let f = call.function.as_str();
    match (&call.over, needs_over(f)) {
        (None, true) => {
            return Err(unsupported(call, &format!("write ML.{f}(…) OVER () (its statistics are over rows)")));
        }
        (Some(_), false) => return Err(unsupported(call, "takes no OVER (…): it computes each row on its own")),
        _ => {}
    }
    match f {
        "ONE_HOT_ENCODER" | "LABEL_ENCODER" | "MULTI_HOT_ENCODER" | "POLYNOMIAL_EXPAND" | "FEATURE_CROSS"
        | "HASH_BUCKETIZE" => encoders::plan(call),
        _ => scalers::plan(call),
    }
}

/// Replaces each call's span in `sql` with `values(call index, call)`.
fn splice(sql: &str, calls: &[PreCall], mut value: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (i, c) in calls.iter().enumerate() {
        out.push_str(&sql[last..c.span.start]);
        out.push_str(&value(i));
        last = c.span.end;
    }
    out.push_str(&sql[last..]);
    out
}

/// `sql` with its preprocessing calls as window aggregates over their
/// `OVER (…)`: statistics computed in the cluster, over the rows the query
/// reads (or each partition).
pub fn rewrite_windows(sql: &str) -> Result<String, MlError> {
    let calls = find_calls(sql)?;
    if calls.is_empty() {
        return Ok(sql.to_string());
    }
    let mut rendered = Vec::with_capacity(calls.len());
    for c in &calls {
        let p = plan(c)?;
        let over = c.over.clone().unwrap_or_default();
        let stats: Vec<String> = p
            .stats
            .iter()
            .map(|s| {
                if s.double {
                    format!("CAST({} OVER ({over}) AS DOUBLE)", s.sql)
                } else {
                    format!("({} OVER ({over}))", s.sql)
                }
            })
            .collect();
        rendered.push((p.render)(&stats));
    }
    Ok(splice(sql, &calls, |i| rendered[i].clone()))
}

/// `exprs` (a `TRANSFORM` clause's expressions) with their preprocessing
/// calls' statistics computed over the rows of `rows` (a query) and written
/// in as constants. Each call must have an empty `OVER ()`: a model's
/// statistics are over all its training rows.
pub async fn resolve(ml: &MlContext, exprs: &[String], rows: &str) -> Result<Vec<String>, MlError> {
    let mut plans = Vec::new();
    let mut all_stats = Vec::new();
    for e in exprs {
        let calls = find_calls(e)?;
        let mut here = Vec::new();
        for c in calls {
            if c.over.as_deref().is_some_and(|o| !o.is_empty()) {
                return Err(unsupported(&c, "in TRANSFORM, write OVER (): the statistics are over the training rows"));
            }
            let p = plan(&c)?;
            let first = all_stats.len();
            all_stats.extend(p.stats.iter().map(|s| (s.sql.clone(), s.double)));
            here.push((c, p, first));
        }
        plans.push(here);
    }
    let values: Vec<String> = if all_stats.is_empty() {
        Vec::new()
    } else {
        let select: Vec<String> = all_stats
            .iter()
            .enumerate()
            .map(
                |(i, (s, double))| {
                    if *double { format!("CAST({s} AS DOUBLE) AS s{i}") } else { format!("{s} AS s{i}") }
                },
            )
            .collect();
        let sql = format!("SELECT {} FROM ({rows}) __t", select.join(", "));
        let batches = ml.collect(&sql).await?;
        let b = batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| MlError::Internal("no statistics".into()))?;
        let mut values = Vec::with_capacity(b.num_columns());
        for (c, (_, double)) in all_stats.iter().enumerate() {
            values.push(if *double { constant(b.column(c)) } else { exact_constant(b.column(c))? });
        }
        values
    };
    Ok(exprs
        .iter()
        .zip(plans)
        .map(|(e, here)| {
            let calls: Vec<PreCall> = here.iter().map(|(c, _, _)| c.clone()).collect();
            splice(e, &calls, |i| {
                let (_, p, first) = &here[i];
                (p.render)(&values[*first..*first + p.stats.len()])
            })
        })
        .collect())
}

/// A statistic as a DOUBLE literal, at seven significant digits so that a
/// model does not depend on the order a cluster summed its rows in (as
/// `CREATE MODEL` keeps its own scaling); NULL when there were no values.
fn constant(column: &datafusion::arrow::array::ArrayRef) -> String {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Float64Type;
    let v = column.as_primitive::<Float64Type>();
    if v.is_null(0) || !v.value(0).is_finite() {
        return "CAST(NULL AS DOUBLE)".into();
    }
    format!("CAST({:?} AS DOUBLE)", sentio_udfs::ml::significant::round_significant(v.value(0)))
}

/// A statistic of its own type as a SQL literal: text quoted, anything
/// else cast from its printed form to its Arrow type.
fn exact_constant(column: &datafusion::arrow::array::ArrayRef) -> Result<String, MlError> {
    use datafusion::common::ScalarValue;
    let v = match ScalarValue::try_from_array(column, 0)? {
        ScalarValue::Dictionary(_, inner) => *inner,
        v => v,
    };
    Ok(match &v {
        v if v.is_null() => "NULL".to_string(),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => lit(s),
        v => format!("arrow_cast({}, '{}')", lit(&v.to_string()), v.data_type()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_with_their_windows() {
        let sql = "SELECT ml.standard_scaler(a + 1) OVER (PARTITION BY g) AS s, ML.BUCKETIZE(b, [1, 2]) FROM t";
        let calls = find_calls(sql).unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].function, "STANDARD_SCALER");
        assert_eq!(calls[0].args, ["a + 1"]);
        assert_eq!(calls[0].over.as_deref(), Some("PARTITION BY g"));
        assert_eq!(&sql[calls[0].span.clone()], "ml.standard_scaler(a + 1) OVER (PARTITION BY g)");
        assert_eq!(calls[1].args, ["b", "[1, 2]"]);
        assert_eq!(calls[1].over, None);
        assert!(find_calls("SELECT ML.PREDICT(MODEL m, (SELECT 1))").unwrap().is_empty());
    }

    #[test]
    fn every_function_rewrites() {
        let cases = [
            ("ML.ROBUST_SCALER(x, [10, 90], FALSE) OVER ()", "approx_percentile_cont(CAST((x) AS DOUBLE), 0.9)"),
            ("ML.IMPUTER(s, 'most_frequent') OVER ()", "COALESCE((s), (sentio_most_frequent((s)) OVER ()))"),
            ("ML.LABEL_ENCODER(s, 2, 2) OVER ()", "sentio_vocab_index((s), (sentio_vocabulary((s), 2, 2) OVER ()))"),
            ("ML.ONE_HOT_ENCODER(s, 'most_frequent') OVER ()", "THEN 0.0 ELSE 1.0"),
            ("ML.MULTI_HOT_ENCODER(tags) OVER ()", "sentio_multi_hot((tags), (sentio_vocabulary((tags), 32000, 5)"),
            ("ML.HASH_BUCKETIZE(s, 3)", "sentio_hash_bucketize((s), 3)"),
            (
                "ML.BUCKETIZE(x, [1, 2, 3, 4], TRUE)",
                "< 2.0 THEN 'bin_1' WHEN CAST((x) AS DOUBLE) < 3.0 THEN 'bin_2' ELSE 'bin_3'",
            ),
            (
                "ML.BUCKETIZE(x, [1, 2], TRUE, 'bucket_names')",
                "(CASE WHEN CAST((x) AS DOUBLE) IS NULL THEN NULL  ELSE 'bin_1' END)",
            ),
            ("ML.NORMALIZER(xs)", "sentio_normalize((xs), 2.0)"),
            ("ML.POLYNOMIAL_EXPAND(STRUCT(2 AS f1, t.b))", "'f1_b', (CAST((2) AS DOUBLE) * CAST((t.b) AS DOUBLE))"),
            ("ML.FEATURE_CROSS(STRUCT('a' AS f1, s))", "named_struct('f1_s', (CAST(('a') AS VARCHAR) || '_' ||"),
        ];
        for (call, expected) in cases {
            let sql = rewrite_windows(&format!("SELECT {call} FROM t")).unwrap();
            assert!(sql.contains(expected), "{call} → {sql}");
        }
    }

    #[test]
    fn windows_and_errors() {
        let sql = rewrite_windows("SELECT ML.MAX_ABS_SCALER(x) OVER () FROM t").unwrap();
        assert_eq!(
            sql,
            "SELECT (CAST((x) AS DOUBLE) / NULLIF(CAST(MAX(ABS(CAST((x) AS DOUBLE))) OVER () AS DOUBLE), 0)) FROM t"
        );
        let bucket = rewrite_windows("SELECT ML.BUCKETIZE(x, [0, 10]) FROM t").unwrap();
        assert!(
            bucket.contains(
                "WHEN CAST((x) AS DOUBLE) < 0.0 THEN 'bin_1' WHEN CAST((x) AS DOUBLE) < 10.0 THEN 'bin_2' ELSE 'bin_3'"
            ),
            "{bucket}"
        );
        let err = |sql: &str| rewrite_windows(sql).unwrap_err().to_string();
        assert!(err("SELECT ML.STANDARD_SCALER(x) FROM t").contains("OVER ()"));
        assert!(err("SELECT ML.BUCKETIZE(x, [1]) OVER () FROM t").contains("takes no OVER"));
        assert!(err("SELECT ML.BUCKETIZE(x, [2, 1]) FROM t").contains("increasing"));
        assert!(err("SELECT ML.IMPUTER(x, 'mode') OVER () FROM t").contains("'most_frequent'"));
        assert!(err("SELECT ML.FEATURE_CROSS(STRUCT(a + 1, b)) FROM t").contains("write a + 1 AS name"));
        assert!(err("SELECT ML.FEATURE_CROSS(STRUCT(a, a)) FROM t").contains("given twice"));
        assert!(err("SELECT ML.POLYNOMIAL_EXPAND(STRUCT(a, b), 5) FROM t").contains("from 1 to 4"));
        assert!(err("SELECT ML.LABEL_ENCODER(s, 0) OVER () FROM t").contains("top_k"));
        assert!(err("SELECT ML.ONE_HOT_ENCODER(s, 'first') OVER () FROM t").contains("'most_frequent'"));
        assert!(err("SELECT ML.HASH_BUCKETIZE(s, -1) FROM t").contains("hash_bucket_size"));
        assert!(err("SELECT ML.ROBUST_SCALER(x, [75, 25]) OVER () FROM t").contains("increasing"));
        assert!(err("SELECT ML.NORMALIZER(xs, 0.5) FROM t").contains("1 or more"));
        assert!(err("SELECT ML.BUCKETIZE(x, [1, 2], FALSE, 'bucket_spans') FROM t").contains("'bucket_ranges_json'"));
        assert!(err("SELECT ML.QUANTILE_BUCKETIZE(x, 2, 'bins') OVER () FROM t").contains("output_format 'bins'"));
        assert!(err("SELECT ML.QUANTILE_BUCKETIZE(x, 1) OVER () FROM t").contains("from 2 to 1000"));
    }
}
