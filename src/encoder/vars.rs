//! One walk over a model's tensors serves every way of getting weights: a
//! model's `walk` (e.g. [`crate::encoder::MertWeights::walk`]) names each
//! tensor once, with its shape and how a random initialiser fills it, and asks
//! a [`VarSource`] for it. The source decides what that means:
//!
//! - [`Checkpoint`]: read it from a safetensors file (shape checked);
//! - [`Seeded`]: draw it from a seeded generator (the random-init controls);
//! - [`Recorder`]: pass another source through and keep a copy under its
//!   name, so the model can be saved as a checkpoint the loader reads back.
//!
//! Loading, random init and saving therefore cannot drift apart: there is no
//! second list of tensor names (the idea of candle's `VarBuilder`).

use super::checkpoint::{WeightStore, weight_norm_conv, weight_norm_spelling};
use super::nn::{LinearW, NormW};
use crate::rng::SplitMix64;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// How the seeded initialiser fills a tensor (a checkpoint ignores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Uniform in ±1/√fan_in, fan_in = the product of every dim but the first
    /// (PyTorch's default scale for linear and conv weights).
    FanIn,
    /// Uniform in ±0.02 (biases).
    Bias,
    /// 1 + uniform ±0.1 (norm scales, BatchNorm running variances).
    NearOne,
    /// Uniform ±0.1 (norm shifts, BatchNorm running means).
    NearZero,
}

/// Where a model's tensors come from. See the module docs.
pub trait VarSource {
    /// The tensor `name`, exactly `shape`, as f32.
    fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>>;

    /// The fused weight `[c_out, c_in, k]` of a weight-normed conv at `prefix`
    /// (a checkpoint may store it as `weight_g`/`weight_v`).
    fn weight_norm_conv(&mut self, prefix: &str, shape: [usize; 3]) -> Result<Vec<f32>> {
        self.tensor(&format!("{prefix}.weight"), &shape, Init::FanIn)
    }

    /// The model has no tensor `name`; a checkpoint that holds one does not
    /// match the config (`why` says which setting).
    fn ensure_absent(&self, _name: &str, _why: &str) -> Result<()> {
        Ok(())
    }

    /// `n` values the seeded initialiser draws and drops where the control
    /// models have always drawn a tensor the model does not keep (so their
    /// weights stay what they were); nothing for other sources.
    fn skip(&mut self, _n: usize, _init: Init) {}
}

/// A borrowed source serves as the source itself (e.g. recorded by a [`Recorder`]).
impl<T: VarSource + ?Sized> VarSource for &mut T {
    fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        (**self).tensor(name, shape, init)
    }
    fn weight_norm_conv(&mut self, prefix: &str, shape: [usize; 3]) -> Result<Vec<f32>> {
        (**self).weight_norm_conv(prefix, shape)
    }
    fn ensure_absent(&self, name: &str, why: &str) -> Result<()> {
        (**self).ensure_absent(name, why)
    }
    fn skip(&mut self, n: usize, init: Init) {
        (**self).skip(n, init)
    }
}

/// A [`VarSource`] with a name prefix, as a model's walk passes it down
/// (`vars.pp("encoder").pp("layers.0")`).
pub struct Vars<'a> {
    src: &'a mut dyn VarSource,
    prefix: String,
}

impl<'a> Vars<'a> {
    pub fn new(src: &'a mut dyn VarSource) -> Self {
        Vars {
            src,
            prefix: String::new(),
        }
    }

    /// The same source under `prefix.name`.
    pub fn pp(&mut self, name: impl std::fmt::Display) -> Vars<'_> {
        Vars {
            prefix: self.name(&name.to_string()),
            src: &mut *self.src,
        }
    }

    fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        let full = self.name(name);
        self.src.tensor(&full, shape, init)
    }

    /// `weight` `[out, inp]` and, if `bias`, `bias` `[out]`.
    pub fn linear(&mut self, out: usize, inp: usize, bias: bool) -> Result<LinearW> {
        Ok(LinearW {
            w: self.get("weight", &[out, inp], Init::FanIn)?,
            b: bias
                .then(|| self.get("bias", &[out], Init::Bias))
                .transpose()?,
            out,
            inp,
        })
    }

    /// `weight` (γ) and `bias` (β), `[n]` each.
    pub fn norm(&mut self, n: usize) -> Result<NormW> {
        Ok(NormW {
            gamma: self.get("weight", &[n], Init::NearOne)?,
            beta: self.get("bias", &[n], Init::NearZero)?,
        })
    }

    /// This prefix's weight-normed conv weight `[c_out, c_in, k]`, fused.
    pub fn weight_norm_conv(&mut self, shape: [usize; 3]) -> Result<Vec<f32>> {
        let prefix = self.prefix.clone();
        self.src.weight_norm_conv(&prefix, shape)
    }

    pub fn ensure_absent(&self, name: &str, why: &str) -> Result<()> {
        self.src.ensure_absent(&self.name(name), why)
    }

    pub fn skip(&mut self, n: usize, init: Init) {
        self.src.skip(n, init)
    }
}

/// Tensors read from a safetensors checkpoint by name.
pub struct Checkpoint<'a>(pub &'a WeightStore);

impl VarSource for Checkpoint<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>> {
        self.0.get(name, shape)
    }

    fn weight_norm_conv(&mut self, prefix: &str, [c_out, c_in, k]: [usize; 3]) -> Result<Vec<f32>> {
        weight_norm_conv(self.0, prefix, c_out, c_in, k)
    }

    fn ensure_absent(&self, name: &str, why: &str) -> Result<()> {
        if self.0.contains(name) {
            bail!("{}: has {name} but {why}", self.0.label());
        }
        Ok(())
    }
}

/// Each tensor checked against a checkpoint's header ([`WeightStore::open_header`]:
/// name, shape, dtype, byte length) without reading its values: a walk that
/// finds a wrong or incomplete checkpoint before any work. It serves zeros
/// (allocated zeroed, so the untouched pages of a large model cost nothing).
pub struct ShapeCheck<'a>(pub &'a WeightStore);

impl VarSource for ShapeCheck<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize], _init: Init) -> Result<Vec<f32>> {
        self.0.check(name, shape)?;
        Ok(vec![0.0; shape.iter().product()])
    }

    fn weight_norm_conv(&mut self, prefix: &str, [c_out, c_in, k]: [usize; 3]) -> Result<Vec<f32>> {
        weight_norm_spelling(self.0, prefix, c_out, c_in, k)?;
        Ok(vec![0.0; c_out * c_in * k])
    }

    fn ensure_absent(&self, name: &str, why: &str) -> Result<()> {
        Checkpoint(self.0).ensure_absent(name, why)
    }
}

/// Seeded random tensors of the requested shapes (see [`Init`]): activations
/// of a model built from them stay in a sane range.
pub struct Seeded(pub SplitMix64);

impl Seeded {
    pub fn new(seed: u64) -> Self {
        Seeded(SplitMix64(seed))
    }

    fn draw(&mut self, n: usize, init: Init, fan_in: usize) -> Vec<f32> {
        let r = &mut self.0;
        match init {
            Init::FanIn => r.uniform_vec(n, 1.0 / (fan_in as f32).sqrt()),
            Init::Bias => r.uniform_vec(n, 0.02),
            Init::NearOne => r.uniform_vec(n, 0.1).into_iter().map(|v| 1.0 + v).collect(),
            Init::NearZero => r.uniform_vec(n, 0.1),
        }
    }
}

impl VarSource for Seeded {
    fn tensor(&mut self, _name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        let fan_in = shape.iter().skip(1).product::<usize>().max(1);
        Ok(self.draw(shape.iter().product(), init, fan_in))
    }

    fn skip(&mut self, n: usize, init: Init) {
        self.draw(n, init, 1);
    }
}

/// Another source passed through, with a copy of every tensor it served kept
/// under its name: what a walk saw is a checkpoint of the model it built.
pub struct Recorder<S> {
    inner: S,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl<S: VarSource> Recorder<S> {
    pub fn new(inner: S) -> Self {
        Recorder {
            inner,
            tensors: Vec::new(),
        }
    }

    /// The recorded tensors, in walk order.
    pub fn tensors(&self) -> &[(String, Vec<usize>, Vec<f32>)] {
        &self.tensors
    }

    /// The recorded tensors as a safetensors buffer (f32) the loader reads back.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, s, d)| {
                let b = d.iter().flat_map(|v| v.to_le_bytes()).collect();
                (n.clone(), s.clone(), b)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| {
                let view =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?;
                Ok((n.clone(), view))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(|e| anyhow::anyhow!("building tensor views: {e:?}"))?;
        safetensors::serialize(views, None).map_err(|e| anyhow::anyhow!("serialising: {e:?}"))
    }

    /// Write the recorded tensors to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_safetensors()?)
            .with_context(|| format!("writing the model's tensors to {}", path.display()))
    }
}

impl<S: VarSource> VarSource for Recorder<S> {
    fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        let v = self.inner.tensor(name, shape, init)?;
        self.tensors.push((name.into(), shape.to_vec(), v.clone()));
        Ok(v)
    }

    /// Recorded as the fused `.weight`, one of the spellings the loader accepts.
    fn weight_norm_conv(&mut self, prefix: &str, shape: [usize; 3]) -> Result<Vec<f32>> {
        let v = self.inner.weight_norm_conv(prefix, shape)?;
        self.tensors
            .push((format!("{prefix}.weight"), shape.to_vec(), v.clone()));
        Ok(v)
    }

    fn ensure_absent(&self, name: &str, why: &str) -> Result<()> {
        self.inner.ensure_absent(name, why)
    }

    fn skip(&mut self, n: usize, init: Init) {
        self.inner.skip(n, init)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_join_with_dots_and_seeded_scales_follow_the_fan_in() {
        let mut rec = Recorder::new(Seeded::new(1));
        let mut vars = Vars::new(&mut rec);
        let l = vars
            .pp("encoder")
            .pp("layers.3")
            .pp("q")
            .linear(4, 100, true)
            .unwrap();
        assert!(l.w.iter().all(|v| v.abs() <= 0.1), "±1/√100");
        assert!(l.b.unwrap().iter().all(|v| v.abs() <= 0.02));
        let n = vars.pp("ln").norm(8).unwrap();
        assert!(n.gamma.iter().all(|v| (0.9..=1.1).contains(v)));
        let names: Vec<&str> = rec.tensors().iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "encoder.layers.3.q.weight",
                "encoder.layers.3.q.bias",
                "ln.weight",
                "ln.bias"
            ]
        );
    }

    #[test]
    fn a_recorded_walk_reads_back_from_its_checkpoint() {
        let walk = |src: &mut dyn VarSource| -> Result<(LinearW, Vec<f32>)> {
            let mut v = Vars::new(src);
            let l = v.pp("proj").linear(3, 5, true)?;
            let c = v.pp("pos_conv").weight_norm_conv([4, 2, 3])?;
            v.ensure_absent("layers.9.weight", "the config has 9 layers")?;
            Ok((l, c))
        };
        let mut rec = Recorder::new(Seeded::new(7));
        let (l, c) = walk(&mut rec).unwrap();
        let store = WeightStore::from_bytes(rec.to_safetensors().unwrap(), "saved").unwrap();
        let (l2, c2) = walk(&mut Checkpoint(&store)).unwrap();
        assert_eq!((l.w, l.b, c), (l2.w, l2.b, c2));
        // A checkpoint with a tensor the walk says is absent is a mismatch, named.
        let extra = crate::encoder::checkpoint::tests::to_safetensors(&[(
            "layers.9.weight",
            vec![1],
            vec![0.0],
        )]);
        let store = WeightStore::from_bytes(extra, "big.safetensors").unwrap();
        let e = Checkpoint(&store)
            .ensure_absent("layers.9.weight", "the config has 9 layers")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("big.safetensors") && e.contains("layers.9.weight"),
            "{e}"
        );
    }
}
