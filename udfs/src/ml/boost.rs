//! Gradient-boosted trees (`boosted_tree_classifier`,
//! `boosted_tree_regressor`), grown on the forest's binned features.
//!
//! Each round computes every row's gradient and hessian of the loss at the
//! current scores — squared error for a regressor, the logistic loss for two
//! classes, softmax cross-entropy for more (one tree per class and round) —
//! and grows a tree depth-first to `max_depth` from per-bin gradient and
//! hessian histograms, as XGBoost's `hist` method does (a node builds the
//! histograms of its smaller child only and subtracts them from its own for
//! the larger; a large node's features are shared among threads): a split's
//! gain is
//!
//! ```text
//!   ½ [ T(G_L)² / (H_L + λ) + T(G_R)² / (H_R + λ) − T(G)² / (H + λ) ] − γ
//! ```
//!
//! with `T` the L1 soft threshold (`l1_reg`), `λ` = `l2_reg` and `γ` =
//! `min_split_loss`; a child needs a hessian sum of `min_child_weight`. A
//! leaf's weight is `−T(G) / (H + λ)`, scaled by `learn_rate`. `subsample`
//! draws each round's rows and `colsample_bytree` each tree's features
//! (without replacement), `colsample_bylevel` each depth's share of the
//! tree's features and `colsample_bynode` each node's share of its depth's,
//! all seeded by (seed, round, tree), so the same rows and seed give the same
//! model. `num_parallel_tree` grows several trees a round ([`fit`]).
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
    /// Share of a tree's features each depth considers
    /// (`colsample_bylevel`).
    pub colsample_bylevel: f64,
    /// Share of a depth's features each node considers (`colsample_bynode`).
    pub colsample_bynode: f64,
    /// Trees per output and round (`num_parallel_tree`).
    pub parallel_trees: u32,
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
    scores_batch(model, x, x.len(), 1)
}

/// The scores of `rows` encoded rows of `width` (`x`, row-major), the
/// model's outputs per row. One tree walks every row before the next (its
/// nodes stay in cache); each row's sum is in tree order, as for one row.
pub fn scores_batch(model: &Boosted, x: &[f32], width: usize, rows: usize) -> Vec<f64> {
    let k = model.outputs.max(1) as usize;
    let mut base = model.base.clone();
    base.resize(k, 0.0);
    let mut scores = base.repeat(rows);
    for (i, t) in model.trees.iter().enumerate() {
        for (r, s) in scores.chunks_exact_mut(k).enumerate() {
            s[i % k] += f64::from(t.probs[tree::leaf(t, &x[r * width..(r + 1) * width])]);
        }
    }
    scores
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

/// Rows whose losses a gradient chunk sums on its own: chunks, not threads,
/// fix the order of the sums, so the losses are the same on any number of
/// cores.
const GRADIENT_CHUNK_ROWS: usize = 1 << 14;

/// Every row's gradient and hessian for each output, and the mean loss (the
/// mean squared error, or cross-entropy) of the training and of the
/// evaluation rows, at `scores` (row-major, `outputs` per row). Chunks of
/// rows are shared among `threads` threads; their sums are added in chunk
/// order.
fn gradients(
    data: &Dataset,
    objective: Objective,
    scores: &[f64],
    (g, h): (&mut [f64], &mut [f64]),
    threads: usize,
) -> (f64, f64) {
    let k = objective.outputs();
    let width = GRADIENT_CHUNK_ROWS * k;
    let mut chunks: Vec<(usize, &mut [f64], &mut [f64])> = g
        .chunks_mut(width)
        .zip(h.chunks_mut(width))
        .enumerate()
        .map(|(i, (g, h))| (i * GRADIENT_CHUNK_ROWS, g, h))
        .collect();
    let run = |part: &mut [(usize, &mut [f64], &mut [f64])]| -> Vec<[[f64; 2]; 2]> {
        part.iter_mut().map(|(first, g, h)| chunk_gradients(data, objective, scores, *first, g, h)).collect()
    };
    let threads = threads.clamp(1, chunks.len().max(1));
    let sums: Vec<[[f64; 2]; 2]> = if threads == 1 {
        run(&mut chunks)
    } else {
        let per = chunks.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks.chunks_mut(per).map(|part| s.spawn(move || run(part))).collect();
            handles.into_iter().flat_map(|h| h.join().expect("a gradient thread panicked")).collect()
        })
    };
    // (loss, weight) of the training rows, then of the evaluation rows.
    let mut total = [[0.0; 2]; 2];
    for chunk in &sums {
        for (t, c) in total.iter_mut().zip(chunk) {
            t[0] += c[0];
            t[1] += c[1];
        }
    }
    let mean = |[loss, weight]: [f64; 2]| if weight > 0.0 { loss / weight } else { f64::NAN };
    (mean(total[0]), mean(total[1]))
}

/// [`gradients`] of the rows from `first` on that `g` and `h` hold (`outputs`
/// per row): their (loss, weight) sums, of the training rows then of the
/// evaluation rows.
fn chunk_gradients(
    data: &Dataset,
    objective: Objective,
    scores: &[f64],
    first: usize,
    g: &mut [f64],
    h: &mut [f64],
) -> [[f64; 2]; 2] {
    let k = objective.outputs();
    let mut p = vec![0.0; if let Objective::Classes(c) = objective { c } else { 1 }];
    let mut sums = [[0.0; 2]; 2];
    for i in 0..g.len() / k {
        let r = first + i;
        let w = data.w[r];
        let s = &scores[r * k..(r + 1) * k];
        let sum = &mut sums[usize::from(is_eval(data, r))];
        sum[1] += w;
        match objective {
            Objective::Regression => {
                let d = s[0] - data.target[r];
                g[i] = w * d;
                h[i] = w;
                sum[0] += w * d * d;
            }
            Objective::Classes(_) => {
                link(objective, s, &mut p);
                let y = data.y[r] as usize;
                sum[0] -= w * p[y].max(1e-300).ln();
                if k == 1 {
                    g[i] = w * (p[1] - if y == 1 { 1.0 } else { 0.0 });
                    h[i] = w * (p[1] * (1.0 - p[1])).max(1e-16);
                } else {
                    for c in 0..k {
                        g[i * k + c] = w * (p[c] - if y == c { 1.0 } else { 0.0 });
                        h[i * k + c] = w * (p[c] * (1.0 - p[c])).max(1e-16);
                    }
                }
            }
        }
    }
    sums
}

/// Per-bin gradient and hessian sums of one node for each of the tree's
/// features: feature `features[i]`'s bins at `i * BINS ..`.
type Hist = Vec<[f64; 2]>;

/// Bins per feature in a [`Hist`].
const BINS: usize = crate::ml::cuts::MAX_BINS + 1;

/// Bin updates (rows × features) below which a node's histograms are built
/// on one thread: a thread costs more than it saves on smaller nodes.
const PARALLEL_WORK: usize = 1 << 20;

struct Grower<'a> {
    binned: &'a Binned,
    /// `binned`'s bins row by row ([`Binned::by_row`]).
    by_row: &'a [u8],
    params: &'a BoostParams,
    /// The tree's features (`colsample_bytree`).
    features: &'a [usize],
    /// Indices into `features` that each depth considers
    /// (`colsample_bylevel`), drawn when the tree starts.
    levels: Vec<Vec<usize>>,
    /// Draws each node's share of its level's features (`colsample_bynode`).
    rng: Rng,
    /// This tree's shrinkage: `learn_rate` ÷ the trees of a round.
    learn_rate: f64,
    /// Threads that build a large node's histograms.
    threads: usize,
    /// This output's gradient and hessian of every row.
    g: Vec<f64>,
    h: Vec<f64>,
    tree: Tree,
    /// Each leaf's rows: (offset, count) in the grown rows, and the node.
    leaves: Vec<(usize, usize, usize)>,
    importance: &'a mut [[f64; 3]],
}

/// The best split of a node: gain, index into the tree's features, last
/// bin of the left child, and the left child's gradient and hessian sums.
struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    left: [f64; 2],
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
        self.tree.probs.push((value * self.learn_rate) as f32);
        id
    }

    /// Whether a node at `depth` with hessian sum `h` may split.
    fn may_split(&self, depth: u32, h: f64) -> bool {
        depth < self.params.max_depth && h >= 2.0 * self.params.min_child_weight
    }

    /// The histograms of `rows`, one feature per thread's share when the
    /// node is large.
    fn histogram(&self, rows: &[u32]) -> Hist {
        let gh: Vec<[f64; 2]> = rows.iter().map(|&r| [self.g[r as usize], self.h[r as usize]]).collect();
        let mut hist = vec![[0.0; 2]; self.features.len() * BINS];
        let width = self.binned.cuts.len();
        // A thread's features `first..`, every row: each feature's sums in
        // row order, whichever thread adds them, so the model is the same on
        // any number of cores.
        let fill = |first: usize, out: &mut [[f64; 2]]| {
            let features = &self.features[first..first + out.len() / BINS];
            let add = |b: &mut [f64; 2], g: f64, h: f64| {
                b[0] += g;
                b[1] += h;
            };
            // Consecutive features (every feature, without colsample_bytree)
            // read a slice of each row.
            let from = features.first().copied().unwrap_or(0);
            if features.iter().enumerate().all(|(i, &f)| f == from + i) {
                for (&r, [g, h]) in rows.iter().zip(&gh) {
                    let at = r as usize * width + from;
                    for (hist, &b) in out.chunks_exact_mut(BINS).zip(&self.by_row[at..at + features.len()]) {
                        add(&mut hist[b as usize], *g, *h);
                    }
                }
                return;
            }
            for (&r, [g, h]) in rows.iter().zip(&gh) {
                let row = &self.by_row[r as usize * width..(r as usize + 1) * width];
                for (i, &f) in features.iter().enumerate() {
                    add(&mut out[i * BINS + row[f] as usize], *g, *h);
                }
            }
        };
        let threads = if rows.len() * self.features.len() >= PARALLEL_WORK { self.threads } else { 1 };
        if threads < 2 {
            fill(0, &mut hist);
            return hist;
        }
        let per = self.features.len().div_ceil(threads);
        std::thread::scope(|s| {
            for (t, out) in hist.chunks_mut(per * BINS).enumerate() {
                s.spawn(move || fill(t * per, out));
            }
        });
        hist
    }

    /// The features (indices into `features`) a node at `depth` considers.
    fn candidates(&mut self, depth: u32) -> Vec<usize> {
        let level = &self.levels[(depth as usize).min(self.levels.len() - 1)];
        if self.params.colsample_bynode >= 1.0 {
            return level.clone();
        }
        let count = share(level.len(), self.params.colsample_bynode);
        self.rng.sample(level.len(), count).into_iter().map(|j| level[j]).collect()
    }

    /// The split of most gain among `candidates`, from the node's histograms.
    fn best_split(&self, hist: &Hist, candidates: &[usize], (g, h): (f64, f64)) -> Option<Split> {
        let parent = self.score(g, h);
        let mut best: Option<Split> = None;
        for &i in candidates {
            let nbins = self.binned.cuts[self.features[i]].len() + 1;
            if nbins < 2 {
                continue;
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, [bg, bh]) in hist[i * BINS..i * BINS + nbins - 1].iter().enumerate() {
                gl += bg;
                hl += bh;
                let (gr, hr) = (g - gl, h - hl);
                if hl < self.params.min_child_weight || hr < self.params.min_child_weight {
                    continue;
                }
                let gain = 0.5 * (self.score(gl, hl) + self.score(gr, hr) - parent) - self.params.min_split_loss;
                if gain > 1e-12 && best.as_ref().is_none_or(|s| gain > s.gain) {
                    best = Some(Split { gain, feature: i, bin: b, left: [gl, hl] });
                }
            }
        }
        best
    }

    /// Grows the subtree of `rows` at `depth`; `hist` is the node's
    /// histograms when its parent derived them (histogram subtraction: a
    /// parent builds its smaller child's histograms and subtracts them from
    /// its own for the larger child, as LightGBM and XGBoost do).
    ///
    /// `sums` are the node's gradient and hessian sums (the root's from its
    /// rows, a child's from its parent's histograms). Each leaf's rows end
    /// up together in `rows`; `leaves` gets (offset in `rows` from
    /// `first`, rows, node) of each.
    fn grow(&mut self, rows: &mut [u32], first: usize, depth: u32, sums: [f64; 2], hist: Option<Hist>) -> u32 {
        let [g, h] = sums;
        let id = self.node(rows.len(), self.weight(g, h));
        if !self.may_split(depth, h) {
            self.leaves.push((first, rows.len(), id));
            return id as u32;
        }
        let mut hist = hist.unwrap_or_else(|| self.histogram(rows));
        let candidates = self.candidates(depth);
        let Some(split) = self.best_split(&hist, &candidates, (g, h)) else {
            self.leaves.push((first, rows.len(), id));
            return id as u32;
        };
        let f = self.features[split.feature];
        self.importance[f][0] += 1.0;
        self.importance[f][1] += split.gain;
        self.importance[f][2] += rows.len() as f64;
        let at = self.binned.partition(rows, f, split.bin);
        self.tree.feature[id] = f as i32;
        self.tree.threshold[id] = self.binned.cuts[f][split.bin];
        let (l, r) = rows.split_at_mut(at);
        let grows = [self.may_split(depth + 1, split.left[1]), self.may_split(depth + 1, h - split.left[1])];
        let (mut left_hist, mut right_hist) = (None, None);
        if grows[0] || grows[1] {
            let small_left = l.len() <= r.len();
            let small = self.histogram(if small_left { l } else { r });
            if grows[usize::from(small_left)] {
                hist.iter_mut().zip(&small).for_each(|(p, s)| *p = [p[0] - s[0], p[1] - s[1]]);
                *(if small_left { &mut right_hist } else { &mut left_hist }) = Some(hist);
            }
            *(if small_left { &mut left_hist } else { &mut right_hist }) = Some(small);
        }
        let right_sums = [g - split.left[0], h - split.left[1]];
        let left = self.grow(l, first, depth + 1, split.left, left_hist);
        let right = self.grow(r, first + at, depth + 1, right_sums, right_hist);
        self.tree.left[id] = left;
        self.tree.right[id] = right;
        id as u32
    }
}

/// `round(n × fraction)`, at least one and at most `n`.
fn share(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).clamp(1, n.max(1))
}

/// A grown tree, its rows in leaf order with each leaf's (offset, count,
/// node), and each feature's (splits, gain, rows) in it.
struct Grown {
    tree: Tree,
    rows: Vec<u32>,
    leaves: Vec<(usize, usize, usize)>,
    importance: Vec<[f64; 3]>,
}

/// Grows output `c`'s tree (gradients `g`, hessians `h`, `k` per row) on
/// `rows` with `features`.
#[allow(clippy::too_many_arguments)]
fn grow_tree(
    binned: &Binned,
    by_row: &[u8],
    params: &BoostParams,
    features: &[usize],
    mut columns: Rng,
    learn_rate: f64,
    threads: usize,
    (g, h, k, c): (&[f64], &[f64], usize, usize),
    rows: &[u32],
) -> Grown {
    let n = g.len() / k;
    let levels = (0..params.max_depth.max(1))
        .map(|_| {
            if params.colsample_bylevel >= 1.0 {
                (0..features.len()).collect()
            } else {
                columns.sample(features.len(), share(features.len(), params.colsample_bylevel))
            }
        })
        .collect();
    let mut importance = vec![[0.0; 3]; binned.cuts.len()];
    let mut grower = Grower {
        binned,
        by_row,
        params,
        features,
        levels,
        rng: columns,
        learn_rate,
        threads,
        g: (0..n).map(|r| g[r * k + c]).collect(),
        h: (0..n).map(|r| h[r * k + c]).collect(),
        tree: Tree::default(),
        leaves: Vec::new(),
        importance: &mut importance,
    };
    let mut grown = rows.to_vec();
    let sums = grown.iter().fold([0.0; 2], |[sg, sh], &r| [sg + grower.g[r as usize], sh + grower.h[r as usize]]);
    grower.grow(&mut grown, 0, 0, sums, None);
    let Grower { tree, leaves, .. } = grower;
    Grown { tree, rows: grown, leaves, importance }
}

/// Adds `tree`'s leaf value for each of `rows` to output `c` of `scores`,
/// walking the tree on the rows' bins (`by_row`, [`Binned::by_row`]):
/// a split's threshold is one of its feature's cuts, so a row's bin is at
/// most the cut's index exactly when its value is at most the threshold.
fn add_tree(tree: &Tree, binned: &Binned, by_row: &[u8], rows: &[u32], k: usize, c: usize, scores: &mut [f64]) {
    let width = binned.cuts.len();
    let split_bins: Vec<u8> = tree
        .feature
        .iter()
        .zip(&tree.threshold)
        .map(|(&f, &t)| if f < 0 { 0 } else { crate::ml::cuts::bin_of(&binned.cuts[f as usize], t) })
        .collect();
    for &r in rows {
        let row = &by_row[r as usize * width..(r as usize + 1) * width];
        let mut node = 0usize;
        while tree.feature[node] >= 0 {
            let f = tree.feature[node] as usize;
            node = if row[f] <= split_bins[node] { tree.left[node] } else { tree.right[node] } as usize;
        }
        scores[r as usize * k + c] += f64::from(tree.probs[node]);
    }
}

/// The rows of `0..n` not in `rows` (sorted), in order.
fn complement(rows: &[u32], n: usize) -> Vec<u32> {
    if rows.len() == n {
        // Every row (the usual case: no subsample, no evaluation rows).
        return Vec::new();
    }
    let mut inside = vec![false; n];
    rows.iter().for_each(|&r| inside[r as usize] = true);
    (0..n as u32).filter(|&r| !inside[r as usize]).collect()
}

/// Boosts `params.rounds` rounds of trees on `data` for `objective`.
///
/// A round grows `parallel_trees` trees per output on the same gradients,
/// each on its own row sample and features, with `learn_rate ÷
/// parallel_trees` (XGBoost's `num_parallel_tree`, a boosted forest); the
/// model lists a round's trees by parallel tree, then output, so tree `i`
/// adds to output `i % outputs`.
pub fn fit(data: &Dataset, objective: Objective, params: &BoostParams, seed: u64) -> Boosted {
    fit_binned(data, &bin(data), objective, params, seed).0
}

/// Every row of `data` binned with cut points from its training rows (not
/// the held-out ones): what [`fit`] grows its trees on.
pub fn bin(data: &Dataset) -> Binned {
    Binned::cut_on(data, &training_rows(data))
}

/// The rows boosting grows trees on: all but the evaluation rows.
fn training_rows(data: &Dataset) -> Vec<u32> {
    (0..data.rows()).filter(|&r| !is_eval(data, r)).map(|r| r as u32).collect()
}

/// [`fit`] on rows binned already (`binned` holds every row of `data`, whose
/// features `data.x` are not read), with every row's scores under the fitted
/// model (row-major, the model's outputs per row): the same sums, in the
/// same order, as [`scores_batch`] makes of the rows.
pub fn fit_binned(
    data: &Dataset,
    binned: &Binned,
    objective: Objective,
    params: &BoostParams,
    seed: u64,
) -> (Boosted, Vec<f64>) {
    let (n, width, k) = (data.rows(), data.width, objective.outputs());
    let train = training_rows(data);
    let has_eval = train.len() < n;
    let by_row = binned.by_row();
    let base = base_scores(data, objective);
    let mut scores: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
    let (mut g, mut h) = (vec![0.0; n * k], vec![0.0; n * k]);
    let mut importance = vec![[0.0; 3]; width];
    let mut model = Boosted { outputs: k as u32, base, ..Default::default() };
    let parallel = params.parallel_trees.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(8);
    // Each round's gradients are those the previous round's loss was
    // measured with.
    gradients(data, objective, &scores, (&mut g, &mut h), threads);
    for round in 0..params.rounds {
        if crate::cancel::cancelled() {
            break;
        }
        let started = Instant::now();
        let mut rng = Rng::stream(seed, "boost", u64::from(round));
        for p in 0..parallel {
            let keep = share(train.len(), params.subsample);
            let rows: Vec<u32> = if keep == train.len() {
                train.clone()
            } else {
                rng.sample(train.len(), keep).into_iter().map(|i| train[i]).collect()
            };
            let others = complement(&rows, n);
            // The outputs' trees of a round are independent: drawn in
            // order, grown at once (each on a share of the threads), added
            // in order.
            let features: Vec<Vec<usize>> =
                (0..k).map(|_| rng.sample(width, share(width, params.colsample_bytree))).collect();
            let inner = (threads / k).max(1);
            let grow_one = |c: usize| {
                let index = (u64::from(round) * u64::from(parallel) + u64::from(p)) * k as u64 + c as u64;
                grow_tree(
                    binned,
                    &by_row,
                    params,
                    &features[c],
                    Rng::stream(seed, "boost-columns", index),
                    params.learn_rate / f64::from(parallel),
                    inner,
                    (&g, &h, k, c),
                    &rows,
                )
            };
            let grown: Vec<Grown> = if k > 1 && threads > 1 {
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..k).map(|c| s.spawn(move || grow_one(c))).collect();
                    handles.into_iter().map(|h| h.join().expect("a boosting thread panicked")).collect()
                })
            } else {
                (0..k).map(grow_one).collect()
            };
            for (c, Grown { tree, rows: order, leaves, importance: gained }) in grown.into_iter().enumerate() {
                // The rows the tree grew on are in its leaves already; the
                // others (held out, or not sampled) walk it.
                for (offset, count, node) in leaves {
                    let value = f64::from(tree.probs[node]);
                    order[offset..offset + count].iter().for_each(|&r| scores[r as usize * k + c] += value);
                }
                add_tree(&tree, binned, &by_row, &others, k, c, &mut scores);
                for (total, tree_sums) in importance.iter_mut().zip(&gained) {
                    total.iter_mut().zip(tree_sums).for_each(|(a, b)| *a += b);
                }
                model.trees.push(tree);
            }
        }
        let (loss, eval_loss) = gradients(data, objective, &scores, (&mut g, &mut h), threads);
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
    (model, scores)
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
        colsample_bylevel: 1.0,
        colsample_bynode: 1.0,
        parallel_trees: 1,
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
    fn gradients_and_losses_are_the_same_bits_on_any_number_of_threads() {
        let mut base = data(3 * GRADIENT_CHUNK_ROWS + 17, 3);
        base.eval = (0..base.rows()).map(|r| r % 5 == 0).collect();
        let mut rng = Rng::stream(4, "scores", 0);
        for objective in [Objective::Regression, Objective::Classes(2), Objective::Classes(4)] {
            let mut d = base.clone();
            if let Objective::Classes(c) = objective {
                d.y.iter_mut().for_each(|y| *y %= c as u32);
            }
            let k = objective.outputs();
            let scores: Vec<f64> = (0..d.rows() * k).map(|_| rng.normal()).collect();
            let run = |threads: usize| {
                let (mut g, mut h) = (vec![0.0; d.rows() * k], vec![0.0; d.rows() * k]);
                let (loss, eval) = gradients(&d, objective, &scores, (&mut g, &mut h), threads);
                (loss.to_bits(), eval.to_bits(), g, h)
            };
            let one = run(1);
            for threads in [2, 3, 8] {
                assert!(run(threads) == one, "{objective:?}, {threads} threads");
            }
        }
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

    /// A grower over `d`'s rows with every feature, for the histogram tests.
    fn grower<'a>(
        binned: &'a Binned,
        by_row: &'a [u8],
        params: &'a BoostParams,
        features: &'a [usize],
        importance: &'a mut [[f64; 3]],
        threads: usize,
    ) -> Grower<'a> {
        let n = binned.rows;
        Grower {
            binned,
            by_row,
            params,
            features,
            levels: vec![(0..features.len()).collect()],
            rng: Rng::stream(1, "test", 0),
            learn_rate: params.learn_rate,
            threads,
            g: (0..n).map(|r| ((r * 7919) % 101) as f64 / 50.0 - 1.0).collect(),
            h: (0..n).map(|r| 0.1 + ((r * 104_729) % 13) as f64 / 13.0).collect(),
            tree: Tree::default(),
            leaves: Vec::new(),
            importance,
        }
    }

    #[test]
    fn threads_build_the_same_histograms_and_subtraction_gives_the_siblings() {
        // 40,000 rows × 30 features: over PARALLEL_WORK, so two threads share them.
        let mut d = Dataset { width: 30, ..Default::default() };
        let mut rng = Rng::stream(3, "hist-test", 0);
        for _ in 0..40_000 {
            d.x.extend((0..30).map(|_| rng.normal() as f32));
            d.y.push(0);
            d.w.push(1.0);
        }
        let binned = Binned::new(&d);
        let params = test_params();
        let features: Vec<usize> = (0..30).collect();
        let (mut i1, mut i2) = (vec![[0.0; 3]; 30], vec![[0.0; 3]; 30]);
        let by_row = binned.by_row();
        let one = grower(&binned, &by_row, &params, &features, &mut i1, 1);
        let two = grower(&binned, &by_row, &params, &features, &mut i2, 2);
        let mut rows: Vec<u32> = (0..40_000).collect();
        let parent = one.histogram(&rows);
        assert!(parent == two.histogram(&rows), "two threads, other sums");
        let at = binned.partition(&mut rows, 4, 100);
        assert!(at > 1000 && at < 39_000, "an uneven split: {at}");
        let (left, right) = (one.histogram(&rows[..at]), one.histogram(&rows[at..]));
        for ((p, l), r) in parent.iter().zip(&left).zip(&right) {
            for k in 0..2 {
                assert!((p[k] - l[k] - r[k]).abs() <= 1e-9 * (1.0 + p[k].abs()), "{p:?} ≠ {l:?} + {r:?}");
            }
        }
    }

    #[test]
    fn parallel_trees_of_one_sample_add_up_to_one_tree() {
        let d = data(1000, 6);
        let one = fit(&d, Objective::Classes(4), &test_params(), 1);
        let three = fit(&d, Objective::Classes(4), &BoostParams { parallel_trees: 3, ..test_params() }, 1);
        assert_eq!(three.trees.len(), 3 * one.trees.len(), "three trees per class and round");
        // Without sampling the three trees of a round are one tree with a
        // third of its leaf values; tree i adds to class i % 4.
        for (i, t) in three.trees.iter().enumerate() {
            let alone = &one.trees[(i / 12) * 4 + i % 4];
            assert_eq!(t.feature, alone.feature);
            for (a, b) in t.probs.iter().zip(&alone.probs) {
                assert!((3.0 * a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} × 3 ≠ {b}");
            }
        }
        for (a, b) in three.loss_history.iter().zip(&one.loss_history) {
            assert!((a - b).abs() <= 1e-5 * a, "{a} vs {b}");
        }
        // Sampled, the trees of a round differ.
        let p = BoostParams { parallel_trees: 3, subsample: 0.5, ..test_params() };
        let sampled = fit(&d, Objective::Classes(4), &p, 1);
        assert_ne!(sampled.trees[0], sampled.trees[4]);
    }

    /// The features the splits of each depth use, in `tree`.
    fn split_features_by_depth(tree: &Tree) -> Vec<std::collections::BTreeSet<i32>> {
        let mut out = Vec::new();
        let mut level = vec![0usize];
        while !level.is_empty() {
            let splits: Vec<usize> = level.into_iter().filter(|&n| tree.feature[n] >= 0).collect();
            if splits.is_empty() {
                break;
            }
            out.push(splits.iter().map(|&n| tree.feature[n]).collect());
            level = splits.iter().flat_map(|&n| [tree.left[n] as usize, tree.right[n] as usize]).collect();
        }
        out
    }

    #[test]
    fn column_samples_by_level_and_node_limit_each_split() {
        let d = data(2000, 7);
        // One of three features per depth: every split of a depth uses it.
        let by_level = fit(&d, Objective::Regression, &BoostParams { colsample_bylevel: 0.34, ..test_params() }, 1);
        let mut levels_seen = 0;
        for t in &by_level.trees {
            for features in split_features_by_depth(t) {
                assert_eq!(features.len(), 1, "one feature per depth: {features:?}");
                levels_seen += 1;
            }
        }
        assert!(levels_seen > 40);
        // One feature per node: the nodes of a depth spread over features,
        // and a model differs from the unsampled one but not between runs.
        let p = BoostParams { colsample_bynode: 0.34, ..test_params() };
        let by_node = fit(&d, Objective::Regression, &p, 1);
        assert!(by_node.trees.iter().flat_map(split_features_by_depth).any(|f| f.len() > 1));
        let plain = fit(&d, Objective::Regression, &test_params(), 1);
        assert_ne!(by_node.trees, plain.trees);
        assert_eq!(by_node.trees, fit(&d, Objective::Regression, &p, 1).trees);
        assert_ne!(by_node.trees, fit(&d, Objective::Regression, &p, 2).trees);
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
