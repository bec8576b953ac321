//! `sentio_metrics(labels_json, actual_label, prediction [, threshold])`:
//! classification metrics as BigQuery ML's `ML.EVALUATE` reports them —
//! `precision`, `recall`, `accuracy`, `f1_score`, `log_loss`, `roc_auc`.
//!
//! Binary models report precision, recall and F1 of the positive class (the
//! second label in sorted order); multiclass models their macro averages.
//! A row's predicted class is the most probable one; with a `threshold` (a
//! text literal, binary models only) it is the positive class when its
//! probability is at least the threshold, as `ML.PREDICT` decides with one.
//! `roc_auc` is the area under the ROC curve (binary) or the macro average of
//! the one-vs-rest areas, computed from per-class histograms of predicted
//! probabilities ([`AUC_BINS`] bins), so partial states merge in bounded memory.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

use crate::ml::model::most_probable;
use crate::ml::text::strings;
use crate::ml::train_udaf::literal_text;

/// Histogram bins of predicted probabilities for `roc_auc`.
pub const AUC_BINS: usize = 1000;

/// The metric columns, in output order.
pub const METRICS: [&str; 6] = ["precision", "recall", "accuracy", "f1_score", "log_loss", "roc_auc"];

/// The `sentio_metrics` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MetricsUdaf {
    signature: Signature,
}

impl Default for MetricsUdaf {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsUdaf {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

fn result_fields() -> Fields {
    METRICS.iter().map(|m| Field::new(*m, DataType::Float64, true)).collect()
}

impl AggregateUDFImpl for MetricsUdaf {
    fn name(&self) -> &str {
        "sentio_metrics"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(result_fields()))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let labels_expr = args.exprs.first().ok_or_else(|| exec_datafusion_err!("sentio_metrics needs labels"))?;
        let labels: Vec<String> = serde_json::from_str(&literal_text(labels_expr, "sentio_metrics")?)
            .map_err(|e| exec_datafusion_err!("sentio_metrics: bad labels: {e}"))?;
        let threshold = match args.exprs.get(3) {
            None => None,
            Some(expr) => {
                let text = literal_text(expr, "sentio_metrics' threshold")?;
                let t: f64 = text
                    .parse()
                    .map_err(|_| exec_datafusion_err!("sentio_metrics: threshold {text:?} is no number"))?;
                if labels.len() != 2 {
                    return exec_err!("sentio_metrics: a threshold is for binary models, not {} labels", labels.len());
                }
                Some(t)
            }
        };
        Ok(Box::new(MetricsAccumulator::new(labels).with_threshold(threshold)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[counts]", args.name), DataType::LargeBinary, true))])
    }
}

/// Counts behind the metrics: `[rows, unused, confusion k×k, positives'
/// histograms k×BINS, negatives' histograms k×BINS]`, all whole numbers, and
/// the log-loss sum in fixed point ([`LOSS_SCALE`]): integer sums do not
/// depend on the order in which partitions merge, so the metrics are the same
/// on every run and cluster.
#[derive(Debug)]
pub struct MetricsAccumulator {
    labels: Vec<String>,
    /// The positive class's cut-off (binary models), instead of the most
    /// probable class.
    threshold: Option<f64>,
    counts: Vec<f64>,
    loss_fixed: i128,
}

/// Fixed-point scale of the log-loss sum.
pub const LOSS_SCALE: f64 = 4_294_967_296.0;

impl MetricsAccumulator {
    /// An empty accumulator for `labels` (sorted).
    pub fn new(labels: Vec<String>) -> Self {
        let k = labels.len();
        Self { counts: vec![0.0; 2 + k * k + 2 * k * AUC_BINS], labels, threshold: None, loss_fixed: 0 }
    }

    /// Predicts the positive class (the second label) when its probability
    /// is at least `threshold`, when one is given.
    pub fn with_threshold(mut self, threshold: Option<f64>) -> Self {
        self.threshold = threshold;
        self
    }

    fn k(&self) -> usize {
        self.labels.len()
    }

    /// Adds one row: the true class (None: a label the model does not know)
    /// and the predicted probabilities.
    pub fn add(&mut self, actual: Option<usize>, probs: &[f64]) {
        let k = self.k();
        let predicted = match self.threshold {
            Some(t) if k == 2 => usize::from(probs[1] >= t),
            _ => most_probable(probs),
        };
        self.counts[0] += 1.0;
        let p_true = actual.map_or(0.0, |a| probs[a]);
        self.loss_fixed += (-p_true.clamp(1e-15, 1.0).ln() * LOSS_SCALE).round() as i128;
        let Some(a) = actual else { return };
        self.counts[2 + a * k + predicted] += 1.0;
        let hist = 2 + k * k;
        for (c, p) in probs.iter().enumerate() {
            let bin = ((p * AUC_BINS as f64) as usize).min(AUC_BINS - 1);
            let base = if c == a { hist } else { hist + k * AUC_BINS };
            self.counts[base + c * AUC_BINS + bin] += 1.0;
        }
    }

    fn auc(&self, c: usize) -> Option<f64> {
        let k = self.k();
        let pos = &self.counts[2 + k * k + c * AUC_BINS..][..AUC_BINS];
        let neg = &self.counts[2 + k * k + k * AUC_BINS + c * AUC_BINS..][..AUC_BINS];
        let (tp, tn): (f64, f64) = (pos.iter().sum(), neg.iter().sum());
        if tp == 0.0 || tn == 0.0 {
            return None;
        }
        let mut below = 0.0;
        let mut area = 0.0;
        for b in 0..AUC_BINS {
            area += pos[b] * (below + 0.5 * neg[b]);
            below += neg[b];
        }
        Some(area / (tp * tn))
    }

    /// The metrics, in [`METRICS`] order (None where undefined).
    pub fn metrics(&self) -> [Option<f64>; 6] {
        let k = self.k();
        let n = self.counts[0];
        if n == 0.0 {
            return [None; 6];
        }
        let cm = |a: usize, p: usize| self.counts[2 + a * k + p];
        let per_class = |c: usize| {
            let tp = cm(c, c);
            let predicted: f64 = (0..k).map(|a| cm(a, c)).sum();
            let actual: f64 = (0..k).map(|p| cm(c, p)).sum();
            let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
            let recall = if actual > 0.0 { tp / actual } else { 0.0 };
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            (precision, recall, f1)
        };
        let (precision, recall, f1, auc) = if k == 2 {
            let (p, r, f) = per_class(1);
            (p, r, f, self.auc(1))
        } else {
            let all: Vec<_> = (0..k).map(per_class).collect();
            let mean = |f: fn(&(f64, f64, f64)) -> f64| all.iter().map(f).sum::<f64>() / k as f64;
            let aucs: Vec<f64> = (0..k).filter_map(|c| self.auc(c)).collect();
            let auc = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
            (mean(|t| t.0), mean(|t| t.1), mean(|t| t.2), auc)
        };
        let correct: f64 = (0..k).map(|c| cm(c, c)).sum();
        [Some(precision), Some(recall), Some(correct / n), Some(f1), Some(self.loss_fixed as f64 / LOSS_SCALE / n), auc]
    }
}

impl Accumulator for MetricsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (Some(actual), Some(prediction)) = (values.get(1), values.get(2)) else {
            return exec_err!("sentio_metrics takes (labels, actual label, prediction [, threshold])");
        };
        let actual = strings(actual, "the label")?;
        let Some(prediction) = prediction.as_any().downcast_ref::<StructArray>() else {
            return exec_err!("sentio_metrics: the prediction must be sentio_predict's struct");
        };
        let probs = prediction
            .column_by_name("probs")
            .ok_or_else(|| exec_datafusion_err!("sentio_metrics: prediction without probs"))?
            .as_list::<i32>();
        let k = self.k();
        for (r, a) in actual.iter().enumerate() {
            let Some(a) = a else { continue };
            let entries = probs.value(r);
            let entries = entries.as_struct();
            let p = entries.column(1).as_primitive::<Float64Type>();
            if p.len() != k {
                return exec_err!("sentio_metrics: {} probabilities for {k} labels", p.len());
            }
            let row: Vec<f64> = p.values().iter().copied().collect();
            let class = self.labels.binary_search_by(|l| l.as_str().cmp(a)).ok();
            self.add(class, &row);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let values: Vec<ArrayRef> = self
            .metrics()
            .iter()
            .map(|m| Arc::new(datafusion::arrow::array::Float64Array::from(vec![*m])) as ArrayRef)
            .collect();
        Ok(ScalarValue::Struct(Arc::new(StructArray::new(result_fields(), values, None))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.counts.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut bytes: Vec<u8> = self.counts.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.extend(self.loss_fixed.to_le_bytes());
        Ok(vec![ScalarValue::LargeBinary(Some(bytes))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = states[0].as_binary::<i64>();
        for i in 0..states.len() {
            if states.is_null(i) {
                continue;
            }
            let bytes = states.value(i);
            if bytes.len() != self.counts.len() * 8 + 16 {
                return exec_err!("sentio_metrics: partial state of another size");
            }
            let (counts, loss) = bytes.split_at(self.counts.len() * 8);
            self.loss_fixed += i128::from_le_bytes(loss.try_into().expect("16 bytes"));
            for (c, chunk) in self.counts.iter_mut().zip(counts.chunks_exact(8)) {
                *c += f64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_metrics() {
        let mut m = MetricsAccumulator::new(vec!["miss".into(), "hit".into()]);
        // labels sorted as given: class 1 ("hit") is positive.
        m.add(Some(1), &[0.2, 0.8]); // TP
        m.add(Some(1), &[0.6, 0.4]); // FN
        m.add(Some(0), &[0.7, 0.3]); // TN
        m.add(Some(0), &[0.1, 0.9]); // FP
        let [p, r, a, f, ll, auc] = m.metrics();
        assert_eq!((p, r, a, f), (Some(0.5), Some(0.5), Some(0.5), Some(0.5)));
        let want_ll = -(0.8f64.ln() + 0.4f64.ln() + 0.7f64.ln() + 0.1f64.ln()) / 4.0;
        assert!((ll.unwrap() - want_ll).abs() < 1e-9);
        // positives score 0.8, 0.4; negatives 0.3, 0.9: 2 of 4 pairs ordered.
        assert!((auc.unwrap() - 0.5).abs() < 1e-12);

        // With a threshold of 0.35 the second row (0.4) becomes a true
        // positive; the metrics of the probabilities stay as they were.
        let mut t = MetricsAccumulator::new(vec!["miss".into(), "hit".into()]).with_threshold(Some(0.35));
        for (a, probs) in [(1, [0.2, 0.8]), (1, [0.6, 0.4]), (0, [0.7, 0.3]), (0, [0.1, 0.9])] {
            t.add(Some(a), &probs);
        }
        let [p, r, a, _, tll, tauc] = t.metrics();
        assert_eq!((p, r, a), (Some(2.0 / 3.0), Some(1.0), Some(0.75)));
        assert_eq!((tll, tauc), (ll, auc));
    }
}
