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

use std::ops::Range;

use datafusion::sql::sqlparser::tokenizer::Token;

use crate::ml::parse::{call_args, is_word, located_tokens};
use crate::ml::{MlContext, MlError};

/// BigQuery ML's preprocessing functions, which Sentio has or refuses.
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

/// The preprocessing functions Sentio has.
const SUPPORTED: [&str; 7] = [
    "STANDARD_SCALER",
    "MIN_MAX_SCALER",
    "MAX_ABS_SCALER",
    "ROBUST_SCALER",
    "IMPUTER",
    "QUANTILE_BUCKETIZE",
    "BUCKETIZE",
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

/// A call's value, given its statistics' values (SQL expressions, DOUBLE).
type Render = Box<dyn Fn(&[String]) -> String + Send + Sync>;

/// What a call computes: statistics of its input (aggregate calls, in
/// SQL), and its value given their values.
struct Plan {
    stats: Vec<String>,
    render: Render,
}

/// The input as a DOUBLE.
fn double(x: &str) -> String {
    format!("CAST(({x}) AS DOUBLE)")
}

/// `ML.<f>(x, …)` refused: Sentio does not have it, or not that form.
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

/// The statistics and expression of `call`.
fn plan(call: &PreCall) -> Result<Plan, MlError> {
    let f = call.function.as_str();
    if !SUPPORTED.contains(&f) {
        return Err(unsupported(
            call,
            &format!(
                "Sentio does not have ML.{f} yet; it has ML.{} (text is one-hot encoded automatically)",
                SUPPORTED.join(", ML.")
            ),
        ));
    }
    let needs_over = !matches!(f, "BUCKETIZE");
    match (&call.over, needs_over) {
        (None, true) => {
            return Err(unsupported(call, &format!("write ML.{f}(…) OVER () (its statistics are over rows)")));
        }
        (Some(_), false) => return Err(unsupported(call, "takes no OVER (…): it computes each row on its own")),
        _ => {}
    }
    let arity = |n: usize, form: &str| -> Result<(), MlError> {
        if call.args.len() == n { Ok(()) } else { Err(unsupported(call, &format!("write {form}"))) }
    };
    let x = call.args.first().cloned().unwrap_or_default();
    let xd = double(&x);
    let percentile = |p: f64| format!("approx_percentile_cont({xd}, {p:?})");
    Ok(match f {
        "STANDARD_SCALER" => {
            arity(1, "ML.STANDARD_SCALER(x) OVER ()")?;
            Plan {
                stats: vec![format!("AVG({xd})"), format!("STDDEV({xd})")],
                render: Box::new(move |s| format!("(({xd} - {}) / NULLIF({}, 0))", s[0], s[1])),
            }
        }
        "MIN_MAX_SCALER" => {
            arity(1, "ML.MIN_MAX_SCALER(x) OVER ()")?;
            Plan {
                stats: vec![format!("MIN({xd})"), format!("MAX({xd})")],
                render: Box::new(move |s| {
                    let v = format!("(({xd} - {}) / NULLIF({} - {}, 0))", s[0], s[1], s[0]);
                    format!("(CASE WHEN {v} < 0 THEN 0.0 WHEN {v} > 1 THEN 1.0 ELSE {v} END)")
                }),
            }
        }
        "MAX_ABS_SCALER" => {
            arity(1, "ML.MAX_ABS_SCALER(x) OVER ()")?;
            Plan {
                stats: vec![format!("MAX(ABS({xd}))")],
                render: Box::new(move |s| format!("({xd} / NULLIF({}, 0))", s[0])),
            }
        }
        "ROBUST_SCALER" => {
            arity(
                1,
                "ML.ROBUST_SCALER(x) OVER () (Sentio has the defaults only: the median, the 25th-75th percentiles)",
            )?;
            Plan {
                stats: vec![percentile(0.25), percentile(0.5), percentile(0.75)],
                render: Box::new(move |s| format!("(({xd} - {}) / NULLIF({} - {}, 0))", s[1], s[2], s[0])),
            }
        }
        "IMPUTER" => {
            arity(2, "ML.IMPUTER(x, 'mean' | 'median') OVER ()")?;
            let stat = match call.args[1].trim().to_ascii_lowercase().as_str() {
                "'mean'" => format!("AVG({xd})"),
                "'median'" => percentile(0.5),
                other => {
                    return Err(unsupported(
                        call,
                        &format!(
                            "strategy {other}: Sentio imputes numbers with 'mean' or 'median' ('most_frequent' is not supported)"
                        ),
                    ));
                }
            };
            Plan { stats: vec![stat], render: Box::new(move |s| format!("COALESCE({xd}, {})", s[0])) }
        }
        "QUANTILE_BUCKETIZE" => {
            arity(2, "ML.QUANTILE_BUCKETIZE(x, num_buckets) OVER ()")?;
            let n = number_arg(call, 1, "num_buckets")?;
            if n.fract() != 0.0 || !(2.0..=1000.0).contains(&n) {
                return Err(unsupported(call, "num_buckets must be a whole number from 2 to 1000"));
            }
            let n = n as usize;
            let stats = (1..n).map(|i| percentile(i as f64 / n as f64)).collect();
            Plan { stats, render: Box::new(move |s| bins(&xd, s)) }
        }
        "BUCKETIZE" => {
            arity(2, "ML.BUCKETIZE(x, [split points]) (exclude_boundaries is not supported)")?;
            let points = call.args[1].trim();
            let inner = points
                .strip_prefix('[')
                .and_then(|p| p.strip_suffix(']'))
                .ok_or_else(|| unsupported(call, "the split points must be an array of numbers, e.g. [0, 10, 100]"))?;
            let mut values = Vec::new();
            for p in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                values.push(
                    p.parse::<f64>().map_err(|_| unsupported(call, &format!("split point {p} is not a number")))?,
                );
            }
            if values.is_empty() || values.windows(2).any(|w| w[0] >= w[1]) {
                return Err(unsupported(call, "the split points must be increasing numbers, at least one"));
            }
            let literals: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            Plan { stats: Vec::new(), render: Box::new(move |_| bins(&xd, &literals)) }
        }
        other => return Err(MlError::Internal(format!("ML.{other} is listed as supported but has no plan"))),
    })
}

/// `'bin_1'` below the first of `edges`, `'bin_2'` below the second, …,
/// `'bin_<n+1>'` from the last on; NULL for NULL (BigQuery ML's names).
fn bins(x: &str, edges: &[String]) -> String {
    let whens: Vec<String> =
        edges.iter().enumerate().map(|(i, e)| format!("WHEN {x} < {e} THEN 'bin_{}'", i + 1)).collect();
    format!("(CASE WHEN {x} IS NULL THEN NULL {} ELSE 'bin_{}' END)", whens.join(" "), edges.len() + 1)
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
        let stats: Vec<String> = p.stats.iter().map(|s| format!("CAST({s} OVER ({over}) AS DOUBLE)")).collect();
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
            all_stats.extend(p.stats.iter().cloned());
            here.push((c, p, first));
        }
        plans.push(here);
    }
    let values: Vec<String> = if all_stats.is_empty() {
        Vec::new()
    } else {
        let select: Vec<String> =
            all_stats.iter().enumerate().map(|(i, s)| format!("CAST({s} AS DOUBLE) AS s{i}")).collect();
        let sql = format!("SELECT {} FROM ({rows}) __t", select.join(", "));
        let batches = ml.collect(&sql).await?;
        let b = batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| MlError::Internal("no statistics".into()))?;
        (0..b.num_columns()).map(|c| constant(b.column(c))).collect()
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
        assert!(
            err("SELECT ML.IMPUTER(x, 'most_frequent') OVER () FROM t").contains("'most_frequent' is not supported")
        );
        assert!(err("SELECT ML.FEATURE_CROSS(STRUCT(a, b)) FROM t").contains("Sentio does not have ML.FEATURE_CROSS"));
        assert!(err("SELECT ML.QUANTILE_BUCKETIZE(x, 1) OVER () FROM t").contains("from 2 to 1000"));
    }
}
