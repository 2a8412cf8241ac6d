//! Adam, following `torch.optim.Adam` step for step (betas 0.9/0.999,
//! eps 1e-8, bias correction), with either L2-coupled weight decay (torch's
//! `weight_decay`) or decoupled decay (AdamW). Decay applies to every
//! parameter, biases included, as in a single torch parameter group. Also
//! the learning-rate schedule and gradient-norm clipping every fit loop uses.

use super::config::{HeadConfig, LrSchedule, WeightDecay};

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

#[derive(Clone, Debug)]
pub struct Adam {
    lr: f32,
    weight_decay: f32,
    mode: WeightDecay,
    step: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    pub fn new(n_params: usize, lr: f32, weight_decay: f32, mode: WeightDecay) -> Self {
        Adam {
            lr,
            weight_decay,
            mode,
            step: 0,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
        }
    }

    /// Learning rate of the next steps (a schedule sets it each epoch).
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// One update of `params` with gradient `grad`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert_eq!(params.len(), self.m.len());
        assert_eq!(grad.len(), self.m.len());
        self.step += 1;
        let k = Consts {
            step_size: self.lr / (1.0 - BETA1.powi(self.step)),
            bc2_sqrt: (1.0 - BETA2.powi(self.step)).sqrt(),
            // L2: decay joins the gradient; decoupled: weights shrink first.
            l2: if self.mode == WeightDecay::L2 {
                self.weight_decay
            } else {
                0.0
            },
            shrink: if self.mode == WeightDecay::Decoupled {
                1.0 - self.lr * self.weight_decay
            } else {
                1.0
            },
        };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked above). Only mul/add/sqrt/div
            // are used, all correctly rounded, so this path gives the same
            // bits as the portable one.
            unsafe { update_avx2(params, grad, &mut self.m, &mut self.v, k) };
            return;
        }
        update(params, grad, &mut self.m, &mut self.v, k)
    }
}

/// Learning rate of 0-based epoch `e`.
pub fn lr_at(cfg: &HeadConfig, e: usize) -> f32 {
    match cfg.lr_schedule {
        LrSchedule::Constant => cfg.lr,
        LrSchedule::Cosine => {
            let cos = (std::f64::consts::PI * e as f64 / cfg.max_epochs as f64).cos();
            (cfg.lr_floor as f64 + (cfg.lr - cfg.lr_floor) as f64 * (1.0 + cos) / 2.0) as f32
        }
    }
}

/// Scales `grad` so its global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` (coefficient max/(norm + 1e-6), capped
/// at 1). Returns the norm before clipping.
pub fn clip_grad_norm(grad: &mut [f32], max_norm: f32) -> f64 {
    // Eight partial sums (lane j takes elements ≡ j mod 8), added in lane
    // order: one running sum is a chain of dependent adds, as slow per
    // element as a step's whole matmul work on a small head.
    let mut lanes = [0f64; 8];
    let mut chunks = grad.chunks_exact(8);
    for c in &mut chunks {
        for (l, &g) in lanes.iter_mut().zip(c) {
            *l += g as f64 * g as f64;
        }
    }
    for (l, &g) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += g as f64 * g as f64;
    }
    let norm = lanes.iter().sum::<f64>().sqrt();
    if max_norm > 0.0 {
        let coef = max_norm as f64 / (norm + 1e-6);
        if coef < 1.0 {
            for g in grad.iter_mut() {
                *g = (*g as f64 * coef) as f32;
            }
        }
    }
    norm
}

#[derive(Clone, Copy)]
struct Consts {
    step_size: f32,
    bc2_sqrt: f32,
    l2: f32,
    shrink: f32,
}

#[inline(always)]
fn update(params: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: Consts) {
    for (((p, &g), m), v) in params.iter_mut().zip(grad).zip(m).zip(v) {
        // shrink = 1 and l2 = 0 leave p and g unchanged bit for bit.
        *p *= k.shrink;
        let g = g + k.l2 * *p;
        // torch: exp_avg.lerp_(grad, 1-β1); exp_avg_sq.mul_(β2).addcmul_(g, g, 1-β2)
        *m += (1.0 - BETA1) * (g - *m);
        *v = *v * BETA2 + (1.0 - BETA2) * g * g;
        let denom = v.sqrt() / k.bc2_sqrt + EPS;
        *p -= k.step_size * *m / denom;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,avx2")]
fn update_avx2(params: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], k: Consts) {
    update(params, grad, m, v, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // After one step m̂ = g, v̂ = g², so the update is lr·g/(|g|+eps).
        let mut p = vec![1.0f32, -2.0, 0.5];
        let g = [0.3f32, -4.0, 0.0];
        let mut adam = Adam::new(3, 0.01, 0.0, WeightDecay::L2);
        adam.step(&mut p, &g);
        assert!((p[0] - 0.99).abs() < 1e-6, "{p:?}");
        assert!((p[1] + 1.99).abs() < 1e-6, "{p:?}");
        assert_eq!(p[2], 0.5);
    }

    #[test]
    fn weight_decay_forms_differ_as_documented() {
        // Zero loss gradient: L2 decay enters the moments, so the first step
        // is a full lr step towards 0; decoupled decay only shrinks by lr·wd.
        let g = [0.0f32];
        let mut l2 = vec![2.0f32];
        Adam::new(1, 0.1, 0.01, WeightDecay::L2).step(&mut l2, &g);
        assert!((l2[0] - 1.9).abs() < 1e-6, "{l2:?}");
        let mut dec = vec![2.0f32];
        Adam::new(1, 0.1, 0.01, WeightDecay::Decoupled).step(&mut dec, &g);
        assert!((dec[0] - 2.0 * (1.0 - 0.001)).abs() < 1e-7, "{dec:?}");
    }

    #[test]
    fn minimises_a_quadratic() {
        // f(p) = Σ (p_i - c_i)²
        let c = [0.3f32, -1.2, 2.0];
        let mut p = vec![0f32; 3];
        let mut adam = Adam::new(3, 0.05, 0.0, WeightDecay::L2);
        for _ in 0..2000 {
            let g: Vec<f32> = p.iter().zip(&c).map(|(p, c)| 2.0 * (p - c)).collect();
            adam.step(&mut p, &g);
        }
        for (p, c) in p.iter().zip(&c) {
            assert!((p - c).abs() < 1e-3, "{p} vs {c}");
        }
    }
}
