//! Least-squares linear regression (`linear_reg`), solved exactly from the
//! Gram matrix of the rows.
//!
//! Every partition adds its encoded rows into a [`Gram`] — the row count and
//! the sums of `x`, `y`, `y²`, `xxᵀ` and `xy` — in fixed point, so partial
//! sums from any partitions merge in any order into the same integers, and
//! one executor or many give the same model bytes. No row leaves its
//! partition. [`Gram::fit`] then minimises, in the label's own units,
//!
//! ```text
//!   ½ Σ (y − b − x·w)²  +  l1_reg · ‖w‖₁  +  ½ l2_reg · ‖w‖²
//! ```
//!
//! over the standardised features `x` (the intercept `b` is not penalised):
//! by Cholesky's method for the normal equations when there is no L1 term
//! and they are definite — scikit-learn's `LinearRegression` / `Ridge(alpha =
//! l2_reg)` on standardised columns — else by cyclic coordinate descent on
//! the Gram matrix (`Lasso` / `ElasticNet` with `alpha` scaled by the row
//! count; collinear features, such as every category of a one-hot text
//! column beside the intercept, get one of the equally good solutions).

use sentio_proto::Linear;

use crate::ml::cholesky::solve_spd;
use crate::ml::spec::Target;

/// Fixed-point scale of [`Gram`] sums: 2⁴⁰, so a product of standardised
/// values keeps about 12 decimal places, and 10¹⁴ rows of values up to 10⁶
/// still fit an `i128`.
pub const SCALE: f64 = 1_099_511_627_776.0;

/// Largest magnitude of a standardised value or product that is summed.
const MAX_VALUE: f64 = 1e20;

/// Most encoded features a linear regression fits (its Gram matrix has
/// `width²/2` sums of 16 bytes each: 32 MiB at this width).
pub const MAX_WIDTH: usize = 2048;

/// Exact sums of the encoded rows of a linear regression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gram {
    width: usize,
    rows: u64,
    sum_y: i128,
    sum_yy: i128,
    sum_x: Vec<i128>,
    xty: Vec<i128>,
    /// `xxᵀ`'s upper triangle, row by row (`j ≤ k`).
    xtx: Vec<i128>,
}

fn fixed(v: f64) -> Result<i128, String> {
    if !v.is_finite() || v.abs() > MAX_VALUE {
        return Err(format!(
            "a standardised value of {v} is too large to sum exactly; an outlier that far from the rest \
             ({MAX_VALUE:e} standard deviations) should be filtered out or transformed"
        ));
    }
    Ok((v * SCALE).round() as i128)
}

fn float(v: i128) -> f64 {
    v as f64 / SCALE
}

fn packed(width: usize, j: usize, k: usize) -> usize {
    let (j, k) = if j <= k { (j, k) } else { (k, j) };
    j * width - j * (j + 1) / 2 + k
}

impl Gram {
    /// Empty sums for rows of `width` encoded features.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            rows: 0,
            sum_y: 0,
            sum_yy: 0,
            sum_x: vec![0; width],
            xty: vec![0; width],
            xtx: vec![0; width * (width + 1) / 2],
        }
    }

    /// Rows summed.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes the sums take.
    pub fn heap_size(&self) -> usize {
        16 * (self.sum_x.capacity() + self.xty.capacity() + self.xtx.capacity())
    }

    /// Adds one encoded row `x` with (standardised) label `y`.
    pub fn add(&mut self, x: &[f64], y: f64) -> Result<(), String> {
        let fy = fixed(y)?;
        self.rows += 1;
        self.sum_y += fy;
        self.sum_yy += fixed(y * y)?;
        let mut t = 0;
        for (j, &xj) in x.iter().enumerate() {
            if xj == 0.0 {
                // A zero (a category not taken, a mean-imputed NULL) adds
                // nothing to its row of the triangle.
                t += self.width - j;
                continue;
            }
            self.sum_x[j] += fixed(xj)?;
            self.xty[j] += fixed(xj * y)?;
            for &xk in &x[j..] {
                if xk != 0.0 {
                    self.xtx[t] += fixed(xj * xk)?;
                }
                t += 1;
            }
        }
        Ok(())
    }

    /// Adds another part's sums.
    pub fn merge(&mut self, other: &Gram) -> Result<(), String> {
        if other.width != self.width {
            return Err("linear regression sums of another width".into());
        }
        self.rows += other.rows;
        self.sum_y += other.sum_y;
        self.sum_yy += other.sum_yy;
        let add = |a: &mut Vec<i128>, b: &[i128]| a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        add(&mut self.sum_x, &other.sum_x);
        add(&mut self.xty, &other.xty);
        add(&mut self.xtx, &other.xtx);
        Ok(())
    }

    /// Little-endian bytes: the row count (u64), then every sum (i128).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 16 * (2 + 2 * self.width + self.xtx.len()));
        out.extend(self.rows.to_le_bytes());
        for v in [self.sum_y, self.sum_yy].iter().chain(&self.sum_x).chain(&self.xty).chain(&self.xtx) {
            out.extend(v.to_le_bytes());
        }
        out
    }

    /// Reads [`Self::to_bytes`] of sums of rows of `width` features.
    pub fn from_bytes(bytes: &[u8], width: usize) -> Result<Self, String> {
        let mut g = Self::new(width);
        if bytes.len() != 8 + 16 * (2 + 2 * width + g.xtx.len()) {
            return Err("linear regression sums of another size".into());
        }
        let (rows, sums) = bytes.split_at(8);
        g.rows = u64::from_le_bytes(rows.try_into().expect("8 bytes"));
        let mut ints = sums.chunks_exact(16).map(|c| i128::from_le_bytes(c.try_into().expect("16 bytes")));
        let mut next = || ints.next().expect("sized above");
        g.sum_y = next();
        g.sum_yy = next();
        g.sum_x.iter_mut().for_each(|v| *v = next());
        g.xty.iter_mut().for_each(|v| *v = next());
        g.xtx.iter_mut().for_each(|v| *v = next());
        Ok(g)
    }

    /// Fits the weights (one per encoded feature, then the intercept) in the
    /// label's units, `target` being the standardisation of the label the
    /// sums were taken over.
    pub fn fit(&self, l1: f64, l2: f64, target: Target) -> Result<Linear, String> {
        if self.rows == 0 {
            return Err("no rows to fit".into());
        }
        let (d, n) = (self.width, self.rows as f64);
        let mean_x: Vec<f64> = self.sum_x.iter().map(|v| float(*v) / n).collect();
        let mean_y = float(self.sum_y) / n;
        // Centred sums: the intercept takes the means out and is not penalised.
        let mut s = vec![0.0; d * d];
        for j in 0..d {
            for k in j..d {
                let v = float(self.xtx[packed(d, j, k)]) - n * mean_x[j] * mean_x[k];
                s[j * d + k] = v;
                s[k * d + j] = v;
            }
        }
        let c: Vec<f64> = (0..d).map(|j| float(self.xty[j]) - n * mean_x[j] * mean_y).collect();
        // The label was standardised: an L1 penalty in its own units is
        // `l1 / std` in these (an L2 penalty is the same in both).
        let l1 = l1 / target.std;
        let exact = if l1 > 0.0 { None } else { cholesky_solve(&s, &c, l2, d) };
        let beta = exact.unwrap_or_else(|| coordinate_descent(&s, &c, l1, l2, d));
        let intercept = mean_y - beta.iter().zip(&mean_x).map(|(b, m)| b * m).sum::<f64>();
        let mut weights: Vec<f64> = beta.iter().map(|b| b * target.std).collect();
        weights.push(target.mean + intercept * target.std);
        Ok(Linear { weights })
    }
}

/// Solves `(s + l2·I) β = c` by Cholesky's method; None when the matrix is
/// not (numerically) positive definite: a pivot at or below 10⁻¹⁰ of the
/// diagonal's scale (collinear features).
fn cholesky_solve(s: &[f64], c: &[f64], l2: f64, d: usize) -> Option<Vec<f64>> {
    let scale = (0..d).map(|j| s[j * d + j]).fold(0.0, f64::max).max(l2).max(f64::MIN_POSITIVE);
    let mut a = s.to_vec();
    (0..d).for_each(|j| a[j * d + j] += l2);
    solve_spd(a, d, c, 1e-10 * scale)
}

/// Minimises `½ βᵀsβ − cᵀβ + l1‖β‖₁ + ½ l2‖β‖²` one coordinate at a time,
/// until no weight moves by more than 10⁻¹³ of the largest (or the work
/// budget of about 4·10⁹ multiply-adds is spent, or the task is cancelled).
fn coordinate_descent(s: &[f64], c: &[f64], l1: f64, l2: f64, d: usize) -> Vec<f64> {
    let mut beta = vec![0.0; d];
    // g = s β, kept up to date as weights move.
    let mut g = vec![0.0; d];
    let sweeps = (4e9 / (d * d).max(1) as f64).clamp(100.0, 1e6) as usize;
    for _ in 0..sweeps {
        let mut moved: f64 = 0.0;
        for j in 0..d {
            let a = s[j * d + j] + l2;
            if a <= 0.0 {
                continue;
            }
            let r = c[j] - (g[j] - s[j * d + j] * beta[j]);
            let new = r.signum() * (r.abs() - l1).max(0.0) / a;
            let delta = new - beta[j];
            if delta != 0.0 {
                for k in 0..d {
                    g[k] += s[k * d + j] * delta;
                }
                beta[j] = new;
                moved = moved.max(delta.abs());
            }
        }
        let largest = beta.iter().fold(0.0f64, |m, b| m.max(b.abs()));
        if moved <= 1e-13 * largest.max(1e-300) || crate::cancel::cancelled() {
            break;
        }
    }
    beta
}

/// The prediction of `weights` (as [`Gram::fit`] returns them) for the
/// encoded row `x`.
pub fn predict(weights: &[f64], x: &[f64]) -> f64 {
    let (w, intercept) = weights.split_at(weights.len().saturating_sub(1));
    intercept.first().copied().unwrap_or(0.0) + w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of three features, the third correlated with the first two.
    fn rows() -> Vec<(Vec<f64>, f64)> {
        correlated(0.3)
    }

    /// Rows whose third feature is the sum of the first two plus `noise`.
    fn correlated(noise: f64) -> Vec<(Vec<f64>, f64)> {
        (0..300)
            .map(|i| {
                let a = (f64::from(i) * 0.37).sin();
                let b = (f64::from(i) * 0.11).cos() * 2.0;
                let c = a + b + (f64::from(i) * 1.7).sin() * noise;
                (vec![a, b, c], 1.5 * a - 2.0 * b + 0.5 * c + 0.3 + (f64::from(i) * 0.9).cos() * 0.1)
            })
            .collect()
    }

    fn gram(rows: &[(Vec<f64>, f64)]) -> Gram {
        let mut g = Gram::new(3);
        rows.iter().for_each(|(x, y)| g.add(x, *y).unwrap());
        g
    }

    const UNIT: Target = Target { mean: 0.0, std: 1.0 };

    /// The normal equations solved the long way: X'X β = X'y with an
    /// intercept column.
    fn least_squares(rows: &[(Vec<f64>, f64)]) -> Vec<f64> {
        let d = 4;
        let mut a = vec![0.0; d * d];
        let mut b = vec![0.0; d];
        for (x, y) in rows {
            let x: Vec<f64> = x.iter().copied().chain([1.0]).collect();
            for j in 0..d {
                b[j] += x[j] * y;
                for k in 0..d {
                    a[j * d + k] += x[j] * x[k];
                }
            }
        }
        cholesky_solve(&a, &b, 0.0, d).unwrap()
    }

    #[test]
    fn sums_merge_exactly_in_any_order() {
        let rows = rows();
        let whole = gram(&rows);
        let (mut a, mut b) = (Gram::new(3), Gram::new(3));
        for (i, (x, y)) in rows.iter().rev().enumerate() {
            if i % 3 == 0 { a.add(x, *y) } else { b.add(x, *y) }.unwrap();
        }
        let mut merged = Gram::from_bytes(&b.to_bytes(), 3).unwrap();
        merged.merge(&a).unwrap();
        assert_eq!(merged, whole);
        assert!(Gram::from_bytes(&[0; 10], 3).is_err());
        assert!(Gram::new(3).add(&[f64::NAN, 0.0, 0.0], 1.0).is_err());
    }

    #[test]
    fn the_fit_is_the_least_squares_solution() {
        // Nearly collinear features: the normal equations still solve them.
        let nearly = correlated(0.01);
        let fitted = gram(&nearly).fit(0.0, 0.0, UNIT).unwrap().weights;
        let direct = least_squares(&nearly);
        for (f, e) in fitted.iter().zip(&direct) {
            assert!((f - e).abs() <= 1e-7 * e.abs().max(1.0), "{fitted:?} vs {direct:?}");
        }
        let rows = rows();
        let fitted = gram(&rows).fit(0.0, 0.0, UNIT).unwrap().weights;
        // Coordinate descent (the L1 path) reaches the same optimum.
        let cd = {
            let g = gram(&rows);
            let n = g.rows as f64;
            let mx: Vec<f64> = g.sum_x.iter().map(|v| float(*v) / n).collect();
            let my = float(g.sum_y) / n;
            let mut s = vec![0.0; 9];
            for j in 0..3 {
                for k in 0..3 {
                    s[j * 3 + k] = float(g.xtx[packed(3, j, k)]) - n * mx[j] * mx[k];
                }
            }
            let c: Vec<f64> = (0..3).map(|j| float(g.xty[j]) - n * mx[j] * my).collect();
            coordinate_descent(&s, &c, 0.0, 0.0, 3)
        };
        for (f, e) in cd.iter().zip(&fitted) {
            assert!((f - e).abs() <= 1e-9 * e.abs().max(1.0), "{cd:?} vs {fitted:?}");
        }
    }

    #[test]
    fn penalties_shrink_and_the_label_units_do_not_matter() {
        let rows = rows();
        let plain = gram(&rows).fit(0.0, 0.0, UNIT).unwrap().weights;
        let ridge = gram(&rows).fit(0.0, 50.0, UNIT).unwrap().weights;
        let lasso = gram(&rows).fit(20.0, 0.0, UNIT).unwrap().weights;
        let norm = |w: &[f64]| w[..3].iter().map(|v| v * v).sum::<f64>();
        assert!(norm(&ridge) < norm(&plain));
        assert!(lasso[..3].contains(&0.0), "L1 sets a weight to zero: {lasso:?}");
        // The same rows with the label in other units (y' = 10 + 4y,
        // standardised back by the target): the weights scale with it.
        let target = Target { mean: 10.0, std: 4.0 };
        let scaled = gram(&rows).fit(0.0, 50.0, target).unwrap().weights;
        for (s, r) in scaled[..3].iter().zip(&ridge) {
            assert!((s - 4.0 * r).abs() < 1e-9);
        }
        assert!((scaled[3] - (10.0 + 4.0 * ridge[3])).abs() < 1e-9);
        let x = [0.2, -0.1, 0.3];
        assert!((predict(&scaled, &x) - (10.0 + 4.0 * predict(&ridge, &x))).abs() < 1e-9);
    }

    #[test]
    fn collinear_features_still_fit() {
        // The third feature is exactly the sum of the first two.
        let rows: Vec<(Vec<f64>, f64)> = rows()
            .into_iter()
            .map(|(x, y)| {
                let c = x[0] + x[1];
                (vec![x[0], x[1], c], y)
            })
            .collect();
        let w = gram(&rows).fit(0.0, 0.0, UNIT).unwrap().weights;
        let sse = |w: &[f64]| rows.iter().map(|(x, y)| (predict(w, x) - y).powi(2)).sum::<f64>();
        // As good as the fit on the two independent features alone.
        let two: Vec<(Vec<f64>, f64)> = rows.iter().map(|(x, y)| (vec![x[0], x[1], 0.0], *y)).collect();
        let w2 = gram(&two).fit(0.0, 0.0, UNIT).unwrap().weights;
        assert!(sse(&w) <= sse(&w2) * (1.0 + 1e-9) + 1e-12, "{} vs {}", sse(&w), sse(&w2));
    }
}
