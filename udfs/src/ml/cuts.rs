//! Quantile bins found before training, so that tree models' rows are binned
//! where they are read; and the training rows' sample they come from.
//!
//! Trees split on per-bin histograms ([`crate::ml::tree`], [`crate::ml::boost`]).
//! Instead of each training task cutting the rows it received, `CREATE
//! MODEL`'s statistics pass keeps a seeded sample of the training rows'
//! numeric features (`sentio_feature_sample`, [`crate::ml::sample_udaf`]):
//! every partition keeps its rows of smallest (row hash, values)
//! ([`FeatureSample`]), the samples merge into the [`SAMPLE_ROWS`] smallest
//! of all, and each feature's summary ([`Summary`]: its median, and the
//! values its bins are cut at) comes from them. Once the encoding is known,
//! [`encoded_cuts`] turns the summaries into each encoded feature's cut
//! points; the spec carries them, and `sentio_train`'s partial aggregates
//! ship each row as one byte per feature instead of four. The sample, and so
//! the cuts, depend only on the rows' content, never on how they were
//! partitioned: the same model on one executor or many.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::ml::spec::{Encoding, FeatureSpec};

/// Rows the cut points and medians are read from (all rows when there are
/// fewer). The same order of size as LightGBM's `bin_construct_sample_cnt`.
pub const SAMPLE_ROWS: usize = 32_768;

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
        quantiles(&sample)
    }
}

/// [`MAX_BINS`] − 1 quantiles of distinct sorted `values` (more than
/// [`MAX_BINS`] of them), without repeats.
fn quantiles<T: Copy + PartialEq>(values: &[T]) -> Vec<T> {
    let mut c: Vec<T> = (1..MAX_BINS).map(|i| values[i * values.len() / MAX_BINS]).collect();
    c.dedup();
    c
}

/// The bin of `v` among `cuts`: how many cuts lie below it.
pub fn bin_of(cuts: &[f32], v: f32) -> u8 {
    cuts.partition_point(|cut| *cut < v) as u8
}

/// Bins one encoded row into `out` (one byte per feature).
pub fn bin_row(cuts: &[Vec<f32>], row: &[f32], out: &mut Vec<u8>) {
    out.extend(cuts.iter().zip(row).map(|(c, v)| bin_of(c, *v)));
}

/// What the sample says of one numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The median of the sample's values (None: all NULL or NaN).
    pub median: Option<f64>,
    /// The sample's distinct values, sorted, when there are at most
    /// [`MAX_BINS`] of them (`distinct`); else [`MAX_BINS`] − 1 quantiles
    /// of them.
    pub values: Vec<f64>,
    /// Whether `values` are all the distinct values.
    pub distinct: bool,
    /// Whether some sampled rows are NULL or NaN (encoded as the mean).
    pub nulls: bool,
}

/// A mergeable sample of rows' numeric features: those of smallest (hash,
/// values), NaN for NULL. Whatever the partitioning and merge order, the
/// final sample is the [`SAMPLE_ROWS`] smallest of all rows.
#[derive(Debug, Clone, Default)]
pub struct FeatureSample {
    width: usize,
    hash: Vec<u64>,
    x: Vec<f64>,
}

impl FeatureSample {
    /// An empty sample of rows of `width` values.
    pub fn new(width: usize) -> Self {
        Self { width, ..Self::default() }
    }

    /// A sample from its parts ([`Self::hashes`], [`Self::values`]); `None`
    /// when their sizes disagree.
    pub fn from_parts(width: usize, hash: Vec<u64>, x: Vec<f64>) -> Option<Self> {
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
    pub fn values(&self) -> &[f64] {
        &self.x
    }

    /// Adds a row of hash `hash`.
    pub fn add(&mut self, hash: u64, row: &[f64]) {
        self.hash.push(hash);
        self.x.extend_from_slice(row);
        if self.rows() >= 2 * SAMPLE_ROWS {
            self.keep_smallest();
        }
    }

    /// Adds every row of `other`.
    pub fn merge(&mut self, other: &FeatureSample) {
        for (r, h) in other.hash.iter().enumerate() {
            self.add(*h, &other.x[r * other.width..(r + 1) * other.width]);
        }
    }

    /// Keeps the [`SAMPLE_ROWS`] rows of smallest (hash, values).
    fn keep_smallest(&mut self) {
        if self.rows() <= SAMPLE_ROWS {
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
        idx.select_nth_unstable_by(SAMPLE_ROWS - 1, order);
        idx.truncate(SAMPLE_ROWS);
        // Kept in row order: the set matters, not the order.
        idx.sort_unstable();
        let hash = idx.iter().map(|&i| self.hash[i]).collect();
        let x = idx.iter().flat_map(|&i| row(i).iter().copied()).collect();
        self.hash = hash;
        self.x = x;
    }

    /// Each feature's [`Summary`] over the sample.
    pub fn summaries(mut self) -> Vec<Summary> {
        self.keep_smallest();
        let rows = self.rows();
        (0..self.width)
            .map(|f| {
                let column = (0..rows).map(|r| self.x[r * self.width + f]);
                let mut present: Vec<f64> = column.filter(|v| !v.is_nan()).collect();
                present.sort_by(f64::total_cmp);
                let n = present.len();
                let median = match n {
                    0 => None,
                    n if n % 2 == 1 => Some(present[n / 2]),
                    n => Some(present[n / 2 - 1] + (present[n / 2] - present[n / 2 - 1]) / 2.0),
                };
                let nulls = n < rows;
                present.dedup();
                let distinct = present.len() <= MAX_BINS;
                let values = if distinct { present } else { quantiles(&present) };
                Summary { median, values, distinct, nulls }
            })
            .collect()
    }
}

/// Each encoded feature's cut points, from the summaries of the numeric
/// features (in order) and the features' encodings: a number's summary
/// values encoded as the model encodes them (NULL as the mean), cut by
/// [`feature_cuts`] when they are all its distinct values; each one-hot
/// column of a text feature cut between 0 and 1. `None` when the summaries
/// do not match the features.
pub fn encoded_cuts(features: &[FeatureSpec], summaries: &[Summary]) -> Option<Vec<Vec<f32>>> {
    let mut summaries = summaries.iter();
    let mut out = Vec::new();
    for feature in features {
        match &feature.encoding {
            Encoding::Numeric { mean, std } => {
                let s = summaries.next()?;
                let mut encoded: Vec<f32> = s.values.iter().map(|v| ((v - mean) / std) as f32).collect();
                if s.distinct {
                    if s.nulls {
                        encoded.push(0.0);
                    }
                    out.push(feature_cuts(encoded));
                } else {
                    encoded.sort_by(f32::total_cmp);
                    encoded.dedup();
                    out.push(encoded);
                }
            }
            Encoding::Categorical { categories } => out.extend(categories.iter().map(|_| vec![0.5])),
        }
    }
    summaries.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn rows(n: usize, seed: u64) -> Vec<(u64, [f64; 3])> {
        let mut rng = Rng::stream(seed, "cut-test", 0);
        (0..n)
            .map(|_| {
                let small = if rng.chance(0.1) { f64::NAN } else { (rng.next_u64() % 7) as f64 };
                let row = [rng.normal(), small, if rng.chance(0.1) { f64::NAN } else { rng.f64() }];
                (rng.next_u64() % 50_000, row)
            })
            .collect()
    }

    fn numeric(mean: f64, std: f64) -> FeatureSpec {
        FeatureSpec { name: "f".into(), sql_type: "Float64".into(), encoding: Encoding::Numeric { mean, std } }
    }

    #[test]
    fn the_summaries_do_not_depend_on_partitioning_or_merge_order() {
        let all = rows(3 * SAMPLE_ROWS, 1);
        let mut one = FeatureSample::new(3);
        all.iter().for_each(|(h, r)| one.add(*h, r));
        // Five partitions of uneven sizes, merged in reverse.
        let mut parts: Vec<FeatureSample> = (0..5).map(|_| FeatureSample::new(3)).collect();
        for (i, (h, r)) in all.iter().enumerate() {
            parts[(i * i) % 5].add(*h, r);
        }
        let mut merged = FeatureSample::new(3);
        parts.iter().rev().for_each(|p| merged.merge(p));
        let (a, b) = (one.summaries(), merged.summaries());
        assert_eq!(a, b);
        assert!(!a[0].distinct && a[0].values.len() == MAX_BINS - 1, "a continuous feature: quantiles");
        assert!(a[0].median.unwrap().abs() < 0.05, "the median of a standard normal: {:?}", a[0].median);
        assert_eq!((a[1].distinct, a[1].values.len(), a[1].nulls), (true, 7, true), "seven values, all kept");
        assert!(a[2].nulls, "NULLs are seen");
    }

    #[test]
    fn few_rows_are_summarised_from_every_row_and_cut_as_encoded() {
        let all = rows(1001, 2);
        let mut s = FeatureSample::new(3);
        all.iter().for_each(|(h, r)| s.add(*h, r));
        let summaries = s.summaries();
        let mut col: Vec<f64> = all.iter().map(|(_, r)| r[0]).collect();
        col.sort_by(f64::total_cmp);
        assert_eq!(summaries[0].median, Some(col[500]), "the middle of 1001 rows");
        // The cuts of the encoded values, NULL at the mean (0 encoded), as
        // the last step of training would find them on every row.
        let features = [numeric(0.5, 2.0), numeric(2.9, 2.0), numeric(0.5, 0.25)];
        let cuts = encoded_cuts(&features, &summaries).unwrap();
        for (f, spec) in features.iter().enumerate() {
            let Encoding::Numeric { mean, std } = spec.encoding else { unreachable!() };
            let encoded: Vec<f32> =
                all.iter().map(|(_, r)| if r[f].is_nan() { 0.0 } else { ((r[f] - mean) / std) as f32 }).collect();
            if f == 1 {
                assert_eq!(cuts[f], feature_cuts(encoded), "feature {f}");
            } else {
                // More distinct values than bins: quantiles of the distinct
                // non-NULL values.
                assert_eq!(cuts[f].len(), MAX_BINS - 1);
                assert!(cuts[f].windows(2).all(|w| w[0] < w[1]));
            }
        }
        let text = FeatureSpec {
            name: "t".into(),
            sql_type: "Utf8".into(),
            encoding: Encoding::Categorical { categories: vec!["a".into(), "b".into()] },
        };
        let with_text = encoded_cuts(&[text, features[0].clone()], &summaries[..1]).unwrap();
        assert_eq!(with_text[..2], [vec![0.5], vec![0.5]], "one-hot columns cut between 0 and 1");
        assert!(encoded_cuts(&features, &summaries[..2]).is_none(), "a summary short");
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
