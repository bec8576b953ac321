//! Symmetric positive definite systems, solved by Cholesky decomposition:
//! the normal equations of matrix factorization's users and items and of
//! linear regression.

/// Solves `m x = b` for a symmetric positive definite `m` (`d × d`,
/// row-major) by Cholesky decomposition; None when `m` is not positive
/// definite — when a pivot is not above `min_pivot` (0 for a strict check; a
/// share of the diagonal's scale to call nearly singular systems singular).
///
/// ```
/// use sentio_udfs::ml::cholesky::solve_spd;
/// let x = solve_spd(vec![4.0, 2.0, 2.0, 3.0], 2, &[2.0, 1.0], 0.0).unwrap();
/// assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
/// assert!(solve_spd(vec![1.0, 1.0, 1.0, 1.0], 2, &[1.0, 1.0], 1e-12).is_none());
/// ```
pub fn solve_spd(mut m: Vec<f64>, d: usize, b: &[f64], min_pivot: f64) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut s = m[j * d + j];
        for k in 0..j {
            s -= m[j * d + k] * m[j * d + k];
        }
        if s <= min_pivot || !s.is_finite() {
            return None;
        }
        let l = s.sqrt();
        m[j * d + j] = l;
        for i in j + 1..d {
            let mut s = m[i * d + j];
            for k in 0..j {
                s -= m[i * d + k] * m[j * d + k];
            }
            m[i * d + j] = s / l;
        }
    }
    // L y = b, then Lᵀ x = y.
    let mut y = vec![0f64; d];
    for i in 0..d {
        let mut s = b[i];
        for k in 0..i {
            s -= m[i * d + k] * y[k];
        }
        y[i] = s / m[i * d + i];
    }
    let mut x = vec![0f64; d];
    for i in (0..d).rev() {
        let mut s = y[i];
        for k in i + 1..d {
            s -= m[k * d + i] * x[k];
        }
        x[i] = s / m[i * d + i];
    }
    Some(x)
}
