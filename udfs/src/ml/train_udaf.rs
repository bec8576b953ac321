//! `sentio_train(spec, bucket, label, feature, …)`: the aggregate that trains.
//!
//! The client writes `CREATE MODEL` as
//!
//! ```sql
//! SELECT b.bucket, sentio_train('<spec json>', b.bucket, label, f1, f2, …)
//! FROM (<training query>) CROSS JOIN (VALUES (0), (1), …) b(bucket)
//! GROUP BY b.bucket
//! ```
//!
//! Partial aggregates encode their rows where the data is (naive Bayes keeps
//! only exact, mergeable statistics instead); each bucket's final
//! aggregate (one per bucket, spread over the executors by the shuffle) sorts
//! its rows into a deterministic order and trains its share of the model
//! ([`crate::ml::model::train_bucket`]). The result of each group is a
//! `ModelPayload` part; the client merges the parts.

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
use crate::ml::model::{naive_bayes_payload, train_bucket};
use crate::ml::spec::{Algorithm, TrainSpec};
use crate::ml::text::strings;

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
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// The text value of a literal argument (the JSON spec or model reference).
pub(crate) fn literal_text(expr: &Arc<dyn datafusion::physical_expr::PhysicalExpr>, what: &str) -> Result<String> {
    match expr.downcast_ref::<Literal>().map(Literal::value) {
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
            Ok(s.clone())
        }
        _ => exec_err!("the first argument of {what} must be a text literal"),
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
        Ok(DataType::LargeBinary)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let spec_expr = args
            .exprs
            .first()
            .ok_or_else(|| exec_datafusion_err!("sentio_train needs a spec"))?;
        let spec = TrainSpec::from_json(&literal_text(spec_expr, "sentio_train")?)?;
        if args.exprs.len() != 3 + spec.features.len() {
            return exec_err!(
                "sentio_train: the spec has {} features, {} were given",
                spec.features.len(),
                args.exprs.len().saturating_sub(3)
            );
        }
        Ok(Box::new(TrainAccumulator::new(Arc::new(spec))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(format!("{}[rows]", args.name), DataType::LargeBinary, true)),
            Arc::new(Field::new(format!("{}[bucket]", args.name), DataType::Int64, true)),
        ])
    }
}

/// Collects encoded rows (naive Bayes: statistics); trains at `evaluate`.
#[derive(Debug)]
pub struct TrainAccumulator {
    spec: Arc<TrainSpec>,
    bucket: Option<i64>,
    rows: TrainingRows,
    stats: Option<Stats>,
}

/// `host:pid` of this process.
fn worker() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

fn row_hash(x: &[f32], y: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(y);
    for v in x {
        h ^= u64::from(v.to_bits());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

impl TrainAccumulator {
    fn new(spec: Arc<TrainSpec>) -> Self {
        let rows = TrainingRows {
            num_features: spec.width() as u32,
            ..Default::default()
        };
        let stats = (spec.algorithm == Algorithm::NaiveBayes).then(|| Stats::new(spec.labels.len(), spec.width()));
        Self { spec, bucket: None, rows, stats }
    }

    /// Row order by hash (then content), the same wherever the rows came from.
    fn sorted_order(&self) -> Vec<usize> {
        let w = self.rows.num_features as usize;
        let mut order: Vec<usize> = (0..self.rows.y.len()).collect();
        order.sort_by(|&a, &b| {
            self.rows.hash[a]
                .cmp(&self.rows.hash[b])
                .then(self.rows.y[a].cmp(&self.rows.y[b]))
                .then_with(|| {
                    let (xa, xb) = (&self.rows.x[a * w..(a + 1) * w], &self.rows.x[b * w..(b + 1) * w]);
                    xa.iter().zip(xb).map(|(p, q)| p.total_cmp(q)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
                })
        });
        order
    }

    /// k-NN keeps a bounded, deterministic sample: the rows of smallest hash.
    fn prune(&mut self) {
        let cap = self.spec.params.max_stored_rows as usize;
        if self.spec.algorithm != Algorithm::Knn || self.rows.y.len() <= cap.saturating_mul(2).max(1) {
            return;
        }
        self.keep(cap);
    }

    fn keep(&mut self, cap: usize) {
        let mut order = self.sorted_order();
        order.truncate(cap);
        self.rows = self.reordered(&order);
    }

    fn reordered(&self, order: &[usize]) -> TrainingRows {
        let w = self.rows.num_features as usize;
        let mut out = TrainingRows {
            num_features: self.rows.num_features,
            x: Vec::with_capacity(order.len() * w),
            y: Vec::with_capacity(order.len()),
            hash: Vec::with_capacity(order.len()),
            stats: None,
            naive_bayes_fixed: Vec::new(),
        };
        for &i in order {
            out.x.extend_from_slice(&self.rows.x[i * w..(i + 1) * w]);
            out.y.push(self.rows.y[i]);
            out.hash.push(self.rows.hash[i]);
        }
        out
    }
}

impl Accumulator for TrainAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [_, bucket, label, features @ ..] = values else {
            return exec_err!("sentio_train: too few arguments");
        };
        if self.bucket.is_none() && !bucket.is_empty() {
            let b = bucket.as_primitive::<Int64Type>();
            if b.is_valid(0) {
                self.bucket = Some(b.value(0));
            }
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
            self.rows.hash.push(row_hash(row, c as u32));
            self.rows.x.extend_from_slice(row);
            self.rows.y.push(c as u32);
        }
        self.prune();
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if let Some(stats) = &self.stats {
            if stats.rows() == 0 {
                return Ok(ScalarValue::LargeBinary(None));
            }
            let started = std::time::Instant::now();
            let mut payload = naive_bayes_payload(&self.spec, stats);
            payload.parts.push(TrainingPart {
                bucket: 0,
                worker: worker(),
                rows: stats.rows(),
                millis: started.elapsed().as_millis() as u64,
            });
            return Ok(ScalarValue::LargeBinary(Some(payload.encode_to_vec())));
        }
        if self.rows.y.is_empty() {
            return Ok(ScalarValue::LargeBinary(None));
        }
        if self.spec.algorithm == Algorithm::Knn {
            self.keep(self.spec.params.max_stored_rows as usize);
        }
        let order = self.sorted_order();
        let rows = self.reordered(&order);
        let data = Dataset {
            w: rows.y.iter().map(|y| self.spec.class_weights.get(*y as usize).copied().unwrap_or(1.0)).collect(),
            x: rows.x,
            y: rows.y,
            width: self.spec.width(),
        };
        let bucket = u32::try_from(self.bucket.unwrap_or(0)).unwrap_or(0);
        let started = std::time::Instant::now();
        let mut payload = train_bucket(&self.spec, &data, bucket);
        payload.parts.push(TrainingPart {
            bucket,
            worker: worker(),
            rows: data.rows() as u64,
            millis: started.elapsed().as_millis() as u64,
        });
        Ok(ScalarValue::LargeBinary(Some(payload.encode_to_vec())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.x.capacity() * 4 + self.rows.y.capacity() * 4 + self.rows.hash.capacity() * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        if let Some(stats) = &self.stats {
            self.rows.naive_bayes_fixed = stats.to_bytes();
        }
        Ok(vec![
            ScalarValue::LargeBinary(Some(std::mem::take(&mut self.rows).encode_to_vec())),
            ScalarValue::Int64(self.bucket),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [rows, bucket] = states else {
            return exec_err!("sentio_train: bad state");
        };
        let rows = rows.as_binary::<i64>();
        let bucket = bucket.as_primitive::<Int64Type>();
        for i in 0..rows.len() {
            if self.bucket.is_none() && bucket.is_valid(i) {
                self.bucket = Some(bucket.value(i));
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
            if part.num_features != self.rows.num_features && !part.y.is_empty() {
                return exec_err!("sentio_train: partial states of different widths");
            }
            self.rows.x.extend(part.x);
            self.rows.y.extend(part.y);
            self.rows.hash.extend(part.hash);
        }
        self.prune();
        Ok(())
    }
}
