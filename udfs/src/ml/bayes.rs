//! Gaussian naive Bayes: per class, the prior and each feature's mean and
//! variance; the statistics of parts of the data add up.

use sentio_proto::NaiveBayes;

use crate::ml::Dataset;

/// Statistics of `data` (weighted by class weight).
pub fn fit(data: &Dataset, classes: usize) -> NaiveBayes {
    let d = data.width;
    let mut nb = NaiveBayes {
        count: vec![0.0; classes],
        sum: vec![0.0; classes * d],
        sum_sq: vec![0.0; classes * d],
    };
    for r in 0..data.rows() {
        let c = data.y[r] as usize;
        let w = data.w[r];
        nb.count[c] += w;
        for j in 0..d {
            let v = f64::from(data.x[r * d + j]);
            nb.sum[c * d + j] += w * v;
            nb.sum_sq[c * d + j] += w * v * v;
        }
    }
    nb
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
        for j in 0..width {
            let mean = nb.sum[c * width + j] / n;
            let var = (nb.sum_sq[c * width + j] / n - mean * mean).max(0.0) + eps;
            let v = f64::from(x[j]) - mean;
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
