//! Adam and RMSProp updates in one pass over a parameter's flat buffers (PyTorch's rules, as
//! `optim` states them), instead of a dozen element-wise tensor operations each reading and
//! writing the whole parameter. The arithmetic is the tensor version's, in the same order.

use rayon::prelude::*;

/// Elements per parallel chunk: large enough that a chunk outweighs its scheduling.
const CHUNK: usize = 1 << 14;

/// Adam's constants for one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub beta1: f64,
    pub beta2: f64,
    /// lr / (1 - beta1^t).
    pub step_size: f64,
    /// sqrt(1 - beta2^t).
    pub bias2_sqrt: f64,
    pub eps: f64,
}

/// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2 (from zero moments when `fresh`), then
/// p -= step_size * m / (sqrt(v) / bias2_sqrt + eps).
pub fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep, fresh: bool) {
    assert!(g.len() == p.len() && m.len() == p.len() && v.len() == p.len(), "buffers of one parameter");
    let (b1, b2, c1, c2) = (s.beta1 as f32, s.beta2 as f32, (1.0 - s.beta1) as f32, (1.0 - s.beta2) as f32);
    let (step, bias2, eps) = (s.step_size as f32, s.bias2_sqrt as f32, s.eps as f32);
    p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK))).for_each(
        |((p, g), (m, v))| {
            for i in 0..p.len() {
                let gi = g[i];
                let (mi, vi) = if fresh { (gi * c1, gi * gi * c2) } else { (m[i] * b1 + gi * c1, v[i] * b2 + gi * gi * c2) };
                m[i] = mi;
                v[i] = vi;
                p[i] -= mi / (vi.sqrt() / bias2 + eps) * step;
            }
        },
    );
}

/// v = alpha v + (1 - alpha) g^2 (from zero when `fresh`), p -= lr g / (sqrt(v) + eps).
pub fn rmsprop(p: &mut [f32], g: &[f32], v: &mut [f32], alpha: f64, lr: f64, eps: f64, fresh: bool) {
    assert!(g.len() == p.len() && v.len() == p.len(), "buffers of one parameter");
    let (a, c, lr, eps) = (alpha as f32, (1.0 - alpha) as f32, lr as f32, eps as f32);
    p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(v.par_chunks_mut(CHUNK)).for_each(|((p, g), v)| {
        for i in 0..p.len() {
            let gi = g[i];
            let vi = if fresh { gi * gi * c } else { v[i] * a + gi * gi * c };
            v[i] = vi;
            p[i] -= gi / (vi.sqrt() + eps) * lr;
        }
    });
}
