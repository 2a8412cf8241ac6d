//! Central finite differences against candle's autodiff gradients, in f64
//! (tests only): every trainable tensor of a head, a sample of its entries.

use candle_core::{DType, Tensor, Var};

use super::Result;
use super::params::Params;
use crate::rng::Rng;

fn values(v: &Var) -> Result<Vec<f64>> {
    Ok(v.as_tensor().flatten_all()?.to_vec1::<f64>()?)
}

fn set(v: &Var, x: Vec<f64>) -> Result<()> {
    v.set(&Tensor::from_vec(x, v.dims(), v.device())?)?;
    Ok(())
}

/// Compares ∂f/∂θ from autodiff with (f(θ+h) − f(θ−h))/2h for up to
/// `per_tensor` entries of every tensor of `params` (f64). Returns the worst
/// error relative to max(1, |analytic|), with where it happened.
pub fn max_error(
    params: &Params,
    per_tensor: usize,
    f: &dyn Fn() -> Result<Tensor>,
) -> Result<(f64, String)> {
    assert_eq!(params.dtype(), DType::F64, "gradient checks run in f64");
    let grads = f()?.backward()?;
    let mut pick = Rng::new(99, 7);
    let h = 1e-6;
    let mut worst = (0.0, String::new());
    for (k, var) in params.vars().iter().enumerate() {
        let base = values(var)?;
        let analytic = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
            None => vec![0.0; base.len()],
        };
        for _ in 0..per_tensor.min(base.len()) {
            let i = pick.below(base.len());
            let mut x = base.clone();
            x[i] = base[i] + h;
            set(var, x.clone())?;
            let up = f()?.to_scalar::<f64>()?;
            x[i] = base[i] - h;
            set(var, x)?;
            let down = f()?.to_scalar::<f64>()?;
            set(var, base.clone())?;
            let numeric = (up - down) / (2.0 * h);
            let err = (numeric - analytic[i]).abs() / analytic[i].abs().max(1.0);
            if err > worst.0 {
                worst = (
                    err,
                    format!(
                        "tensor {k} entry {i}: autodiff {} vs fd {numeric}",
                        analytic[i]
                    ),
                );
            }
        }
    }
    Ok(worst)
}
