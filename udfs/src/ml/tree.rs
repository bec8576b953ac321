//! Classification and regression trees and random forests, grown on binned
//! features.
//!
//! Features are cut into at most [`MAX_BINS`] quantile bins once per training
//! set; a split is then chosen from per-bin histograms (as LightGBM and Spark
//! do) — class weights for a classifier, the count, sum and sum of squares of
//! the label for a regressor — which makes a node's cost one pass over its
//! rows per candidate feature (features are binned on the task's threads; a
//! tree's rows are drawn in row order and splits keep them so, so each pass
//! reads a column forwards; a classifier's labels are read as a byte per
//! row and a weight per class, [`Compact`]). Splits minimise weighted Gini impurity
//! (classification) or the weighted variance of the label (regression, whose
//! leaves hold their rows' mean label). A forest grows each tree on
//! a `subsample` of the rows drawn without replacement and considers a random
//! `colsample_bynode` share of the features at every node; every random choice
//! comes from (seed, tree index), so tree `t` is the same whichever process
//! grows it.

use std::borrow::Cow;

use sentio_proto::{Forest, Tree};

use crate::ml::Dataset;
use crate::ml::cuts::{MAX_BINS, bin_of, feature_cuts};
use crate::rng::Rng;

/// A feature matrix cut into bins, column by column and row by row, with
/// the cut points. A split reads one feature of a node's rows (a column);
/// histograms over several features read each row's bins from one place.
pub struct Binned {
    /// `bins[f * rows + r]` is the bin of row `r` in feature `f`.
    pub(crate) bins: Vec<u8>,
    /// `by_row[r * width + f]`: the same bins row by row, when the rows came
    /// that way (else empty: [`Binned::by_row`] makes them).
    by_row: Vec<u8>,
    /// Upper edge of each bin but the last, per feature: bin `b` holds values
    /// `<= cuts[f][b]`.
    pub(crate) cuts: Vec<Vec<f32>>,
    pub(crate) rows: usize,
}

impl Binned {
    /// Bins `data` (cut points from a deterministic sample of the rows).
    pub fn new(data: &Dataset) -> Self {
        let all: Vec<u32> = (0..data.rows() as u32).collect();
        Self::cut_on(data, &all)
    }

    /// Bins every row of `data` with cut points from a deterministic sample
    /// of `rows` (boosting: the training rows, not the held-out ones).
    pub fn cut_on(data: &Dataset, cut_rows: &[u32]) -> Self {
        let (rows, width) = (data.rows(), data.width);
        let step = (cut_rows.len() / 20_000).max(1);
        let mut cuts = vec![Vec::new(); width];
        let mut bins = vec![0u8; rows * width];
        // Each feature's cuts and column on its own: features are shared
        // among the threads, and the result does not depend on how.
        let bin_feature = |f: usize, cuts: &mut Vec<f32>, col: &mut [u8]| {
            *cuts = feature_cuts(cut_rows.iter().step_by(step).map(|&r| data.x[r as usize * width + f]).collect());
            for (r, b) in col.iter_mut().enumerate() {
                *b = bin_of(cuts, data.x[r * width + f]);
            }
        };
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, width.max(1));
        if rows == 0 || threads == 1 {
            for (f, (c, col)) in cuts.iter_mut().zip(bins.chunks_mut(rows.max(1))).enumerate() {
                bin_feature(f, c, col);
            }
        } else {
            let per = width.div_ceil(threads);
            std::thread::scope(|s| {
                for (t, (cuts, cols)) in cuts.chunks_mut(per).zip(bins.chunks_mut(per * rows)).enumerate() {
                    let bin_feature = &bin_feature;
                    s.spawn(move || {
                        for (i, (c, col)) in cuts.iter_mut().zip(cols.chunks_mut(rows)).enumerate() {
                            bin_feature(t * per + i, c, col);
                        }
                    });
                }
            });
        }
        Self { bins, by_row: Vec::new(), cuts, rows }
    }
}

/// `rows` × `width` bytes in the other order: row-major from column-major
/// (or, with `rows` and `width` swapped, the other way).
fn transpose(from: &[u8], rows: usize, width: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows * width];
    for (f, col) in from.chunks(rows.max(1)).enumerate() {
        for (r, &b) in col.iter().enumerate() {
            out[r * width + f] = b;
        }
    }
    out
}

impl Binned {
    /// Rows binned already (`sentio_train`'s partial aggregates bin them with
    /// the spec's cuts): `by_row[r * width + f]` is row `r`'s bin in feature
    /// `f`, `width` being `cuts.len()`.
    pub fn from_row_major(by_row: Vec<u8>, cuts: Vec<Vec<f32>>) -> Self {
        let width = cuts.len();
        let rows = by_row.len().checked_div(width).unwrap_or(0);
        let bins = transpose(&by_row, width, rows);
        Self { bins, by_row, cuts, rows }
    }

    /// The bins row by row: `by_row()[r * width + f]` is row `r`'s bin in
    /// feature `f`. Boosting builds a node's histograms over every feature
    /// from each row's bins in one place.
    pub(crate) fn by_row(&self) -> Cow<'_, [u8]> {
        if self.by_row.len() == self.bins.len() {
            Cow::Borrowed(&self.by_row)
        } else {
            Cow::Owned(transpose(&self.bins, self.rows, self.cuts.len()))
        }
    }

    /// Frees the bins row by row (a forest reads columns only).
    pub(crate) fn forget_rows(&mut self) {
        self.by_row = Vec::new();
    }

    /// Puts the `rows` whose feature `f` falls in bins up to `bin` first and
    /// returns how many they are: a split's left child. Stable: rows sorted
    /// at the root stay sorted in every node, so a node's histograms read
    /// each feature's column forwards instead of at random.
    pub(crate) fn partition(&self, rows: &mut [u32], f: usize, bin: usize) -> usize {
        let col = &self.bins[f * self.rows..(f + 1) * self.rows];
        let mut right = Vec::with_capacity(rows.len() / 2);
        let mut split = 0;
        for i in 0..rows.len() {
            let r = rows[i];
            if (col[r as usize] as usize) <= bin {
                rows[split] = r;
                split += 1;
            } else {
                right.push(r);
            }
        }
        rows[split..].copy_from_slice(&right);
        split
    }
}

/// Tree-growing settings.
#[derive(Debug, Clone)]
pub struct TreeParams {
    /// Maximum depth (the root is depth 0).
    pub max_depth: u32,
    /// Minimum rows in a child.
    pub min_child_rows: u32,
    /// Features considered per node (all when `>=` the width).
    pub features_per_node: usize,
    /// Regression trees (on the data's `target`) instead of classification.
    pub regression: bool,
}

/// Bins a feature's histogram has room for.
const STRIDE: usize = MAX_BINS + 1;

/// A classifier's labels in the bytes a node reads: each row's class, and
/// each class's weight (class weights make every row of a class weigh the
/// same). Eight times smaller than the rows' class indices and weights, so
/// a node's rows, spread over the training rows deeper in a tree, find them
/// in the core's cache more often.
struct Compact {
    class: Vec<u8>,
    weight: Vec<f64>,
}

impl Compact {
    /// `data`'s labels, unless there are more than 256 classes or rows of
    /// one class weigh differently.
    fn of(data: &Dataset, classes: usize) -> Option<Self> {
        if classes > 256 {
            return None;
        }
        let mut weight: Vec<Option<f64>> = vec![None; classes];
        let mut class = Vec::with_capacity(data.rows());
        for (&y, &w) in data.y.iter().zip(&data.w) {
            let slot = weight.get_mut(y as usize)?;
            match slot {
                None => *slot = Some(w),
                Some(v) if v.to_bits() != w.to_bits() => return None,
                Some(_) => {}
            }
            class.push(y as u8);
        }
        Some(Self { class, weight: weight.into_iter().map(|w| w.unwrap_or(0.0)).collect() })
    }
}

struct Grower<'a> {
    data: &'a Dataset,
    binned: &'a Binned,
    /// `data`'s labels compacted, for a classifier ([`Compact::of`]).
    compact: Option<&'a Compact>,
    params: &'a TreeParams,
    /// Statistics per row, node and bin: the classes' weights, or for
    /// regression the weight, the weighted label and its square.
    slots: usize,
    rng: Rng,
    tree: Tree,
    importance_weight: Vec<f64>,
    importance_gain: Vec<f64>,
    importance_cover: Vec<f64>,
}

fn gini(counts: &[f64], total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    1.0 - counts.iter().map(|c| (c / total) * (c / total)).sum::<f64>()
}

/// The weighted variance of a regression node's `[w, Σwy, Σwy²]`.
fn variance(stats: &[f64]) -> f64 {
    let w = stats[0];
    if w <= 0.0 {
        return 0.0;
    }
    let mean = stats[1] / w;
    (stats[2] / w - mean * mean).max(0.0)
}

impl Grower<'_> {
    /// Adds row `r`'s statistics into `into` (`slots` values).
    #[inline(always)]
    fn add_row(&self, into: &mut [f64], r: usize) {
        if self.params.regression {
            let (w, y) = (self.data.w[r], self.data.target[r]);
            into[0] += w;
            into[1] += w * y;
            into[2] += w * y * y;
        } else {
            let (c, w) = self.class_weight(r);
            into[c] += w;
        }
    }

    /// The weight of the rows behind `stats`.
    fn total(&self, stats: &[f64]) -> f64 {
        if self.params.regression { stats[0] } else { stats.iter().sum() }
    }

    /// The impurity of a node with `stats`.
    fn impurity(&self, stats: &[f64]) -> f64 {
        if self.params.regression { variance(stats) } else { gini(stats, self.total(stats)) }
    }

    /// What a node predicts: the class shares, or the mean label.
    fn outputs(&self, stats: &[f64]) -> Vec<f32> {
        let total = self.total(stats);
        if self.params.regression {
            return vec![if total > 0.0 { (stats[1] / total) as f32 } else { 0.0 }];
        }
        stats.iter().map(|c| if total > 0.0 { (c / total) as f32 } else { 1.0 / stats.len() as f32 }).collect()
    }

    fn leaf(&mut self, stats: &[f64], rows: usize) -> u32 {
        let id = self.tree.feature.len() as u32;
        self.tree.cover.push(rows as f32);
        self.tree.feature.push(-1);
        self.tree.threshold.push(0.0);
        self.tree.left.push(0);
        self.tree.right.push(0);
        let outputs = self.outputs(stats);
        self.tree.probs.extend(outputs);
        id
    }

    /// Adds each row's statistics into its bin of each of `features`:
    /// feature `features[i]`'s bin `b` at `hist[(i * STRIDE + b) * slots
    /// ..]` and `hist_n[i * STRIDE + b]`. Rows are in row order, so each
    /// feature's column is read forwards. (Reading each row's bins from one
    /// place instead, [`Binned::by_row`], took 1.5x the time on 1M rows × 32
    /// features with 5 features a node.)
    fn fill(&self, rows: &[u32], features: &[usize], hist: &mut [f64], hist_n: &mut [u32]) {
        for (i, &f) in features.iter().enumerate() {
            let col = &self.binned.bins[f * self.binned.rows..(f + 1) * self.binned.rows];
            for &r in rows {
                self.add_to_bin(hist, hist_n, i * STRIDE + col[r as usize] as usize, r as usize);
            }
        }
    }

    /// Adds row `r`'s statistics into histogram bin `b` ([`Self::fill`]).
    #[inline]
    fn add_to_bin(&self, hist: &mut [f64], hist_n: &mut [u32], b: usize, r: usize) {
        hist_n[b] += 1;
        self.add_row(&mut hist[b * self.slots..(b + 1) * self.slots], r);
    }

    /// A classifier's row `r`: its class and weight.
    #[inline]
    fn class_weight(&self, r: usize) -> (usize, f64) {
        match self.compact {
            Some(Compact { class, weight }) => {
                let c = class[r] as usize;
                (c, weight[c])
            }
            None => (self.data.y[r] as usize, self.data.w[r]),
        }
    }

    /// The weights of `rows`' classes, or for regression their weight,
    /// weighted label and its square.
    fn node_stats(&self, rows: &[u32]) -> Vec<f64> {
        let mut stats = vec![0f64; self.slots];
        for &r in rows {
            self.add_row(&mut stats, r as usize);
        }
        stats
    }

    fn grow(&mut self, rows: &mut [u32], depth: u32) -> u32 {
        let k = self.slots;
        let counts = self.node_stats(rows);
        let total = self.total(&counts);
        let pure = if self.params.regression {
            variance(&counts) <= 1e-12 * (counts[1] / total.max(1e-300)).abs().max(1.0).powi(2)
        } else {
            counts.iter().filter(|c| **c > 0.0).count() <= 1
        };
        let min_child = self.params.min_child_rows.max(1) as usize;
        if depth >= self.params.max_depth || pure || rows.len() < 2 * min_child {
            return self.leaf(&counts, rows.len());
        }
        let parent_impurity = self.impurity(&counts);
        let width = self.data.width;
        let mut candidates: Vec<usize> = (0..width).collect();
        let m = self.params.features_per_node.clamp(1, width);
        for i in 0..m {
            let j = i + (self.rng.next_u64() % (width - i) as u64) as usize;
            candidates.swap(i, j);
        }
        let mut best: Option<(f64, usize, usize)> = None; // (gain, feature, bin)
        // Features of a single bin cannot split.
        let features: Vec<usize> =
            candidates[..m].iter().copied().filter(|&f| !self.binned.cuts[f].is_empty()).collect();
        let mut hist = vec![0f64; features.len() * STRIDE * k];
        let mut hist_n = vec![0u32; features.len() * STRIDE];
        self.fill(rows, &features, &mut hist, &mut hist_n);
        let (mut left, mut right) = (vec![0f64; k], vec![0f64; k]);
        for (i, &f) in features.iter().enumerate() {
            let nbins = self.binned.cuts[f].len() + 1;
            let hist = &hist[i * STRIDE * k..(i + 1) * STRIDE * k];
            let hist_n = &hist_n[i * STRIDE..(i + 1) * STRIDE];
            left.fill(0.0);
            let mut left_n = 0usize;
            for b in 0..nbins - 1 {
                if hist_n[b] == 0 {
                    // An empty bin moves no row: the split is the last one's.
                    continue;
                }
                for c in 0..k {
                    left[c] += hist[b * k + c];
                }
                left_n += hist_n[b] as usize;
                if left_n < min_child || rows.len() - left_n < min_child {
                    continue;
                }
                let lt = self.total(&left);
                let rt = total - lt;
                if lt <= 0.0 || rt <= 0.0 {
                    continue;
                }
                right.iter_mut().zip(counts.iter().zip(&left)).for_each(|(r, (a, l))| *r = a - l);
                let impurity = (lt * self.impurity(&left) + rt * self.impurity(&right)) / total;
                let gain = parent_impurity - impurity;
                if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, f, b));
                }
            }
        }
        let Some((gain, f, b)) = best else {
            return self.leaf(&counts, rows.len());
        };
        self.importance_weight[f] += 1.0;
        self.importance_gain[f] += gain * total;
        self.importance_cover[f] += rows.len() as f64;
        let split = self.binned.partition(rows, f, b);
        let id = self.tree.feature.len();
        self.tree.cover.push(rows.len() as f32);
        self.tree.feature.push(f as i32);
        self.tree.threshold.push(self.binned.cuts[f][b]);
        self.tree.left.push(0);
        self.tree.right.push(0);
        let outputs = self.outputs(&counts);
        self.tree.probs.extend(outputs);
        let (l, r) = rows.split_at_mut(split);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        self.tree.left[id] = left;
        self.tree.right[id] = right;
        id as u32
    }
}

/// Grows trees `first..first + count` of a forest seeded by `seed`: of
/// `classes` classes, or regression trees (`params.regression`).
///
/// `subsample` below 1 grows each tree on that share of the rows, drawn
/// without replacement.
pub fn grow_forest(
    data: &Dataset,
    classes: usize,
    params: &TreeParams,
    subsample: f64,
    seed: u64,
    first: u32,
    count: u32,
) -> Forest {
    grow_forest_binned(data, &Binned::new(data), classes, params, subsample, seed, first, count)
}

/// [`grow_forest`] on `data` binned already (`Binned::new(data)`), so that
/// several shares of one forest grow from one binning of the rows.
#[allow(clippy::too_many_arguments)]
pub fn grow_forest_binned(
    data: &Dataset,
    binned: &Binned,
    classes: usize,
    params: &TreeParams,
    subsample: f64,
    seed: u64,
    first: u32,
    count: u32,
) -> Forest {
    let width = data.width;
    let mut forest = Forest {
        trees: Vec::with_capacity(count as usize),
        importance_weight: vec![0.0; width],
        importance_gain: vec![0.0; width],
        importance_cover: vec![0.0; width],
    };
    let compact = if params.regression { None } else { Compact::of(data, classes) };
    let sources = Sources { data, binned, compact: compact.as_ref(), classes, params, subsample, seed };
    for t in first..first + count {
        // A cancelled task's forest is never used (the caller checks too).
        if crate::cancel::cancelled() {
            break;
        }
        let g = sources.grow(t);
        for f in 0..width {
            forest.importance_weight[f] += g.importance_weight[f];
            forest.importance_gain[f] += g.importance_gain[f];
            forest.importance_cover[f] += g.importance_cover[f];
        }
        forest.trees.push(g.tree);
    }
    forest
}

/// What each tree of a forest grows from ([`grow_forest_binned`]).
struct Sources<'a> {
    data: &'a Dataset,
    binned: &'a Binned,
    compact: Option<&'a Compact>,
    classes: usize,
    params: &'a TreeParams,
    subsample: f64,
    seed: u64,
}

impl Sources<'_> {
    /// Tree `t`, grown on its seeded share of the rows.
    fn grow(&self, t: u32) -> Grower<'_> {
        let (data, width) = (self.data, self.data.width);
        let mut rng = Rng::stream(self.seed, "tree", u64::from(t));
        // In row order: a node's rows then read the columns and labels
        // forwards instead of at random.
        let mut rows: Vec<u32> = if self.subsample < 1.0 {
            let keep = ((data.rows() as f64 * self.subsample).round() as usize).clamp(1, data.rows());
            rng.sample(data.rows(), keep).into_iter().map(|r| r as u32).collect()
        } else {
            (0..data.rows() as u32).collect()
        };
        let mut g = Grower {
            data,
            binned: self.binned,
            compact: self.compact,
            params: self.params,
            slots: if self.params.regression { 3 } else { self.classes },
            rng,
            tree: Tree::default(),
            importance_weight: vec![0.0; width],
            importance_gain: vec![0.0; width],
            importance_cover: vec![0.0; width],
        };
        g.grow(&mut rows, 0);
        g
    }
}

/// The leaf of `tree` that the encoded row `x` reaches.
pub fn leaf(tree: &Tree, x: &[f32]) -> usize {
    let mut node = 0usize;
    while tree.feature[node] >= 0 {
        let f = tree.feature[node] as usize;
        node = if x[f] <= tree.threshold[node] { tree.left[node] } else { tree.right[node] } as usize;
    }
    node
}

/// Adds the class probabilities of `tree` for row `x` to `out`.
pub fn add_tree_probs(tree: &Tree, x: &[f32], out: &mut [f64]) {
    let k = out.len();
    let node = leaf(tree, x);
    for (o, p) in out.iter_mut().zip(&tree.probs[node * k..node * k + k]) {
        *o += f64::from(*p);
    }
}

/// Merges forests grown in parts (trees in part order, importances summed).
pub fn merge_forests(parts: Vec<Forest>) -> Forest {
    let mut out = Forest::default();
    for p in parts {
        if out.importance_gain.is_empty() {
            out.importance_weight = vec![0.0; p.importance_weight.len()];
            out.importance_gain = vec![0.0; p.importance_gain.len()];
            out.importance_cover = vec![0.0; p.importance_cover.len()];
        }
        for (o, v) in out.importance_weight.iter_mut().zip(&p.importance_weight) {
            *o += v;
        }
        for (o, v) in out.importance_gain.iter_mut().zip(&p.importance_gain) {
            *o += v;
        }
        for (o, v) in out.importance_cover.iter_mut().zip(&p.importance_cover) {
            *o += v;
        }
        out.trees.extend(p.trees);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_labels_grow_the_trees_per_row_labels_grow() {
        let mut rng = Rng::stream(3, "compact-test", 0);
        let mut d = Dataset { width: 4, ..Default::default() };
        let class_weight = [1.0, 2.5, 0.75];
        for _ in 0..20_000 {
            let row: Vec<f32> = (0..4).map(|_| rng.normal() as f32).collect();
            let s = row[0] - row[1] * row[2] + 0.5 * rng.normal() as f32;
            let y = if s < -0.5 {
                0
            } else if s < 0.5 {
                1
            } else {
                2
            };
            d.x.extend(row);
            d.y.push(y);
            d.w.push(class_weight[y as usize]);
        }
        let compact = Compact::of(&d, 3).expect("rows of a class weigh the same");
        assert_eq!((compact.class.len(), &compact.weight[..]), (20_000, &class_weight[..]));
        let binned = Binned::new(&d);
        let params = TreeParams { max_depth: 8, min_child_rows: 1, features_per_node: 2, regression: false };
        let sources = |compact| Sources {
            data: &d,
            binned: &binned,
            compact,
            classes: 3,
            params: &params,
            subsample: 0.8,
            seed: 5,
        };
        for t in 0..3 {
            let (with, without) = (sources(Some(&compact)).grow(t).tree, sources(None).grow(t).tree);
            assert!(with.feature.len() > 50, "tree {t} has {} nodes", with.feature.len());
            assert_eq!(with, without, "tree {t}");
        }
        // More classes than a byte holds: no compact labels.
        assert!(Compact::of(&d, 257).is_none());
        // A row weighing otherwise than its class: none either.
        d.w[7] += 1.0;
        assert!(Compact::of(&d, 3).is_none());
    }

    #[test]
    fn binning_cuts_every_value_into_its_bin_and_partitions_keep_row_order() {
        let mut rng = Rng::stream(9, "bin-test", 0);
        let mut d = Dataset { width: 3, ..Default::default() };
        for r in 0..5000 {
            // A continuous feature, one of four values, and a constant.
            d.x.extend([rng.normal() as f32, (r % 4) as f32, 1.0]);
            d.y.push(0);
            d.w.push(1.0);
        }
        let b = Binned::new(&d);
        assert_eq!((b.cuts[1].len(), b.cuts[2].len()), (3, 0), "{:?}", &b.cuts[1..]);
        assert!(b.cuts[0].len() > 200 && b.cuts[0].windows(2).all(|w| w[0] < w[1]));
        for f in 0..3 {
            for r in 0..5000 {
                let (v, bin) = (d.x[r * 3 + f], b.bins[f * 5000 + r] as usize);
                assert!(bin == 0 || b.cuts[f][bin - 1] < v, "feature {f} row {r}");
                assert!(bin == b.cuts[f].len() || v <= b.cuts[f][bin], "feature {f} row {r}");
            }
        }
        let by_row = b.by_row();
        assert!((0..5000).all(|r| (0..3).all(|f| by_row[r * 3 + f] == b.bins[f * 5000 + r])));
        let mut rows: Vec<u32> = (0..5000).step_by(3).collect();
        let at = b.partition(&mut rows, 0, 100);
        let (left, right) = rows.split_at(at);
        assert!(left.windows(2).all(|w| w[0] < w[1]) && right.windows(2).all(|w| w[0] < w[1]));
        assert!(left.iter().all(|&r| b.bins[r as usize] <= 100) && right.iter().all(|&r| b.bins[r as usize] > 100));
        assert_eq!(at + right.len(), 1667);
    }
}
