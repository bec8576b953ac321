//! Exact feature attributions of one prediction: Tree SHAP for trees and
//! forests, the linear terms for logistic regression.
//!
//! Tree SHAP is the path-dependent algorithm of Lundberg, Erion and Lee
//! ("Consistent Individualized Feature Attribution for Tree Ensembles",
//! 2018): it gives each feature its Shapley value for the tree's output,
//! where the output with only some features known is the cover-weighted
//! average over the branches of the splits on the unknown ones. Attributions
//! sum to the output minus the tree's expected output (its cover-weighted
//! mean over the leaves). A forest's are the mean of its trees'; boosted
//! trees' the sum of one output's trees' ([`boosted_shap`]), since Shapley
//! values add up over a sum of models.
//!
//! It needs each node's cover — how many of the rows the tree was grown on
//! reached the node — which trees record since this was written; a tree
//! without covers cannot be explained.

use sentio_proto::{Boosted, Tree};

/// One element of the path from the root to the current node: the feature
/// split on, the share of the rows that go this way when the feature is
/// unknown (`zero`) and whether the row goes this way when it is known
/// (`one`, 0 or 1), and the path's permutation weight.
#[derive(Debug, Clone, Copy)]
struct Step {
    feature: i64,
    zero: f64,
    one: f64,
    weight: f64,
}

/// Grows the path by one split (the algorithm's EXTEND).
fn extend(path: &mut Vec<Step>, zero: f64, one: f64, feature: i64) {
    let depth = path.len();
    path.push(Step { feature, zero, one, weight: if depth == 0 { 1.0 } else { 0.0 } });
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / (depth + 1) as f64;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / (depth + 1) as f64;
    }
}

/// Takes step `index` out of the path (UNWIND): a feature split on again
/// further down is accounted for once.
fn unwind(path: &mut Vec<Step>, index: usize) {
    let depth = path.len() - 1;
    let Step { zero, one, .. } = path[index];
    let mut next = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let kept = path[i].weight;
            path[i].weight = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            next = kept - path[i].weight * zero * (depth - i) as f64 / (depth + 1) as f64;
        } else {
            path[i].weight = path[i].weight * (depth + 1) as f64 / (zero * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
    path.truncate(depth);
}

/// The total permutation weight of the path with step `index` taken out,
/// without changing the path.
fn unwound_sum(path: &[Step], index: usize) -> f64 {
    let depth = path.len() - 1;
    let Step { zero, one, .. } = path[index];
    let mut next = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let share = next * (depth + 1) as f64 / ((i + 1) as f64 * one);
            total += share;
            next = path[i].weight - share * zero * (depth - i) as f64 / (depth + 1) as f64;
        } else if zero != 0.0 {
            total += path[i].weight / zero / ((depth - i) as f64 / (depth + 1) as f64);
        }
    }
    total
}

/// A tree with what its explanation reads: node covers and the value of
/// each node for the class explained.
struct Explained<'a> {
    tree: &'a Tree,
    class: usize,
    classes: usize,
}

impl Explained<'_> {
    fn leaf(&self, node: usize) -> bool {
        self.tree.feature[node] < 0
    }

    fn value(&self, node: usize) -> f64 {
        f64::from(self.tree.probs[node * self.classes + self.class])
    }

    fn cover(&self, node: usize) -> f64 {
        f64::from(self.tree.cover[node])
    }

    /// The child `x` goes to, and the other one.
    fn hot_cold(&self, node: usize, x: &[f32]) -> (usize, usize) {
        let (l, r) = (self.tree.left[node] as usize, self.tree.right[node] as usize);
        if x[self.tree.feature[node] as usize] <= self.tree.threshold[node] { (l, r) } else { (r, l) }
    }

    /// Walks the subtree at `node`, reached through `path` and then the
    /// split `parent` (its feature and fractions), adding to `phi`.
    fn recurse(&self, x: &[f32], phi: &mut [f64], node: usize, mut path: Vec<Step>, parent: Step) {
        extend(&mut path, parent.zero, parent.one, parent.feature);
        if self.leaf(node) {
            let v = self.value(node);
            for i in 1..path.len() {
                let w = unwound_sum(&path, i);
                let step = path[i];
                phi[step.feature as usize] += w * (step.one - step.zero) * v;
            }
            return;
        }
        let split = i64::from(self.tree.feature[node]);
        let (hot, cold) = self.hot_cold(node, x);
        let cover = self.cover(node);
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        if let Some(k) = path.iter().position(|s| s.feature == split) {
            incoming_zero = path[k].zero;
            incoming_one = path[k].one;
            unwind(&mut path, k);
        }
        let hot_zero = self.cover(hot) / cover * incoming_zero;
        let cold_zero = self.cover(cold) / cover * incoming_zero;
        let to = |zero, one| Step { feature: split, zero, one, weight: 0.0 };
        self.recurse(x, phi, hot, path.clone(), to(hot_zero, incoming_one));
        self.recurse(x, phi, cold, path, to(cold_zero, 0.0));
    }

    /// The cover-weighted mean of the leaves' values.
    fn expected(&self, node: usize) -> f64 {
        if self.leaf(node) {
            return self.value(node);
        }
        let (l, r) = (self.tree.left[node] as usize, self.tree.right[node] as usize);
        (self.cover(l) * self.expected(l) + self.cover(r) * self.expected(r)) / self.cover(node)
    }
}

/// Whether `tree` records the covers an explanation needs.
pub fn has_covers(tree: &Tree) -> bool {
    tree.cover.len() == tree.feature.len() && tree.cover.iter().all(|c| *c > 0.0)
}

/// Adds `tree`'s Tree SHAP attributions of class `class`'s probability at
/// the encoded row `x` to `phi` (one per encoded feature); returns the tree's
/// expected value of that probability. The tree must have covers
/// ([`has_covers`]).
pub fn tree_shap(tree: &Tree, x: &[f32], class: usize, classes: usize, phi: &mut [f64]) -> f64 {
    let explained = Explained { tree, class, classes };
    let root = Step { feature: -1, zero: 1.0, one: 1.0, weight: 0.0 };
    explained.recurse(x, phi, 0, Vec::with_capacity(16), root);
    explained.expected(0)
}

/// Adds the Tree SHAP attributions of output `output` of boosted trees —
/// its raw score: the prediction of a regressor, a class's logit — at the
/// encoded row `x` to `phi`; returns the score's expected value (the base
/// score plus each tree's expected value). Every tree must have covers
/// ([`has_covers`]).
pub fn boosted_shap(model: &Boosted, x: &[f32], output: usize, phi: &mut [f64]) -> f64 {
    let outputs = model.outputs.max(1) as usize;
    let base = model.base.get(output).copied().unwrap_or(0.0);
    base + model.trees.iter().skip(output).step_by(outputs).map(|t| tree_shap(t, x, 0, 1, phi)).sum::<f64>()
}

/// The attributions of class `class`'s score (its logit) in a logistic
/// regression with `weights` (per class, `width` weights then the
/// intercept): each encoded feature's weight times its standardised value,
/// added to `phi`, exact; returns the baseline, the intercept — the score of
/// a row at the training means.
pub fn linear(weights: &[f64], width: usize, class: usize, x: &[f32], phi: &mut [f64]) -> f64 {
    let w = &weights[class * (width + 1)..(class + 1) * (width + 1)];
    for ((p, wi), xi) in phi.iter_mut().zip(&w[..width]).zip(x) {
        *p += wi * f64::from(*xi);
    }
    w[width]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::Dataset;
    use crate::ml::tree::{TreeParams, add_tree_probs, grow_forest};
    use crate::rng::Rng;

    /// Rows of `width` features, three classes driven by the first three.
    fn data(n: usize, width: usize, seed: u64) -> Dataset {
        let mut rng = Rng::stream(seed, "shap", 0);
        let mut d = Dataset { width, ..Default::default() };
        for _ in 0..n {
            let row: Vec<f32> = (0..width).map(|_| rng.normal() as f32).collect();
            let class = if row[0] + 0.5 * row[1] > 0.3 {
                0
            } else if row[2] > 0.0 {
                1
            } else {
                2
            };
            d.x.extend(row);
            d.y.push(class);
            d.w.push(1.0);
        }
        d
    }

    /// The tree's output for class `class` when only the features in `known`
    /// (a bit set) are known: the cover-weighted mean over the branches of
    /// the other features' splits.
    fn conditional(e: &Explained, node: usize, x: &[f32], known: u32) -> f64 {
        if e.leaf(node) {
            return e.value(node);
        }
        let f = e.tree.feature[node] as u32;
        let (l, r) = (e.tree.left[node] as usize, e.tree.right[node] as usize);
        if known & (1 << f) != 0 {
            let (hot, _) = e.hot_cold(node, x);
            return conditional(e, hot, x, known);
        }
        (e.cover(l) * conditional(e, l, x, known) + e.cover(r) * conditional(e, r, x, known)) / e.cover(node)
    }

    /// Shapley values by enumerating every subset of the features.
    fn exact_shapley(e: &Explained, x: &[f32], width: usize) -> Vec<f64> {
        let factorial = |n: usize| (1..=n).map(|i| i as f64).product::<f64>();
        let mut phi = vec![0.0; width];
        for (i, p) in phi.iter_mut().enumerate() {
            for known in 0..(1u32 << width) {
                if known & (1 << i) != 0 {
                    continue;
                }
                let s = known.count_ones() as usize;
                let weight = factorial(s) * factorial(width - s - 1) / factorial(width);
                *p += weight * (conditional(e, 0, x, known | (1 << i)) - conditional(e, 0, x, known));
            }
        }
        phi
    }

    #[test]
    fn tree_shap_is_the_exact_shapley_value_and_adds_up() {
        let width = 6;
        let d = data(600, width, 3);
        let params = TreeParams { max_depth: 6, min_child_rows: 3, features_per_node: 3, regression: false };
        let forest = grow_forest(&d, 3, &params, 0.8, 11, 0, 4);
        let probe = data(25, width, 99);
        for tree in &forest.trees {
            assert!(has_covers(tree));
            for r in 0..probe.rows() {
                let x = &probe.x[r * width..(r + 1) * width];
                for class in 0..3 {
                    let mut phi = vec![0.0; width];
                    let base = tree_shap(tree, x, class, 3, &mut phi);
                    let e = Explained { tree, class, classes: 3 };
                    let exact = exact_shapley(&e, x, width);
                    for (a, b) in phi.iter().zip(&exact) {
                        assert!((a - b).abs() < 1e-9, "Tree SHAP {phi:?} vs enumeration {exact:?}");
                    }
                    let mut out = vec![0.0; 3];
                    add_tree_probs(tree, x, &mut out);
                    let sum: f64 = phi.iter().sum();
                    assert!((base + sum - out[class]).abs() < 1e-9, "{base} + {sum} != {}", out[class]);
                    assert!((base - conditional(&e, 0, x, 0)).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn boosted_trees_are_explained_by_the_sum_of_their_trees_exact_shapley_values() {
        use crate::ml::boost::{self, BoostParams, Objective};
        let width = 4;
        let d = data(400, width, 5);
        let params = BoostParams { rounds: 6, max_depth: 3, subsample: 0.8, ..boost::test_params() };
        let model = boost::fit(&d, Objective::Classes(3), &params, 7);
        assert_eq!((model.outputs, model.trees.len()), (3, 18));
        let probe = data(20, width, 42);
        for r in 0..probe.rows() {
            let x = &probe.x[r * width..(r + 1) * width];
            let scores = boost::scores(&model, x);
            for (output, score) in scores.iter().enumerate() {
                let mut phi = vec![0.0; width];
                let base = boosted_shap(&model, x, output, &mut phi);
                let mut exact = vec![0.0; width];
                for tree in model.trees.iter().skip(output).step_by(3) {
                    let e = Explained { tree, class: 0, classes: 1 };
                    exact.iter_mut().zip(exact_shapley(&e, x, width)).for_each(|(a, b)| *a += b);
                }
                for (a, b) in phi.iter().zip(&exact) {
                    assert!((a - b).abs() < 1e-9, "boosted Tree SHAP {phi:?} vs enumeration {exact:?}");
                }
                let sum: f64 = phi.iter().sum();
                assert!((base + sum - score).abs() < 1e-9, "{base} + {sum} != {score}");
            }
        }
    }

    #[test]
    fn a_tree_without_covers_is_not_explained() {
        let d = data(100, 3, 1);
        let params = TreeParams { max_depth: 3, min_child_rows: 1, features_per_node: 3, regression: false };
        let mut tree = grow_forest(&d, 3, &params, 1.0, 1, 0, 1).trees.remove(0);
        tree.cover.clear();
        assert!(!has_covers(&tree));
    }
}
