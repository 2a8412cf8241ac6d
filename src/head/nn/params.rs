//! A head's trainable tensors (and non-trainable buffers such as BatchNorm's
//! running statistics), kept in creation order so the whole head is one flat
//! vector for Adam, checkpoints and gradient checks.
//!
//! Initial values come from the project's seeded [`Rng`], drawn in creation
//! order and row-major within a tensor: a head is a pure function of its
//! config and seed, whatever candle's own random state.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use super::Result;
use crate::rng::Rng;

pub struct Params {
    dtype: DType,
    rng: Rng,
    vars: Vec<Var>,
    buffers: Vec<Var>,
}

impl Params {
    pub fn new(dtype: DType, rng: Rng) -> Params {
        Params {
            dtype,
            rng,
            vars: Vec::new(),
            buffers: Vec::new(),
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn tensor(&self, values: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(self.dtype)?)
    }

    /// A trainable tensor ~ U(−bound, bound): PyTorch's `nn.Linear`, LSTM and
    /// conv default init with bound = 1/√fan_in, Xavier with √(6/(in+out)).
    pub fn uniform(&mut self, shape: &[usize], bound: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = (0..n)
            .map(|_| (2.0 * self.rng.uniform_f32() - 1.0) * bound)
            .collect();
        let var = Var::from_tensor(&self.tensor(values, shape)?)?;
        let t = var.as_tensor().clone();
        self.vars.push(var);
        Ok(t)
    }

    /// A trainable tensor filled with `value` (LayerNorm/BatchNorm γ = 1, β = 0).
    pub fn constant(&mut self, shape: &[usize], value: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let var = Var::from_tensor(&self.tensor(vec![value; n], shape)?)?;
        let t = var.as_tensor().clone();
        self.vars.push(var);
        Ok(t)
    }

    /// A non-trainable buffer filled with `value`, updated with [`Var::set`].
    pub fn buffer(&mut self, shape: &[usize], value: f32) -> Result<Var> {
        let n: usize = shape.iter().product();
        let var = Var::from_tensor(&self.tensor(vec![value; n], shape)?)?;
        self.buffers.push(var.clone());
        Ok(var)
    }

    /// Number of trainable values.
    pub fn len(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    fn flatten(vars: &[Var]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for v in vars {
            out.extend(
                v.as_tensor()
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(out)
    }

    fn assign(&self, vars: &[Var], flat: &[f32]) -> Result<()> {
        let total: usize = vars.iter().map(|v| v.elem_count()).sum();
        anyhow::ensure!(
            flat.len() == total,
            "{} values for {total} parameters",
            flat.len()
        );
        let mut at = 0;
        for v in vars {
            let n = v.elem_count();
            v.set(&self.tensor(flat[at..at + n].to_vec(), v.dims())?)?;
            at += n;
        }
        Ok(())
    }

    /// The trainable values, flat in creation order.
    pub fn flat(&self) -> Result<Vec<f32>> {
        Self::flatten(&self.vars)
    }

    pub fn set_flat(&self, flat: &[f32]) -> Result<()> {
        self.assign(&self.vars, flat)
    }

    /// The buffers, flat in creation order.
    pub fn buffers_flat(&self) -> Result<Vec<f32>> {
        Self::flatten(&self.buffers)
    }

    pub fn set_buffers_flat(&self, flat: &[f32]) -> Result<()> {
        self.assign(&self.buffers, flat)
    }

    /// Gradients of every trainable tensor into `out` (flat, creation
    /// order); a tensor the loss does not reach gets zeros.
    pub fn grads_flat(&self, grads: &GradStore, out: &mut [f32]) -> Result<()> {
        anyhow::ensure!(
            out.len() == self.len(),
            "gradient buffer has the wrong length"
        );
        let mut at = 0;
        for v in &self.vars {
            let n = v.elem_count();
            match grads.get(v.as_tensor()) {
                Some(g) => {
                    let g = g.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                    out[at..at + n].copy_from_slice(&g);
                }
                None => out[at..at + n].fill(0.0),
            }
            at += n;
        }
        Ok(())
    }
}
