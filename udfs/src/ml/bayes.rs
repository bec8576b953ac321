//! Gaussian naive Bayes: per class, the prior and each feature's mean and
//! variance; the statistics of parts of the data add up.

use sentio_proto::NaiveBayes;

use crate::ml::Dataset;

/// Fixed-point scale of [`Stats`] sums.
pub const SCALE: f64 = 16_777_216.0;

/// Per-class row counts and per-class, per-feature sums and sums of squares
/// in fixed point: exact integer sums, so partial statistics from any
/// partitions merge, in any order, into the same model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    width: usize,
    count: Vec<u64>,
    sum: Vec<i128>,
    sum_sq: Vec<i128>,
}

impl Stats {
    /// Empty statistics.
    pub fn new(classes: usize, width: usize) -> Self {
        Self { width, count: vec![0; classes], sum: vec![0; classes * width], sum_sq: vec![0; classes * width] }
    }

    /// Adds one encoded row of class `c`.
    pub fn add(&mut self, x: &[f32], c: usize) {
        self.count[c] += 1;
        for (j, v) in x.iter().enumerate() {
            let v = f64::from(*v);
            self.sum[c * self.width + j] += (v * SCALE).round() as i128;
            self.sum_sq[c * self.width + j] += (v * v * SCALE).round() as i128;
        }
    }

    /// Adds another part's statistics.
    pub fn merge(&mut self, other: &Stats) -> Result<(), String> {
        if other.count.len() != self.count.len() || other.sum.len() != self.sum.len() {
            return Err("naive Bayes statistics of another shape".into());
        }
        self.count.iter_mut().zip(&other.count).for_each(|(a, b)| *a += b);
        self.sum.iter_mut().zip(&other.sum).for_each(|(a, b)| *a += b);
        self.sum_sq.iter_mut().zip(&other.sum_sq).for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.count.iter().sum()
    }

    /// Little-endian bytes: counts (u64), sums and sums of squares (i128).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.count.len() * 8 + self.sum.len() * 32);
        self.count.iter().for_each(|v| out.extend(v.to_le_bytes()));
        self.sum.iter().chain(&self.sum_sq).for_each(|v| out.extend(v.to_le_bytes()));
        out
    }

    /// Reads [`Self::to_bytes`] for `classes` × `width`.
    pub fn from_bytes(bytes: &[u8], classes: usize, width: usize) -> Result<Self, String> {
        if bytes.len() != classes * 8 + classes * width * 32 {
            return Err("naive Bayes statistics of another size".into());
        }
        let (counts, sums) = bytes.split_at(classes * 8);
        let ints: Vec<i128> = sums.chunks_exact(16).map(|c| i128::from_le_bytes(c.try_into().expect("16"))).collect();
        let (sum, sum_sq) = ints.split_at(classes * width);
        Ok(Self {
            width,
            count: counts.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect(),
            sum: sum.to_vec(),
            sum_sq: sum_sq.to_vec(),
        })
    }

    /// The model, each class's statistics weighted by its class weight.
    pub fn finish(&self, class_weights: &[f64]) -> NaiveBayes {
        let w = |c: usize| class_weights.get(c).copied().unwrap_or(1.0);
        let d = self.width;
        NaiveBayes {
            count: self.count.iter().enumerate().map(|(c, n)| *n as f64 * w(c)).collect(),
            sum: self.sum.iter().enumerate().map(|(i, s)| *s as f64 / SCALE * w(i / d.max(1))).collect(),
            sum_sq: self.sum_sq.iter().enumerate().map(|(i, s)| *s as f64 / SCALE * w(i / d.max(1))).collect(),
        }
    }
}

/// Statistics of `data`, weighted by class weight (`class_weights`).
pub fn fit(data: &Dataset, classes: usize, class_weights: &[f64]) -> NaiveBayes {
    let mut s = Stats::new(classes, data.width);
    for r in 0..data.rows() {
        s.add(&data.x[r * data.width..(r + 1) * data.width], data.y[r] as usize);
    }
    s.finish(class_weights)
}

/// Class probabilities of `x`.
pub fn probs(nb: &NaiveBayes, width: usize, x: &[f32], out: &mut [f64]) {
    let total: f64 = nb.count.iter().sum();
    // Variance smoothing as scikit-learn does: 1e-9 of the largest variance
    // (features are standardised, so about 1e-9).
    let eps = 1e-9;
    for (c, o) in out.iter_mut().enumerate() {
        let n = nb.count[c];
        if n <= 0.0 {
            *o = f64::NEG_INFINITY;
            continue;
        }
        let mut lp = (n / total).ln();
        for (j, &xj) in x.iter().enumerate().take(width) {
            let mean = nb.sum[c * width + j] / n;
            let var = (nb.sum_sq[c * width + j] / n - mean * mean).max(0.0) + eps;
            let v = f64::from(xj) - mean;
            lp += -0.5 * (std::f64::consts::TAU * var).ln() - v * v / (2.0 * var);
        }
        *o = lp;
    }
    let max = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for o in out.iter_mut() {
        *o = (*o - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_merge_exactly_in_any_order() {
        let rows: Vec<([f32; 2], usize)> =
            (0..200).map(|i| ([(i as f32 * 0.37).sin() * 3.0, (i as f32).sqrt() * 0.1], i % 3)).collect();
        let mut whole = Stats::new(3, 2);
        rows.iter().for_each(|(x, c)| whole.add(x, *c));
        let (mut a, mut b) = (Stats::new(3, 2), Stats::new(3, 2));
        rows.iter().rev().enumerate().for_each(|(i, (x, c))| if i % 2 == 0 { a.add(x, *c) } else { b.add(x, *c) });
        let mut merged = Stats::from_bytes(&b.to_bytes(), 3, 2).unwrap();
        merged.merge(&a).unwrap();
        assert_eq!(merged, whole);
        assert_eq!(merged.finish(&[1.0; 3]), whole.finish(&[1.0; 3]));
        assert!(Stats::from_bytes(&[1, 2, 3], 3, 2).is_err());
    }
}
