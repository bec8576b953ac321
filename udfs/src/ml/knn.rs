//! k-nearest neighbours over the stored, standardised training rows
//! (Euclidean distance; the probability of a class is its share of the
//! neighbours' weights).

use sentio_proto::Knn;

/// Class probabilities of `x` from its `knn.num_neighbors` nearest rows.
pub fn probs(knn: &Knn, weights: &[f64], width: usize, x: &[f32], out: &mut [f64]) {
    let k = (knn.num_neighbors as usize).max(1);
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (r, y) in knn.y.iter().enumerate() {
        let row = &knn.x[r * width..(r + 1) * width];
        let dist: f32 = row.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum();
        if best.len() < k || dist < best[best.len() - 1].0 {
            let at = best.partition_point(|(d, _)| *d <= dist);
            best.insert(at, (dist, *y));
            best.truncate(k);
        }
    }
    out.fill(0.0);
    for (_, y) in &best {
        out[*y as usize] += weights.get(*y as usize).copied().unwrap_or(1.0);
    }
    let total: f64 = out.iter().sum();
    if total > 0.0 {
        for o in out.iter_mut() {
            *o /= total;
        }
    }
}
