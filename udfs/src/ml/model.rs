//! Training a model from encoded rows, merging models trained in parts, and
//! class probabilities and explanations from a trained model.

use std::time::{Duration, Instant};

use datafusion::arrow::array::ArrayRef;
use datafusion::common::{Result as DfResult, exec_err};
use prost::Message;
use sentio_proto::{Forest, Knn, ModelPayload, model_payload::Algorithm as Payload};

use crate::ml::spec::{Algorithm, TrainSpec};
use crate::ml::{Dataset, bayes, boost, knn, linear, logistic, shap, tree};

/// Version of the [`ModelPayload`] encoding this build writes and reads.
pub const PAYLOAD_FORMAT: u32 = 1;

/// One bucket's share of a model, as its training task trained it.
pub struct Share {
    /// The share's parameters.
    pub payload: ModelPayload,
    /// How long it took.
    pub took: Duration,
    /// The model's class probabilities for every row of the data (row-major,
    /// one per label) — those `sentio_predict` gives the rows — when the spec
    /// asked for them ([`TrainSpec::evaluate_training_rows`]) and the
    /// algorithm [evaluates in training](Algorithm::evaluates_in_training).
    pub training_probs: Option<Vec<f64>>,
}

/// Trains the shares of the model that `buckets` (of `spec.buckets`) own.
/// Forests deal their trees out to the buckets
/// (a bucket's share is the same bytes whichever others train beside it;
/// the rows are binned once for all of them); the other algorithms train
/// entirely in bucket 0. Tree models train on `binned` when the rows came
/// binned (the spec's cuts; `data.x` is then empty), else bin `data` first.
/// `data` must be in a deterministic order.
pub fn train_buckets(
    spec: &TrainSpec,
    data: &Dataset,
    mut binned: Option<tree::Binned>,
    buckets: &[u32],
) -> Vec<Share> {
    buckets
        .iter()
        .map(|&bucket| {
            let started = Instant::now();
            let (payload, training_probs) = train_share(spec, data, bucket, &mut binned);
            Share { payload, took: started.elapsed(), training_probs }
        })
        .collect()
}

/// Bucket `bucket`'s share, and its class probabilities of the rows when
/// asked for; a tree model bins `data` into `binned` the first time, unless
/// it came binned.
fn train_share(
    spec: &TrainSpec,
    data: &Dataset,
    bucket: u32,
    binned: &mut Option<tree::Binned>,
) -> (ModelPayload, Option<Vec<f64>>) {
    let evaluate = spec.evaluate_training_rows && spec.algorithm.evaluates_in_training();
    let mut probs = None;
    let classes = spec.labels.len();
    let p = &spec.params;
    let width = spec.width();
    let all_features = width.max(1);
    let algorithm = match spec.algorithm {
        Algorithm::RandomForest | Algorithm::RandomForestRegressor => {
            let regression = spec.algorithm.is_regressor();
            let buckets = spec.buckets.max(1);
            let first = p.num_trees * bucket / buckets;
            let last = p.num_trees * (bucket + 1) / buckets;
            let per_node = if p.colsample_bynode > 0.0 {
                ((width as f64 * p.colsample_bynode).round() as usize).max(1)
            } else {
                ((width as f64).sqrt().round() as usize).max(1)
            };
            let params = tree::TreeParams {
                max_depth: p.max_depth,
                min_child_rows: p.min_child_rows,
                features_per_node: per_node,
                regression,
            };
            let binned = binned.get_or_insert_with(|| tree::Binned::new(data));
            binned.forget_rows();
            Payload::Forest(tree::grow_forest_binned(
                data,
                binned,
                classes,
                &params,
                p.subsample,
                spec.seed,
                first,
                last - first,
            ))
        }
        Algorithm::DecisionTree => {
            let params = tree::TreeParams {
                max_depth: p.max_depth,
                min_child_rows: p.min_child_rows,
                features_per_node: all_features,
                regression: false,
            };
            let count = u32::from(bucket == 0);
            let binned = binned.get_or_insert_with(|| tree::Binned::new(data));
            binned.forget_rows();
            Payload::Forest(tree::grow_forest_binned(data, binned, classes, &params, 1.0, spec.seed, 0, count))
        }
        Algorithm::LogisticReg => {
            let model = logistic::fit(data, classes, p.l2_reg, p.max_iterations, p.min_rel_progress);
            if evaluate {
                probs = Some(row_probs(data.rows(), classes, |r, out| {
                    logistic::probs(&model.weights, width, &data.x[r * width..(r + 1) * width], out)
                }));
            }
            Payload::Logistic(model)
        }
        Algorithm::BoostedTreeClassifier | Algorithm::BoostedTreeRegressor => {
            let binned = binned.get_or_insert_with(|| boost::bin(data));
            let objective = boost_objective(spec);
            let (model, scores) = boost::fit_binned(data, binned, objective, &boost_params(spec), spec.seed);
            if evaluate {
                let outputs = objective.outputs();
                probs = Some(row_probs(data.rows(), classes, |r, out| {
                    boost::link(objective, &scores[r * outputs..][..outputs], out)
                }));
            }
            Payload::Boosted(model)
        }
        Algorithm::NaiveBayes => Payload::NaiveBayes(bayes::fit(data, classes, &spec.class_weights)),
        Algorithm::Knn => Payload::Knn(Knn { num_neighbors: p.num_neighbors, x: data.x.clone(), y: data.y.clone() }),
        Algorithm::MatrixFactorization => unreachable!("sentio_train refuses matrix factorization specs"),
        Algorithm::LinearReg => unreachable!("linear regression is fitted from sums (linear_payload)"),
    };
    let payload = ModelPayload {
        format_version: PAYLOAD_FORMAT,
        num_features: width as u32,
        num_classes: classes as u32,
        algorithm: Some(algorithm),
        parts: Vec::new(),
    };
    (payload, probs)
}

/// `k` probabilities for each of `rows` rows, row-major, as `probs` writes
/// row `r`'s.
fn row_probs(rows: usize, k: usize, probs: impl Fn(usize, &mut [f64])) -> Vec<f64> {
    let mut out = vec![0.0; rows * k];
    out.chunks_exact_mut(k.max(1)).enumerate().for_each(|(r, o)| probs(r, o));
    out
}

/// A naive Bayes model from merged statistics.
pub fn naive_bayes_payload(spec: &TrainSpec, stats: &bayes::Stats) -> ModelPayload {
    ModelPayload {
        format_version: PAYLOAD_FORMAT,
        num_features: spec.width() as u32,
        num_classes: spec.labels.len() as u32,
        algorithm: Some(Payload::NaiveBayes(stats.finish(&spec.class_weights))),
        parts: Vec::new(),
    }
}

/// What a boosted model of `spec` predicts.
pub fn boost_objective(spec: &TrainSpec) -> boost::Objective {
    if spec.algorithm.is_regressor() {
        boost::Objective::Regression
    } else {
        boost::Objective::Classes(spec.labels.len())
    }
}

fn boost_params(spec: &TrainSpec) -> boost::BoostParams {
    let p = &spec.params;
    boost::BoostParams {
        rounds: p.max_iterations,
        learn_rate: p.learn_rate,
        max_depth: p.max_depth,
        subsample: p.subsample,
        colsample_bytree: p.colsample_bytree,
        colsample_bylevel: p.colsample_bylevel,
        // 0 is a forest's "√features"; a boosted model's options never give it.
        colsample_bynode: if p.colsample_bynode > 0.0 { p.colsample_bynode } else { 1.0 },
        parallel_trees: p.num_trees,
        l1: p.l1_reg,
        l2: p.l2_reg,
        min_split_loss: p.min_split_loss,
        min_child_weight: p.min_child_weight,
        early_stop: p.early_stop,
        min_rel_progress: p.min_rel_progress,
    }
}

/// A linear regression from the merged sums of its rows.
pub fn linear_payload(spec: &TrainSpec, gram: &linear::Gram) -> Result<ModelPayload, String> {
    let target = spec.target.ok_or("a linear regression spec needs its label's statistics")?;
    Ok(ModelPayload {
        format_version: PAYLOAD_FORMAT,
        num_features: spec.width() as u32,
        num_classes: 0,
        algorithm: Some(Payload::Linear(gram.fit(spec.params.l1_reg, spec.params.l2_reg, target)?)),
        parts: Vec::new(),
    })
}

/// The most probable class of `probs` (the first of equals): the label a
/// model predicts without a threshold.
///
/// ```
/// assert_eq!(sentio_udfs::ml::model::most_probable(&[0.2, 0.5, 0.5, 0.1]), 1);
/// ```
pub fn most_probable(probs: &[f64]) -> usize {
    (0..probs.len()).fold(0, |b, c| if probs[c] > probs[b] { c } else { b })
}

/// Merges the buckets' parts (in bucket order) into one model.
pub fn merge_parts(parts: Vec<ModelPayload>) -> Result<ModelPayload, String> {
    let mut iter = parts.into_iter();
    let first = iter.next().ok_or("no model parts to merge")?;
    let rest: Vec<ModelPayload> = iter.collect();
    if rest.is_empty() {
        return Ok(first);
    }
    let mut parts = first.parts.clone();
    match first.algorithm {
        Some(Payload::Forest(f)) => {
            let mut forests = vec![f];
            for p in rest {
                parts.extend(p.parts);
                match p.algorithm {
                    Some(Payload::Forest(f)) => forests.push(f),
                    _ => return Err("model parts of different kinds".into()),
                }
            }
            Ok(ModelPayload { algorithm: Some(Payload::Forest(tree::merge_forests(forests))), parts, ..first })
        }
        _ => Err("only forests are trained in several parts".into()),
    }
}

/// A model ready to predict.
#[derive(Debug)]
pub struct Predictor {
    /// Features, labels and encodings.
    pub spec: TrainSpec,
    /// The trained parameters.
    pub payload: ModelPayload,
}

impl Predictor {
    /// Decodes a stored payload and checks that it fits `spec`.
    pub fn decode(spec: TrainSpec, bytes: &[u8]) -> Result<Self, String> {
        let payload = ModelPayload::decode(bytes).map_err(|e| format!("the model file is corrupt: {e}"))?;
        if payload.format_version != PAYLOAD_FORMAT {
            return Err(format!(
                "the model file has format {} and this Sentio reads format {PAYLOAD_FORMAT}; \
                 retrain the model or use a matching Sentio version",
                payload.format_version
            ));
        }
        if payload.num_features as usize != spec.width() || payload.num_classes as usize != spec.labels.len() {
            return Err("the model file does not match its metadata".into());
        }
        let ok = match &payload.algorithm {
            Some(Payload::Forest(f)) => {
                // A regression tree has one value per node.
                let k = if spec.algorithm.is_regressor() { 1 } else { spec.labels.len() };
                !f.trees.is_empty()
                    && f.trees
                        .iter()
                        .all(|t| (t.cover.is_empty() || t.cover.len() == t.feature.len()) && sound(t, spec.width(), k))
            }
            Some(Payload::Logistic(l)) => l.weights.len() == spec.labels.len() * (spec.width() + 1),
            Some(Payload::NaiveBayes(nb)) => {
                nb.count.len() == spec.labels.len()
                    && nb.sum.len() == spec.labels.len() * spec.width()
                    && nb.sum_sq.len() == nb.sum.len()
            }
            Some(Payload::Knn(k)) => {
                k.x.len() == k.y.len() * spec.width() && k.y.iter().all(|y| (*y as usize) < spec.labels.len())
            }
            Some(Payload::Linear(l)) => {
                spec.algorithm.is_regressor()
                    && l.weights.len() == spec.width() + 1
                    && l.weights.iter().all(|w| w.is_finite())
            }
            Some(Payload::Boosted(b)) => {
                let k = boost_objective(&spec).outputs();
                spec.algorithm.is_boosted()
                    && b.outputs as usize == k
                    && b.base.len() == k
                    && b.trees.len() % k == 0
                    && b.trees.iter().all(|t| sound(t, spec.width(), 1))
            }
            None => false,
        };
        if !ok {
            return Err("the model file is corrupt (inconsistent parameters)".into());
        }
        Ok(Self { spec, payload })
    }

    /// Class probabilities of one encoded row, in `spec.labels` order.
    pub fn probs(&self, x: &[f32], out: &mut [f64]) {
        let width = self.spec.width();
        match &self.payload.algorithm {
            Some(Payload::Forest(f)) => forest_probs(f, x, out),
            Some(Payload::Logistic(l)) => logistic::probs(&l.weights, width, x, out),
            Some(Payload::NaiveBayes(nb)) => bayes::probs(nb, width, x, out),
            Some(Payload::Knn(k)) => knn::probs(k, &self.spec.class_weights, width, x, out),
            Some(Payload::Boosted(b)) => {
                boost::link(boost_objective(&self.spec), &boost::scores(b, x), out);
            }
            Some(Payload::Linear(_)) | None => out.fill(0.0),
        }
    }

    /// Class probabilities of `rows` encoded rows (`x`, row-major), `k` per
    /// row into `out` — the same numbers as [`Predictor::probs`] row by row.
    /// Tree models walk one tree over every row before the next (its nodes
    /// stay in cache and the rows' walks overlap), adding to each row in
    /// tree order as the row-by-row walk does.
    pub fn probs_batch(&self, x: &[f32], rows: usize, out: &mut [f64]) {
        let (width, k) = (self.spec.width(), self.spec.labels.len());
        if k == 0 {
            return;
        }
        match &self.payload.algorithm {
            Some(Payload::Forest(f)) => forest_probs_batch(f, x, width, rows, &mut out[..rows * k]),
            Some(Payload::Boosted(b)) => {
                let outputs = b.outputs.max(1) as usize;
                let scores = boost::scores_batch(b, x, width, rows);
                let objective = boost_objective(&self.spec);
                for (s, o) in scores.chunks_exact(outputs).zip(out.chunks_exact_mut(k)) {
                    boost::link(objective, s, o);
                }
            }
            _ => {
                for (r, o) in out.chunks_exact_mut(k).enumerate().take(rows) {
                    self.probs(&x[r * width..(r + 1) * width], o);
                }
            }
        }
    }

    /// A regressor's prediction for each row of the feature columns, each
    /// encoded as its model reads it: linear regression at full precision,
    /// trees in single precision (their thresholds are `f32`). An error for
    /// a classifier.
    pub fn values(&self, features: &[ArrayRef]) -> DfResult<Vec<f64>> {
        let rows = features.first().map_or(0, |c| c.len());
        let width = self.spec.width();
        let tree_values = |value: &dyn Fn(&[f32]) -> f64| -> DfResult<Vec<f64>> {
            let x = self.spec.encode(features)?;
            Ok((0..rows).map(|r| value(&x[r * width..(r + 1) * width])).collect())
        };
        match &self.payload.algorithm {
            Some(Payload::Linear(l)) => {
                let x = self.spec.encode_f64(features)?;
                Ok((0..rows).map(|r| linear::predict(&l.weights, &x[r * width..(r + 1) * width])).collect())
            }
            Some(Payload::Boosted(b)) if self.spec.algorithm.is_regressor() => tree_values(&|x| boost::scores(b, x)[0]),
            Some(Payload::Forest(f)) if self.spec.algorithm.is_regressor() => tree_values(&|x| {
                let mut mean = [0.0];
                forest_probs(f, x, &mut mean);
                mean[0]
            }),
            _ => exec_err!("a {} is not a regressor: it predicts classes", self.spec.algorithm.model_type()),
        }
    }
}

/// One prediction explained: what each encoded feature added to the value
/// explained (a class's probability for trees and forests, its score for
/// logistic regression and boosted trees), from the model's baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The value for a row the model knows nothing of.
    pub baseline: f64,
    /// The value for this row.
    pub prediction: f64,
    /// Each encoded feature's contribution; they sum to `prediction -
    /// baseline`.
    pub contributions: Vec<f64>,
}

impl Predictor {
    /// Explains class `class` at the encoded row `x`: Tree SHAP over a
    /// forest's trees (the class's probability; a regression forest's
    /// prediction, class 0), or over boosted trees (the class's logit; a
    /// regressor's prediction), the linear terms of a logistic regression
    /// (the class's score) or of a linear regression (its prediction). Other
    /// models, and trees grown before node covers were kept, cannot be
    /// explained.
    pub fn explain(&self, x: &[f32], class: usize) -> Result<Explanation, String> {
        let width = self.spec.width();
        // A regressor has one output to explain: its prediction (class 0).
        let k = if self.spec.algorithm.is_regressor() { 1 } else { self.spec.labels.len() };
        if class >= k {
            return Err(format!(
                "a {} has no class {class} to explain (its outputs: {k})",
                self.spec.algorithm.model_type()
            ));
        }
        let mut contributions = vec![0.0; width];
        match &self.payload.algorithm {
            Some(Payload::Forest(f)) => {
                if !f.trees.iter().all(shap::has_covers) {
                    return Err("its trees were grown before Sentio kept the node covers that explanations need: \
                                retrain it"
                        .into());
                }
                let n = f.trees.len() as f64;
                let mut baseline = 0.0;
                for t in &f.trees {
                    baseline += shap::tree_shap(t, x, class, k, &mut contributions);
                }
                contributions.iter_mut().for_each(|c| *c /= n);
                let mut probs = vec![0.0; k];
                forest_probs(f, x, &mut probs);
                Ok(Explanation { baseline: baseline / n, prediction: probs[class], contributions })
            }
            Some(Payload::Boosted(b)) => {
                if !b.trees.iter().all(shap::has_covers) {
                    return Err("its trees lack the node covers that explanations need: retrain it".into());
                }
                // A binary model keeps one score, the second label's log-odds;
                // the first label's is its negative.
                let (output, sign) =
                    if b.outputs <= 1 && k == 2 { (0, if class == 1 { 1.0 } else { -1.0 }) } else { (class, 1.0) };
                let baseline = shap::boosted_shap(b, x, output, &mut contributions);
                contributions.iter_mut().for_each(|c| *c *= sign);
                let prediction = boost::scores(b, x)[output];
                Ok(Explanation { baseline: sign * baseline, prediction: sign * prediction, contributions })
            }
            Some(Payload::Logistic(l)) => {
                let baseline = shap::linear(&l.weights, width, class, x, &mut contributions);
                let prediction = baseline + contributions.iter().sum::<f64>();
                Ok(Explanation { baseline, prediction, contributions })
            }
            Some(Payload::Linear(l)) => {
                let baseline = shap::linear(&l.weights, width, 0, x, &mut contributions);
                let prediction = baseline + contributions.iter().sum::<f64>();
                Ok(Explanation { baseline, prediction, contributions })
            }
            _ => Err(format!(
                "a {} is not explained (trees, forests, boosted trees, linear and logistic regression are)",
                self.spec.algorithm.model_type()
            )),
        }
    }
}

/// Whether `t` is a tree over `width` features with `values` values per
/// node: at least a root, arrays of one length, and every split naming a
/// feature there is and children after it (so a walk ends).
fn sound(t: &sentio_proto::Tree, width: usize, values: usize) -> bool {
    let n = t.feature.len();
    n > 0
        && t.threshold.len() == n
        && t.left.len() == n
        && t.right.len() == n
        && t.probs.len() == n * values
        && (0..n).all(|i| {
            t.feature[i] < 0
                || ((t.feature[i] as usize) < width
                    && (t.left[i] as usize) < n
                    && (t.right[i] as usize) < n
                    && t.left[i] as usize > i
                    && t.right[i] as usize > i)
        })
}

fn forest_probs(f: &Forest, x: &[f32], out: &mut [f64]) {
    forest_probs_batch(f, x, x.len(), 1, out);
}

/// The forest's mean class probabilities of `rows` encoded rows of `width`
/// (`x`, row-major), `out.len() / rows` per row; one tree walks every row
/// before the next (its nodes stay in cache), each row's sum in tree order.
fn forest_probs_batch(f: &Forest, x: &[f32], width: usize, rows: usize, out: &mut [f64]) {
    out.fill(0.0);
    let k = out.len() / rows.max(1);
    for t in &f.trees {
        for (r, o) in out.chunks_exact_mut(k.max(1)).enumerate().take(rows) {
            tree::add_tree_probs(t, &x[r * width..(r + 1) * width], o);
        }
    }
    let n = f.trees.len().max(1) as f64;
    out.iter_mut().for_each(|o| *o /= n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::spec::{Encoding, FeatureSpec, Params};
    use crate::rng::Rng;

    /// Bucket `bucket`'s share alone.
    fn train_bucket(spec: &TrainSpec, data: &Dataset, bucket: u32) -> ModelPayload {
        train_buckets(spec, data, None, &[bucket]).remove(0).payload
    }

    /// Three Gaussian blobs in 4 dimensions (2 informative, 2 noise).
    fn blobs(n: usize, seed: u64) -> Dataset {
        let mut rng = Rng::stream(seed, "blobs", 0);
        let mut d = Dataset { width: 4, ..Default::default() };
        for _ in 0..n {
            let c = (rng.next_u64() % 3) as u32;
            let (cx, cy) = [(0.0, 0.0), (2.0, 0.0), (0.0, 2.0)][c as usize];
            d.x.extend([cx + rng.normal(), cy + rng.normal(), rng.normal(), rng.normal()].map(|v| v as f32));
            d.y.push(c);
            d.w.push(1.0);
        }
        d
    }

    fn spec(algorithm: Algorithm, buckets: u32) -> TrainSpec {
        TrainSpec {
            algorithm,
            features: (0..4)
                .map(|i| FeatureSpec {
                    name: format!("f{i}"),
                    sql_type: "Float64".into(),
                    encoding: Encoding::Numeric { mean: 0.0, std: 1.0 },
                })
                .collect(),
            labels: vec!["a".into(), "b".into(), "c".into()],
            class_weights: vec![1.0; 3],
            seed: 42,
            buckets,
            groups: 0,
            params: Params { num_trees: 20, max_depth: 8, ..Params::default() },
            target: None,
            eval_flag: false,
            cuts: None,
            evaluate_training_rows: false,
        }
    }

    fn accuracy(p: &Predictor, d: &Dataset) -> f64 {
        let mut out = vec![0.0; 3];
        let mut right = 0;
        for r in 0..d.rows() {
            p.probs(&d.x[r * 4..r * 4 + 4], &mut out);
            let best = most_probable(&out);
            right += usize::from(best as u32 == d.y[r]);
            assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-6, "probabilities sum to 1");
        }
        right as f64 / d.rows() as f64
    }

    fn trained(algorithm: Algorithm, buckets: u32, train: &Dataset) -> Predictor {
        let s = spec(algorithm, buckets);
        let parts = (0..buckets).map(|b| train_bucket(&s, train, b)).collect();
        let bytes = merge_parts(parts).unwrap().encode_to_vec();
        Predictor::decode(s, &bytes).unwrap()
    }

    #[test]
    fn batches_predict_what_rows_one_by_one_predict() {
        let (train, test) = (blobs(600, 1), blobs(300, 2));
        for algorithm in [Algorithm::RandomForest, Algorithm::BoostedTreeClassifier, Algorithm::LogisticReg] {
            let p = trained(algorithm, 1, &train);
            let k = p.spec.labels.len();
            let mut batch = vec![0.0; test.rows() * k];
            p.probs_batch(&test.x, test.rows(), &mut batch);
            let mut one = vec![0.0; k];
            for r in 0..test.rows() {
                p.probs(&test.x[r * 4..r * 4 + 4], &mut one);
                assert_eq!(&batch[r * k..(r + 1) * k], &one[..], "{algorithm:?} row {r}");
            }
        }
    }

    #[test]
    fn every_algorithm_learns_blobs() {
        let (train, test) = (blobs(3000, 1), blobs(1000, 2));
        // The Bayes-optimal accuracy of these blobs is about 0.79.
        for algorithm in [
            Algorithm::LogisticReg,
            Algorithm::RandomForest,
            Algorithm::DecisionTree,
            Algorithm::NaiveBayes,
            Algorithm::Knn,
        ] {
            let acc = accuracy(&trained(algorithm, 1, &train), &test);
            assert!(acc > 0.70, "{algorithm:?}: accuracy {acc}");
        }
    }

    #[test]
    fn forests_do_not_depend_on_how_trees_are_dealt() {
        let train = blobs(2000, 3);
        let one = trained(Algorithm::RandomForest, 1, &train);
        let four = trained(Algorithm::RandomForest, 4, &train);
        let (Some(Payload::Forest(a)), Some(Payload::Forest(b))) = (&one.payload.algorithm, &four.payload.algorithm)
        else {
            panic!("forests expected")
        };
        assert_eq!(a.trees.len(), 20);
        assert!(a.trees == b.trees, "the same trees whichever bucket grew them");
        for (x, y) in a.importance_gain.iter().zip(&b.importance_gain) {
            assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0));
        }
    }

    #[test]
    fn regression_forests_fit_a_smooth_function() {
        // y = 3·x0 − x1² + noise; x2, x3 are noise.
        let rows = |n: usize, seed: u64| {
            let mut d = blobs(n, seed);
            d.target = (0..n).map(|r| 3.0 * f64::from(d.x[r * 4]) - f64::from(d.x[r * 4 + 1]).powi(2)).collect();
            d.y.fill(0);
            d
        };
        let (train, test) = (rows(3000, 5), rows(500, 6));
        let s = TrainSpec {
            algorithm: Algorithm::RandomForestRegressor,
            labels: Vec::new(),
            class_weights: Vec::new(),
            target: Some(crate::ml::spec::Target { mean: 0.0, std: 1.0 }),
            params: Params { num_trees: 20, max_depth: 8, colsample_bynode: 0.8, ..Params::default() },
            ..spec(Algorithm::RandomForestRegressor, 2)
        };
        let parts = (0..2).map(|b| train_bucket(&s, &train, b)).collect();
        let p = Predictor::decode(s, &merge_parts(parts).unwrap().encode_to_vec()).unwrap();
        let (mut sse, mut sst) = (0.0, 0.0);
        let mean = test.target.iter().sum::<f64>() / test.rows() as f64;
        let column = |j: usize| -> ArrayRef {
            let values: Vec<f64> = (0..test.rows()).map(|r| f64::from(test.x[r * 4 + j])).collect();
            std::sync::Arc::new(datafusion::arrow::array::Float64Array::from(values))
        };
        let predicted = p.values(&(0..4).map(column).collect::<Vec<_>>()).unwrap();
        for (r, value) in predicted.iter().enumerate() {
            let y = test.target[r];
            sse += (value - y).powi(2);
            sst += (y - mean).powi(2);
        }
        let r2 = 1.0 - sse / sst;
        assert!(r2 > 0.9, "R² {r2}");
        let x = [0.5f32, -0.2, 0.1, 0.0];
        let e = p.explain(&x, 0).unwrap();
        let total: f64 = e.contributions.iter().sum();
        assert!((e.baseline + total - e.prediction).abs() < 1e-6, "{e:?}");
        let columns: Vec<ArrayRef> = x
            .iter()
            .map(|v| std::sync::Arc::new(datafusion::arrow::array::Float64Array::from(vec![f64::from(*v)])) as ArrayRef)
            .collect();
        let value = p.values(&columns).unwrap()[0];
        assert!((e.prediction - value).abs() < 1e-5, "{e:?} vs {value}");
        assert!(p.explain(&x, 1).is_err(), "a regressor has one output to explain");
    }

    #[test]
    fn corrupt_payloads_are_refused() {
        let train = blobs(500, 4);
        let s = spec(Algorithm::DecisionTree, 1);
        let mut bytes = train_bucket(&s, &train, 0).encode_to_vec();
        assert!(Predictor::decode(s.clone(), &bytes[..bytes.len() / 2]).is_err());
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        let _ = Predictor::decode(s.clone(), &bytes); // must not panic
        assert!(Predictor::decode(s, b"not a model").is_err());
    }
}
