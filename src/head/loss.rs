//! Training losses and their gradients w.r.t. predictions (and the learned
//! log-variances of the uncertainty-weighted loss). Sums run in f64 in a
//! fixed order; gradients are returned as f32.

use super::config::LossKind;

/// Guards 1 − CCC against a zero denominator (a batch where predictions and
/// labels are both constant and equal); negligible next to label variances
/// (~1e-2).
const CCC_EPS: f64 = 1e-8;

/// A loss with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    /// Weight of (1 − CCC) in the hybrid loss.
    pub ccc_weight: f64,
    pub n_out: usize,
}

impl Loss {
    /// Number of learned parameters the loss owns (the s_d of the
    /// uncertainty weighting; initialised to 0 = unit variance).
    pub fn n_params(&self) -> usize {
        match self.kind {
            LossKind::Uncertainty => self.n_out,
            _ => 0,
        }
    }

    /// Loss of `pred` against `target` (both `[b, n_out]`). If `grads` is
    /// given, writes dL/dpred into `.0` and dL/d(loss params) into `.1`.
    pub fn eval(
        &self,
        pred: &[f32],
        target: &[f32],
        loss_params: &[f32],
        grads: Option<(&mut [f32], &mut [f32])>,
    ) -> f64 {
        let k = self.n_out;
        assert_eq!(pred.len(), target.len());
        assert_eq!(pred.len() % k, 0);
        assert_eq!(loss_params.len(), self.n_params());
        let b = pred.len() / k;
        let mut grads = grads;
        if let Some((gp, gs)) = grads.as_mut() {
            assert_eq!(gp.len(), pred.len());
            assert_eq!(gs.len(), loss_params.len());
            gp.fill(0.0);
        }
        match self.kind {
            LossKind::Mse => mse(pred, target, 1.0, grads.map(|g| g.0)),
            LossKind::Ccc => ccc_loss(pred, target, k, 1.0, grads.map(|g| g.0)),
            LossKind::Hybrid => {
                let mut gp = grads.map(|g| g.0);
                let m = mse(pred, target, 1.0, gp.as_deref_mut());
                m + ccc_loss(pred, target, k, self.ccc_weight, gp)
            }
            LossKind::Uncertainty => {
                let mut mse_d = vec![0f64; k];
                for (row_p, row_t) in pred.chunks_exact(k).zip(target.chunks_exact(k)) {
                    for ((m, &p), &t) in mse_d.iter_mut().zip(row_p).zip(row_t) {
                        let e = p as f64 - t as f64;
                        *m += e * e;
                    }
                }
                let mut total = 0.0;
                for (m, &s) in mse_d.iter_mut().zip(loss_params) {
                    *m /= b as f64;
                    total += 0.5 * (-s as f64).exp() * *m + 0.5 * s as f64;
                }
                if let Some((gp, gs)) = grads {
                    for ((gp_row, row_p), row_t) in gp
                        .chunks_exact_mut(k)
                        .zip(pred.chunks_exact(k))
                        .zip(target.chunks_exact(k))
                    {
                        for d in 0..k {
                            let w = (-loss_params[d] as f64).exp();
                            gp_row[d] = (w * (row_p[d] as f64 - row_t[d] as f64) / b as f64) as f32;
                        }
                    }
                    for ((g, &s), &m) in gs.iter_mut().zip(loss_params).zip(&mse_d) {
                        *g = (0.5 - 0.5 * (-s as f64).exp() * m) as f32;
                    }
                }
                total
            }
        }
    }
}

/// weight · mean squared error over all entries; adds its gradient to `grad`.
fn mse(pred: &[f32], target: &[f32], weight: f64, grad: Option<&mut [f32]>) -> f64 {
    let n = pred.len() as f64;
    let mut s = 0.0;
    for (&p, &t) in pred.iter().zip(target) {
        let e = p as f64 - t as f64;
        s += e * e;
    }
    if let Some(g) = grad {
        for ((g, &p), &t) in g.iter_mut().zip(pred).zip(target) {
            *g += (weight * 2.0 * (p as f64 - t as f64) / n) as f32;
        }
    }
    weight * s / n
}

/// weight · (1 − mean_d CCC_d), CCC per column over the rows with population
/// moments: CCC = 2·cov(p,y) / (var p + var y + (mean p − mean y)²).
/// Adds its gradient to `grad`.
fn ccc_loss(
    pred: &[f32],
    target: &[f32],
    k: usize,
    weight: f64,
    mut grad: Option<&mut [f32]>,
) -> f64 {
    let b = pred.len() / k;
    let bf = b as f64;
    let mut total = 0.0;
    for d in 0..k {
        let col = |m: &[f32], i: usize| m[i * k + d] as f64;
        let (mut mp, mut my) = (0.0, 0.0);
        for i in 0..b {
            mp += col(pred, i);
            my += col(target, i);
        }
        mp /= bf;
        my /= bf;
        let (mut spp, mut syy, mut spy) = (0.0, 0.0, 0.0);
        for i in 0..b {
            let (p, y) = (col(pred, i) - mp, col(target, i) - my);
            spp += p * p;
            syy += y * y;
            spy += p * y;
        }
        spp /= bf;
        syy /= bf;
        spy /= bf;
        let num = 2.0 * spy;
        let den = spp + syy + (mp - my) * (mp - my) + CCC_EPS;
        total += num / den;
        if let Some(g) = grad.as_deref_mut() {
            // d num/dp_i = 2(y_i − ȳ)/b;  d den/dp_i = 2(p_i − p̄)/b + 2(p̄ − ȳ)/b.
            for i in 0..b {
                let dnum = 2.0 * (col(target, i) - my) / bf;
                let dden = 2.0 * (col(pred, i) - mp) / bf + 2.0 * (mp - my) / bf;
                let dccc = (dnum * den - num * dden) / (den * den);
                g[i * k + d] += (-weight * dccc / k as f64) as f32;
            }
        }
    }
    weight * (1.0 - total / k as f64)
}
