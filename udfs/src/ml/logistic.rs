//! Multinomial logistic regression (softmax), fitted by L-BFGS on the
//! standardised features with an optional L2 penalty.

use sentio_proto::Logistic;

use crate::ml::Dataset;

/// Class probabilities of `x` under `weights` (`classes × (width + 1)`).
pub fn probs(weights: &[f64], width: usize, x: &[f32], out: &mut [f64]) {
    let k = out.len();
    for c in 0..k {
        let w = &weights[c * (width + 1)..(c + 1) * (width + 1)];
        let mut z = w[width];
        for (wi, xi) in w[..width].iter().zip(x) {
            z += wi * f64::from(*xi);
        }
        out[c] = z;
    }
    softmax(out);
}

fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// Mean weighted cross-entropy plus penalty, and its gradient.
fn loss_grad(data: &Dataset, k: usize, l2: f64, w: &[f64], grad: &mut [f64]) -> f64 {
    let d = data.width;
    grad.fill(0.0);
    let mut p = vec![0f64; k];
    let mut loss = 0.0;
    let mut total_w = 0.0;
    for r in 0..data.rows() {
        let x = &data.x[r * d..(r + 1) * d];
        let y = data.y[r] as usize;
        let rw = data.w[r];
        probs(w, d, x, &mut p);
        loss -= rw * p[y].max(1e-300).ln();
        total_w += rw;
        for c in 0..k {
            let g = rw * (p[c] - if c == y { 1.0 } else { 0.0 });
            let gw = &mut grad[c * (d + 1)..(c + 1) * (d + 1)];
            for (gi, xi) in gw[..d].iter_mut().zip(x) {
                *gi += g * f64::from(*xi);
            }
            gw[d] += g;
        }
    }
    let n = total_w.max(1e-300);
    loss /= n;
    for g in grad.iter_mut() {
        *g /= n;
    }
    for c in 0..k {
        for j in 0..d {
            let i = c * (d + 1) + j;
            loss += 0.5 * l2 * w[i] * w[i] / n;
            grad[i] += l2 * w[i] / n;
        }
    }
    loss
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Fits the model; `max_iterations` L-BFGS steps at most, stopping early when
/// the loss improves by less than `min_rel_progress` of itself.
pub fn fit(data: &Dataset, classes: usize, l2: f64, max_iterations: u32, min_rel_progress: f64) -> Logistic {
    let n = classes * (data.width + 1);
    let mut w = vec![0f64; n];
    let mut g = vec![0f64; n];
    let mut f = loss_grad(data, classes, l2, &w, &mut g);
    let mut history = Vec::new();
    let mut steps = Vec::new();
    let mut millis = Vec::new();
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    const MEMORY: usize = 10;
    for _ in 0..max_iterations {
        if crate::cancel::cancelled() {
            break;
        }
        let started = std::time::Instant::now();
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let rho = 1.0 / dot(y, s);
            let a = rho * dot(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push((a, rho));
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            for qi in q.iter_mut() {
                *qi *= gamma;
            }
        }
        for ((s, y), (a, rho)) in s_hist.iter().zip(&y_hist).zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += si * (a - b);
            }
        }
        let dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        let dir = if slope >= 0.0 {
            slope = -dot(&g, &g);
            g.iter().map(|v| -v).collect()
        } else {
            dir
        };
        // Backtracking line search (Armijo).
        let mut step = 1.0;
        let mut w_new = vec![0f64; n];
        let mut g_new = vec![0f64; n];
        let mut f_new;
        loop {
            for i in 0..n {
                w_new[i] = w[i] + step * dir[i];
            }
            f_new = loss_grad(data, classes, l2, &w_new, &mut g_new);
            if f_new <= f + 1e-4 * step * slope || step < 1e-10 {
                break;
            }
            step *= 0.5;
        }
        let s: Vec<f64> = (0..n).map(|i| w_new[i] - w[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
        if dot(&s, &y) > 1e-12 {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > MEMORY {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        let progress = (f - f_new) / f.abs().max(1e-12);
        w = w_new;
        g = g_new;
        f = f_new;
        history.push(f);
        steps.push(step);
        millis.push(u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX));
        if progress < min_rel_progress {
            break;
        }
    }
    Logistic { weights: w, loss_history: history, step_history: steps, iteration_millis: millis }
}
