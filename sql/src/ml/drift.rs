//! `ML.VALIDATE_DATA_DRIFT((base), (study) [, STRUCT(…)])` and
//! `ML.VALIDATE_DATA_SKEW(MODEL m, (serving) [, STRUCT(…)])`: how far each
//! column's distribution moved between two sets of rows, with BigQuery
//! ML's metrics, thresholds and `is_anomaly`.
//!
//! The distributions are counted in the cluster (one aggregate per set of
//! rows); the distances are computed here from the counts:
//! * numeric columns: Jensen–Shannon divergence (base-2 logarithms, so from
//!   0 to 1) of their histograms over `num_histogram_buckets` equal-width
//!   buckets spanning both sets' values;
//! * text and boolean columns: the L-infinity distance — the largest
//!   difference in any value's share — or, asked for, Jensen–Shannon
//!   divergence of the values' shares.
//!
//! NULLs are left out of the distributions.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};

use crate::ml::parse::OptValue;
use crate::ml::sqltext::{FeatureKind, feature_kind, values_query};
use crate::ml::{MlContext, MlError};
use crate::sqltext::quote_ident;

/// How distances are measured and judged.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSettings {
    /// Buckets of a numeric column's histogram.
    pub buckets: u32,
    /// Threshold of text columns.
    pub categorical_threshold: f64,
    /// `L_INFTY` or `JENSEN_SHANNON_DIVERGENCE`.
    pub categorical_metric: String,
    /// Threshold of numeric columns.
    pub numerical_threshold: f64,
    /// Per-column thresholds.
    pub thresholds: BTreeMap<String, f64>,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            buckets: 10,
            categorical_threshold: 0.3,
            categorical_metric: "L_INFTY".into(),
            numerical_threshold: 0.3,
            thresholds: BTreeMap::new(),
        }
    }
}

const JSD: &str = "JENSEN_SHANNON_DIVERGENCE";

impl DriftSettings {
    /// The settings of a call's `STRUCT(…)` (`function` names it in
    /// messages); an unknown or malformed one is an error.
    pub fn from_settings(function: &str, settings: &[(String, OptValue)]) -> Result<Self, MlError> {
        let mut out = Self::default();
        let bad = |name: &str, want: &str, got: &OptValue| {
            MlError::Syntax(format!("ML.{function}: {name} must be {want}, not {got}"))
        };
        let share = |name: &str, v: &OptValue| match v {
            OptValue::Num(n) if (0.0..=1.0).contains(n) => Ok(*n),
            other => Err(bad(name, "a number from 0 to 1", other)),
        };
        for (name, v) in settings {
            match name.as_str() {
                "num_histogram_buckets" => match v {
                    OptValue::Num(n) if n.fract() == 0.0 && (2.0..=1000.0).contains(n) => out.buckets = *n as u32,
                    other => return Err(bad(name, "a whole number from 2 to 1000", other)),
                },
                "categorical_default_threshold" => out.categorical_threshold = share(name, v)?,
                "numerical_default_threshold" => out.numerical_threshold = share(name, v)?,
                "categorical_metric_type" => match v {
                    OptValue::Str(m) if ["L_INFTY", JSD].contains(&m.to_ascii_uppercase().as_str()) => {
                        out.categorical_metric = m.to_ascii_uppercase();
                    }
                    other => return Err(bad(name, "'L_INFTY' or 'JENSEN_SHANNON_DIVERGENCE'", other)),
                },
                "numerical_metric_type" => match v {
                    OptValue::Str(m) if m.eq_ignore_ascii_case(JSD) => {}
                    other => return Err(bad(name, "'JENSEN_SHANNON_DIVERGENCE' (Sentio's one numeric metric)", other)),
                },
                "thresholds" => match v {
                    OptValue::Array(items) => {
                        for item in items {
                            match item {
                                OptValue::Struct(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                                    (OptValue::Str(column), t) => {
                                        out.thresholds.insert(column.clone(), share(name, t)?);
                                    }
                                    (other, _) => return Err(bad(name, "[STRUCT('column', threshold), …]", other)),
                                },
                                other => return Err(bad(name, "[STRUCT('column', threshold), …]", other)),
                            }
                        }
                    }
                    other => return Err(bad(name, "[STRUCT('column', threshold), …]", other)),
                },
                "num_quantiles_histogram_buckets" | "num_values_histogram_buckets" | "num_rank_histogram_buckets" => {
                    return Err(MlError::Syntax(format!(
                        "ML.{function}: {name}: Sentio measures numeric columns by equal-width histograms \
                         (num_histogram_buckets) and text columns by all their values; it has no such setting"
                    )));
                }
                other => {
                    return Err(MlError::Syntax(format!(
                        "ML.{function}: {other}: no such setting (ML.{function} takes num_histogram_buckets, \
                         categorical_default_threshold, categorical_metric_type, numerical_default_threshold, \
                         numerical_metric_type, thresholds)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// The columns compared: those of `base` a model could read (numbers,
/// booleans, dates and timestamps as numeric; text as categorical), in
/// order, each of which `study` must have.
fn compared(
    function: &str,
    base: &Schema,
    study: &Schema,
    only: Option<&[String]>,
) -> Result<Vec<(String, FeatureKind)>, MlError> {
    let mut out = Vec::new();
    for f in base.fields() {
        if only.is_some_and(|o| !o.contains(f.name())) {
            continue;
        }
        let kind = match f.data_type() {
            DataType::Boolean => FeatureKind::Categorical,
            t => match feature_kind(t) {
                Some(k) => k,
                None => continue,
            },
        };
        if study.field_with_name(f.name()).is_err() {
            return Err(MlError::Data(format!(
                "ML.{function}: the rows compared have no column {:?}, which the baseline has",
                f.name()
            )));
        }
        out.push((f.name().clone(), kind));
    }
    if out.is_empty() {
        return Err(MlError::Data(format!("ML.{function}: the baseline has no numeric or text column to compare")));
    }
    Ok(out)
}

/// A numeric column's value as DOUBLE.
fn number(name: &str) -> String {
    let c = quote_ident(name);
    format!("CAST({c} AS DOUBLE)")
}

/// Each numeric column's smallest and largest value over both sets.
async fn ranges(ml: &MlContext, numeric: &[&str], base: &str, study: &str) -> Result<Vec<(f64, f64)>, MlError> {
    if numeric.is_empty() {
        return Ok(Vec::new());
    }
    let cols: Vec<String> = numeric.iter().map(|c| quote_ident(c)).collect();
    let aggs: Vec<String> = numeric
        .iter()
        .enumerate()
        .flat_map(|(i, c)| [format!("MIN({}) AS lo{i}", number(c)), format!("MAX({}) AS hi{i}", number(c))])
        .collect();
    let both =
        format!("SELECT {cols} FROM ({base}) __b UNION ALL SELECT {cols} FROM ({study}) __s", cols = cols.join(", "));
    let batches = ml.collect(&format!("SELECT {} FROM ({both}) __u", aggs.join(", "))).await?;
    let b = batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| MlError::Internal("no ranges".into()))?;
    let at = |c: usize| {
        let v = b.column(c).as_primitive::<Float64Type>();
        if v.is_null(0) { f64::NAN } else { v.value(0) }
    };
    Ok((0..numeric.len()).map(|i| (at(2 * i), at(2 * i + 1))).collect())
}

/// Counts of each column's buckets (numeric) or values (text) in `rows`:
/// column index → bucket or value → count.
async fn counts(
    ml: &MlContext,
    columns: &[(String, FeatureKind)],
    ranges: &BTreeMap<usize, (f64, f64)>,
    buckets: u32,
    rows: &str,
) -> Result<BTreeMap<usize, BTreeMap<String, f64>>, MlError> {
    let branches: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, kind))| {
            let c = quote_ident(name);
            let key = match kind {
                FeatureKind::Categorical => format!("CAST({c} AS VARCHAR)"),
                FeatureKind::Numeric => {
                    let (lo, hi) = ranges.get(&i).copied().unwrap_or((0.0, 0.0));
                    let width = if hi > lo { (hi - lo) / f64::from(buckets) } else { 1.0 };
                    format!(
                        "CAST(LEAST(GREATEST(FLOOR(({} - {lo:?}) / {width:?}), 0), {}) AS VARCHAR)",
                        number(name),
                        buckets - 1
                    )
                }
            };
            format!(
                "SELECT CAST({i} AS BIGINT) AS col, {key} AS k, COUNT(*) AS n FROM ({rows}) __r WHERE {c} IS NOT NULL GROUP BY 2"
            )
        })
        .collect();
    let mut out: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
    for b in ml.collect(&branches.join(" UNION ALL ")).await? {
        let keys = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let (col, key, n) =
            (b.column(0).as_primitive::<Int64Type>(), keys.as_string::<i32>(), b.column(2).as_primitive::<Int64Type>());
        for r in 0..b.num_rows() {
            out.entry(col.value(r) as usize).or_default().insert(key.value(r).to_string(), n.value(r) as f64);
        }
    }
    Ok(out)
}

/// Jensen–Shannon divergence (base 2) of two count vectors over the same keys.
pub fn jensen_shannon(p: &BTreeMap<String, f64>, q: &BTreeMap<String, f64>) -> f64 {
    let (tp, tq) = (p.values().sum::<f64>(), q.values().sum::<f64>());
    if tp == 0.0 || tq == 0.0 {
        return if tp == tq { 0.0 } else { 1.0 };
    }
    let kl = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let keys: std::collections::BTreeSet<&String> = p.keys().chain(q.keys()).collect();
    let mut d = 0.0;
    for k in keys {
        let a = p.get(k).copied().unwrap_or(0.0) / tp;
        let b = q.get(k).copied().unwrap_or(0.0) / tq;
        let m = (a + b) / 2.0;
        d += 0.5 * kl(a, m) + 0.5 * kl(b, m);
    }
    d.clamp(0.0, 1.0)
}

/// The largest difference of any key's share between two count vectors.
pub fn l_infinity(p: &BTreeMap<String, f64>, q: &BTreeMap<String, f64>) -> f64 {
    let (tp, tq) = (p.values().sum::<f64>().max(1.0), q.values().sum::<f64>().max(1.0));
    p.keys()
        .chain(q.keys())
        .map(|k| (p.get(k).copied().unwrap_or(0.0) / tp - q.get(k).copied().unwrap_or(0.0) / tq).abs())
        .fold(0.0, f64::max)
}

/// The drift of each compared column from `base` to `study` (queries;
/// their schemas given), as a query of BigQuery ML's columns: `input`,
/// `metric`, `threshold`, `value`, `is_anomaly`. `only` limits the columns
/// (a model's features).
pub async fn drift_sql(
    ml: &MlContext,
    function: &str,
    (base, base_schema): (&str, &Schema),
    (study, study_schema): (&str, &Schema),
    only: Option<&[String]>,
    settings: &DriftSettings,
) -> Result<String, MlError> {
    let columns = compared(function, base_schema, study_schema, only)?;
    let numeric: Vec<(usize, &str)> = columns
        .iter()
        .enumerate()
        .filter(|(_, (_, k))| *k == FeatureKind::Numeric)
        .map(|(i, (n, _))| (i, n.as_str()))
        .collect();
    let names: Vec<&str> = numeric.iter().map(|(_, n)| *n).collect();
    let spans = ranges(ml, &names, base, study).await?;
    let ranges: BTreeMap<usize, (f64, f64)> = numeric.iter().map(|(i, _)| *i).zip(spans).collect();
    let base_counts = counts(ml, &columns, &ranges, settings.buckets, base).await?;
    let study_counts = counts(ml, &columns, &ranges, settings.buckets, study).await?;
    let empty = BTreeMap::new();
    let (mut inputs, mut metrics, mut thresholds, mut values, mut anomalies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, (name, kind)) in columns.iter().enumerate() {
        let (p, q) = (base_counts.get(&i).unwrap_or(&empty), study_counts.get(&i).unwrap_or(&empty));
        let (metric, default) = match kind {
            FeatureKind::Numeric => (JSD.to_string(), settings.numerical_threshold),
            FeatureKind::Categorical => (settings.categorical_metric.clone(), settings.categorical_threshold),
        };
        let value = if metric == JSD { jensen_shannon(p, q) } else { l_infinity(p, q) };
        let threshold = settings.thresholds.get(name).copied().unwrap_or(default);
        inputs.push(name.clone());
        metrics.push(metric);
        thresholds.push(threshold);
        values.push(value);
        anomalies.push(value > threshold);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("input", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("threshold", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("is_anomaly", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(inputs)),
            Arc::new(StringArray::from(metrics)),
            Arc::new(Float64Array::from(thresholds)),
            Arc::new(Float64Array::from(values)),
            Arc::new(BooleanArray::from(anomalies)),
        ],
    )
    .map_err(|e| MlError::Internal(e.to_string()))?;
    values_query(&schema, &[batch])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn distances() {
        let a = counts(&[("x", 50.0), ("y", 50.0)]);
        let b = counts(&[("x", 5.0), ("y", 5.0)]);
        assert_eq!(jensen_shannon(&a, &b), 0.0, "the same shares");
        assert_eq!(l_infinity(&a, &b), 0.0);
        let c = counts(&[("z", 7.0)]);
        assert!((jensen_shannon(&a, &c) - 1.0).abs() < 1e-12, "disjoint: the largest divergence");
        assert_eq!(l_infinity(&a, &c), 1.0);
        let d = counts(&[("x", 75.0), ("y", 25.0)]);
        assert!((l_infinity(&a, &d) - 0.25).abs() < 1e-12);
        // JS(½,½ ; ¾,¼) by hand: m = (⅝, ⅜).
        let m = [0.625f64, 0.375];
        let kl = |p: [f64; 2]| p.iter().zip(m).map(|(p, m)| p * (p / m).log2()).sum::<f64>();
        let want = 0.5 * kl([0.5, 0.5]) + 0.5 * kl([0.75, 0.25]);
        assert!((jensen_shannon(&a, &d) - want).abs() < 1e-12);
    }

    #[test]
    fn settings_are_checked() {
        let s = |pairs: Vec<(&str, OptValue)>| {
            DriftSettings::from_settings(
                "VALIDATE_DATA_DRIFT",
                &pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>(),
            )
        };
        let ok = s(vec![
            ("num_histogram_buckets", OptValue::Num(20.0)),
            (
                "thresholds",
                OptValue::Array(vec![OptValue::Struct(vec![OptValue::Str("f03".into()), OptValue::Num(0.1)])]),
            ),
            ("categorical_metric_type", OptValue::Str("jensen_shannon_divergence".into())),
        ])
        .unwrap();
        assert_eq!((ok.buckets, ok.thresholds["f03"], ok.categorical_metric.as_str()), (20, 0.1, JSD));
        assert!(s(vec![("numerical_default_threshold", OptValue::Num(2.0))]).is_err());
        assert!(
            s(vec![("num_rank_histogram_buckets", OptValue::Num(5.0))])
                .unwrap_err()
                .to_string()
                .contains("no such setting")
        );
        assert!(s(vec![("colour", OptValue::Num(5.0))]).unwrap_err().to_string().contains("colour: no such setting"));
    }
}
