//! A trained head of either stack ([`FoldHead`]), and how it is kept: its
//! config and input widths as JSON, its weights and standardisation as
//! tensors of a [`TensorFile`] under a prefix (`fold0.params`,
//! `fold0.standardizer.0.mean` ...). The train artifact keeps every fold's
//! head this way; a model bundle copies them to score new clips.

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::config::HeadConfig;
use super::frames::HeadInput;
use super::graph::GraphHead;
use super::kinds::InputDims;
use super::train::{Standardizer, TrainedHead};
use crate::tensors::TensorFile;

/// One trained head: the hand-written MLP/linear stack or an autodiff one.
#[derive(Clone, Debug, PartialEq)]
pub enum FoldHead {
    Net(TrainedHead),
    Graph(GraphHead),
}

/// What is kept of a head besides its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadDescriptor {
    /// `net` (hand-written backward pass) or `graph` (candle autodiff).
    pub stack: String,
    /// The head's config as serialised (with `validation` when it is the study's).
    pub config: serde_json::Value,
    pub dims: InputDims,
    pub n_out: usize,
    /// Tensor name prefix in the file.
    pub prefix: String,
}

impl HeadDescriptor {
    /// The head config back. `validation` is not a `head` key in
    /// pipeline.toml (so `HeadConfig` refuses it), hence read apart.
    pub fn head_config(&self) -> Result<HeadConfig> {
        let mut v = self.config.clone();
        let validation = v.as_object_mut().and_then(|m| m.remove("validation"));
        let mut cfg: HeadConfig = serde_json::from_value(v).context("the head's config")?;
        if let Some(val) = validation {
            cfg.validation = serde_json::from_value(val).context("the head's validation")?;
        }
        Ok(cfg)
    }
}

impl FoldHead {
    pub fn config(&self) -> &HeadConfig {
        match self {
            FoldHead::Net(h) => &h.config,
            FoldHead::Graph(h) => &h.config,
        }
    }

    /// Widths of the inputs it reads.
    pub fn dims(&self) -> InputDims {
        match self {
            FoldHead::Net(h) => InputDims { a: h.d_in, b: None },
            FoldHead::Graph(h) => h.dims,
        }
    }

    pub fn n_out(&self) -> usize {
        match self {
            FoldHead::Net(h) => h.n_out,
            FoldHead::Graph(h) => h.n_out,
        }
    }

    /// Scores every clip of `input`: `[n, n_out]`.
    pub fn predict(&self, input: &HeadInput) -> Result<Vec<f32>> {
        ensure!(
            input.dims() == self.dims(),
            "the input's widths {:?} differ from the head's {:?}",
            input.dims(),
            self.dims()
        );
        match (self, input) {
            (FoldHead::Net(h), HeadInput::Pooled { values, .. }) => h.predict(values),
            (FoldHead::Net(_), _) => bail!("a pooled-vector head got frame sequences"),
            (FoldHead::Graph(h), _) => {
                let rows: Vec<usize> = (0..input.n_clips()).collect();
                h.predict(input, &rows)
            }
        }
    }

    fn standardizers(&self) -> &[Standardizer] {
        match self {
            FoldHead::Net(h) => std::slice::from_ref(&h.standardizer),
            FoldHead::Graph(h) => &h.standardizers,
        }
    }

    /// Puts the head's tensors into `file` under `prefix` and returns its descriptor.
    pub fn save(&self, file: &mut TensorFile, prefix: &str) -> HeadDescriptor {
        let (params, buffers, loss_params) = match self {
            FoldHead::Net(h) => (&h.params, &[][..], &h.loss_params),
            FoldHead::Graph(h) => (&h.params, &h.buffers[..], &h.loss_params),
        };
        file.put(format!("{prefix}.params"), params.clone());
        file.put(format!("{prefix}.buffers"), buffers.to_vec());
        file.put(format!("{prefix}.loss_params"), loss_params.clone());
        for (j, s) in self.standardizers().iter().enumerate() {
            file.put(format!("{prefix}.standardizer.{j}.mean"), s.mean.clone());
            file.put(
                format!("{prefix}.standardizer.{j}.inv_std"),
                s.inv_std.clone(),
            );
        }
        HeadDescriptor {
            stack: match self {
                FoldHead::Net(_) => "net",
                FoldHead::Graph(_) => "graph",
            }
            .into(),
            config: serde_json::to_value(self.config()).expect("a head config serialises"),
            dims: self.dims(),
            n_out: self.n_out(),
            prefix: prefix.into(),
        }
    }

    /// Puts fold heads into `file` (fold k under `fold<k>`); their descriptors, in fold order.
    pub fn save_all(heads: &[FoldHead], file: &mut TensorFile) -> Vec<HeadDescriptor> {
        heads
            .iter()
            .enumerate()
            .map(|(k, h)| h.save(file, &format!("fold{k}")))
            .collect()
    }

    /// The heads `descriptors` describe, from `file`, in their order.
    pub fn load_all(
        descriptors: &[HeadDescriptor],
        file: &TensorFile,
        what: &str,
    ) -> Result<Vec<FoldHead>> {
        descriptors
            .iter()
            .map(|d| FoldHead::load(d, file, what))
            .collect()
    }

    /// The head `d` describes, from `file` (`what` names the file in errors).
    /// Its parameter count is checked against its config, so a bundle edited
    /// by hand or from another version fails here, not with wrong scores.
    pub fn load(d: &HeadDescriptor, file: &TensorFile, what: &str) -> Result<FoldHead> {
        let p = &d.prefix;
        let config = d
            .head_config()
            .with_context(|| format!("{what}: head {p}"))?;
        let params = file.get(&format!("{p}.params"), what)?.to_vec();
        let loss_params = file.get_or_empty(&format!("{p}.loss_params"));
        let n_inputs = if d.dims.b.is_some() { 2 } else { 1 };
        let widths = [Some(d.dims.a), d.dims.b];
        let mut standardizers = Vec::with_capacity(n_inputs);
        for (j, width) in widths.iter().flatten().enumerate() {
            let mean = file.get(&format!("{p}.standardizer.{j}.mean"), what)?;
            let inv_std = file.get(&format!("{p}.standardizer.{j}.inv_std"), what)?;
            ensure!(
                mean.len() == *width && inv_std.len() == *width,
                "{what}: {p}.standardizer.{j} holds {} and {} values for an input {width} wide",
                mean.len(),
                inv_std.len()
            );
            standardizers.push(Standardizer {
                mean: mean.to_vec(),
                inv_std: inv_std.to_vec(),
            });
        }
        let head = match d.stack.as_str() {
            "net" => {
                ensure!(
                    d.dims.b.is_none(),
                    "{what}: {p}: a net head reads one input"
                );
                let h = TrainedHead {
                    config,
                    d_in: d.dims.a,
                    n_out: d.n_out,
                    standardizer: standardizers.remove(0),
                    params,
                    loss_params,
                };
                let want = super::net::Net::new(&h.config, h.d_in, h.n_out)
                    .layout()
                    .total;
                ensure!(
                    h.params.len() == want,
                    "{what}: {p}.params holds {} values; a {:?} head {} -> {} has {want}",
                    h.params.len(),
                    h.config.arch.name(),
                    h.d_in,
                    h.n_out
                );
                FoldHead::Net(h)
            }
            "graph" => {
                let h = GraphHead {
                    config,
                    dims: d.dims,
                    n_out: d.n_out,
                    standardizers,
                    params,
                    buffers: file.get_or_empty(&format!("{p}.buffers")),
                    loss_params,
                };
                h.check_shapes()
                    .with_context(|| format!("{what}: head {p}"))?;
                FoldHead::Graph(h)
            }
            other => bail!("{what}: {p}: unknown head stack `{other}` (expected net or graph)"),
        };
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::config::{Arch, Hidden, Validation};
    use crate::head::frames::FrameSet;
    use crate::head::{FitData, fit, fit_graph};

    fn cfg(arch: Arch) -> HeadConfig {
        HeadConfig {
            arch,
            hidden: Hidden(vec![8]),
            attention_hidden: Some(4),
            max_epochs: 3,
            ..Default::default()
        }
    }

    fn data(n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
        let mut rng = crate::rng::Rng::new(7, 0);
        let x: Vec<f32> = (0..n * d).map(|_| rng.uniform_f32()).collect();
        let y: Vec<f32> = (0..n * 19).map(|i| 0.2 + 0.6 * x[i % (n * d)]).collect();
        (x, y)
    }

    fn round_trip(head: &FoldHead, input: &HeadInput) {
        let mut file = TensorFile::new();
        let d = head.save(&mut file, "fold2");
        let bytes = file.to_bytes().unwrap();
        let back = TensorFile::from_bytes(&bytes, "mem").unwrap();
        let json = serde_json::to_string(&d).unwrap();
        let d2: HeadDescriptor = serde_json::from_str(&json).unwrap();
        let loaded = FoldHead::load(&d2, &back, "mem").unwrap();
        assert_eq!(&loaded, head);
        assert_eq!(loaded.predict(input).unwrap(), head.predict(input).unwrap());
        // A truncated parameter tensor is an error naming it.
        let mut bad = back.clone();
        let (shape, v) = bad.tensors.get_mut("fold2.params").unwrap();
        v.pop();
        shape[0] -= 1;
        let e = FoldHead::load(&d2, &bad, "bundle.safetensors").unwrap_err();
        assert!(format!("{e:#}").contains("bundle.safetensors"), "{e:#}");
    }

    #[test]
    fn a_net_head_and_a_graph_head_round_trip_through_a_tensor_file() {
        let (n, d) = (24, 5);
        let (x, y) = data(n, d);
        let rows: Vec<usize> = (0..n).collect();
        let fd = FitData {
            features: &x,
            d_in: d,
            labels: &y,
            n_out: 19,
            train_rows: &rows[..18],
            val_rows: &rows[18..],
        };
        // The study's protocol is kept too (`validation` is not a pipeline.toml head key).
        let study = HeadConfig {
            validation: Validation::TestFold,
            ..cfg(Arch::Mlp)
        };
        let (h, _) = fit(&study, &fd, 16).unwrap();
        let pooled = HeadInput::Pooled {
            values: x.clone(),
            dim: d,
        };
        round_trip(&FoldHead::Net(h), &pooled);

        let clips: Vec<&[f32]> = x.chunks(d).collect();
        let frames = HeadInput::Frames(FrameSet::new(1, &clips).unwrap());
        let c = cfg(Arch::Attention);
        let (g, _) = fit_graph(&c, &frames, &y, 19, &rows[..18], &rows[18..], 16).unwrap();
        round_trip(&FoldHead::Graph(g), &frames);
    }
}
