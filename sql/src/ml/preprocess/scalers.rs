//! Plans of the numeric preprocessing functions: `ML.STANDARD_SCALER`,
//! `ML.MIN_MAX_SCALER`, `ML.MAX_ABS_SCALER`, `ML.ROBUST_SCALER`,
//! `ML.IMPUTER`, `ML.QUANTILE_BUCKETIZE`, `ML.BUCKETIZE` and
//! `ML.NORMALIZER`.

use super::{Plan, PreCall, Stat, arity, bool_arg, double, number_arg, unsupported, word_arg};
use crate::ml::MlError;
use crate::sqltext::lit;

/// The statistics and expression of a numeric preprocessing call.
pub(super) fn plan(call: &PreCall) -> Result<Plan, MlError> {
    let x = call.args.first().cloned().unwrap_or_default();
    let xd = double(&x);
    let percentile = |p: f64| Stat::double(format!("approx_percentile_cont({xd}, {p:?})"));
    Ok(match call.function.as_str() {
        "STANDARD_SCALER" => {
            arity(call, 1, 1, "ML.STANDARD_SCALER(x) OVER ()")?;
            Plan {
                stats: vec![Stat::double(format!("AVG({xd})")), Stat::double(format!("STDDEV({xd})"))],
                render: Box::new(move |s| format!("(({xd} - {}) / NULLIF({}, 0))", s[0], s[1])),
            }
        }
        "MIN_MAX_SCALER" => {
            arity(call, 1, 1, "ML.MIN_MAX_SCALER(x) OVER ()")?;
            Plan {
                stats: vec![Stat::double(format!("MIN({xd})")), Stat::double(format!("MAX({xd})"))],
                render: Box::new(move |s| {
                    let v = format!("(({xd} - {}) / NULLIF({} - {}, 0))", s[0], s[1], s[0]);
                    format!("(CASE WHEN {v} < 0 THEN 0.0 WHEN {v} > 1 THEN 1.0 ELSE {v} END)")
                }),
            }
        }
        "MAX_ABS_SCALER" => {
            arity(call, 1, 1, "ML.MAX_ABS_SCALER(x) OVER ()")?;
            Plan {
                stats: vec![Stat::double(format!("MAX(ABS({xd}))"))],
                render: Box::new(move |s| format!("({xd} / NULLIF({}, 0))", s[0])),
            }
        }
        "ROBUST_SCALER" => robust_scaler(call, xd)?,
        "IMPUTER" => imputer(call, &x, xd)?,
        "QUANTILE_BUCKETIZE" => {
            arity(call, 2, 3, "ML.QUANTILE_BUCKETIZE(x, num_buckets [, output_format]) OVER ()")?;
            let n = number_arg(call, 1, "num_buckets")?;
            if n.fract() != 0.0 || !(2.0..=1000.0).contains(&n) {
                return Err(unsupported(call, "num_buckets must be a whole number from 2 to 1000"));
            }
            let format = BucketFormat::of(call, 2)?;
            let n = n as usize;
            let stats = (1..n).map(|i| percentile(i as f64 / n as f64)).collect();
            Plan { stats, render: Box::new(move |s| bins(&xd, s, format)) }
        }
        "BUCKETIZE" => bucketize(call, xd)?,
        "NORMALIZER" => normalizer(call, x)?,
        other => return Err(MlError::Internal(format!("ML.{other} has no plan"))),
    })
}

/// `ML.ROBUST_SCALER(x [, quantile_range] [, with_median]
/// [, with_quantile_range]) OVER ()`: `(x − median) / (q_high − q_low)`,
/// each part optional, the range `[25, 75]` by default.
fn robust_scaler(call: &PreCall, xd: String) -> Result<Plan, MlError> {
    arity(
        call,
        1,
        4,
        "ML.ROBUST_SCALER(x [, quantile_range] [, with_median] [, with_quantile_range]) OVER (), e.g. \
         ML.ROBUST_SCALER(x, [10, 90], TRUE, TRUE) OVER ()",
    )?;
    let (low, high) = match call.args.get(1) {
        None => (25.0, 75.0),
        Some(range) => {
            let values = number_list(call, range, "quantile_range")?;
            match values.as_slice() {
                [l, h] if 0.0 <= *l && l < h && *h <= 100.0 => (*l, *h),
                _ => {
                    return Err(unsupported(
                        call,
                        "quantile_range must be two increasing percentiles from 0 to 100, e.g. [25, 75]",
                    ));
                }
            }
        }
    };
    let with_median = bool_arg(call, 2, "with_median", true)?;
    let with_range = bool_arg(call, 3, "with_quantile_range", true)?;
    let percentile = |p: f64| Stat::double(format!("approx_percentile_cont({xd}, {:?})", p / 100.0));
    let mut stats = Vec::new();
    if with_median {
        stats.push(percentile(50.0));
    }
    if with_range {
        stats.push(percentile(low));
        stats.push(percentile(high));
    }
    Ok(Plan {
        stats,
        render: Box::new(move |s| {
            let centred = if with_median { format!("({xd} - {})", s[0]) } else { xd.clone() };
            if with_range {
                let k = usize::from(with_median);
                format!("({centred} / NULLIF({} - {}, 0))", s[k + 1], s[k])
            } else {
                centred
            }
        }),
    })
}

/// `ML.IMPUTER(x, 'mean' | 'median' | 'most_frequent') OVER ()`: `x`, or
/// the statistic where it is NULL. The mean and median are of numbers (a
/// DOUBLE results); the most frequent value keeps `x`'s type, text too.
fn imputer(call: &PreCall, x: &str, xd: String) -> Result<Plan, MlError> {
    arity(call, 2, 2, "ML.IMPUTER(x, 'mean' | 'median' | 'most_frequent') OVER ()")?;
    let stat = match word_arg(call, 1, "strategy", "")?.as_str() {
        "mean" => Stat::double(format!("AVG({xd})")),
        "median" => Stat::double(format!("approx_percentile_cont({xd}, 0.5)")),
        "most_frequent" => {
            let x = format!("({x})");
            let stat = Stat::value(format!("sentio_most_frequent({x})"));
            return Ok(Plan { stats: vec![stat], render: Box::new(move |s| format!("COALESCE({x}, {})", s[0])) });
        }
        other => {
            return Err(unsupported(call, &format!("strategy '{other}': write 'mean', 'median' or 'most_frequent'")));
        }
    };
    Ok(Plan { stats: vec![stat], render: Box::new(move |s| format!("COALESCE({xd}, {})", s[0])) })
}

/// `ML.BUCKETIZE(x, [split points] [, exclude_boundaries] [, output_format])`:
/// the buckets of [`bins`]; with `exclude_boundaries` the lowest and
/// highest split points are left out (`[1, 2, 3, 4]` makes three buckets).
fn bucketize(call: &PreCall, xd: String) -> Result<Plan, MlError> {
    arity(call, 2, 4, "ML.BUCKETIZE(x, [split points] [, exclude_boundaries] [, output_format])")?;
    let mut values = number_list(call, &call.args[1], "the split points")?;
    if values.is_empty() || values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(unsupported(call, "the split points must be increasing numbers, at least one"));
    }
    if bool_arg(call, 2, "exclude_boundaries", false)? {
        values.pop();
        if !values.is_empty() {
            values.remove(0);
        }
    }
    let format = BucketFormat::of(call, 3)?;
    let literals: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    Ok(Plan { stats: Vec::new(), render: Box::new(move |_| bins(&xd, &literals, format)) })
}

/// How `ML.BUCKETIZE` and `ML.QUANTILE_BUCKETIZE` name a bucket (their
/// `output_format` argument).
#[derive(Debug, Clone, Copy, PartialEq)]
enum BucketFormat {
    /// `'bucket_names'` (the default): `bin_1`, `bin_2`, ….
    Names,
    /// `'bucket_ranges'`: `(-inf, 2.5)`, `[2.5, 4.6)`, `[4.6, +inf)`.
    Ranges,
    /// `'bucket_ranges_json'`: `{"start": "-Infinity", "end": "2.5"}`, ….
    RangesJson,
}

impl BucketFormat {
    /// The format argument `index` of `call`, `'bucket_names'` if absent.
    fn of(call: &PreCall, index: usize) -> Result<Self, MlError> {
        match word_arg(call, index, "output_format", "bucket_names")?.as_str() {
            "bucket_names" => Ok(Self::Names),
            "bucket_ranges" => Ok(Self::Ranges),
            "bucket_ranges_json" => Ok(Self::RangesJson),
            other => Err(unsupported(
                call,
                &format!("output_format '{other}': write 'bucket_names', 'bucket_ranges' or 'bucket_ranges_json'"),
            )),
        }
    }

    /// SQL of the name of the bucket from `low` to `high` (SQL numbers;
    /// `None`: unbounded), the `index`th from 1.
    fn name(self, index: usize, low: Option<&str>, high: Option<&str>) -> String {
        match self {
            Self::Names => lit(&format!("bin_{index}")),
            Self::Ranges => {
                let low = low.map_or_else(|| "'(-inf'".to_string(), |l| format!("concat('[', {})", number_text(l)));
                let high = high.map_or_else(|| "'+inf)'".to_string(), |h| format!("concat({}, ')')", number_text(h)));
                format!("concat({low}, ', ', {high})")
            }
            Self::RangesJson => {
                let end = |b: Option<&str>, unbounded: &str| b.map_or_else(|| lit(unbounded), number_text);
                format!(
                    "concat('{{\"start\": \"', {}, '\", \"end\": \"', {}, '\"}}')",
                    end(low, "-Infinity"),
                    end(high, "Infinity")
                )
            }
        }
    }
}

/// SQL of number `e` as text: a whole number without a fraction (`3`, as
/// BigQuery casts 3.0), any other as the shortest text that reads back the
/// same (`2.5`).
fn number_text(e: &str) -> String {
    format!(
        "(CASE WHEN ({e}) = trunc({e}) AND abs({e}) < 1e15 THEN CAST(CAST(({e}) AS BIGINT) AS VARCHAR) \
         ELSE CAST(({e}) AS VARCHAR) END)"
    )
}

/// `ML.NORMALIZER(xs [, p])`: the array over its p-norm (`p` 2 by default;
/// 1 or more, or `'+inf'`).
fn normalizer(call: &PreCall, xs: String) -> Result<Plan, MlError> {
    arity(call, 1, 2, "ML.NORMALIZER(array [, p])")?;
    let p = match call.args.get(1).map(|a| a.trim()) {
        None => "2.0".to_string(),
        Some(a) if matches!(a.to_ascii_lowercase().as_str(), "'+inf'" | "'inf'" | "cast('+inf' as float64)") => {
            "CAST('inf' AS DOUBLE)".to_string()
        }
        Some(_) => {
            let p = number_arg(call, 1, "p")?;
            if !(p >= 1.0 && p.is_finite()) {
                return Err(unsupported(call, "p must be 1 or more, or '+inf'"));
            }
            format!("{p:?}")
        }
    };
    Ok(Plan { stats: Vec::new(), render: Box::new(move |_| format!("sentio_normalize(({xs}), {p})")) })
}

/// An array literal of numbers, `[1, 2.5]`.
fn number_list(call: &PreCall, arg: &str, what: &str) -> Result<Vec<f64>, MlError> {
    let inner = arg
        .trim()
        .strip_prefix('[')
        .and_then(|p| p.strip_suffix(']'))
        .ok_or_else(|| unsupported(call, &format!("{what} must be an array of numbers, e.g. [0, 10, 100]")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<f64>().map_err(|_| unsupported(call, &format!("{what}: {p} is not a number"))))
        .collect()
}

/// The first bucket below the first of `edges`, the second below the
/// second, …, the last from the last edge on, each named in `format`
/// (`'bin_1'`, … by default); NULL for NULL (BigQuery ML's buckets).
fn bins(x: &str, edges: &[String], format: BucketFormat) -> String {
    let name =
        |i: usize| format.name(i + 1, i.checked_sub(1).map(|j| edges[j].as_str()), edges.get(i).map(String::as_str));
    let whens: Vec<String> =
        edges.iter().enumerate().map(|(i, e)| format!("WHEN {x} < {e} THEN {}", name(i))).collect();
    format!("(CASE WHEN {x} IS NULL THEN NULL {} ELSE {} END)", whens.join(" "), name(edges.len()))
}
