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

/// Rows a [`loss_grad`] chunk sums on its own: chunks, not threads, fix the
/// order of the sums, so the model is the same on any number of cores.
const CHUNK_ROWS: usize = 1 << 15;

/// A chunk's weighted cross-entropy, weight and gradient sums.
#[derive(Debug, Clone, Default)]
struct Sums {
    loss: f64,
    weight: f64,
    grad: Vec<f64>,
}

/// [`Sums`] of `rows` at weights `w`.
fn chunk_sums(data: &Dataset, k: usize, w: &[f64], rows: std::ops::Range<usize>) -> Sums {
    let d = data.width;
    let mut p = vec![0f64; k];
    let mut x = vec![0f64; d];
    let mut sums = Sums { grad: vec![0f64; w.len()], ..Sums::default() };
    for r in rows {
        x.iter_mut().zip(&data.x[r * d..(r + 1) * d]).for_each(|(a, b)| *a = f64::from(*b));
        let y = data.y[r] as usize;
        let rw = data.w[r];
        for (c, z) in p.iter_mut().enumerate() {
            let wc = &w[c * (d + 1)..(c + 1) * (d + 1)];
            *z = wc[d] + dot_lanes(&wc[..d], &x);
        }
        softmax(&mut p);
        sums.loss -= rw * p[y].max(1e-300).ln();
        sums.weight += rw;
        for (c, pc) in p.iter().enumerate() {
            let g = rw * (pc - if c == y { 1.0 } else { 0.0 });
            let gw = &mut sums.grad[c * (d + 1)..(c + 1) * (d + 1)];
            for (gi, xi) in gw[..d].iter_mut().zip(&x) {
                *gi += g * xi;
            }
            gw[d] += g;
        }
    }
    sums
}

/// `a · b` summed in four interleaved lanes, added at the end: the same
/// order every time (so the same bits), and four independent chains of
/// additions instead of one, which the processor overlaps.
fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0f64; 4];
    let (head, tail) = (a.len() / 4 * 4, a.len() % 4);
    for (qa, qb) in a[..head].chunks_exact(4).zip(b[..head].chunks_exact(4)) {
        for l in 0..4 {
            lanes[l] += qa[l] * qb[l];
        }
    }
    for i in 0..tail {
        lanes[i] += a[head + i] * b[head + i];
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

/// Mean weighted cross-entropy plus penalty, and its gradient: chunks of
/// rows summed on the task's threads, then added in chunk order.
fn loss_grad(data: &Dataset, k: usize, l2: f64, w: &[f64], grad: &mut [f64], threads: usize) -> f64 {
    let d = data.width;
    let chunks = data.rows().div_ceil(CHUNK_ROWS).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    // Each thread takes the next chunk until none is left.
    let work = || {
        let mut out = Vec::new();
        loop {
            let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if c >= chunks {
                return out;
            }
            out.push((c, chunk_sums(data, k, w, c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(data.rows()))));
        }
    };
    let threads = threads.clamp(1, chunks);
    let mut partial = if threads == 1 {
        work()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles.into_iter().flat_map(|h| h.join().expect("a loss thread panicked")).collect()
        })
    };
    partial.sort_unstable_by_key(|(c, _)| *c);
    grad.fill(0.0);
    let (mut loss, mut total_w) = (0.0, 0.0);
    for (_, sums) in &partial {
        loss += sums.loss;
        total_w += sums.weight;
        grad.iter_mut().zip(&sums.grad).for_each(|(a, b)| *a += b);
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
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(8);
    let mut f = loss_grad(data, classes, l2, &w, &mut g, threads);
    let mut history = Vec::new();
    let mut steps = Vec::new();
    let mut millis = Vec::new();
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    const MEMORY: usize = 10;
    const MAX_HALVINGS: usize = 20;
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
        // Backtracking line search (Armijo). A direction that gives no
        // sufficient decrease in 20 halvings means the loss is flat to
        // rounding: the fit has converged, and a worse point is not taken
        // (each try is a pass over every row).
        let mut step = 1.0;
        let mut w_new = vec![0f64; n];
        let mut g_new = vec![0f64; n];
        let mut f_new = f64::INFINITY;
        let mut accepted = false;
        for _ in 0..MAX_HALVINGS {
            for i in 0..n {
                w_new[i] = w[i] + step * dir[i];
            }
            f_new = loss_grad(data, classes, l2, &w_new, &mut g_new, threads);
            if f_new <= f + 1e-4 * step * slope {
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// `n` rows of four features; three classes from a noisy linear score.
    fn data(n: usize) -> Dataset {
        let mut rng = Rng::stream(5, "logistic-test", 0);
        let mut d = Dataset { width: 4, ..Default::default() };
        for _ in 0..n {
            let x: Vec<f64> = (0..4).map(|_| rng.normal()).collect();
            let s = x[0] - 0.7 * x[1] + 0.3 * x[2] + 0.5 * rng.normal();
            d.x.extend(x.iter().map(|v| *v as f32));
            d.y.push(if s < -0.5 {
                0
            } else if s < 0.5 {
                1
            } else {
                2
            });
            d.w.push(if s < -0.5 { 2.0 } else { 1.0 });
        }
        d
    }

    #[test]
    fn the_number_of_threads_does_not_change_a_single_bit() {
        let d = data(3 * CHUNK_ROWS + 17);
        let w: Vec<f64> = (0..15).map(|i| (i as f64 - 7.0) / 10.0).collect();
        let (mut one, mut many) = (vec![0.0; 15], vec![0.0; 15]);
        let f1 = loss_grad(&d, 3, 0.5, &w, &mut one, 1);
        for threads in [2, 3, 8] {
            let f = loss_grad(&d, 3, 0.5, &w, &mut many, threads);
            assert_eq!((f.to_bits(), &many), (f1.to_bits(), &one), "{threads} threads");
        }
    }

    #[test]
    fn the_loss_only_falls_and_a_flat_loss_ends_the_fit() {
        let d = data(5000);
        // No progress threshold: it runs until no step lowers the loss.
        let m = fit(&d, 3, 0.0, 500, 0.0);
        let h = &m.loss_history;
        assert!(h.windows(2).all(|w| w[1] < w[0]), "{h:?}");
        assert!(h.len() < 500, "converged, yet ran every iteration");
        // The gradient there is nearly zero.
        let mut g = vec![0.0; m.weights.len()];
        loss_grad(&d, 3, 0.0, &m.weights, &mut g, 1);
        assert!(g.iter().all(|v| v.abs() < 1e-5), "{g:?}");
    }
}
