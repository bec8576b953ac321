//! `sentio_train(spec, group, label, feature, …)`: the aggregate that trains.
//!
//! The client writes `CREATE MODEL` as
//!
//! ```sql
//! SELECT g.grp, sentio_train('<spec json>', g.grp, label, f1, f2, …)
//! FROM (<training query>) CROSS JOIN (VALUES (0), (1), …) g(grp)
//! GROUP BY g.grp
//! ```
//!
//! Partial aggregates encode their rows where the data is (naive Bayes and
//! linear regression keep only exact, mergeable sums instead — no row
//! leaves its partition); each group's final aggregate (one per group,
//! spread over the executors by the shuffle) sorts its rows into a
//! deterministic order and trains the shares of the model its buckets own
//! ([`TrainSpec::buckets_of`], [`crate::ml::model::train_buckets`]): a
//! forest's 16 buckets train in as many groups as the cluster runs tasks at
//! once, each group from one copy of the rows, binned once. The result of
//! each group is a list of `ModelPayload` parts, one per bucket; the client
//! merges them in bucket order, so the model is the same whatever the number
//! of groups.
//!
//! Memory is bounded: an accumulator holding more than twice the spec's row
//! cap ([`TrainSpec::row_cap`], the `max_training_rows` option; k-NN's
//! `max_stored_rows`) keeps only the cap's worth of rows of smallest seeded
//! hash, so the final step fits a seeded sample of at most that many rows, the
//! same sample however the rows were partitioned.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use prost::Message;
use sentio_proto::{TrainingPart, TrainingRows};

use crate::ml::Dataset;
use crate::ml::bayes::Stats;
use crate::ml::cuts::bin_row;
use crate::ml::linear::Gram;
use crate::ml::metrics_udaf::MetricsAccumulator;
use crate::ml::model::{Share, linear_payload, naive_bayes_payload, train_buckets};
use crate::ml::spec::{Algorithm, TrainSpec};
use crate::ml::text::strings;
use crate::ml::tree::Binned;

/// The `sentio_train` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TrainUdaf {
    signature: Signature,
}

impl Default for TrainUdaf {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainUdaf {
    /// Creates the function.
    pub fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

/// The text value of a literal argument (the JSON spec or model reference):
/// text, or text in a dictionary (how Sentio's SQL passes a long constant,
/// so that it is not copied into every row).
pub(crate) fn literal_text(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>, what: &str) -> Result<String> {
    fn text(v: &ScalarValue) -> Option<&String> {
        match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s),
            ScalarValue::Dictionary(_, inner) => text(inner),
            _ => None,
        }
    }
    match expr.downcast_ref::<Literal>().and_then(|l| text(l.value())) {
        Some(s) => Ok(s.clone()),
        None => exec_err!("the first argument of {what} must be a text literal"),
    }
}

impl AggregateUDFImpl for TrainUdaf {
    fn name(&self) -> &str {
        "sentio_train"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(parts_type())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let spec_expr = args.exprs.first().ok_or_else(|| exec_datafusion_err!("sentio_train needs a spec"))?;
        let spec = TrainSpec::from_json(&literal_text(spec_expr, "sentio_train")?)?;
        if spec.algorithm == Algorithm::MatrixFactorization {
            return exec_err!("sentio_train does not train matrix factorization (sentio_als does)");
        }
        let flags = usize::from(spec.eval_flag);
        if args.exprs.len() != 3 + spec.features.len() + flags {
            return exec_err!(
                "sentio_train: the spec has {} features, {} were given",
                spec.features.len(),
                args.exprs.len().saturating_sub(3 + flags)
            );
        }
        if spec.cuts.as_ref().is_some_and(|c| c.len() != spec.width()) {
            return exec_err!("sentio_train: the spec's cut points are not one list per encoded feature");
        }
        Ok(Box::new(TrainAccumulator::new(Arc::new(spec))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[rows]", args.name), DataType::LargeBinary, true)),
            Arc::new(Field::new(format!("{}[group]", args.name), DataType::Int64, true)),
        ])
    }
}

/// Collects encoded rows (naive Bayes, linear regression: sums); trains at
/// `evaluate`.
#[derive(Debug)]
pub struct TrainAccumulator {
    spec: Arc<TrainSpec>,
    /// The training task's group (its second argument): which buckets it
    /// trains ([`TrainSpec::buckets_of`]).
    group: Option<i64>,
    rows: TrainingRows,
    stats: Option<Stats>,
    gram: Option<Gram>,
}

/// The aggregate's result type: a list of encoded `ModelPayload` parts.
pub fn parts_type() -> DataType {
    DataType::new_list(DataType::LargeBinary, true)
}

/// The aggregate's result: `parts`, or NULL for none (no rows).
fn parts_value(parts: Vec<Vec<u8>>) -> Result<ScalarValue> {
    if parts.is_empty() {
        return ScalarValue::try_from(&parts_type());
    }
    let values: Vec<ScalarValue> = parts.into_iter().map(|p| ScalarValue::LargeBinary(Some(p))).collect();
    Ok(ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::LargeBinary)))
}

/// `host:pid` of this process.
fn worker() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// A hash of a row and the seed: the order rows are trained in, and which
/// rows a sample keeps (the smallest hashes).
fn row_hash(seed: u64, x: &[f32], y: u32) -> u64 {
    // Seed 0 leaves the FNV offset as it is.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(y) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for v in x {
        h ^= u64::from(v.to_bits());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

impl TrainAccumulator {
    fn new(spec: Arc<TrainSpec>) -> Self {
        let rows = TrainingRows { num_features: spec.width() as u32, ..Default::default() };
        let stats = (spec.algorithm == Algorithm::NaiveBayes).then(|| Stats::new(spec.labels.len(), spec.width()));
        let gram = (spec.algorithm == Algorithm::LinearReg).then(|| Gram::new(spec.width()));
        Self { spec, group: None, rows, stats, gram }
    }

    /// Row order by hash (then content), the same wherever the rows came from.
    fn sorted_order(&self) -> Vec<usize> {
        let w = self.rows.num_features as usize;
        let mut order: Vec<usize> = (0..self.rows.y.len()).collect();
        order.sort_by(|&a, &b| {
            let target = |i: usize| self.rows.target.get(i).copied().unwrap_or(0.0);
            self.rows.hash[a]
                .cmp(&self.rows.hash[b])
                .then(self.rows.y[a].cmp(&self.rows.y[b]))
                .then(target(a).total_cmp(&target(b)))
                .then_with(|| {
                    if self.rows.x.is_empty() {
                        self.rows.bins[a * w..(a + 1) * w].cmp(&self.rows.bins[b * w..(b + 1) * w])
                    } else {
                        let (xa, xb) = (&self.rows.x[a * w..(a + 1) * w], &self.rows.x[b * w..(b + 1) * w]);
                        xa.iter()
                            .zip(xb)
                            .map(|(p, q)| p.total_cmp(q))
                            .find(|o| o.is_ne())
                            .unwrap_or(std::cmp::Ordering::Equal)
                    }
                })
                // Rows alike in all else but the flag: the order must not
                // be the order they arrived in.
                .then_with(|| self.rows.eval.get(a).cmp(&self.rows.eval.get(b)))
        });
        order
    }

    /// Keeps memory bounded: past twice the row cap, only the `cap` rows of
    /// smallest hash stay. Whatever the partitioning, the rows that survive
    /// every prune include the `cap` smallest of all, so the final sample is
    /// the same on any cluster.
    fn prune(&mut self) {
        let Some(cap) = self.spec.row_cap() else { return };
        if self.rows.y.len() > cap.saturating_mul(2) {
            self.keep(cap);
        }
    }

    /// Keeps a row's features: its bins when the spec has cut points for a
    /// tree model (one byte a feature instead of four), else its values.
    fn push_features(&mut self, row: &[f32]) {
        match cuts_of(&self.spec) {
            Some(cuts) => bin_row(cuts, row, &mut self.rows.bins),
            None => self.rows.x.extend_from_slice(row),
        }
    }

    fn keep(&mut self, cap: usize) {
        let mut order = self.sorted_order();
        order.truncate(cap);
        self.rows = reordered(&self.rows, &order);
    }
}

/// `rows`' rows `order` (indices), in that order.
fn reordered(rows: &TrainingRows, order: &[usize]) -> TrainingRows {
    let w = rows.num_features as usize;
    let mut out = TrainingRows {
        num_features: rows.num_features,
        x: Vec::with_capacity(if rows.x.is_empty() { 0 } else { order.len() * w }),
        bins: Vec::with_capacity(if rows.bins.is_empty() { 0 } else { order.len() * w }),
        y: Vec::with_capacity(order.len()),
        hash: Vec::with_capacity(order.len()),
        stats: None,
        naive_bayes_fixed: Vec::new(),
        linear_gram: Vec::new(),
        target: Vec::with_capacity(if rows.target.is_empty() { 0 } else { order.len() }),
        eval: Vec::with_capacity(if rows.eval.is_empty() { 0 } else { order.len() }),
    };
    for &i in order {
        if rows.x.is_empty() {
            out.bins.extend_from_slice(&rows.bins[i * w..(i + 1) * w]);
        } else {
            out.x.extend_from_slice(&rows.x[i * w..(i + 1) * w]);
        }
        out.y.push(rows.y[i]);
        if let Some(t) = rows.target.get(i) {
            out.target.push(*t);
        }
        if let Some(e) = rows.eval.get(i) {
            out.eval.push(*e);
        }
        out.hash.push(rows.hash[i]);
    }
    out
}

impl TrainAccumulator {
    /// Linear regression: adds a batch's rows (label DOUBLE, standardised by
    /// the spec's target) to the sums; NULL labels are skipped, NaN ones are
    /// an error.
    fn add_to_gram(&mut self, label: &ArrayRef, features: &[ArrayRef]) -> Result<()> {
        let Some(target) = self.spec.target else {
            return exec_err!("sentio_train: a linear regression spec needs its label's statistics");
        };
        let labels = finite_labels(label)?;
        let x = self.spec.encode_f64(features)?;
        let w = self.spec.width();
        let gram = self.gram.as_mut().expect("called for linear regression");
        for (r, y) in labels.iter().enumerate() {
            let Some(y) = y else { continue };
            gram.add(&x[r * w..(r + 1) * w], (y - target.mean) / target.std)
                .map_err(|e| exec_datafusion_err!("linear_reg: {e}"))?;
        }
        Ok(())
    }
}

impl TrainAccumulator {
    /// A regressor's rows (label DOUBLE): encoded like a classifier's, the
    /// label kept in `target` and in the row's hash.
    fn add_regression_rows(
        &mut self,
        label: &ArrayRef,
        features: &[ArrayRef],
        flagged: Option<&dyn Fn(usize) -> bool>,
    ) -> Result<()> {
        let labels = finite_labels(label)?;
        let x = self.spec.encode(features)?;
        let w = self.spec.width();
        for (r, y) in labels.iter().enumerate() {
            let Some(y) = y else { continue };
            let row = &x[r * w..(r + 1) * w];
            self.rows.hash.push(row_hash(self.spec.seed, row, 0) ^ y.to_bits().wrapping_mul(0x9e37_79b9_7f4a_7c15));
            self.push_features(row);
            self.rows.y.push(0);
            self.rows.target.push(*y);
            if let Some(flagged) = flagged {
                self.rows.eval.push(flagged(r));
            }
        }
        Ok(())
    }
}

/// The spec's cut points, when a tree model's rows are binned as they arrive.
fn cuts_of(spec: &TrainSpec) -> Option<&[Vec<f32>]> {
    spec.cuts.as_deref().filter(|_| spec.algorithm.grows_trees())
}

/// A regressor's labels (passed as DOUBLE): NULL for a NULL label, an error
/// for a NaN or infinite one.
fn finite_labels(label: &ArrayRef) -> Result<Vec<Option<f64>>> {
    if label.data_type() != &DataType::Float64 {
        return exec_err!("sentio_train: a regressor's label must be passed as DOUBLE");
    }
    let labels = label.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    labels
        .iter()
        .map(|y| match y {
            Some(y) if !y.is_finite() => {
                exec_err!("the label is {y} in a training row; a regressor's label must be a finite number")
            }
            y => Ok(y),
        })
        .collect()
}

impl TrainAccumulator {
    /// `sentio_metrics`' metrics over the training rows of `data` (not the
    /// held-out ones) given each row's class probabilities: the numbers an
    /// evaluation of the model over the same rows gives, since those sums do
    /// not depend on order. NaN stands for an undefined metric.
    fn metrics_of(&self, data: &Dataset, probs: &[f64]) -> Vec<f64> {
        let k = self.spec.labels.len().max(1);
        let mut metrics = MetricsAccumulator::new(self.spec.labels.clone());
        for (r, p) in probs.chunks_exact(k).enumerate().filter(|(r, _)| !data.eval.get(*r).copied().unwrap_or(false)) {
            metrics.add(Some(data.y[r] as usize), p);
        }
        metrics.metrics().iter().map(|m| m.unwrap_or(f64::NAN)).collect()
    }
}

impl Accumulator for TrainAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [_, group, label, rest @ ..] = values else {
            return exec_err!("sentio_train: too few arguments");
        };
        // The evaluation-row flag comes last when the spec says so.
        let (features, flags) = match rest.split_last() {
            Some((flag, features)) if self.spec.eval_flag => (features, Some(flag.as_boolean())),
            _ => (rest, None),
        };
        let flagged = |r: usize| flags.is_some_and(|f| f.is_valid(r) && f.value(r));
        if self.group.is_none() && !group.is_empty() {
            let g = group.as_primitive::<Int64Type>();
            if g.is_valid(0) {
                self.group = Some(g.value(0));
            }
        }
        if self.gram.is_some() {
            return self.add_to_gram(label, features);
        }
        if self.spec.algorithm.is_regressor() {
            self.add_regression_rows(label, features, flags.is_some().then_some(&flagged))?;
            self.prune();
            return Ok(());
        }
        let x = self.spec.encode(features)?;
        let w = self.spec.width();
        let labels = strings(label, "the label")?;
        for (r, l) in labels.iter().enumerate() {
            let Some(l) = l else { continue };
            let Ok(c) = self.spec.labels.binary_search_by(|s| s.as_str().cmp(l)) else {
                return exec_err!("label value {l:?} was not seen when the model's labels were collected");
            };
            let row = &x[r * w..(r + 1) * w];
            if let Some(stats) = &mut self.stats {
                stats.add(row, c);
                continue;
            }
            self.rows.hash.push(row_hash(self.spec.seed, row, c as u32));
            self.push_features(row);
            self.rows.y.push(c as u32);
            if flags.is_some() {
                self.rows.eval.push(flagged(r));
            }
        }
        self.prune();
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if let Some(gram) = &self.gram {
            if gram.rows() == 0 {
                return parts_value(Vec::new());
            }
            let started = std::time::Instant::now();
            let mut payload = linear_payload(&self.spec, gram).map_err(|e| exec_datafusion_err!("linear_reg: {e}"))?;
            if crate::cancel::cancelled() {
                return Err(datafusion::error::DataFusionError::Execution("training was cancelled".into()));
            }
            payload.parts.push(TrainingPart {
                bucket: 0,
                worker: worker(),
                rows: gram.rows(),
                millis: started.elapsed().as_millis() as u64,
                training_metrics: Vec::new(),
            });
            return parts_value(vec![payload.encode_to_vec()]);
        }
        if let Some(stats) = &self.stats {
            if stats.rows() == 0 {
                return parts_value(Vec::new());
            }
            let started = std::time::Instant::now();
            let mut payload = naive_bayes_payload(&self.spec, stats);
            payload.parts.push(TrainingPart {
                bucket: 0,
                worker: worker(),
                rows: stats.rows(),
                millis: started.elapsed().as_millis() as u64,
                training_metrics: Vec::new(),
            });
            return parts_value(vec![payload.encode_to_vec()]);
        }
        if self.rows.y.is_empty() {
            return parts_value(Vec::new());
        }
        let mut order = self.sorted_order();
        if let Some(cap) = self.spec.row_cap() {
            order.truncate(cap);
        }
        // The rows in training order; the accumulator's copy is freed before
        // the fit.
        let mut rows = reordered(&std::mem::take(&mut self.rows), &order);
        let binned =
            cuts_of(&self.spec).map(|cuts| Binned::from_row_major(std::mem::take(&mut rows.bins), cuts.to_vec()));
        let data = Dataset {
            w: rows.y.iter().map(|y| self.spec.class_weights.get(*y as usize).copied().unwrap_or(1.0)).collect(),
            x: rows.x,
            y: rows.y,
            width: self.spec.width(),
            target: rows.target,
            eval: rows.eval,
        };
        let group = u32::try_from(self.group.unwrap_or(0)).unwrap_or(0);
        let buckets = self.spec.buckets_of(group);
        let trained = crate::cancel::long(|| train_buckets(&self.spec, &data, binned, &buckets));
        // Training gives up early in a cancelled task; its partial model
        // must not leave it.
        if crate::cancel::cancelled() {
            return Err(datafusion::error::DataFusionError::Execution("training was cancelled".into()));
        }
        let worker = worker();
        let parts = trained
            .into_iter()
            .zip(buckets)
            .map(|(Share { mut payload, took, training_probs }, bucket)| {
                payload.parts.push(TrainingPart {
                    bucket,
                    worker: worker.clone(),
                    rows: data.rows() as u64,
                    millis: took.as_millis() as u64,
                    training_metrics: training_probs.map_or_else(Vec::new, |p| self.metrics_of(&data, &p)),
                });
                payload.encode_to_vec()
            })
            .collect();
        parts_value(parts)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.rows.x.capacity() * 4
            + self.rows.bins.capacity()
            + self.rows.y.capacity() * 4
            + self.rows.hash.capacity() * 8
            + self.rows.target.capacity() * 8
            + self.gram.as_ref().map_or(0, Gram::heap_size)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        if let Some(stats) = &self.stats {
            self.rows.naive_bayes_fixed = stats.to_bytes();
        }
        if let Some(gram) = &self.gram {
            self.rows.linear_gram = gram.to_bytes();
        }
        Ok(vec![
            ScalarValue::LargeBinary(Some(std::mem::take(&mut self.rows).encode_to_vec())),
            ScalarValue::Int64(self.group),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [rows, group] = states else {
            return exec_err!("sentio_train: bad state");
        };
        let rows = rows.as_binary::<i64>();
        let group = group.as_primitive::<Int64Type>();
        for i in 0..rows.len() {
            if self.group.is_none() && group.is_valid(i) {
                self.group = Some(group.value(i));
            }
            if rows.is_null(i) {
                continue;
            }
            let part = TrainingRows::decode(rows.value(i))
                .map_err(|e| exec_datafusion_err!("sentio_train: corrupt partial state: {e}"))?;
            if let Some(stats) = &mut self.stats {
                let other = Stats::from_bytes(&part.naive_bayes_fixed, self.spec.labels.len(), self.spec.width())
                    .map_err(|e| exec_datafusion_err!("sentio_train: {e}"))?;
                stats.merge(&other).map_err(|e| exec_datafusion_err!("sentio_train: {e}"))?;
                continue;
            }
            if let Some(gram) = &mut self.gram {
                let other = Gram::from_bytes(&part.linear_gram, self.spec.width())
                    .map_err(|e| exec_datafusion_err!("sentio_train: {e}"))?;
                gram.merge(&other).map_err(|e| exec_datafusion_err!("sentio_train: {e}"))?;
                continue;
            }
            if part.num_features != self.rows.num_features && !part.y.is_empty() {
                return exec_err!("sentio_train: partial states of different widths");
            }
            self.rows.x.extend(part.x);
            self.rows.bins.extend(part.bins);
            self.rows.y.extend(part.y);
            self.rows.hash.extend(part.hash);
            self.rows.target.extend(part.target);
            self.rows.eval.extend(part.eval);
        }
        self.prune();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use sentio_proto::ModelPayload;

    use super::*;
    use crate::ml::cuts::feature_cuts;
    use crate::ml::spec::{Encoding, FeatureSpec, Params};

    fn spec(algorithm: Algorithm, max_training_rows: u64) -> Arc<TrainSpec> {
        let feature = |name: &str| FeatureSpec {
            name: name.into(),
            sql_type: "Float64".into(),
            encoding: Encoding::Numeric { mean: 0.0, std: 1.0 },
        };
        Arc::new(TrainSpec {
            algorithm,
            features: vec![feature("a"), feature("b")],
            labels: vec!["no".into(), "yes".into()],
            class_weights: vec![1.0, 1.0],
            seed: 7,
            buckets: 1,
            groups: 0,
            params: Params { max_training_rows, num_trees: 3, max_depth: 4, ..Params::default() },
            target: None,
            eval_flag: false,
            cuts: None,
            evaluate_training_rows: false,
        })
    }

    /// Rows `from..to`: two features and a label that depends on them.
    fn batch(from: usize, to: usize) -> Vec<ArrayRef> {
        batch_of_group(from, to, 0)
    }

    /// [`batch`] for training task `group`.
    fn batch_of_group(from: usize, to: usize, group: i64) -> Vec<ArrayRef> {
        let a: Vec<f64> = (from..to).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        let b: Vec<f64> = (from..to).map(|i| ((i * 53) % 89) as f64 / 10.0).collect();
        let label: Vec<&str> = a.iter().zip(&b).map(|(a, b)| if a + b > 9.0 { "yes" } else { "no" }).collect();
        let n = to - from;
        vec![
            Arc::new(StringArray::from(vec!["spec"; n])),
            Arc::new(Int64Array::from(vec![group; n])),
            Arc::new(StringArray::from(label)),
            Arc::new(Float64Array::from(a)),
            Arc::new(Float64Array::from(b)),
        ]
    }

    /// The parts an accumulator trains, decoded.
    fn parts(acc: &mut TrainAccumulator) -> Vec<ModelPayload> {
        let ScalarValue::List(list) = acc.evaluate().unwrap() else { panic!("not a list of parts") };
        if list.is_null(0) {
            return Vec::new();
        }
        let items = list.value(0);
        let items = items.as_binary::<i64>();
        (0..items.len()).map(|i| ModelPayload::decode(items.value(i)).unwrap()).collect()
    }

    fn trained(acc: &mut TrainAccumulator) -> (ModelPayload, u64) {
        let mut parts = parts(acc);
        assert_eq!(parts.len(), 1, "one part");
        let mut payload = parts.remove(0);
        let rows = payload.parts.iter().map(|p| p.rows).sum();
        payload.parts.clear();
        // Iteration times are metadata (CREATE MODEL takes them out too).
        if let Some(sentio_proto::model_payload::Algorithm::Logistic(l)) = &mut payload.algorithm {
            l.iteration_millis.clear();
        }
        (payload, rows)
    }

    /// One accumulator over all rows, against `splits` partial accumulators
    /// (fed in batches of 100) merged into a final one, as a cluster does.
    fn one_and_split(algorithm: Algorithm, cap: u64, splits: &[usize]) -> ((ModelPayload, u64), (ModelPayload, u64)) {
        let total = *splits.last().unwrap();
        let mut one = TrainAccumulator::new(spec(algorithm, cap));
        for start in (0..total).step_by(100) {
            one.update_batch(&batch(start, (start + 100).min(total))).unwrap();
            assert!(one.rows.y.len() <= 2 * cap as usize, "{} rows held, cap {cap}", one.rows.y.len());
        }
        let mut last = TrainAccumulator::new(spec(algorithm, cap));
        let mut from = 0;
        for &to in splits {
            let mut partial = TrainAccumulator::new(spec(algorithm, cap));
            for start in (from..to).step_by(100) {
                partial.update_batch(&batch(start, (start + 100).min(to))).unwrap();
            }
            let state: Vec<ArrayRef> = partial.state().unwrap().iter().map(|v| v.to_array().unwrap()).collect();
            last.merge_batch(&state).unwrap();
            assert!(last.rows.y.len() <= 2 * cap as usize);
            from = to;
        }
        (trained(&mut one), trained(&mut last))
    }

    #[test]
    fn a_row_cap_keeps_the_same_sample_however_the_rows_are_split() {
        for algorithm in [Algorithm::LogisticReg, Algorithm::DecisionTree, Algorithm::RandomForest] {
            let (one, split) = one_and_split(algorithm, 150, &[130, 700, 2000]);
            assert_eq!(one.1, 150, "{algorithm:?}: fit on the capped sample");
            assert_eq!(split.1, 150);
            assert_eq!(one.0, split.0, "{algorithm:?}: another sample on another split");
        }
    }

    #[test]
    fn groups_of_buckets_train_the_parts_one_task_per_bucket_does() {
        // Each bucket's part (without where and how long it trained), by
        // bucket, when `groups` tasks share 4 buckets.
        let by_bucket = |groups: u32| {
            let spec = TrainSpec { buckets: 4, groups, ..(*spec(Algorithm::RandomForest, 100_000)).clone() };
            let tasks = if groups == 0 { 4 } else { groups };
            let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
            for group in 0..tasks {
                let mut acc = TrainAccumulator::new(Arc::new(spec.clone()));
                for start in (0..600).step_by(100) {
                    acc.update_batch(&batch_of_group(start, start + 100, i64::from(group))).unwrap();
                }
                for mut part in parts(&mut acc) {
                    let bucket = part.parts[0].bucket;
                    assert_eq!(part.parts.len(), 1);
                    assert_eq!(part.parts[0].rows, 600);
                    part.parts.clear();
                    out.push((bucket, part.encode_to_vec()));
                }
            }
            out.sort();
            out
        };
        let one_per_bucket = by_bucket(0);
        assert_eq!(one_per_bucket.iter().map(|(b, _)| *b).collect::<Vec<_>>(), [0, 1, 2, 3]);
        for groups in [1, 2, 3, 9] {
            assert_eq!(by_bucket(groups), one_per_bucket, "{groups} groups");
        }
    }

    #[test]
    fn rows_binned_where_they_are_read_train_the_model_binned_in_the_last_step() {
        // With the cuts the last step would find on every row, the same
        // model from rows shipped as bytes and merged from three partial
        // states.
        for algorithm in [Algorithm::DecisionTree, Algorithm::RandomForest, Algorithm::BoostedTreeClassifier] {
            let plain = spec(algorithm, 100_000);
            let all = batch(0, 2000);
            let x = plain.encode(&all[3..]).unwrap();
            let cuts = (0..2).map(|f| feature_cuts(x.iter().skip(f).step_by(2).copied().collect())).collect();
            let binned = Arc::new(TrainSpec { cuts: Some(cuts), ..(*plain).clone() });
            let mut last = TrainAccumulator::new(binned.clone());
            for (from, to) in [(0, 700), (700, 1300), (1300, 2000)] {
                let mut partial = TrainAccumulator::new(binned.clone());
                partial.update_batch(&batch(from, to)).unwrap();
                assert!(partial.rows.x.is_empty() && partial.rows.bins.len() == 2 * (to - from), "one byte a feature");
                let state: Vec<ArrayRef> = partial.state().unwrap().iter().map(|v| v.to_array().unwrap()).collect();
                last.merge_batch(&state).unwrap();
            }
            let mut whole = TrainAccumulator::new(plain);
            whole.update_batch(&all).unwrap();
            let (a, b) = (trained(&mut whole), trained(&mut last));
            if let Some(sentio_proto::model_payload::Algorithm::Boosted(_)) = &a.0.algorithm {
                let strip = |p: &ModelPayload| match &p.algorithm {
                    Some(sentio_proto::model_payload::Algorithm::Boosted(m)) => {
                        (m.trees.clone(), m.base.clone(), m.loss_history.clone())
                    }
                    _ => unreachable!(),
                };
                assert_eq!(strip(&a.0), strip(&b.0), "{algorithm:?}");
            } else {
                assert_eq!(a, b, "{algorithm:?}");
            }
        }
    }

    #[test]
    fn under_the_cap_every_row_is_used() {
        let (one, split) = one_and_split(Algorithm::LogisticReg, 5000, &[999, 2000]);
        assert_eq!((one.1, split.1), (2000, 2000));
        assert_eq!(one.0, split.0);
    }

    #[test]
    fn the_seed_chooses_the_sample() {
        let kept = |seed: u64| {
            let mut acc =
                TrainAccumulator::new(Arc::new(TrainSpec { seed, ..(*spec(Algorithm::DecisionTree, 10)).clone() }));
            acc.update_batch(&batch(0, 500)).unwrap();
            // The rows the fit keeps (it frees them once they are in order).
            acc.keep(10);
            // Their values, in a fixed order.
            let mut kept: Vec<Vec<u32>> =
                acc.rows.x.chunks(2).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();
            kept.sort_unstable();
            let (_, rows) = trained(&mut acc);
            assert_eq!(rows, 10);
            kept
        };
        assert_ne!(kept(1), kept(2), "two seeds, one sample");
        assert_eq!(kept(3), kept(3));
    }
}
