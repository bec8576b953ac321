//! Quantile bins found before training, so that tree models' rows are binned
//! where they are read.
//!
//! Trees split on per-bin histograms ([`crate::ml::tree`], [`crate::ml::boost`]).
//! Instead of each training task cutting the rows it received, `CREATE MODEL`
//! first runs `sentio_cuts` over the training rows: every partition keeps a
//! seeded sample of its encoded rows — those of smallest hash
//! ([`CutSample`]) — the samples merge into the [`CUT_SAMPLE_ROWS`] rows of
//! smallest hash of all, and each feature's cut points come from them
//! ([`feature_cuts`]). The spec then carries the cuts, and `sentio_train`'s
//! partial aggregates ship each row as one byte per feature instead of four.
//! The sample, and so the cuts, depend only on the rows' content, never on
//! how they were partitioned: the same model on one executor or many.

use std::cmp::Ordering;

/// Rows the cut points are read from (all rows when there are fewer). The
/// same order of size as LightGBM's `bin_construct_sample_cnt`.
pub const CUT_SAMPLE_ROWS: usize = 32_768;

/// Most bins per feature (a bin is one byte).
pub const MAX_BINS: usize = 255;

/// The cut points of one feature from a sample of its values: with at most
/// [`MAX_BINS`] distinct values, one cut between each pair of neighbours;
/// otherwise [`MAX_BINS`] − 1 quantiles. Bin `b` of the result holds values
/// `<= cuts[b]` (and above `cuts[b - 1]`).
pub fn feature_cuts(mut sample: Vec<f32>) -> Vec<f32> {
    sample.sort_by(f32::total_cmp);
    sample.dedup();
    if sample.len() <= MAX_BINS {
        sample.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect()
    } else {
        let mut c: Vec<f32> = (1..MAX_BINS).map(|i| sample[i * sample.len() / MAX_BINS]).collect();
        c.dedup();
        c
    }
}

/// The bin of `v` among `cuts`: how many cuts lie below it.
pub fn bin_of(cuts: &[f32], v: f32) -> u8 {
    cuts.partition_point(|cut| *cut < v) as u8
}

/// Bins one encoded row into `out` (one byte per feature).
pub fn bin_row(cuts: &[Vec<f32>], row: &[f32], out: &mut Vec<u8>) {
    out.extend(cuts.iter().zip(row).map(|(c, v)| bin_of(c, *v)));
}

/// A mergeable sample of encoded rows: those of smallest (hash, content).
/// Whatever the partitioning and merge order, the final sample is the
/// [`CUT_SAMPLE_ROWS`] smallest of all rows.
#[derive(Debug, Clone, Default)]
pub struct CutSample {
    width: usize,
    hash: Vec<u64>,
    x: Vec<f32>,
}

impl CutSample {
    /// An empty sample of rows of `width` values.
    pub fn new(width: usize) -> Self {
        Self { width, ..Self::default() }
    }

    /// A sample from its parts ([`Self::hashes`], [`Self::values`]); `None`
    /// when their sizes disagree.
    pub fn from_parts(width: usize, hash: Vec<u64>, x: Vec<f32>) -> Option<Self> {
        (x.len() == hash.len() * width).then_some(Self { width, hash, x })
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.hash.len()
    }

    /// Each row's hash.
    pub fn hashes(&self) -> &[u64] {
        &self.hash
    }

    /// The rows' values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.x
    }

    /// Adds a row of hash `hash`.
    pub fn add(&mut self, hash: u64, row: &[f32]) {
        self.hash.push(hash);
        self.x.extend_from_slice(row);
        if self.rows() >= 2 * CUT_SAMPLE_ROWS {
            self.keep_smallest();
        }
    }

    /// Adds every row of `other`.
    pub fn merge(&mut self, other: &CutSample) {
        for (r, h) in other.hash.iter().enumerate() {
            self.add(*h, &other.x[r * other.width..(r + 1) * other.width]);
        }
    }

    /// Keeps the [`CUT_SAMPLE_ROWS`] rows of smallest (hash, content).
    fn keep_smallest(&mut self) {
        if self.rows() <= CUT_SAMPLE_ROWS {
            return;
        }
        let w = self.width;
        let row = |i: usize| &self.x[i * w..(i + 1) * w];
        let order = |a: &usize, b: &usize| {
            self.hash[*a].cmp(&self.hash[*b]).then_with(|| {
                row(*a).iter().zip(row(*b)).map(|(p, q)| p.total_cmp(q)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
            })
        };
        let mut idx: Vec<usize> = (0..self.rows()).collect();
        idx.select_nth_unstable_by(CUT_SAMPLE_ROWS - 1, order);
        idx.truncate(CUT_SAMPLE_ROWS);
        // Kept in row order: the set matters, not the order.
        idx.sort_unstable();
        let hash = idx.iter().map(|&i| self.hash[i]).collect();
        let x = idx.iter().flat_map(|&i| row(i).iter().copied()).collect();
        self.hash = hash;
        self.x = x;
    }

    /// Each feature's cut points ([`feature_cuts`]) over the sample.
    pub fn cuts(mut self) -> Vec<Vec<f32>> {
        self.keep_smallest();
        let rows = self.rows();
        (0..self.width).map(|f| feature_cuts((0..rows).map(|r| self.x[r * self.width + f]).collect())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn rows(n: usize, seed: u64) -> Vec<(u64, [f32; 3])> {
        let mut rng = Rng::stream(seed, "cut-test", 0);
        (0..n)
            .map(|_| {
                let row = [rng.normal() as f32, (rng.next_u64() % 7) as f32, rng.f64() as f32];
                (rng.next_u64() % 50_000, row)
            })
            .collect()
    }

    #[test]
    fn the_cuts_do_not_depend_on_partitioning_or_merge_order() {
        let all = rows(3 * CUT_SAMPLE_ROWS, 1);
        let mut one = CutSample::new(3);
        all.iter().for_each(|(h, r)| one.add(*h, r));
        // Five partitions of uneven sizes, merged in reverse.
        let mut parts: Vec<CutSample> = (0..5).map(|_| CutSample::new(3)).collect();
        for (i, (h, r)) in all.iter().enumerate() {
            parts[(i * i) % 5].add(*h, r);
        }
        let mut merged = CutSample::new(3);
        parts.iter().rev().for_each(|p| merged.merge(p));
        let (a, b) = (one.cuts(), merged.cuts());
        assert_eq!(a, b);
        assert_eq!(a[0].len(), MAX_BINS - 1, "a continuous feature gets every bin");
        assert_eq!(a[1], vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5], "seven values: a cut between each pair");
    }

    #[test]
    fn few_rows_are_cut_on_every_row() {
        let all = rows(1000, 2);
        let mut s = CutSample::new(3);
        all.iter().for_each(|(h, r)| s.add(*h, r));
        let cuts = s.cuts();
        let col: Vec<f32> = all.iter().map(|(_, r)| r[2]).collect();
        assert_eq!(cuts[2], feature_cuts(col));
    }

    #[test]
    fn a_bin_holds_values_up_to_its_cut() {
        let cuts = vec![vec![1.0, 2.0, 3.0]];
        let mut out = Vec::new();
        for v in [0.5, 1.0, 1.5, 3.0, 9.0] {
            bin_row(&cuts, &[v], &mut out);
        }
        assert_eq!(out, vec![0, 0, 1, 2, 3]);
    }
}
