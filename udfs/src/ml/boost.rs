//! Gradient-boosted trees (`boosted_tree_classifier`,
//! `boosted_tree_regressor`), grown on the forest's binned features.
//!
//! Each round computes every row's gradient and hessian of the loss at the
//! current scores — squared error for a regressor, the logistic loss for two
//! classes, softmax cross-entropy for more (one tree per class and round) —
//! and grows a tree depth-first to `max_depth` from per-bin gradient and
//! hessian histograms, as XGBoost's `hist` method does: a split's gain is
//!
//! ```text
//!   ½ [ T(G_L)² / (H_L + λ) + T(G_R)² / (H_R + λ) − T(G)² / (H + λ) ] − γ
//! ```
//!
//! with `T` the L1 soft threshold (`l1_reg`), `λ` = `l2_reg` and `γ` =
//! `min_split_loss`; a child needs a hessian sum of `min_child_weight`. A
//! leaf's weight is `−T(G) / (H + λ)`, scaled by `learn_rate`. `subsample`
//! draws each round's rows and `colsample_bytree` each tree's features
//! (without replacement), seeded by (seed, round), so the same rows and seed
//! give the same model.
//!
//! With `early_stop`, boosting stops after the first round that improves the
//! loss by less than `min_rel_progress` of it — the loss on the evaluation
//! rows the data flags (`Dataset::eval`, which no tree grows on), or on the
//! training rows when there are none.

use std::time::Instant;

use sentio_proto::{Boosted, Tree};

use crate::ml::Dataset;
use crate::ml::tree::{self, Binned};
use crate::rng::Rng;

/// Boosting settings, with BigQuery ML's names in the docs.
#[derive(Debug, Clone)]
pub struct BoostParams {
    /// Rounds (`max_iterations`).
    pub rounds: u32,
    /// Shrinkage of each tree (`learn_rate`).
    pub learn_rate: f64,
    /// Maximum depth (`max_tree_depth`; the root is depth 0).
    pub max_depth: u32,
    /// Share of rows each round's trees grow on (`subsample`).
    pub subsample: f64,
    /// Share of features each tree considers (`colsample_bytree`).
    pub colsample_bytree: f64,
    /// L1 penalty of leaf weights (`l1_reg`).
    pub l1: f64,
    /// L2 penalty of leaf weights (`l2_reg`).
    pub l2: f64,
    /// Least gain of a split (`min_split_loss`).
    pub min_split_loss: f64,
    /// Least hessian sum in a child (`min_tree_child_weight`).
    pub min_child_weight: f64,
    /// Stop once a round improves the loss by less than `min_rel_progress`
    /// of it (`early_stop`).
    pub early_stop: bool,
    /// See `early_stop`.
    pub min_rel_progress: f64,
}

/// What the model predicts: a number, or one of `classes` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Squared error on `Dataset::target`.
    Regression,
    /// Cross-entropy over this many classes (`Dataset::y`).
    Classes(usize),
}

impl Objective {
    /// Trees per round: one per class of a multiclass model, else one.
    pub fn outputs(self) -> usize {
        match self {
            Self::Classes(k) if k > 2 => k,
            _ => 1,
        }
    }
}

fn soft_threshold(g: f64, l1: f64) -> f64 {
    if g > l1 {
        g - l1
    } else if g < -l1 {
        g + l1
    } else {
        0.0
    }
}

/// The class probabilities (or, for a regressor, the prediction in
/// `out[0]`) from the scores of one row.
pub fn link(objective: Objective, scores: &[f64], out: &mut [f64]) {
    match objective {
        Objective::Regression => out[0] = scores[0],
        Objective::Classes(2) => {
            let p = 1.0 / (1.0 + (-scores[0]).exp());
            out[0] = 1.0 - p;
            out[1] = p;
        }
        Objective::Classes(_) => {
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for (o, s) in out.iter_mut().zip(scores) {
                *o = (s - max).exp();
                sum += *o;
            }
            out.iter_mut().for_each(|o| *o /= sum);
        }
    }
}

/// The scores of the encoded row `x` under `model`.
pub fn scores(model: &Boosted, x: &[f32]) -> Vec<f64> {
    let k = model.outputs.max(1) as usize;
    let mut s = model.base.clone();
    s.resize(k, 0.0);
    for (i, t) in model.trees.iter().enumerate() {
        s[i % k] += f64::from(t.probs[tree::leaf(t, x)]);
    }
    s
}

fn is_eval(data: &Dataset, r: usize) -> bool {
    data.eval.get(r).copied().unwrap_or(false)
}

/// The starting scores over the training rows: the mean label, or the log
/// of each class's share (the log-odds of the second for two classes).
fn base_scores(data: &Dataset, objective: Objective) -> Vec<f64> {
    let train = (0..data.rows()).filter(|&r| !is_eval(data, r));
    let total: f64 = train.clone().map(|r| data.w[r]).sum::<f64>().max(1e-300);
    match objective {
        Objective::Regression => vec![train.map(|r| data.target[r] * data.w[r]).sum::<f64>() / total],
        Objective::Classes(k) => {
            let mut share = vec![0.0; k];
            for r in train {
                share[data.y[r] as usize] += data.w[r];
            }
            let share: Vec<f64> = share.iter().map(|s| (s / total).clamp(1e-12, 1.0 - 1e-12)).collect();
            if k == 2 { vec![(share[1] / share[0]).ln()] } else { share.iter().map(|s| s.ln()).collect() }
        }
    }
}

/// Every row's gradient and hessian for each output, and the mean loss (the
/// mean squared error, or cross-entropy) of the training and of the
/// evaluation rows, at `scores` (row-major, `outputs` per row).
fn gradients(data: &Dataset, objective: Objective, scores: &[f64], g: &mut [f64], h: &mut [f64]) -> (f64, f64) {
    let k = objective.outputs();
    let mut p = vec![0.0; if let Objective::Classes(c) = objective { c } else { 1 }];
    // (loss, weight) of the training rows, then of the evaluation rows.
    let mut sums = [[0.0; 2]; 2];
    for r in 0..data.rows() {
        let w = data.w[r];
        let s = &scores[r * k..(r + 1) * k];
        let sum = &mut sums[usize::from(is_eval(data, r))];
        sum[1] += w;
        match objective {
            Objective::Regression => {
                let d = s[0] - data.target[r];
                g[r] = w * d;
                h[r] = w;
                sum[0] += w * d * d;
            }
            Objective::Classes(_) => {
                link(objective, s, &mut p);
                let y = data.y[r] as usize;
                sum[0] -= w * p[y].max(1e-300).ln();
                if k == 1 {
                    g[r] = w * (p[1] - if y == 1 { 1.0 } else { 0.0 });
                    h[r] = w * (p[1] * (1.0 - p[1])).max(1e-16);
                } else {
                    for c in 0..k {
                        g[r * k + c] = w * (p[c] - if y == c { 1.0 } else { 0.0 });
                        h[r * k + c] = w * (p[c] * (1.0 - p[c])).max(1e-16);
                    }
                }
            }
        }
    }
    let mean = |[loss, weight]: [f64; 2]| if weight > 0.0 { loss / weight } else { f64::NAN };
    (mean(sums[0]), mean(sums[1]))
}

struct Grower<'a> {
    binned: &'a Binned,
    params: &'a BoostParams,
    features: &'a [usize],
    /// This output's gradient and hessian of every row.
    g: Vec<f64>,
    h: Vec<f64>,
    tree: Tree,
    importance: &'a mut [[f64; 3]],
}

impl Grower<'_> {
    fn weight(&self, g: f64, h: f64) -> f64 {
        -soft_threshold(g, self.params.l1) / (h + self.params.l2)
    }

    fn score(&self, g: f64, h: f64) -> f64 {
        let t = soft_threshold(g, self.params.l1);
        t * t / (h + self.params.l2)
    }

    fn node(&mut self, rows: usize, value: f64) -> usize {
        let id = self.tree.feature.len();
        self.tree.cover.push(rows as f32);
        self.tree.feature.push(-1);
        self.tree.threshold.push(0.0);
        self.tree.left.push(0);
        self.tree.right.push(0);
        self.tree.probs.push((value * self.params.learn_rate) as f32);
        id
    }

    fn grow(&mut self, rows: &mut [u32], depth: u32) -> u32 {
        let (g, h) = rows.iter().fold((0.0, 0.0), |(g, h), &r| (g + self.g[r as usize], h + self.h[r as usize]));
        let id = self.node(rows.len(), self.weight(g, h));
        if depth >= self.params.max_depth || h < 2.0 * self.params.min_child_weight {
            return id as u32;
        }
        let parent = self.score(g, h);
        let mut best: Option<(f64, usize, usize)> = None;
        let mut hist = vec![[0f64; 2]; crate::ml::tree::MAX_BINS + 1];
        for &f in self.features {
            let nbins = self.binned.cuts[f].len() + 1;
            if nbins < 2 {
                continue;
            }
            hist[..nbins].fill([0.0; 2]);
            let col = &self.binned.bins[f * self.binned.rows..(f + 1) * self.binned.rows];
            for &r in rows.iter() {
                let b = &mut hist[col[r as usize] as usize];
                b[0] += self.g[r as usize];
                b[1] += self.h[r as usize];
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, [bg, bh]) in hist[..nbins - 1].iter().enumerate() {
                gl += bg;
                hl += bh;
                let (gr, hr) = (g - gl, h - hl);
                if hl < self.params.min_child_weight || hr < self.params.min_child_weight {
                    continue;
                }
                let gain = 0.5 * (self.score(gl, hl) + self.score(gr, hr) - parent) - self.params.min_split_loss;
                if gain > 1e-12 && best.is_none_or(|(bg, _, _)| gain > bg) {
                    best = Some((gain, f, b));
                }
            }
        }
        let Some((gain, f, b)) = best else { return id as u32 };
        self.importance[f][0] += 1.0;
        self.importance[f][1] += gain;
        self.importance[f][2] += rows.len() as f64;
        let split = self.binned.partition(rows, f, b);
        self.tree.feature[id] = f as i32;
        self.tree.threshold[id] = self.binned.cuts[f][b];
        let (l, r) = rows.split_at_mut(split);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        self.tree.left[id] = left;
        self.tree.right[id] = right;
        id as u32
    }
}

/// Adds `tree`'s leaf value for each row to output `c` of `scores`.
fn add_tree(tree: &Tree, data: &Dataset, k: usize, c: usize, scores: &mut [f64]) {
    let width = data.width;
    for r in 0..data.rows() {
        let node = tree::leaf(tree, &data.x[r * width..(r + 1) * width]);
        scores[r * k + c] += f64::from(tree.probs[node]);
    }
}

/// `count` of `0..n` drawn without replacement by `rng`, in order.
fn sample(rng: &mut Rng, n: usize, count: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..count.min(n) {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(count.min(n));
    all.sort_unstable();
    all
}

/// Boosts `params.rounds` rounds of trees on `data` for `objective`.
pub fn fit(data: &Dataset, objective: Objective, params: &BoostParams, seed: u64) -> Boosted {
    let (n, width, k) = (data.rows(), data.width, objective.outputs());
    let train: Vec<u32> = (0..n).filter(|&r| !is_eval(data, r)).map(|r| r as u32).collect();
    let has_eval = train.len() < n;
    let binned = Binned::cut_on(data, &train);
    let base = base_scores(data, objective);
    let mut scores: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
    let (mut g, mut h) = (vec![0.0; n * k], vec![0.0; n * k]);
    let mut importance = vec![[0.0; 3]; width];
    let mut model = Boosted { outputs: k as u32, base, ..Default::default() };
    for round in 0..params.rounds {
        if crate::cancel::cancelled() {
            break;
        }
        let started = Instant::now();
        gradients(data, objective, &scores, &mut g, &mut h);
        let mut rng = Rng::stream(seed, "boost", u64::from(round));
        let keep = ((train.len() as f64 * params.subsample).round() as usize).clamp(1, train.len().max(1));
        let rows: Vec<u32> = sample(&mut rng, train.len(), keep).into_iter().map(|i| train[i]).collect();
        let per_tree = ((width as f64 * params.colsample_bytree).round() as usize).clamp(1, width.max(1));
        for c in 0..k {
            let features = sample(&mut rng, width, per_tree);
            let mut grower = Grower {
                binned: &binned,
                params,
                features: &features,
                g: (0..n).map(|r| g[r * k + c]).collect(),
                h: (0..n).map(|r| h[r * k + c]).collect(),
                tree: Tree::default(),
                importance: &mut importance,
            };
            grower.grow(&mut rows.clone(), 0);
            let tree = grower.tree;
            add_tree(&tree, data, k, c, &mut scores);
            model.trees.push(tree);
        }
        let (loss, eval_loss) = gradients(data, objective, &scores, &mut g, &mut h);
        model.loss_history.push(loss);
        if has_eval {
            model.eval_loss_history.push(eval_loss);
        }
        model.iteration_millis.push(started.elapsed().as_millis() as u32);
        let watched = if has_eval { &model.eval_loss_history } else { &model.loss_history };
        if params.early_stop
            && let [.., before, now] = watched[..]
            && before - now < params.min_rel_progress * before.abs()
        {
            break;
        }
    }
    model.importance_weight = importance.iter().map(|i| i[0]).collect();
    model.importance_gain = importance.iter().map(|i| i[1]).collect();
    model.importance_cover = importance.iter().map(|i| i[2]).collect();
    model
}

/// Settings for tests: 40 rounds of depth-4 trees at rate 0.3, L2 1,
/// no sampling, no early stop.
#[cfg(test)]
pub(crate) fn test_params() -> BoostParams {
    BoostParams {
        rounds: 40,
        learn_rate: 0.3,
        max_depth: 4,
        subsample: 1.0,
        colsample_bytree: 1.0,
        l1: 0.0,
        l2: 1.0,
        min_split_loss: 0.0,
        min_child_weight: 1.0,
        early_stop: false,
        min_rel_progress: 0.01,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of three features; the class is the quadrant of the first two
    /// (four classes), the target a smooth function of them.
    fn data(n: usize, seed: u64) -> Dataset {
        let mut rng = Rng::stream(seed, "boost-test", 0);
        let mut d = Dataset { width: 3, ..Default::default() };
        for _ in 0..n {
            let x: Vec<f64> = (0..3).map(|_| rng.normal()).collect();
            d.x.extend(x.iter().map(|v| *v as f32));
            d.y.push(u32::from(x[0] > 0.0) * 2 + u32::from(x[1] > 0.0));
            d.target.push(3.0 * x[0] - x[1] * x[1]);
            d.w.push(1.0);
        }
        d
    }

    fn predict(model: &Boosted, objective: Objective, x: &[f32], out: &mut [f64]) {
        link(objective, &scores(model, x), out);
    }

    #[test]
    fn the_loss_falls_and_the_model_fits_held_out_rows() {
        let (train, test) = (data(2000, 1), data(500, 2));
        for objective in [Objective::Regression, Objective::Classes(4)] {
            let model = fit(&train, objective, &test_params(), 7);
            assert!(model.loss_history.windows(2).all(|w| w[1] <= w[0] + 1e-12), "{:?}", model.loss_history);
            assert_eq!(model.trees.len(), 40 * objective.outputs());
            let mut out = vec![0.0; 4];
            let mut good = 0.0;
            for r in 0..test.rows() {
                predict(&model, objective, &test.x[r * 3..r * 3 + 3], &mut out);
                good += match objective {
                    Objective::Regression => (out[0] - test.target[r]).powi(2),
                    _ => f64::from(u8::from(crate::ml::model::most_probable(&out) == test.y[r] as usize)),
                };
            }
            let score = good / test.rows() as f64;
            match objective {
                Objective::Regression => assert!(score < 0.2, "mean squared error {score}"),
                _ => assert!(score > 0.95, "accuracy {score}"),
            }
        }
    }

    #[test]
    fn two_classes_take_one_tree_per_round_and_the_seed_decides_the_sample() {
        let mut d = data(1000, 3);
        d.y.iter_mut().for_each(|y| *y = u32::from(*y >= 2));
        let p = BoostParams { subsample: 0.5, colsample_bytree: 0.67, ..test_params() };
        let a = fit(&d, Objective::Classes(2), &p, 1);
        assert_eq!(a.trees.len(), 40);
        let strip = |mut m: Boosted| {
            m.iteration_millis.clear();
            m
        };
        assert_eq!(strip(a.clone()), strip(fit(&d, Objective::Classes(2), &p, 1)));
        assert_ne!(strip(a).trees, strip(fit(&d, Objective::Classes(2), &p, 2)).trees);
    }

    #[test]
    fn early_stopping_watches_the_evaluation_rows() {
        let mut d = data(2000, 5);
        // Every fourth row is held out; no tree grows on them.
        d.eval = (0..d.rows()).map(|r| r % 4 == 0).collect();
        let p = BoostParams { rounds: 500, early_stop: true, ..test_params() };
        let model = fit(&d, Objective::Regression, &p, 1);
        let rounds = model.loss_history.len();
        assert!(rounds > 3 && rounds < 500, "stopped after {rounds} rounds");
        assert_eq!(model.eval_loss_history.len(), rounds);
        let e = &model.eval_loss_history;
        assert!(e[rounds - 2] - e[rounds - 1] < 0.01 * e[rounds - 2], "{e:?}");
        assert!(e[..rounds - 1].windows(2).all(|w| w[0] - w[1] >= 0.01 * w[0]), "stopped at the first: {e:?}");
        // The held-out rows change nothing but when it stops.
        let mut flagged_out = d.clone();
        let keep: Vec<usize> = (0..d.rows()).filter(|r| r % 4 != 0).collect();
        flagged_out.x = keep.iter().flat_map(|&r| d.x[r * 3..r * 3 + 3].to_vec()).collect();
        flagged_out.target = keep.iter().map(|&r| d.target[r]).collect();
        flagged_out.y = keep.iter().map(|&r| d.y[r]).collect();
        flagged_out.w = vec![1.0; keep.len()];
        flagged_out.eval.clear();
        let alone =
            fit(&flagged_out, Objective::Regression, &BoostParams { rounds: rounds as u32, ..test_params() }, 1);
        assert_eq!(alone.loss_history.len(), rounds);
        for (a, b) in alone.loss_history.iter().zip(&model.loss_history) {
            assert!((a - b).abs() <= 1e-9 * a.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn penalties_shrink_leaves_and_stop_splits() {
        let d = data(500, 4);
        let plain = fit(&d, Objective::Regression, &test_params(), 1);
        let strict = fit(&d, Objective::Regression, &BoostParams { min_split_loss: 1e9, ..test_params() }, 1);
        assert!(strict.trees.iter().all(|t| t.feature.len() == 1), "no split gains 1e9");
        assert!(plain.trees[0].feature.len() > 1);
        let shrunk = fit(&d, Objective::Regression, &BoostParams { l2: 1e6, ..test_params() }, 1);
        let largest = |m: &Boosted| m.trees[0].probs.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(largest(&shrunk) < largest(&plain) / 100.0);
    }
}
